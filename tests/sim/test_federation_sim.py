"""Hub federation in the simulator: many hubs and clients, hub graphs with and without cycles.

Bounds stated here and checked on every run (L: one-way link latency, J: its jitter, D: the
diameter of the hub graph in hops, E: hub links, H: hubs), with no loss and all hub links up:

* discovery time: client q learns peer p of its namespace by
  ``max(t_a(p), t_a(q)) + (D + 1)(L + J)``, where ``t_a`` is when the peer's hub took its
  announcement (at most D hub hops, then one hop to the client);
* discovery frames: one announcement crosses each hub link at most twice, and exactly
  ``2E - (H - 1)`` times in all (every hub passes it on once, on every link but the one it
  came by; news that already passed a hub is refused, not passed on);
* departures: every same-namespace client hears of a departure within ``(D + 2)(L + J)`` of
  it (one hop for the close to reach the hub), with the same frame bound;
* a relay to a remote target follows the route its announcement came by: with J = 0 exactly
  the hop distance d <= D, with jitter at most ``floor(d (L + J) / L)`` hops;
* an unknown target is asked of every hub once: at most two crossings per link.

The full size (20 hubs x 100 peers) runs once, marked slow; hypothesis draws the topology
(chain, star, random tree, ring, random graph with cycles) at reduced size.
"""

from __future__ import annotations

import math
import random
import time
from typing import Final

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peerpigeon.protocol.client import ClientState
from peerpigeon.protocol.ids import PeerId
from peerpigeon.protocol.server import ServerConfig
from peerpigeon.sim import ClientHandle, LinkConfig, PartitionMode
from peerpigeon.sim.federation import (
    TOPOLOGIES,
    SimFederation,
    TopologyKind,
    hop_distances,
    topology,
)

from .helpers import RecorderNode

L: Final = 0.02
J: Final = 0.01
EPS: Final = 1e-9
SECRET: Final = "federation secret"


def build(
    seed: int,
    kind: TopologyKind,
    hubs: int,
    per_hub: int,
    namespaces: int,
    *,
    jitter: float = J,
    hub_config: ServerConfig | None = None,
) -> tuple[SimFederation, list[ClientHandle]]:
    """A federation whose links are up, then `per_hub` clients on every hub."""
    rng = random.Random(seed)
    edges = topology(kind, hubs, rng)
    fed = SimFederation(
        seed,
        hubs,
        edges,
        link=LinkConfig(latency_s=L, jitter_s=jitter),
        hub_config=hub_config or ServerConfig(max_connections=10_000),
    )
    fed.net.run_for(0.5)
    registered = sum(fed.events[h.name].get("HubRegistered", 0) for h in fed.hubs)
    assert registered == len(edges)
    clients = [
        fed.add_client(i, f"ns{rng.randrange(namespaces)}")
        for i in range(hubs)
        for _ in range(per_hub)
    ]
    assert fed.net.run_until_idle(max_time=fed.net.now + 60.0)
    assert all(c.state is ClientState.OPEN for c in clients)
    return fed, clients


def check_discovery(fed: SimFederation, clients: list[ClientHandle]) -> float:
    """Everyone knows exactly its namespace, in time; returns the latest discovery's delay."""
    bound = (fed.diameter() + 1) * (L + J) + EPS
    worst = 0.0
    for q in clients:
        want = fed.expected_peers(q)
        assert set(q.discovered_peers) == want, q
        assert q.stats().frames_filtered == 0  # no frame of another namespace reached it
        for p in want:
            start = max(fed.announced_at[p], fed.announced_at[q.peer_id])
            delay = fed.learnt_at[(q.name, p)] - start
            worst = max(worst, delay)
            assert delay <= bound, (q.name, p, delay, bound)
    for hub in fed.hubs:
        local = {c.peer_id for c in clients if fed.hub_of(c) == hub.index}
        everyone = {c.peer_id for c in clients}
        assert set(hub.machine.remote_peers()) == everyone - local
    return worst


def check_frames(fed: SimFederation, kind: str, peers: set[PeerId]) -> int:
    """Each subject crossed each link at most twice, 2E - (H - 1) times in all."""
    edges, hubs = len(fed.edges), len(fed.hubs)
    per_peer = fed.frames.subjects(kind)
    assert set(per_peer) == peers
    assert all(n == 2 * edges - (hubs - 1) for n in per_peer.values()), per_peer
    assert fed.frames.max_per_link(kind) <= 2
    return max(per_peer.values(), default=0)


def check_departures(
    fed: SimFederation, clients: list[ClientHandle], rng: random.Random, count: int
) -> list[ClientHandle]:
    """Remove `count` clients (half of them crash); everyone forgets them, in time."""
    gone = rng.sample(clients, count)
    start = fed.net.now
    for i, c in enumerate(gone):
        fed.net.remove_client(c, graceful=i % 2 == 0)
    assert fed.net.run_until_idle(max_time=fed.net.now + 60.0)
    gone_ids = {c.peer_id for c in gone}
    left = [c for c in clients if c not in gone]
    bound = (fed.diameter() + 2) * (L + J) + EPS
    for q in left:
        assert set(q.discovered_peers) == fed.expected_peers(q)
        for p in gone:
            if p.network_name == q.network_name:
                assert fed.lost_at[(q.name, p.peer_id)] - start <= bound
    for hub in fed.hubs:
        assert not gone_ids & set(hub.machine.remote_peers())
    check_frames(fed, "peer-disconnected", gone_ids)
    return left


def check_relays(
    fed: SimFederation, clients: list[ClientHandle], rng: random.Random, *, jitter: float
) -> None:
    """Offers between clients of different hubs take the announced route, once."""
    pairs: list[tuple[ClientHandle, ClientHandle]] = []
    for p in clients:
        others = [
            q
            for q in clients
            if q.network_name == p.network_name and fed.hub_of(q) != fed.hub_of(p)
        ]
        if others:
            pairs.append((p, rng.choice(others)))
    for p, q in pairs[:10]:
        fed.send_offer(p, q.peer_id, f"v=0 {p.name}")
    stranger = clients[0]
    fed.send_offer(stranger, PeerId("f" * 40), "v=0 to nobody")
    assert fed.net.run_until_idle(max_time=fed.net.now + 10.0)
    for p, q in pairs[:10]:
        assert (q.name, p.peer_id) in fed.offers_at
        links = fed.frames.crossings("offer", f"{p.peer_id}>{q.peer_id}")
        hops = hop_distances(len(fed.hubs), fed.edges, fed.hub_of(p))[fed.hub_of(q)]
        assert all(n == 1 for n in links.values())
        if jitter == 0.0:
            assert sum(links.values()) == hops <= fed.diameter()
        else:
            assert hops <= sum(links.values()) <= math.floor(hops * (L + jitter) / L)
    flood = fed.frames.crossings("offer", f"{stranger.peer_id}>{'f' * 40}")
    assert all(n <= 2 for n in flood.values())
    assert sum(flood.values()) <= 2 * len(fed.edges)


# --- reduced size, topologies drawn by hypothesis ---------------------------------------------


@settings(max_examples=15)
@given(
    kind=st.sampled_from(TOPOLOGIES),
    hubs=st.integers(5, 8),
    seed=st.integers(0, 2**32 - 1),
)
def test_federation_discovers_departs_and_relays_in_any_topology(
    kind: TopologyKind, hubs: int, seed: int
) -> None:
    fed, clients = build(seed, kind, hubs, per_hub=10, namespaces=3)
    check_discovery(fed, clients)
    check_frames(fed, "peer-discovered", {c.peer_id for c in clients})
    rng = random.Random(seed)
    left = check_departures(fed, clients, rng, count=len(clients) // 5)
    check_relays(fed, left, rng, jitter=J)


@pytest.mark.parametrize("kind", ["ring", "random"])
def test_relays_take_a_shortest_path_without_jitter(kind: TopologyKind) -> None:
    fed, clients = build(11, kind, 8, per_hub=4, namespaces=1, jitter=0.0)
    check_discovery(fed, clients)
    check_relays(fed, clients, random.Random(11), jitter=0.0)


def test_a_hub_cut_off_from_a_ring_is_forgotten_and_found_again() -> None:
    config = ServerConfig(
        max_connections=1000, ping_interval_s=1.0, reconnect_interval_s=0.5, reconnect_cap_s=2.0
    )
    fed, clients = build(5, "ring", 6, per_hub=5, namespaces=1, hub_config=config)
    island = fed.hubs[2]
    mainland = [h.name for h in fed.hubs if h is not island]
    outage = fed.net.partition([island.name], mainland, PartitionMode.DROP)
    fed.net.run_for(5.0)  # pings cross the cut: both links of the island break
    on_island = [c for c in clients if fed.hub_of(c) == 2]
    elsewhere = [c for c in clients if fed.hub_of(c) != 2]
    island_ids = {c.peer_id for c in on_island}
    for c in elsewhere:
        assert not island_ids & set(c.discovered_peers)
        assert set(c.discovered_peers) == {o.peer_id for o in elsewhere} - {c.peer_id}
    for c in on_island:
        assert set(c.discovered_peers) == island_ids - {c.peer_id}
    assert island.machine.remote_peers() == []
    fed.net.heal(outage)
    fed.net.run_for(10.0)  # the island's neighbours dial it again (capped backoff)
    for c in clients:
        assert set(c.discovered_peers) == fed.expected_peers(c)


def test_one_link_of_a_ring_breaks_and_nobody_is_lost_for_good() -> None:
    config = ServerConfig(max_connections=1000, ping_interval_s=1.0, reconnect_interval_s=60.0)
    fed, clients = build(8, "ring", 6, per_hub=5, namespaces=2, hub_config=config)
    cut = fed.net.partition([fed.hubs[2].name], [fed.hubs[3].name], PartitionMode.DROP)
    fed.net.run_for(5.0)  # the link breaks; the ring is now a chain, everyone reachable
    downs = [(hub, e.url) for hub, e in fed.bootstrap_downs]
    assert downs == [(fed.hubs[3].name, fed.hubs[2].url)]
    for c in clients:
        assert set(c.discovered_peers) == fed.expected_peers(c)
    for hub in fed.hubs:
        local = {c.peer_id for c in clients if fed.hub_of(c) == hub.index}
        assert set(hub.machine.remote_peers()) == {c.peer_id for c in clients} - local
    fed.net.heal(cut)


# --- closed federation ----------------------------------------------------------------------


def test_closed_federation_admits_only_hubs_that_prove_the_secret() -> None:
    good = ServerConfig(max_connections=1000, hub_secret=SECRET, reconnect_cap_s=5.0)
    wrong = ServerConfig(max_connections=1000, hub_secret="a guess", reconnect_cap_s=5.0)
    edges = [*topology("ring", 4, random.Random(1)), (4, 0)]
    fed = SimFederation(
        3, 5, edges, hub_config=good, hub_configs={4: wrong}, link=LinkConfig(latency_s=L)
    )
    fed.net.run_for(0.5)
    clients = [fed.add_client(i % 5, "app") for i in range(15)]
    impostor = RecorderNode("impostor")
    fed.net.add_node(impostor)
    claim = fed.net.open_stream(impostor, f"{fed.hubs[1].url}/?peerId={'ab' * 20}")
    liar = RecorderNode("liar")
    fed.net.add_node(liar)
    lie = fed.net.open_stream(liar, f"{fed.hubs[2].url}/?peerId={'cd' * 20}")
    fed.net.run_for(0.5)
    fed.net.send_text(claim, '{"type":"announce","networkName":"app","data":{"isHub":true}}')
    fed.net.send_text(lie, '{"type":"announce","networkName":"app","data":{}}')
    fed.net.send_text(
        lie,
        '{"type":"peer-discovered","networkName":"app","data":{"peerId":"' + "ee" * 20 + '"}}',
    )
    fed.net.run_for(30.0)
    # The impostor's hub announce was refused and its socket closed with 1008.
    assert [entry[2] for entry in impostor.of("closed")] == [(1008, "Hub authentication required")]
    # The wrong secret never gets a link: refused at every attempt.
    assert fed.hubs[0].stats().auth_failures >= 2
    refusals = [e for hub, e in fed.bootstrap_downs if hub == fed.hubs[4].name]
    assert refusals
    assert all(e.code == 1008 for e in refusals)
    assert fed.hubs[0].stats().hubs == 2  # h01 and h03 (the ring), not h04
    members = [c for c in clients if fed.hub_of(c) != 4]
    outsiders = {c.peer_id for c in clients if fed.hub_of(c) == 4}
    liar_id = PeerId("cd" * 20)  # a plain client of the namespace, like any other
    for c in members:
        want = {o.peer_id for o in members} - {c.peer_id}
        assert set(c.discovered_peers) == want | {liar_id}
        assert not outsiders & set(c.discovered_peers)
        assert PeerId("ee" * 20) not in c.discovered_peers  # the liar's invented peer
    for c in clients:
        if fed.hub_of(c) == 4:
            assert set(c.discovered_peers) == outsiders - {c.peer_id}
    assert fed.frames.by_type.get("hub-auth", 0) >= 2 * 4  # both proofs on every good link


# --- determinism and the full size ----------------------------------------------------------


def test_same_seed_same_federation_trace() -> None:
    def digest() -> tuple[str, dict[str, int]]:
        fed, clients = build(21, "random", 6, per_hub=5, namespaces=2)
        check_departures(fed, clients, random.Random(21), count=6)
        return fed.net.trace_digest(), fed.frames.by_type

    assert digest() == digest()


@pytest.mark.slow
def test_full_size_20_hubs_of_100_peers_with_cycles() -> None:
    started = time.perf_counter()
    fed, clients = build(2024, "random", 20, per_hub=100, namespaces=20)
    built = time.perf_counter() - started
    worst = check_discovery(fed, clients)
    most = check_frames(fed, "peer-discovered", {c.peer_id for c in clients})
    rng = random.Random(2024)
    left = check_departures(fed, clients, rng, count=100)
    check_relays(fed, left, rng, jitter=J)
    edges, diameter = len(fed.edges), fed.diameter()
    print(  # shown with pytest -s: the numbers quoted in docs/federation.md
        f"\n20 hubs x 100 peers, {edges} links, diameter {diameter}: discovery done "
        f"{worst:.3f}s after the later announcement (bound {(diameter + 1) * (L + J):.3f}s); "
        f"{most} frames per announcement (2E = {2 * edges}); "
        f"{fed.frames.total} hub frames; {time.perf_counter() - started:.1f}s wall "
        f"({built:.1f}s to discover)"
    )
