"""Graph sources read the simulator, local peers and hubs through public views only."""

from __future__ import annotations

import pytest

from peerpigeon.protocol.server import ServerConfig
from peerpigeon.sim import PartitionMode, SimNetwork
from peerpigeon.sim.mesh import MeshSim
from peerpigeon.widgets import (
    GraphNode,
    GraphSnapshot,
    HubSource,
    MeshPeerSource,
    MeshSimSource,
    PeerSource,
    SimNetworkSource,
    StaticSource,
)


def _net(n: int, seed: int = 3) -> SimNetwork:
    net = SimNetwork(seed, server_config=ServerConfig(max_connections=n + 10), keep_trace=False)
    for _ in range(n):
        net.add_client()
    assert net.run_until_idle(30.0)
    return net


def test_signaling_sim_nodes_edges_and_counters() -> None:
    net = _net(12)
    snap = SimNetworkSource(net, focus="c3").snapshot()
    assert len(snap.nodes) == 13
    assert len(snap.edges) == 12
    hub = snap.node("hub")
    assert hub.kind == "hub"
    assert hub.discovered == 12
    peers = [n for n in snap.nodes if n.kind == "peer"]
    assert all(n.status == "online" and n.discovered == 11 for n in peers)
    assert [n.label for n in peers if n.is_self] == ["c3"]
    assert all(e.kind == "signaling" and e.status == "up" and e.b == "hub" for e in snap.edges)
    assert all(e.messages > 0 for e in snap.edges)
    assert snap.counters["online"] == 12
    assert snap.counters["frames"] == net.counters().frames_delivered
    assert snap.time_s == net.now


def test_signaling_sim_partition_marks_links_cut_and_heal_restores() -> None:
    net = _net(6)
    cut = net.clients[:2]
    part = net.partition(cut, [net.hub], PartitionMode.HOLD)
    snap = SimNetworkSource(net).snapshot()
    statuses = {e.a: e.status for e in snap.edges}
    assert sorted(statuses.values()).count("cut") == 2
    assert {c.peer_id for c in cut} == {pid for pid, s in statuses.items() if s == "cut"}
    assert snap.node(cut[0].peer_id).group == "cut"
    assert snap.counters["partitions"] == 1
    net.heal(part)
    assert all(e.status == "up" for e in SimNetworkSource(net).snapshot().edges)


def test_signaling_sim_removed_clients() -> None:
    net = _net(5)
    gone = net.clients[1]
    net.remove_client(gone, graceful=True)
    net.run_for(1.0)
    assert gone.peer_id not in {n.id for n in SimNetworkSource(net).snapshot().nodes}
    kept = SimNetworkSource(net, include_removed=True).snapshot()
    assert kept.node(gone.peer_id).status == "offline"
    assert gone.peer_id not in {e.a for e in kept.edges}


def test_signaling_sim_pushes_changes_and_unsubscribes() -> None:
    net = SimNetwork(1)
    source = SimNetworkSource(net)
    calls: list[int] = []
    unsubscribe = source.subscribe(lambda: calls.append(1))
    net.add_client()
    net.run_until_idle(5.0)
    seen = len(calls)
    assert seen > 0
    unsubscribe()
    unsubscribe()  # idempotent
    net.add_client()
    net.run_until_idle(5.0)
    assert len(calls) == seen


def test_mesh_sim_edges_are_the_sims_graph() -> None:
    sim = MeshSim(11)
    for _ in range(16):
        sim.add_peer()
    sim.run_for(20.0)
    snap = MeshSimSource(sim, focus="p2").snapshot()
    graph = sim.graph()
    expected = {tuple(sorted((a, b))) for a, ns in graph.items() for b in ns}
    mesh_up = {(e.key[0], e.key[1]) for e in snap.edges if e.kind == "mesh" and e.status == "up"}
    assert mesh_up == expected
    assert len(snap.nodes) == 17
    assert len(snap.edges_of_kind("signaling")) == 16
    assert snap.counters["links"] == len(expected)
    assert [n.label for n in snap.nodes if n.is_self] == ["p2"]
    no_sig = MeshSimSource(sim, signaling=False).snapshot()
    assert no_sig.edges_of_kind("signaling") == ()


def test_mesh_sim_removed_peer_leaves_the_drawing() -> None:
    sim = MeshSim(5)
    peers = [sim.add_peer() for _ in range(6)]
    sim.run_for(10.0)
    sim.remove_peer(peers[0], graceful=False)
    snap = MeshSimSource(sim).snapshot()
    assert peers[0].peer_id not in {n.id for n in snap.nodes}
    assert all(peers[0].peer_id not in (e.a, e.b) for e in snap.edges)
    kept = MeshSimSource(sim, include_removed=True).snapshot()
    assert kept.node(peers[0].peer_id).status == "offline"


def test_peer_source_one_peers_knowledge() -> None:
    net = _net(5)
    me = net.clients[0]
    snap = PeerSource(me, clock=lambda: 0.0).snapshot()
    hub_url = "ws://hub:3000"
    assert snap.node(me.peer_id).is_self
    assert snap.node(hub_url).kind == "hub"
    known = [n for n in snap.nodes if n.status == "known"]
    assert len(known) == 4
    assert len(snap.edges_of_kind("signaling")) == 1
    assert len(snap.edges_of_kind("discovered")) == 4
    both = PeerSource(*net.clients[:2], clock=lambda: 0.0).snapshot()
    assert sum(n.is_self for n in both.nodes) == 2
    assert len(both.edges_of_kind("discovered")) == 3  # the other local peer is no stranger


def test_peer_source_skips_sessions_not_started() -> None:
    class NotStarted:
        @property
        def machine(self) -> object:
            raise RuntimeError("session not started")

    snap = PeerSource(NotStarted()).snapshot()  # type: ignore[arg-type]  # a stand-in
    assert snap.nodes == ()


def test_hub_source() -> None:
    net = _net(4)
    snap = HubSource(net.hub, clock=lambda: 0.0).snapshot()
    assert snap.node("hub").kind == "hub"
    assert len(snap.nodes) == 5
    assert len(snap.edges) == 4

    class Stopped:
        @property
        def machine(self) -> object:
            raise RuntimeError("server is not running")

    stopped = HubSource(Stopped()).snapshot()  # type: ignore[arg-type]  # a stand-in
    assert [n.status for n in stopped.nodes] == ["offline"]


def test_static_source_notifies_on_set() -> None:
    source = StaticSource()
    calls: list[int] = []
    source.subscribe(lambda: calls.append(1))
    snap = GraphSnapshot(nodes=(GraphNode(id="a", label="a"),))
    source.set(snap)
    assert source.snapshot() is snap
    assert calls == [1]


@pytest.mark.parametrize("n", [50, 200])
def test_snapshot_cost_is_linear_enough(n: int) -> None:
    net = _net(n)
    snap = SimNetworkSource(net).snapshot()
    assert len(snap.nodes) == n + 1
    assert len(snap.edges) == n


def test_mesh_peer_source_one_peers_view() -> None:
    sim = MeshSim(8)
    peers = [sim.add_peer() for _ in range(10)]
    sim.run_for(20.0)
    me = peers[0].mesh
    snap = MeshPeerSource(me, clock=lambda: 0.0).snapshot()
    assert snap.node(me.peer_id).is_self
    assert snap.node(me.peer_id).status == "online"
    hubs = [n for n in snap.nodes if n.kind == "hub"]
    assert [h.id for h in hubs] == ["ws://hub:3000"]
    linked = {e.b if e.a == me.peer_id else e.a for e in snap.edges_of_kind("mesh")}
    assert linked == set(me.connected_peers())
    assert all(snap.node(p).status == "online" for p in linked)
    known = {n.id for n in snap.nodes if n.status == "known"}
    assert known == {d.peer_id for d in me.discovered_peers()} - linked
    assert len(snap.edges_of_kind("discovered")) == len(known)
    assert len(snap.edges_of_kind("signaling")) == 1
    # Several local peers; one given through a `machine` property (as PeerPigeonMesh has).

    class Wrapped:
        def __init__(self, mesh: object) -> None:
            self._mesh = mesh

        @property
        def machine(self) -> object:
            return self._mesh

    both = MeshPeerSource(me, Wrapped(peers[1].mesh), clock=lambda: 0.0)  # type: ignore[arg-type]  # a stand-in
    snap2 = both.snapshot()
    assert sum(n.is_self for n in snap2.nodes) == 2
    assert len(snap2.nodes) == 11  # ten peers and the hub
