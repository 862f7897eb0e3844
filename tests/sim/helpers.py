"""Shared helpers for the simulator tests: a recording node and event filters."""

from __future__ import annotations

from typing import TypeVar

from peerpigeon.protocol import client as pc
from peerpigeon.sim import ClientHandle, SimNode, StreamEnd

E = TypeVar("E")

LogEntry = tuple[str, float, object]


class RecorderNode(SimNode):
    """A machine-less node that records every input (streams and datagrams)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.log: list[LogEntry] = []
        self.accepted: list[StreamEnd] = []

    def next_deadline(self) -> float | None:
        return None

    def handle_timer(self, now: float) -> None:
        pass

    def flush(self, now: float) -> None:
        pass

    def stream_incoming(self, end: StreamEnd, path: str, now: float) -> None:
        self.accepted.append(end)
        self.log.append(("incoming", now, path))

    def stream_opened(self, end: StreamEnd, now: float) -> None:
        self.log.append(("opened", now, None))

    def stream_frame(self, end: StreamEnd, data: str | bytes, now: float) -> None:
        self.log.append(("frame", now, data))

    def stream_pong(self, end: StreamEnd, now: float) -> None:
        self.log.append(("pong", now, None))

    def stream_closed(self, end: StreamEnd, code: int, reason: str, now: float) -> None:
        self.log.append(("closed", now, (code, reason)))

    def stream_failed(self, end: StreamEnd, reason: str, now: float) -> None:
        self.log.append(("failed", now, reason))

    def datagram_received(self, src: str, payload: bytes, now: float) -> None:
        self.log.append(("datagram", now, payload))

    def of(self, kind: str) -> list[LogEntry]:
        """The log entries of one kind."""
        return [entry for entry in self.log if entry[0] == kind]


def rounded(entries: list[LogEntry]) -> list[LogEntry]:
    """The entries with their times rounded to microseconds (for exact comparisons)."""
    return [(kind, round(at, 6), payload) for kind, at, payload in entries]


def events_of(handle: ClientHandle, kind: type[E]) -> list[E]:
    """The client's events of one type, in order."""
    return [ev for ev in handle.events if isinstance(ev, kind)]


def left_peers(handle: ClientHandle, reason: str | None = None) -> list[str]:
    """IDs in the client's `PeerLeft` events (optionally only those with `reason`)."""
    return [
        ev.peer_id for ev in events_of(handle, pc.PeerLeft) if reason is None or ev.reason == reason
    ]
