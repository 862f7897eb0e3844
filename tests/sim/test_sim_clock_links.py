"""The clock, the scheduler and the links on their own (no signaling machines)."""

from __future__ import annotations

import pytest

from peerpigeon.sim import (
    LinkConfig,
    PartitionMode,
    Scheduler,
    SimNetwork,
    VirtualClock,
)
from peerpigeon.sim.links import Link

from .helpers import RecorderNode, rounded


def test_clock_is_monotonic_and_wall_is_offset() -> None:
    clock = VirtualClock(wall_offset_s=1000.0)
    clock.advance_to(2.5)
    assert clock.now == 2.5
    assert clock.wall_time == 1002.5
    clock.advance_to(2.5)  # standing still is allowed
    with pytest.raises(ValueError, match="forward"):
        clock.advance_to(1.0)


def test_scheduler_breaks_ties_in_push_order() -> None:
    queue: Scheduler[str] = Scheduler()
    for item in ["b1", "a", "b2", "c", "b3"]:
        queue.push({"a": 1.0, "c": 3.0}.get(item, 2.0), item)
    assert queue.peek_time() == 1.0
    out = [queue.pop()[1] for _ in range(len(queue))]
    assert out == ["a", "b1", "b2", "b3", "c"]
    assert queue.peek_time() is None
    assert not queue


def test_link_rng_depends_only_on_seed_and_names() -> None:
    cfg = LinkConfig(latency_s=0.01, jitter_s=1.0)
    first = Link("x", "y", cfg, 5).delay()
    link = Link("y", "x", cfg, 5)  # names are sorted: the same link
    assert link.a == "x"
    assert link.delay() == first
    assert Link("x", "y", cfg, 6).delay() != first
    # Another link in between does not change this one's draws.
    net1, net2 = SimNetwork(3), SimNetwork(3)
    net2.link("other", "third").delay()
    assert [net1.link("a", "b").delay() for _ in range(5)] == [
        net2.link("a", "b").delay() for _ in range(5)
    ]


@pytest.mark.parametrize(
    "kwargs",
    [{"latency_s": -1.0}, {"jitter_s": float("inf")}, {"loss": 1.0}, {"loss": -0.1}],
)
def test_link_config_rejects_bad_values(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        LinkConfig(**kwargs)


def _pair(net: SimNetwork, link: LinkConfig) -> tuple[RecorderNode, RecorderNode]:
    server, dialer = RecorderNode("srv"), RecorderNode("dialer")
    net.add_node(server, host="srv:1")
    net.add_node(dialer)
    net.set_link(server, dialer, link)
    return server, dialer


def test_stream_keeps_order_under_heavy_jitter() -> None:
    net = SimNetwork(11)
    server, dialer = _pair(net, LinkConfig(latency_s=0.01, jitter_s=2.0))
    end = net.open_stream(dialer, "ws://srv:1/chat?x=1")
    net.run_until_idle(100)
    assert [e[0] for e in dialer.log] == ["opened"]
    assert server.log[0][0] == "incoming"
    assert server.log[0][2] == "/chat?x=1"
    for i in range(200):
        net.send_text(end, f"m{i}")
        net.run_for(0.001)
    net.run_until_idle(1000)
    frames = server.of("frame")
    assert [f[2] for f in frames] == [f"m{i}" for i in range(200)]
    times = [f[1] for f in frames]
    assert times == sorted(times)
    # Jitter did delay frames behind earlier ones (head-of-line blocking), never reorder.
    assert len(set(times)) < len(times) or max(times) - min(times) > 0.2


def test_ping_comes_back_as_pong_after_a_round_trip() -> None:
    net = SimNetwork(1)
    server, dialer = _pair(net, LinkConfig(latency_s=0.25, jitter_s=0.0))
    net.open_stream(dialer, "ws://srv:1/")
    net.run_until_idle(10)
    assert net.now == 0.5
    net.send_ping(server.accepted[0])
    net.run_until_idle(10)
    assert server.of("pong") == [("pong", 1.0, None)]


def test_close_handshake_and_close_timeout() -> None:
    net = SimNetwork(1, close_timeout_s=3.0)
    server, dialer = _pair(net, LinkConfig(latency_s=0.1, jitter_s=0.0))
    end = net.open_stream(dialer, "ws://srv:1/")
    net.run_until_idle(10)
    net.close_stream(server.accepted[0], 1000, "bye", detach=False)
    net.run_until_idle(10)
    assert rounded(dialer.of("closed")) == [("closed", round(0.3, 6), (1000, "bye"))]
    assert rounded(server.of("closed")) == [("closed", round(0.4, 6), (1000, "bye"))]
    assert not end.attached
    # A close that gets no answer (peer partitioned away) times out into a failure.
    end2 = net.open_stream(dialer, "ws://srv:1/")
    net.run_until_idle(10)
    net.partition([server], [dialer])
    net.close_stream(server.accepted[1], 1001, "away", detach=False)
    start = net.now
    net.run_until_idle(100)
    assert rounded(server.of("failed")) == [("failed", round(start + 3.0, 6), "close timeout")]
    assert end2.attached  # the dialer has heard nothing yet
    net.heal()
    net.run_until_idle(100)
    # The held close frame arrives after the heal; its echo finds the server end gone.
    assert dialer.of("closed")[-1][2] == (1001, "away")
    assert len(server.of("closed")) == 1
    assert not end2.attached


def test_loss_breaks_a_stream_instead_of_losing_a_frame() -> None:
    net = SimNetwork(2)
    server, dialer = _pair(net, LinkConfig(latency_s=0.01, jitter_s=0.0))
    end = net.open_stream(dialer, "ws://srv:1/")
    net.run_until_idle(10)
    net.set_link(server, dialer, LinkConfig(latency_s=0.01, jitter_s=0.0, loss=0.2))
    for i in range(100):
        net.send_text(end, f"m{i}")
    net.run_until_idle(10)
    got = [f[2] for f in server.of("frame")]
    assert got == [f"m{i}" for i in range(len(got))]  # a gapless prefix
    assert len(got) < 100
    assert [e[0] for e in server.log[-1:]] == ["failed"]
    assert rounded(dialer.log[-1:]) == [("failed", 0.03, "connection lost")]
    assert net.counters().streams_broken == 1


def test_opening_an_unknown_host_fails() -> None:
    net = SimNetwork(2)
    dialer = RecorderNode("dialer")
    net.add_node(dialer)
    net.open_stream(dialer, "ws://nowhere:9/")
    net.run_until_idle(10)
    assert rounded(dialer.log) == [("failed", round(net.now, 6), "connection refused")]


def test_partition_hold_delivers_in_order_after_heal() -> None:
    net = SimNetwork(4)
    server, dialer = _pair(net, LinkConfig(latency_s=0.05, jitter_s=0.05))
    end = net.open_stream(dialer, "ws://srv:1/")
    net.run_until_idle(10)
    part = net.partition([dialer], [server])
    for i in range(20):
        net.send_text(end, f"m{i}")
        net.run_for(0.01)
    net.run_until(50)
    assert server.of("frame") == []
    assert net.in_flight == 0  # held traffic is not in flight
    net.heal(part)
    net.send_text(end, "after")
    net.run_until_idle(60)
    assert [f[2] for f in server.of("frame")] == [f"m{i}" for i in range(20)] + ["after"]
    assert all(f[1] >= 50 for f in server.of("frame"))


def test_partition_drop_breaks_streams_and_drops_datagrams() -> None:
    net = SimNetwork(4)
    server, dialer = _pair(net, LinkConfig(latency_s=0.05, jitter_s=0.0))
    end = net.open_stream(dialer, "ws://srv:1/")
    net.run_until_idle(10)
    net.partition(["dialer"], ["srv"], mode="drop")
    net.send_text(end, "lost")
    net.send_datagram(dialer, "srv", b"gone")
    net.run_until_idle(10)
    assert server.of("frame") == []
    assert server.of("datagram") == []
    assert rounded(server.of("failed")) == [("failed", round(net.now, 6), "partitioned")]
    assert rounded(dialer.of("failed")) == [("failed", round(net.now, 6), "partitioned")]
    assert net.partitions[0].mode is PartitionMode.DROP


def test_datagrams_may_reorder_and_get_lost() -> None:
    net = SimNetwork(9)
    server, dialer = _pair(net, LinkConfig(latency_s=0.01, jitter_s=0.5, loss=0.3))
    for i in range(200):
        net.send_datagram(dialer, "srv", bytes([i]))
    net.run_until_idle(10)
    got = [d[2] for d in server.of("datagram") if isinstance(d[2], bytes)]
    assert 100 < len(got) < 180
    assert got != sorted(got)  # reordered by jitter
    counters = net.counters()
    assert counters.datagrams_sent == 200
    assert counters.datagrams_delivered + counters.datagrams_dropped == 200
