"""Latency, partitions, crashes and leaves, seen through the signaling machines."""

from __future__ import annotations

import pytest

from peerpigeon.protocol import client as pc
from peerpigeon.protocol import server as ps
from peerpigeon.protocol.ids import PeerId
from peerpigeon.sim import ClientHandle, LinkConfig, SimNetwork

from .helpers import events_of, left_peers


def _net(n: int, seed: int = 5, **kwargs: object) -> tuple[SimNetwork, list[ClientHandle]]:
    net = SimNetwork(seed, **kwargs)  # type: ignore[arg-type]  # keyword passthrough
    clients = [net.add_client() for _ in range(n)]
    assert net.run_until_idle(10)
    return net, clients


def _hub_events(net: SimNetwork, kind: str) -> list[tuple[float, str]]:
    return [(t, text) for t, node, text in net.trace if node == "hub" and text.startswith(kind)]


def test_latency_sets_every_step_of_the_join() -> None:
    net = SimNetwork(1, link=LinkConfig(latency_s=0.1, jitter_s=0.0))
    a = net.add_client()
    net.run_until(1.0)
    b = net.add_client()
    net.run_until_idle(10)
    # open reaches the hub at +0.1, the socket opens at +0.2, the announce lands at +0.3,
    # and the peer-discovered frames arrive at +0.4.
    (t_conn,) = [t for t, node, text in net.trace if node == "c2" and "SignalingConnected" in text]
    assert t_conn == pytest.approx(1.0 + 0.2)
    (t_disc,) = [t for t, node, text in net.trace if node == "c2" and "PeerDiscovered" in text]
    assert t_disc == pytest.approx(1.0 + 0.4)
    assert a.discovered_peers == (b.peer_id,)
    assert b.discovered_peers == (a.peer_id,)


def test_short_partition_holds_traffic_and_breaks_nothing() -> None:
    net, clients = _net(3)
    net.partition([clients[0]], [net.hub])
    net.run_for(20.0)  # shorter than the client's keepalive timeout (60 s)
    late = net.add_client()  # joins while c1 is cut off
    net.run_for(5.0)
    assert late.peer_id not in clients[0].discovered_peers
    net.heal()
    assert net.run_until_idle(net.now + 10)
    assert late.peer_id in clients[0].discovered_peers
    assert clients[0].stats().sessions_opened == 1
    assert events_of(clients[0], pc.SignalingDisconnected) == []


def test_partitioned_client_reconnects_with_backoff_after_heal() -> None:
    net, clients = _net(4)
    cut, others = clients[0], clients[1:]
    net.partition([cut], [net.hub])
    net.run_until(200.0)
    downs = events_of(cut, pc.SignalingDisconnected)
    # The keepalive timeout notices first, then every attempt times out while cut off ...
    assert downs[0].reason == "keepalive timeout"
    assert {d.reason for d in downs[1:]} == {"connect timeout"}
    assert cut.state is pc.ClientState.WAITING_RECONNECT
    # ... with growing (jittered, capped) delays between attempts.
    waits = [d.reconnect_at - t for d, t in _disconnect_times(net, cut) if d.reconnect_at]
    assert waits[3] > waits[0]
    assert max(waits) <= cut.machine.config.reconnect_cap_s
    # The hub has not noticed: its peer timeout is 300 s.
    assert cut.peer_id in net.hub.peer_ids()
    assert all(left_peers(o) == [] for o in others)
    net.heal()
    net.run_until(net.now + 60.0)
    assert cut.machine.state is pc.ClientState.OPEN
    assert set(cut.discovered_peers) == {o.peer_id for o in others}
    for other in others:
        assert left_peers(other, "peer-disconnected") == [cut.peer_id]
        assert cut.peer_id in other.discovered_peers
    assert cut.stats().sessions_opened == 2
    assert cut.stats().connect_attempts > 3


def _disconnect_times(
    net: SimNetwork, handle: ClientHandle
) -> list[tuple[pc.SignalingDisconnected, float]]:
    times = [
        t for t, node, text in net.trace if node == handle.name and "SignalingDisconnected" in text
    ]
    return list(zip(events_of(handle, pc.SignalingDisconnected), times, strict=True))


def test_drop_partition_breaks_the_socket_at_once() -> None:
    cfg = pc.ClientConfig(peer_id=PeerId("0" * 40), urls=("ws://x",), keepalive_interval_s=5.0)
    net, clients = _net(3, client_config=cfg)
    net.partition([clients[0]], [net.hub], mode="drop")
    net.run_for(6.0)  # the next ping crosses the partition and the connection breaks
    first = events_of(clients[0], pc.SignalingDisconnected)[0]
    assert (first.code, first.reason) == (1006, "partitioned")
    assert net.hub.stats().peers == 2
    assert left_peers(clients[1]) == [clients[0].peer_id]
    net.heal()
    net.run_until(net.now + 40.0)
    assert clients[0].state is pc.ClientState.OPEN
    assert clients[0].peer_id in clients[1].discovered_peers


def test_crash_is_noticed_by_the_hub_and_reported_to_the_others() -> None:
    net, clients = _net(4)
    gone = clients[2]
    net.remove_client(gone, graceful=False)
    start = net.now
    assert net.run_until_idle(net.now + 5)
    (departed,) = _hub_events(net, "PeerDeparted")
    assert "code=1006" in departed[1]
    assert departed[0] - start < 0.1  # one link delay: the crashed host's reset
    for other in clients:
        if other is not gone:
            assert left_peers(other) == [gone.peer_id]
            assert left_peers(other, "peer-disconnected") == [gone.peer_id]
            assert gone.peer_id not in other.discovered_peers
    assert gone.removed
    assert gone.peer_id not in net.hub.peer_ids()


def test_silent_crash_is_noticed_by_the_hub_ping_timeout() -> None:
    server = ps.ServerConfig(ping_interval_s=10.0, peer_timeout_s=45.0)
    net, clients = _net(3, server_config=server)
    gone = clients[0]
    net.remove_client(gone, graceful=False, silent=True)
    start = net.now
    net.run_until(start + 40.0)
    assert left_peers(clients[1]) == []
    net.run_until(start + 70.0)
    (departed,) = _hub_events(net, "PeerDeparted")
    assert "reason='peer timeout'" in departed[1]
    assert 45.0 <= departed[0] - start <= 45.0 + 10.0 + 1.0
    assert left_peers(clients[1], "peer-disconnected") == [gone.peer_id]
    assert net.hub.stats().timed_out == 1


def test_graceful_leave_says_goodbye() -> None:
    net, clients = _net(3)
    gone = clients[1]
    net.remove_client(gone)
    assert net.run_until_idle(net.now + 5)
    for other in (clients[0], clients[2]):
        assert left_peers(other) == [gone.peer_id]
        assert left_peers(other, "goodbye") == [gone.peer_id]
    assert gone.state is pc.ClientState.CLOSED
    assert _hub_events(net, "PeerGoodbye")
    assert set(net.hub.peer_ids()) == {clients[0].peer_id, clients[2].peer_id}


def test_lossy_link_breaks_sessions_and_clients_recover() -> None:
    net = SimNetwork(8, link=LinkConfig(latency_s=0.02, jitter_s=0.02, loss=0.01))
    clients = [net.add_client() for _ in range(30)]
    net.run_until(120.0)
    assert net.counters().streams_broken > 0
    for c in clients:
        net.set_link(net.hub, c, LinkConfig(latency_s=0.02, jitter_s=0.02))
    net.run_until(net.now + 120.0)
    ids = {c.peer_id for c in clients}
    for c in clients:
        assert c.state is pc.ClientState.OPEN
        assert set(c.discovered_peers) == ids - {c.peer_id}
