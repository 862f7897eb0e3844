"""Virtual time for the simulator: a clock that only moves when told, and an event heap.

Monotonic and wall-clock time are both virtual: wall time is monotonic time plus a fixed
offset, handed to every machine as ``wall_offset_s`` (see STYLE.md 2.7).
"""

from __future__ import annotations

import heapq
import math
from typing import Final, Generic, TypeVar

__all__ = ["DEFAULT_WALL_OFFSET_S", "Scheduler", "VirtualClock"]

T = TypeVar("T")

DEFAULT_WALL_OFFSET_S: Final = 1_700_000_000.0
"""Wall-clock seconds since the epoch at virtual time 0 (2023-11-14T22:13:20Z)."""


class VirtualClock:
    """A monotonic clock that advances only through `advance_to`.

    ``now`` is what every machine input receives; ``wall_offset_s`` is what the machines
    add to ``now`` for wire timestamps, so ``wall_time == now + wall_offset_s`` always.
    """

    def __init__(
        self, start_s: float = 0.0, *, wall_offset_s: float = DEFAULT_WALL_OFFSET_S
    ) -> None:
        if not math.isfinite(start_s) or not math.isfinite(wall_offset_s):
            raise ValueError("start_s and wall_offset_s must be finite")
        self._now = float(start_s)
        self._wall_offset_s = float(wall_offset_s)

    @property
    def now(self) -> float:
        """Virtual monotonic time in seconds."""
        return self._now

    @property
    def wall_offset_s(self) -> float:
        """Seconds added to ``now`` to give wall-clock time since the epoch."""
        return self._wall_offset_s

    @property
    def wall_time(self) -> float:
        """Virtual wall-clock time in seconds since the epoch."""
        return self._now + self._wall_offset_s

    def advance_to(self, t: float) -> None:
        """Move time forward to `t`; raises `ValueError` if `t` is in the past."""
        if t < self._now:
            raise ValueError(f"time moves forward only: {t!r} < {self._now!r}")
        self._now = t


class Scheduler(Generic[T]):
    """A heap of ``(time, seq, item)``: earliest first, ties in the order they were pushed.

    ``seq`` is a counter, so two items due at the same time never compare with each other
    and always come out in one order: the one that makes a seeded run reproducible.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, T]] = []
        self._seq = 0

    def push(self, at: float, item: T) -> None:
        """Schedule `item` at time `at`."""
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, item))

    def pop(self) -> tuple[float, T]:
        """Remove and return the earliest ``(time, item)``; raises `IndexError` when empty."""
        at, _, item = heapq.heappop(self._heap)
        return at, item

    def peek_time(self) -> float | None:
        """Time of the earliest item, or ``None`` when empty."""
        return self._heap[0][0] if self._heap else None

    def __len__(self) -> int:
        return len(self._heap)

    def __bool__(self) -> bool:
        return bool(self._heap)
