"""Many signaling clients on one simulated hub all discover each other."""

from __future__ import annotations

import time

import pytest

from peerpigeon.protocol.client import ClientState
from peerpigeon.protocol.server import ServerConfig
from peerpigeon.sim import SimNetwork


def _discover(n: int, *, discovery_k: int | None, seed: int = 7) -> tuple[SimNetwork, float]:
    start = time.perf_counter()
    net = SimNetwork(
        seed,
        server_config=ServerConfig(discovery_k=discovery_k, max_connections=n + 10),
        keep_trace=False,
        keep_events=False,
    )
    clients = [net.add_client() for _ in range(n)]
    assert net.run_until_idle(max_time=60.0)
    elapsed = time.perf_counter() - start
    assert all(c.state is ClientState.OPEN for c in clients)
    assert net.hub.stats().peers == n
    assert len(net.hub.network_members("global")) == n
    ids = {c.peer_id for c in clients}
    assert len(ids) == n
    for c in clients:
        found = set(c.discovered_peers)
        assert c.peer_id not in found
        assert found <= ids
        if discovery_k is None:
            assert len(found) == n - 1
        else:
            assert len(found) >= min(discovery_k, n - 1)
    return net, elapsed


def _report(n: int, k: int | None, net: SimNetwork, elapsed: float) -> None:
    c = net.counters()
    print(  # shown with pytest -s: the timings quoted in the report
        f"\nN={n} discovery_k={k}: {elapsed:.2f}s wall, {net.now:.3f}s virtual, "
        f"{c.frames_delivered} frames, {net.trace_length} trace entries"
    )


def test_200_clients_discover_all_others() -> None:
    net, elapsed = _discover(200, discovery_k=None)
    assert net.counters().frames_delivered == 200 * 199 + 2 * 200  # + connected + announce
    assert net.frame_counts()["peer-discovered"] == 200 * 199
    _report(200, None, net, elapsed)


def test_1000_clients_discover_k_closest() -> None:
    net, elapsed = _discover(1000, discovery_k=8)
    _report(1000, 8, net, elapsed)


@pytest.mark.slow
def test_1000_clients_discover_all_others() -> None:
    # ~1M peer-discovered frames (the reference's all-to-all discovery is O(N^2)).
    net, elapsed = _discover(1000, discovery_k=None)
    assert net.frame_counts()["peer-discovered"] == 1000 * 999
    _report(1000, None, net, elapsed)
    assert elapsed < 60.0


def test_namespaces_do_not_mix() -> None:
    net = SimNetwork(3)
    red = [net.add_client(network_name="red") for _ in range(5)]
    blue = [net.add_client(network_name="blue") for _ in range(4)]
    assert net.run_until_idle(10)
    for group in (red, blue):
        ids = {c.peer_id for c in group}
        for c in group:
            assert set(c.discovered_peers) == ids - {c.peer_id}
