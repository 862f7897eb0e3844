"""Coalescing: a burst of changes becomes one sync, at most `max_rate_hz` syncs a second.

`Coalescer` is a small sans-IO throttle (time comes in as ``now``): the first change after a
quiet spell syncs at once (leading edge); changes within the interval after a sync are
folded into one sync at the interval's end (trailing edge), which the caller arms a timer
for with `next_deadline`. So the view is never more than one interval behind, and never
syncs more often than the rate allows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["CoalesceStats", "Coalescer"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CoalesceStats:
    """Counters of one `Coalescer` (a snapshot).

    Attributes:
        changes: changes reported.
        syncs: syncs granted.
        coalesced: changes that did not get a sync of their own.
        first_sync_at: time of the first sync (``None`` before it).
        last_sync_at: time of the latest sync (``None`` before it).
    """

    changes: int
    syncs: int
    coalesced: int
    first_sync_at: float | None
    last_sync_at: float | None

    def syncs_per_s(self, now: float) -> float:
        """Syncs per second between the first sync and `now` (0.0 before one second of data)."""
        if self.first_sync_at is None or self.syncs < 2:
            return 0.0
        span = max(now, self.last_sync_at or now) - self.first_sync_at
        return (self.syncs - 1) / span if span > 0 else 0.0


class Coalescer:
    """A throttle with a leading and a trailing edge.

    Inputs: `changed(now)` when the source changed, `handle_timer(now)` at `next_deadline`.
    Both return whether the caller should sync now; the caller then syncs (the coalescer
    assumes it did). `force(now)` syncs unconditionally (an explicit flush).

    Args:
        max_rate_hz: at most this many syncs per second; ``math.inf`` syncs every change.
    """

    def __init__(self, max_rate_hz: float = 10.0) -> None:
        if math.isnan(max_rate_hz) or max_rate_hz <= 0:
            raise ValueError("max_rate_hz must be > 0")
        self.interval_s = 0.0 if math.isinf(max_rate_hz) else 1.0 / max_rate_hz
        self._pending = False
        self._last_sync_at: float | None = None
        self._first_sync_at: float | None = None
        self._changes = 0
        self._syncs = 0

    @property
    def pending(self) -> bool:
        """Whether a change waits for its sync."""
        return self._pending

    def changed(self, now: float) -> bool:
        """The source changed at `now`; returns whether to sync now."""
        self._changes += 1
        self._pending = True
        return self._due(now)

    def handle_timer(self, now: float) -> bool:
        """The deadline passed (early or late calls are safe); returns whether to sync now."""
        return self._pending and self._due(now)

    def force(self, now: float) -> None:
        """Record a sync at `now` whatever the rate (an explicit flush)."""
        self._synced(now)

    def next_deadline(self) -> float | None:
        """When the pending change may sync (``None`` when nothing is pending)."""
        if not self._pending:
            return None
        if self._last_sync_at is None:
            return -math.inf
        return self._last_sync_at + self.interval_s

    def stats(self) -> CoalesceStats:
        """The counters."""
        return CoalesceStats(
            changes=self._changes,
            syncs=self._syncs,
            coalesced=max(0, self._changes - self._syncs),
            first_sync_at=self._first_sync_at,
            last_sync_at=self._last_sync_at,
        )

    def _due(self, now: float) -> bool:
        last = self._last_sync_at
        if last is None or now >= last + self.interval_s or now < last:
            # ``now < last``: the clock went backwards (a new time base): don't stall.
            self._synced(now)
            return True
        return False

    def _synced(self, now: float) -> None:
        self._pending = False
        self._syncs += 1
        self._last_sync_at = now
        if self._first_sync_at is None:
            self._first_sync_at = now
