"""The seen-id cache: bounded in size and in age (the reference's is unbounded, W-GOS-2)."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["SeenCache"]


class SeenCache:
    """Message ids seen recently, oldest first.

    An id is remembered for ``ttl_s`` after it was first seen; at ``max_size`` the oldest is
    forgotten early (`evicted` counts those). Insertion order is expiry order, so expiring
    and the deadline only look at the front.
    """

    def __init__(self, *, max_size: int, ttl_s: float) -> None:
        """Create an empty cache."""
        self._max_size = max_size
        self._ttl_s = ttl_s
        self._expiry: dict[str, float] = {}
        self.evicted = 0
        self.has: Callable[[object], bool] = self._expiry.__contains__
        """``msg_id in cache`` as a bound method of the dict (no Python frame: hot path)."""

    def __len__(self) -> int:
        return len(self._expiry)

    def __contains__(self, msg_id: object) -> bool:
        return msg_id in self._expiry

    def add(self, msg_id: str, now: float) -> bool:
        """Remember `msg_id`; returns False if it was known already (nothing changes)."""
        expiry = self._expiry
        if msg_id in expiry:
            return False
        if len(expiry) >= self._max_size:
            del expiry[next(iter(expiry))]
            self.evicted += 1
        expiry[msg_id] = now + self._ttl_s
        return True

    def expire(self, now: float) -> None:
        """Forget the ids whose time is up; harmless when nothing is due."""
        expiry = self._expiry
        while expiry:
            first = next(iter(expiry))
            if expiry[first] > now:
                break
            del expiry[first]

    def deadline(self) -> float | None:
        """When the oldest id expires (``None`` when empty)."""
        return next(iter(self._expiry.values()), None)
