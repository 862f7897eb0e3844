"""The run loop `GossipSim` and `MeshSim` share: a virtual clock, a queue of callbacks, and
machines that are drained after every input and woken at their deadlines.

A subclass says how to reach a node's machine (`_machine`), how to carry out one action
(`_perform`) and what to make of one event (`_record`). Every input a subclass feeds a machine
is followed by `_pump`, so a live node with a deadline always has a wake-up queued at or
before it. The pair RNGs (``random.Random(f"{seed}:{a}:{b}")``, names sorted) draw the
per-message delay, so adding a pair never reshuffles another's draws.
"""

from __future__ import annotations

import hashlib
import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import ClassVar, Generic, Protocol, TypeVar

from .clock import Scheduler, VirtualClock

__all__ = ["Machine", "MachineSim", "SimRecord"]

A = TypeVar("A")
E = TypeVar("E")
A_co = TypeVar("A_co", covariant=True)
E_co = TypeVar("E_co", covariant=True)


class Machine(Protocol[A_co, E_co]):
    """The part of a sans-IO machine the loop drives."""

    def drain_actions(self) -> Iterable[A_co]:
        """The queued actions, oldest first."""
        ...

    def drain_events(self) -> Iterable[E_co]:
        """The queued events, oldest first."""
        ...

    def next_deadline(self) -> float | None:
        """When `handle_timer` is next due."""
        ...

    def handle_timer(self, now: float) -> None:
        """Do what is due at `now`."""
        ...


class SimRecord(Protocol):
    """The simulator's bookkeeping for one node: whether it runs, and its queued wake-up."""

    alive: bool
    wake_at: float | None


N = TypeVar("N", bound=SimRecord)


class MachineSim(ABC, Generic[N, A, E]):
    """A virtual clock, a queue of callbacks and the drain / arm / wake cycle of each node.

    Args:
        seed: the one seed (the pair RNGs use it; subclasses use it for the rest).
        latency_s, jitter_s: one-way delay of a message is ``latency + U[0, jitter)``.
        wall_offset_s: wall-clock seconds at virtual time 0.
        digest: hash every recorded line into `trace_digest`.
    """

    _error: ClassVar[type[RuntimeError]] = RuntimeError
    """Raised when a machine leaves its deadline at or before ``now`` after `handle_timer`."""

    def __init__(
        self,
        seed: int | str,
        *,
        latency_s: float,
        jitter_s: float,
        wall_offset_s: float,
        digest: bool,
    ) -> None:
        self.seed = seed
        self.clock = VirtualClock(wall_offset_s=wall_offset_s)
        self._queue: Scheduler[Callable[[], None]] = Scheduler()
        self._latency_s = latency_s
        self._jitter_s = jitter_s
        self._pair_rngs: dict[tuple[str, str], random.Random] = {}
        self._digest = hashlib.sha256() if digest else None
        self.steps = 0

    # --- time ----------------------------------------------------------------------------

    @property
    def now(self) -> float:
        """Virtual time in seconds."""
        return self.clock.now

    def run_until(self, t: float) -> None:
        """Process everything due up to `t`, then set the clock to `t`."""
        queue = self._queue
        while queue:
            nxt = queue.peek_time()
            if nxt is None or nxt > t:
                break
            at, fn = queue.pop()
            self.clock.advance_to(at)
            self.steps += 1
            fn()
        self.clock.advance_to(max(t, self.now))

    def run_for(self, dt: float) -> None:
        """`run_until` ``now + dt``."""
        self.run_until(self.now + dt)

    def call_at(self, at: float, fn: Callable[[], None]) -> None:
        """Run `fn()` at virtual time `at` (scripted scenarios, churn)."""
        if at < self.now:
            raise ValueError("cannot schedule in the past")
        self._queue.push(at, fn)

    def trace_digest(self) -> str:
        """SHA-256 (hex) of every recorded event, in order (empty string when digest is off)."""
        return "" if self._digest is None else self._digest.hexdigest()

    # --- what a subclass supplies ----------------------------------------------------------

    @abstractmethod
    def _machine(self, node: N) -> Machine[A, E]:
        """The node's machine."""

    @abstractmethod
    def _label(self, node: N) -> str:
        """The node's name in error messages."""

    @abstractmethod
    def _perform(self, node: N, action: A) -> None:
        """Carry out one action of the node's machine."""

    @abstractmethod
    def _record(self, node: N, event: E) -> None:
        """Count, keep or trace one event of the node's machine."""

    # --- shared internals ------------------------------------------------------------------

    def _trace(self, who: str, event: object) -> None:
        if self._digest is not None:
            self._digest.update(f"{self.now!r} {who} {event!r}\n".encode())

    def _pair_rng(self, a: str, b: str) -> random.Random:
        key = (a, b) if a <= b else (b, a)
        rng = self._pair_rngs.get(key)
        if rng is None:
            rng = self._pair_rngs[key] = random.Random(f"{self.seed}:{key[0]}:{key[1]}")
        return rng

    def _delay(self, a: str, b: str) -> float:
        """One-way delay of one message between `a` and `b` (a jitter draw from their RNG)."""
        if not self._jitter_s:
            return self._latency_s
        return self._latency_s + self._pair_rng(a, b).random() * self._jitter_s

    def _pump(self, node: N) -> None:
        """Perform the machine's actions, record its events, re-arm its timer."""
        if not node.alive:
            return
        machine = self._machine(node)
        for action in machine.drain_actions():
            self._perform(node, action)
        for event in machine.drain_events():
            self._record(node, event)
        self._arm(node)

    def _arm(self, node: N) -> None:
        deadline = self._machine(node).next_deadline()
        if deadline is None or not node.alive:
            return
        if node.wake_at is None or deadline < node.wake_at:
            at = max(deadline, self.now)
            node.wake_at = at
            self._queue.push(at, lambda: self._wake(node))

    def _wake(self, node: N) -> None:
        if not node.alive:
            return
        now = self.now
        if node.wake_at == now:
            node.wake_at = None
        machine = self._machine(node)
        deadline = machine.next_deadline()
        if deadline is None:
            return
        if deadline > now:
            self._arm(node)  # the deadline moved later: a stale wake-up
            return
        machine.handle_timer(now)
        after = machine.next_deadline()
        if after is not None and after <= now:
            raise self._error(f"{self._label(node)}: deadline {after!r} not after {now!r}")
        self._pump(node)
