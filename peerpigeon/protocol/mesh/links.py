"""The mesh's per-peer links: phase, timeout and counters, plus evicted links lingering.

A link takes a slot from the dial (or the answer) until it ends; an evicted link lingers
without a slot until its `CloseLink` is due (reference weakness 23).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from peerpigeon.protocol.ids import PeerId
from peerpigeon.protocol.topology import LinkPhase, LinkSlot

from .events import PeerInfo

__all__ = ["Link", "LinkTable"]

_PHASE_STATUS: Final = {
    LinkPhase.DIALING: "connecting",
    LinkPhase.ANSWERING: "connecting",
    LinkPhase.CONNECTING: "channel-connecting",
    LinkPhase.OPEN: "connected",
}


@dataclass(slots=True)
class Link:
    """One link that takes a slot."""

    peer: PeerId
    initiator: bool
    phase: LinkPhase
    started_at: float
    deadline: float | None  # the connection timeout; None once open
    offer_sent: bool = False
    candidates: int = 0
    max_message_size: int = 0  # the remote's limit (0: none), known once open
    bad_frames: int = 0
    opened_at: float | None = None  # when the data channel opened
    spare_until: float = 0.0  # refused (or ignored) our ask to evict it: not a victim till then

    @property
    def is_open(self) -> bool:
        """Whether the data channel is open."""
        return self.phase is LinkPhase.OPEN


class LinkTable:
    """Links by peer, oldest first, and the evicted ones waiting for their close."""

    def __init__(self) -> None:
        """Start empty."""
        self._active: dict[PeerId, Link] = {}
        self._lingering: dict[PeerId, float] = {}  # peer -> close_at

    def __contains__(self, peer: object) -> bool:
        return peer in self._active

    def __len__(self) -> int:
        return len(self._active)

    def __iter__(self) -> Iterator[PeerId]:
        return iter(tuple(self._active))

    def __bool__(self) -> bool:
        return bool(self._active or self._lingering)

    def get(self, peer: PeerId) -> Link | None:
        """The link to `peer` that takes a slot, if any."""
        return self._active.get(peer)

    def add(self, link: Link) -> None:
        """Add a new link (the caller made sure none is live for that peer)."""
        self._active[link.peer] = link

    def pop(self, peer: PeerId) -> Link:
        """Remove and return the link to `peer` (it must exist)."""
        return self._active.pop(peer)

    def open_peers(self) -> tuple[PeerId, ...]:
        """Peers with an open channel, oldest link first."""
        return tuple(p for p, link in self._active.items() if link.is_open)

    def slots(self) -> dict[PeerId, LinkSlot]:
        """The links as the topology sees them."""
        return {p: LinkSlot(p, link.phase, link.started_at) for p, link in self._active.items()}

    def infos(self) -> tuple[PeerInfo, ...]:
        """The links as the application sees them."""
        return tuple(
            PeerInfo(p, _PHASE_STATUS[link.phase], link.initiator, link.started_at)
            for p, link in self._active.items()
        )

    def timed_out(self, now: float) -> list[PeerId]:
        """Peers whose link did not open in time."""
        return [
            p
            for p, link in self._active.items()
            if link.deadline is not None and now >= link.deadline
        ]

    def linger(self, peer: PeerId, close_at: float) -> None:
        """Keep an evicted link (already popped) until `close_at`."""
        self._lingering[peer] = close_at

    def is_lingering(self, peer: PeerId) -> bool:
        """Whether an evicted link to `peer` waits for its close."""
        return peer in self._lingering

    def stop_lingering(self, peer: PeerId) -> bool:
        """Forget the lingering link to `peer`; returns whether there was one."""
        return self._lingering.pop(peer, None) is not None

    def lingers_due(self, now: float) -> list[PeerId]:
        """Remove and return the lingering links whose close is due."""
        due = [p for p, at in self._lingering.items() if now >= at]
        for peer in due:
            del self._lingering[peer]
        return due

    def drain_lingering(self) -> list[PeerId]:
        """Remove and return every lingering link."""
        out = list(self._lingering)
        self._lingering.clear()
        return out

    def deadline(self) -> float | None:
        """The earliest connection timeout or linger end."""
        best: float | None = None
        for link in self._active.values():
            at = link.deadline
            if at is not None and (best is None or at < best):
                best = at
        for at in self._lingering.values():
            if best is None or at < best:
                best = at
        return best
