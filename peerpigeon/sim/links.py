"""In-memory links: latency, jitter, loss and partitions between simulated nodes.

A `Link` is the path between two nodes. It has one `LinkConfig` and one
``random.Random(f"{seed}:{a}:{b}")`` (names sorted), so adding a link never reshuffles the
draws of another. Two kinds of traffic cross a link:

- a `Stream` is one WebSocket connection (TCP underneath): delivered in order, jitter
  included, and never silently lossy. A loss draw breaks the connection instead: both
  ends see it fail (close code 1006) when the lost frame would have arrived.
- a `Datagram` is one unordered, unreliable message (for the mesh's data channels later):
  jitter may reorder datagrams and a loss draw drops just that one.

A `Partition` separates two groups of nodes until healed. In ``HOLD`` mode traffic
between them waits and is released at the heal (TCP retransmitting through an outage);
in ``DROP`` mode datagrams are lost and streams break (a firewall that resets
connections). Nodes in neither group are unaffected.
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from .nodes import SimNode

__all__ = [
    "CLOSE_ABNORMAL",
    "Datagram",
    "Link",
    "LinkConfig",
    "Partition",
    "PartitionMode",
    "PartitionTable",
    "Stream",
    "StreamEnd",
    "StreamItem",
    "StreamItemKind",
]

CLOSE_ABNORMAL: Final = 1006


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkConfig:
    """Delivery characteristics of one link (both directions).

    Attributes:
        latency_s: one-way delay of every message.
        jitter_s: extra one-way delay drawn uniformly from ``[0, jitter_s)`` per message.
            On a stream it never reorders: a message waits for the one sent before it.
        loss: probability that one message is lost. A lost stream message breaks the
            connection (TCP does not lose frames, connections die); a lost datagram is gone.
    """

    latency_s: float = 0.02
    jitter_s: float = 0.01
    loss: float = 0.0

    def __post_init__(self) -> None:
        """Validate every field (raises `ValueError`)."""
        for name in ("latency_s", "jitter_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name}: must be a number")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name}: must be finite and >= 0")
        if isinstance(self.loss, bool) or not isinstance(self.loss, int | float):
            raise ValueError("loss: must be a number")
        if not 0.0 <= self.loss < 1.0:
            raise ValueError("loss: must be in [0, 1)")


class Link:
    """The path between nodes `a` and `b` (sorted): a config and a private RNG."""

    __slots__ = ("a", "b", "config", "rng")

    def __init__(self, a: str, b: str, config: LinkConfig, seed: int | str) -> None:
        self.a, self.b = (a, b) if a <= b else (b, a)
        self.config = config
        self.rng = random.Random(f"{seed}:{self.a}:{self.b}")

    def delay(self) -> float:
        """One-way delay of one message: latency plus a fresh jitter draw."""
        cfg = self.config
        if cfg.jitter_s:
            return cfg.latency_s + self.rng.random() * cfg.jitter_s
        return cfg.latency_s

    def lost(self) -> bool:
        """Draw whether one message is lost (no draw at all when loss is 0)."""
        loss = self.config.loss
        return bool(loss) and self.rng.random() < loss

    def __repr__(self) -> str:
        return f"Link({self.a!r}, {self.b!r}, {self.config!r})"


# --- partitions -------------------------------------------------------------------------------


class PartitionMode(enum.Enum):
    """What a partition does to traffic that tries to cross it."""

    HOLD = "hold"  # wait for the heal, then deliver (streams stay in order)
    DROP = "drop"  # datagrams are lost, streams break with 1006


@dataclass(frozen=True, slots=True)
class Partition:
    """Nodes in `group_a` cannot reach nodes in `group_b` (and back)."""

    id: int
    group_a: frozenset[str]
    group_b: frozenset[str]
    mode: PartitionMode

    def separates(self, a: str, b: str) -> bool:
        """Whether traffic between nodes `a` and `b` crosses this partition."""
        return (a in self.group_a and b in self.group_b) or (
            a in self.group_b and b in self.group_a
        )


class PartitionTable:
    """The active partitions, oldest first."""

    def __init__(self) -> None:
        self._active: dict[int, Partition] = {}
        self._next_id = 0

    def add(self, group_a: Iterable[str], group_b: Iterable[str], mode: PartitionMode) -> Partition:
        """Start a partition between two disjoint, non-empty groups of node names."""
        a, b = frozenset(group_a), frozenset(group_b)
        if not a or not b:
            raise ValueError("both groups must be non-empty")
        if a & b:
            raise ValueError(f"groups overlap: {sorted(a & b)}")
        self._next_id += 1
        part = Partition(self._next_id, a, b, mode)
        self._active[part.id] = part
        return part

    def remove(self, partition_id: int) -> bool:
        """End one partition; returns whether it was active."""
        return self._active.pop(partition_id, None) is not None

    def clear(self) -> list[Partition]:
        """End every partition; returns those that were active."""
        ended = list(self._active.values())
        self._active.clear()
        return ended

    @property
    def active(self) -> tuple[Partition, ...]:
        """The active partitions, oldest first."""
        return tuple(self._active.values())

    def mode_between(self, a: str, b: str) -> PartitionMode | None:
        """How traffic between `a` and `b` is blocked (``DROP`` beats ``HOLD``), or ``None``."""
        mode: PartitionMode | None = None
        for part in self._active.values():
            if part.separates(a, b):
                if part.mode is PartitionMode.DROP:
                    return PartitionMode.DROP
                mode = PartitionMode.HOLD
        return mode

    def __bool__(self) -> bool:
        return bool(self._active)


# --- streams ----------------------------------------------------------------------------------


class StreamItemKind(enum.Enum):
    """What travels on a stream, in order with the frames."""

    OPEN = "open"  # the opening handshake reaching the acceptor
    OPENED = "opened"  # the acceptor's answer reaching the opener (first item back)
    FRAME = "frame"
    PING = "ping"
    PONG = "pong"
    CLOSE = "close"  # a close frame (code, reason)
    RESET = "reset"  # the connection was aborted: the receiver sees 1006


class StreamEnd:
    """One side of a `Stream`, as its node sees it (an opaque transport handle).

    ``attached`` is true while the node still wants to hear about this socket: an
    opener's end is attached from the start; an acceptor's end once the open arrives.
    """

    __slots__ = ("attached", "node", "opened", "side", "stream")

    def __init__(self, stream: Stream, side: int, node: SimNode | None) -> None:
        self.stream = stream
        self.side = side
        self.node = node
        self.attached = False
        self.opened = False

    @property
    def peer(self) -> StreamEnd:
        """The other end of the same stream."""
        return self.stream.ends[1 - self.side]

    def __repr__(self) -> str:
        name = self.node.name if self.node is not None else "?"
        return f"<StreamEnd #{self.stream.id} side={self.side} node={name}>"


class Stream:
    """One WebSocket connection over a `Link`: side 0 opened it, side 1 accepted it.

    Each direction numbers its items; the receiver delivers them strictly in that order,
    holding back any that arrive early (TCP's reorder buffer), so neither jitter nor a
    partition's hold-and-release can reorder a stream.
    """

    __slots__ = (
        "buffers",
        "close_sent",
        "dead",
        "ends",
        "expect",
        "id",
        "last_arrival",
        "link",
        "next_seq",
        "path",
        "target",
    )

    def __init__(self, stream_id: int, link: Link, opener: SimNode, target: str, path: str) -> None:
        self.id = stream_id
        self.link = link
        self.target = target  # the acceptor's node name
        self.path = path  # the request target: "/?peerId=..."
        self.ends = (StreamEnd(self, 0, opener), StreamEnd(self, 1, None))
        self.ends[0].attached = True
        self.next_seq = [0, 0]  # per sending side
        self.expect = [0, 0]  # per receiving side
        self.last_arrival = [-math.inf, -math.inf]  # per sending side
        self.buffers: tuple[dict[int, StreamItem], dict[int, StreamItem]] = ({}, {})
        self.close_sent = [False, False]
        self.dead = False

    def schedule(
        self,
        from_side: int,
        kind: StreamItemKind,
        now: float,
        *,
        data: str | bytes = "",
        code: int = 0,
        reason: str = "",
    ) -> tuple[float, StreamItem]:
        """Number a new item from `from_side`; draw its arrival time and its loss.

        The arrival is never before the previous item's in the same direction. Returns
        ``(arrival, item)`` for the caller to queue.
        """
        link = self.link
        at = now + link.delay()
        if at < self.last_arrival[from_side]:
            at = self.last_arrival[from_side]
        self.last_arrival[from_side] = at
        seq = self.next_seq[from_side]
        self.next_seq[from_side] = seq + 1
        item = StreamItem(self, 1 - from_side, seq, kind, data, code, reason, link.lost())
        return at, item

    def reschedule(self, item: StreamItem, now: float) -> float:
        """Arrival time for a held `item` released at `now` (keeps the direction monotonic)."""
        from_side = 1 - item.to_side
        at = now + self.link.delay()
        if at < self.last_arrival[from_side]:
            at = self.last_arrival[from_side]
        self.last_arrival[from_side] = at
        return at

    def __repr__(self) -> str:
        return f"<Stream #{self.id} {self.link.a}<->{self.link.b} {self.path!r}>"


class StreamItem:
    """One message in flight on a stream, towards `to_side`."""

    __slots__ = ("code", "data", "kind", "lost", "reason", "seq", "stream", "to_side")

    def __init__(
        self,
        stream: Stream,
        to_side: int,
        seq: int,
        kind: StreamItemKind,
        data: str | bytes,
        code: int,
        reason: str,
        lost: bool,
    ) -> None:
        self.stream = stream
        self.to_side = to_side
        self.seq = seq
        self.kind = kind
        self.data = data
        self.code = code
        self.reason = reason
        self.lost = lost

    def __repr__(self) -> str:
        return f"<StreamItem #{self.stream.id} to={self.to_side} seq={self.seq} {self.kind.value}>"


class Datagram:
    """One unordered, unreliable message in flight from node `src` to node `dst`."""

    __slots__ = ("dst", "link", "lost", "payload", "src")

    def __init__(self, link: Link, src: str, dst: str, payload: bytes, lost: bool) -> None:
        self.link = link
        self.src = src
        self.dst = dst
        self.payload = payload
        self.lost = lost

    def __repr__(self) -> str:
        return f"<Datagram {self.src}->{self.dst} {len(self.payload)} bytes>"
