"""Pairing binary payloads with their headers: one FIFO of descriptors per channel.

Reference: data-plane.md section 5.2. A binary frame carries no id: it belongs to the oldest
header not yet paired. Every header is queued, usable or not, so one bad header costs one
payload and not every later one (W-BIN-2); the queue is bounded (``max_pending_binary``).
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

from peerpigeon.protocol.frames import BinaryGossipHeader
from peerpigeon.protocol.wire import JsonObject

__all__ = ["Pending", "PendingKind", "PendingPayloads"]


class PendingKind(enum.Enum):
    """What to do with the payload that pairs with a header."""

    DIRECT = "direct"  # __BINARY__ from the neighbour: deliver
    BROADCAST = "broadcast"  # __PP_BINARY__: deliver once and relay
    DISCARD = "discard"  # unusable or unwanted header: drop
    STREAM = "stream"  # a binary stream chunk: hand header and payload to the stream layer


@dataclass(frozen=True, slots=True)
class Pending:
    """One header awaiting its payload."""

    kind: PendingKind
    size: int | None = None
    header: BinaryGossipHeader | None = None
    stream_header: JsonObject | None = None  # STREAM: the chunk header, for the stream layer


class PendingPayloads:
    """The FIFO of one channel, bounded by `max_pending`."""

    __slots__ = ("_max", "_queue")

    def __init__(self, max_pending: int) -> None:
        """Start empty."""
        self._max = max_pending
        self._queue: deque[Pending] = deque()

    def __len__(self) -> int:
        return len(self._queue)

    def push(self, item: Pending) -> bool:
        """Queue a header; False (and the queue is cleared) when it was full."""
        if len(self._queue) >= self._max:
            self._queue.clear()
            return False
        self._queue.append(item)
        return True

    def pop(self) -> Pending | None:
        """The oldest header, or ``None`` when a payload arrived without one."""
        return self._queue.popleft() if self._queue else None
