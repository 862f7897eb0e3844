"""One seed gives one trace, byte for byte; another seed gives another."""

from __future__ import annotations

import os
import subprocess
import sys

from peerpigeon.protocol.client import ClientConfig
from peerpigeon.protocol.ids import PeerId
from peerpigeon.sim import LinkConfig, SimNetwork

_SCRIPT = """
import sys
from tests.sim.test_sim_determinism import scenario
print(scenario(int(sys.argv[1])).trace_digest())
"""


def scenario(seed: int) -> SimNetwork:
    """A busy little run: joins in two namespaces, a crash, a leave, a partition, jitter."""
    template = ClientConfig(
        peer_id=PeerId("0" * 40), urls=("ws://unused",), keepalive_interval_s=5.0
    )
    net = SimNetwork(seed, link=LinkConfig(latency_s=0.03, jitter_s=0.05), client_config=template)
    clients = [net.add_client(network_name=("a" if i % 3 else "b")) for i in range(9)]
    net.run_for(1.0)
    net.remove_client(clients[1], graceful=False)
    net.remove_client(clients[2], graceful=True)
    net.partition([clients[3]], [net.hub])
    net.run_for(30.0)
    net.heal()
    net.add_client(network_name="a")
    net.run_for(60.0)
    return net


def test_same_seed_same_trace() -> None:
    one, two = scenario(42), scenario(42)
    assert one.trace == two.trace
    assert one.trace_digest() == two.trace_digest()
    assert one.trace_length > 100


def test_other_seed_other_trace() -> None:
    assert scenario(42).trace_digest() != scenario(43).trace_digest()


def test_trace_does_not_depend_on_hash_seed() -> None:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", _SCRIPT, "42"],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        digests.add(out.stdout.strip())
    assert digests == {scenario(42).trace_digest()}


def test_trace_format() -> None:
    net = SimNetwork(1)
    net.add_client()
    net.run_until_idle(10)
    when, node, text = net.trace[0]
    assert (when, node) == (0.0, "net")
    assert text.startswith("add c1 ")
    assert any(node == "hub" and text.startswith("PeerConnected(") for _, node, text in net.trace)
    kept = SimNetwork(1, keep_trace=False)
    kept.add_client()
    kept.run_until_idle(10)
    assert kept.trace == []
    assert kept.trace_digest() == net.trace_digest()
    assert kept.trace_length == len(net.trace)
