"""Injected randomness: every machine takes its random numbers and entropy from these.

`io/` passes `random.Random()` and `SystemEntropy`; the simulator and tests pass
`random.Random(seed)` and `SeededEntropy(seed)` so that one seed gives one trace.
"""

from __future__ import annotations

import hashlib
from typing import Protocol, TypeVar

__all__ = ["Entropy", "Rng", "SeededEntropy"]

T = TypeVar("T")


class Rng(Protocol):
    """The part of `random.Random` the machines use."""

    def random(self) -> float:
        """Return a float in [0, 1)."""
        ...

    def randrange(self, stop: int, /) -> int:
        """Return an int in [0, stop)."""
        ...

    def shuffle(self, x: list[T], /) -> None:
        """Shuffle a list in place."""
        ...


class Entropy(Protocol):
    """A source of unpredictable bytes (keys, nonces, ids)."""

    def token_bytes(self, n: int, /) -> bytes:
        """Return n bytes."""
        ...


class SeededEntropy:
    """Deterministic entropy for tests and the simulator (never for real keys)."""

    def __init__(self, seed: int | str | bytes) -> None:
        self._key = seed if isinstance(seed, bytes) else str(seed).encode()
        self._counter = 0

    def token_bytes(self, n: int, /) -> bytes:
        """Return n bytes derived from the seed and a counter."""
        out = b""
        while len(out) < n:
            self._counter += 1
            out += hashlib.blake2b(
                self._counter.to_bytes(8, "big"), key=self._key[:64], digest_size=64
            ).digest()
        return out[:n]
