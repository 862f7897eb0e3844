"""`MeshView`: coalesced syncs, trailing flushes on the event loop, polling, stats, close."""

from __future__ import annotations

import asyncio
import json

import pytest

from peerpigeon.sim import SimNetwork
from peerpigeon.sim.mesh import MeshSim
from peerpigeon.widgets import (
    GraphNode,
    GraphSnapshot,
    MeshSimSource,
    MeshView,
    SimNetworkSource,
    StaticSource,
    decode_snapshot,
)


class FakeClock:
    """A wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _snap(n: int, t: float = 0.0) -> GraphSnapshot:
    return GraphSnapshot(
        time_s=t, nodes=tuple(GraphNode(id=f"n{i}", label=f"n{i}") for i in range(n))
    )


@pytest.fixture
def graphs() -> list[dict[str, object]]:
    """A list for observers to fill."""
    return []


def _watch(view: MeshView, sink: list[dict[str, object]]) -> None:
    view.observe(lambda change: sink.append(change["new"]), names="graph")


def test_initial_sync_carries_the_graph() -> None:
    view = MeshView(StaticSource(_snap(3)))
    assert decode_snapshot(view.graph) == _snap(3)
    assert view.options["height"] == 420
    assert view.stats().syncs == 1
    assert "createMeshView" in view._esm
    view.close()


def test_burst_of_100_changes_is_one_sync(graphs: list[dict[str, object]]) -> None:
    clock = FakeClock()
    source = StaticSource(_snap(1))
    view = MeshView(source, max_rate_hz=10.0, clock=clock)
    _watch(view, graphs)
    clock.now = 1.0
    for i in range(100):  # all within one interval, no event loop running
        source.set(_snap(2 + i))
        clock.now += 0.0005
    assert len(graphs) == 1  # the leading edge only
    assert len(decode_snapshot(graphs[0]).nodes) == 2
    view.flush()  # no loop: flush delivers the trailing state
    assert len(graphs) == 2
    assert len(decode_snapshot(graphs[-1]).nodes) == 101
    stats = view.stats()
    assert stats.changes == 100
    assert stats.syncs == 3  # initial, leading, flush
    view.close()


def test_sync_rate_is_bounded_while_changes_stream_in() -> None:
    clock = FakeClock()
    source = StaticSource(_snap(1))
    view = MeshView(source, max_rate_hz=20.0, clock=clock)
    for i in range(2000):  # 2000 changes over 2 s of wall time
        clock.now = i * 0.001
        source.set(_snap(1 + i % 7, t=clock.now))
    stats = view.stats()
    assert stats.changes == 2000
    assert 38 <= stats.syncs <= 42
    assert stats.syncs_per_s == pytest.approx(20.0, rel=0.05)
    assert stats.mean_sync_ms >= 0.0
    view.close()


def test_only_the_clock_moved_sends_nothing(graphs: list[dict[str, object]]) -> None:
    clock = FakeClock()
    source = StaticSource(_snap(2))
    view = MeshView(source, max_rate_hz=1000.0, clock=clock)
    _watch(view, graphs)
    clock.now = 1.0
    source.set(_snap(2, t=5.0))
    assert graphs == []
    assert view.stats().skipped == 1
    view.close()


def test_trailing_change_is_synced_by_the_event_loop() -> None:
    async def main() -> tuple[int, int]:
        source = StaticSource(_snap(1))
        view = MeshView(source, max_rate_hz=50.0)  # real clock, 20 ms interval
        for i in range(50):
            source.set(_snap(2 + i))
        before = len(decode_snapshot(view.graph).nodes)
        await asyncio.sleep(0.1)
        after = len(decode_snapshot(view.graph).nodes)
        view.close()
        return before, after

    before, after = asyncio.run(main())
    assert before == 1  # within the interval after the initial sync: all coalesced
    assert after == 51  # the timer delivered the last state without another change


def test_polling_picks_up_changes_a_source_cannot_report() -> None:
    class Silent:
        def __init__(self) -> None:
            self.n = 1

        def snapshot(self) -> GraphSnapshot:
            return _snap(self.n)

        def subscribe(self, callback: object) -> object:
            return lambda: None

    async def main() -> int:
        source = Silent()
        view = MeshView(source, poll_s=0.01)  # type: ignore[arg-type]  # structural stand-in
        source.n = 5
        await asyncio.sleep(0.1)
        n = len(decode_snapshot(view.graph).nodes)
        view.close()
        await asyncio.sleep(0.02)  # the poll task ends quietly
        return n

    assert asyncio.run(main()) == 5


def test_close_unsubscribes(graphs: list[dict[str, object]]) -> None:
    source = StaticSource(_snap(1))
    view = MeshView(source, max_rate_hz=1e9)
    _watch(view, graphs)
    view.close()
    source.set(_snap(4))
    assert graphs == []


def test_bad_poll_interval() -> None:
    with pytest.raises(ValueError, match="poll_s"):
        MeshView(StaticSource(), poll_s=0.0)


def test_from_simulation_signaling_follows_the_network() -> None:
    net = SimNetwork(9, keep_trace=False)
    view = MeshView.from_simulation(net, focus="c1", max_rate_hz=float("inf"))
    assert isinstance(view.source, SimNetworkSource)
    for _ in range(10):
        net.add_client()
    assert net.run_until_idle(10.0)
    graph = decode_snapshot(view.graph)  # unthrottled: the latest state is already there
    assert len(graph.nodes) == 11
    assert len(graph.edges) == 10
    assert [n.label for n in graph.nodes if n.is_self] == ["c1"]
    json.dumps(view.graph)  # what goes to the front end is plain JSON
    view.close()


def test_from_simulation_mesh_is_told_by_changed() -> None:
    sim = MeshSim(4)
    view = MeshView.from_simulation(sim, max_rate_hz=float("inf"))
    assert isinstance(view.source, MeshSimSource)
    for _ in range(8):
        sim.add_peer()
    sim.run_for(10.0)
    assert len(decode_snapshot(view.graph).nodes) == 1  # the hub: nobody told the view yet
    view.changed()
    graph = decode_snapshot(view.graph)
    assert len(graph.nodes) == 9
    assert graph.edges_of_kind("mesh")
    view.close()


def test_write_html(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    view = MeshView(StaticSource(_snap(3)), height=300)
    out = view.write_html(tmp_path / "mesh.html", title="three")
    text = out.read_text(encoding="utf-8")
    assert "<title>three</title>" in text
    assert '"height":300' in text
    view.close()
