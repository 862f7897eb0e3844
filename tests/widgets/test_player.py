"""`play`: a simulation advanced in slices, in step with the wall clock, telling views."""

from __future__ import annotations

import pytest

from peerpigeon.sim.mesh import MeshSim
from peerpigeon.widgets import MeshView, decode_snapshot, play


class StubSim:
    """A steppable that records the times it was run to."""

    def __init__(self) -> None:
        self.now = 0.0
        self.targets: list[float] = []

    def run_until(self, t: float) -> None:
        assert t >= self.now
        self.targets.append(t)
        self.now = t


class CountingView:
    def __init__(self) -> None:
        self.calls = 0
        self.flushes = 0

    def changed(self) -> None:
        self.calls += 1

    def flush(self) -> None:
        self.flushes += 1


@pytest.mark.anyio
async def test_play_covers_the_duration_in_slices() -> None:
    sim = StubSim()
    view = CountingView()
    stats = await play(sim, 0.3, speed=3.0, slice_s=0.01, views=[view])
    assert sim.now == pytest.approx(0.3)
    assert stats.virtual_s == pytest.approx(0.3)
    assert stats.slices >= 3  # ~0.1 s of wall time in 10 ms slices
    assert stats.wall_s >= 0.09
    assert view.calls == stats.slices
    assert view.flushes == 1
    assert sim.targets == sorted(sim.targets)
    assert stats.busy_s <= stats.wall_s
    assert stats.max_slice_ms >= 0.0


@pytest.mark.anyio
async def test_play_zero_duration_is_immediate() -> None:
    stats = await play(StubSim(), 0.0)
    assert stats.slices == 0


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("duration_s", "speed", "slice_s", "match"),
    [
        (-1.0, 1.0, 0.1, "duration_s"),
        (1.0, 0.0, 0.1, "speed"),
        (1.0, 1.0, float("nan"), "slice_s"),
    ],
)
async def test_play_rejects_bad_arguments(
    duration_s: float, speed: float, slice_s: float, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        await play(StubSim(), duration_s, speed=speed, slice_s=slice_s)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # the widget's timers are asyncio's
@pytest.mark.anyio
async def test_play_drives_a_mesh_view() -> None:
    sim = MeshSim(2)
    for _ in range(10):
        sim.add_peer()
    view = MeshView.from_simulation(sim, max_rate_hz=30.0)
    stats = await play(sim, 4.0, speed=40.0, slice_s=0.01, views=[view])
    graph = decode_snapshot(view.graph)
    assert len(graph.nodes) == 11
    assert graph.time_s == pytest.approx(sim.now)
    assert stats.virtual_s == pytest.approx(4.0)
    assert view.stats().syncs >= 2
    view.close()
