"""`play`: advance a simulation in step with the wall clock, so views animate as it runs.

A simulation is a plain synchronous object; running it in one go blocks the kernel and a
view only shows the end. `play` runs it in short slices, sleeping between them, so the
notebook's event loop keeps serving (widget messages, other cells' tasks) and every slice
is one coalesced change for the views. Start it as ``await play(...)`` or in the
background with ``asyncio.create_task(play(...))``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import anyio

__all__ = ["Follower", "PlayStats", "Steppable", "play"]


class Steppable(Protocol):
    """A simulation: `SimNetwork` or `MeshSim`."""

    @property
    def now(self) -> float:
        """Virtual time in seconds."""
        ...

    def run_until(self, t: float) -> None:
        """Process everything due up to `t`, then set the clock to `t`."""
        ...


class Follower(Protocol):
    """A view that follows a simulation (`MeshView`)."""

    def changed(self) -> None:
        """The source changed (the view may coalesce)."""
        ...

    def flush(self) -> None:
        """Show the current state now."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class PlayStats:
    """How a `play` went.

    Attributes:
        slices: how many slices the simulation was run in.
        virtual_s: virtual seconds covered.
        wall_s: wall-clock seconds taken.
        busy_s: wall-clock seconds spent running the simulation (the rest was free).
        max_slice_ms: the longest slice: the longest the event loop was held.
    """

    slices: int
    virtual_s: float
    wall_s: float
    busy_s: float
    max_slice_ms: float


async def play(
    sim: Steppable,
    duration_s: float,
    *,
    speed: float = 1.0,
    slice_s: float = 1 / 30,
    views: Iterable[Follower] = (),
    clock: Callable[[], float] = time.monotonic,
) -> PlayStats:
    """Run `sim` for `duration_s` virtual seconds at `speed` x real time.

    Every `slice_s` of wall time the simulation catches up with the wall clock, then each
    of `views` hears `changed()`; at the end they are flushed. A slice that takes longer
    than the wall time it covers slows the playback down rather than skipping ahead.
    """
    if not (math.isfinite(duration_s) and duration_s >= 0):
        raise ValueError("duration_s must be a finite number >= 0")
    if not (math.isfinite(speed) and speed > 0):
        raise ValueError("speed must be a positive number")
    if not (math.isfinite(slice_s) and slice_s > 0):
        raise ValueError("slice_s must be a positive number")
    targets = tuple(views)
    start_v = sim.now
    end_v = start_v + duration_s
    began = start = last = clock()
    slices = 0
    busy = 0.0
    max_slice = 0.0
    while sim.now < end_v:
        await anyio.sleep(max(0.0, slice_s - (clock() - last)))
        last = clock()
        target = min(end_v, max(sim.now, start_v + speed * (last - start)))
        sim.run_until(target)
        for view in targets:
            view.changed()
        spent = clock() - last
        busy += spent
        max_slice = max(max_slice, spent)
        slices += 1
        if spent > slice_s:
            # Running behind: re-base so virtual time does not jump to catch up.
            start = clock() - (sim.now - start_v) / speed
    for view in targets:
        view.flush()  # the end state is shown at once, not one coalescing interval later
    return PlayStats(
        slices=slices,
        virtual_s=sim.now - start_v,
        wall_s=clock() - began,
        busy_s=busy,
        max_slice_ms=1000.0 * max_slice,
    )
