"""Tests of the signaling client machine: pure, stepped time, no event loop."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from typing import Final

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from peerpigeon.protocol.client import (
    AnswerReceived,
    ClientConfig,
    ClientEvent,
    ClientState,
    CloseSocket,
    ConnectionRejectedReceived,
    FrameRejected,
    IceCandidateReceived,
    OfferReceived,
    OpenSocket,
    PeerDiscovered,
    PeerLeft,
    SendText,
    ServerError,
    SignalingClient,
    SignalingConnected,
    SignalingDisconnected,
    hub_socket_url,
    normalize_hub_url,
)
from peerpigeon.protocol.errors import ConfigError, UsageError
from peerpigeon.protocol.ids import PeerId
from peerpigeon.protocol.wire import JsonValue

ME: Final = PeerId("a1b2c3d4e5f60718293a4b5c6d7e8f9012345678")
A: Final = PeerId("0f1e2d3c4b5a69788796a5b4c3d2e1f00a1b2c3d")
B: Final = PeerId("5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e")
C: Final = PeerId("ffffffffffffffffffffffffffffffffffffffff")
URL: Final = "ws://hub.test:3000"
WALL: Final = 1_735_689_600.0  # added to `now` for the wire's epoch-millisecond timestamps


def make(**overrides: object) -> SignalingClient:
    """A client with no jitter (exact delays) unless the test asks for it."""
    fields: dict[str, object] = {"peer_id": ME, "urls": (URL,), "reconnect_jitter": 0.0}
    fields.update(overrides)
    config = ClientConfig(**fields)  # type: ignore[arg-type]  # the overrides are typed per test
    return SignalingClient(config, rng=random.Random(7), wall_offset_s=WALL)


def opened(now: float = 0.0, **overrides: object) -> SignalingClient:
    """A client whose socket has opened and whose first frame (``connected``) arrived."""
    m = make(**overrides)
    m.connect(now)
    m.socket_opened(now)
    m.receive_frame(connected(), now)
    m.drain_actions()
    m.drain_events()
    return m


def frame(**fields: JsonValue) -> str:
    """A frame from the hub; keyword names are the wire's (camelCase)."""
    return json.dumps(fields)


def connected() -> str:
    return frame(type="connected", data={"peerId": ME}, fromPeerId="system", timestamp=1)


def discovered(peer: str, network: str | None = "global", **data: JsonValue) -> str:
    fields: dict[str, JsonValue] = {
        "type": "peer-discovered",
        "data": {"peerId": peer, "isHub": False, **data},
        "fromPeerId": "system",
        "targetPeerId": ME,
        "timestamp": 1,
    }
    if network is not None:
        fields["networkName"] = network
    return json.dumps(fields)


def texts(m: SignalingClient) -> list[str]:
    out = []
    for action in m.drain_actions():
        assert isinstance(action, SendText), action
        out.append(action.text)
    return out


def step(m: SignalingClient) -> float:
    """Advance to the next deadline and fire it (the aioquic way)."""
    now = m.next_deadline()
    assert now is not None
    m.handle_timer(now)
    return now


# --- configuration and URLs -------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"peer_id": "xyz"}, "peer_id"),
        ({"peer_id": ME.upper() + "0"}, "peer_id"),
        ({"urls": ()}, "urls"),
        ({"urls": URL}, "urls"),
        ({"urls": [URL]}, "urls"),
        ({"urls": ("ftp://x",)}, "urls"),
        ({"urls": ("ws://",)}, "urls"),
        ({"urls": ("ws://host:99999",)}, "urls"),
        ({"urls": ("ws://host:12a",)}, "urls"),
        ({"urls": ("ws://host/#frag",)}, "urls"),
        ({"urls": ("ws://ho st/",)}, "urls"),
        ({"urls": ("ws://[::1/",)}, "urls"),
        ({"urls": ("WS://host",)}, "urls"),
        ({"network_name": ""}, "network_name"),
        ({"max_peers": 0}, "max_peers"),
        ({"max_peers": True}, "max_peers"),
        ({"keepalive_interval_s": 0.0}, "keepalive_interval_s"),
        ({"keepalive_interval_s": math.nan}, "keepalive_interval_s"),
        ({"keepalive_timeout_s": 30.0}, "keepalive_timeout_s"),
        ({"keepalive_interval_s": None, "keepalive_timeout_s": 5.0}, "keepalive_timeout_s"),
        ({"connect_timeout_s": -1.0}, "connect_timeout_s"),
        ({"reconnect_base_s": 0}, "reconnect_base_s"),
        ({"reconnect_cap_s": 0.5}, "reconnect_cap_s"),
        ({"reconnect_cap_s": math.inf}, "reconnect_cap_s"),
        ({"reconnect_jitter": 1.0}, "reconnect_jitter"),
        ({"reconnect_jitter": -0.1}, "reconnect_jitter"),
        ({"max_reconnect_attempts": -1}, "max_reconnect_attempts"),
        ({"max_frame_bytes": 100}, "max_frame_bytes"),
        ({"max_discovered": 0}, "max_discovered"),
    ],
)
def test_config_rejects_bad_values(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        make(**overrides)
    assert info.value.field == field


def test_config_defaults() -> None:
    config = ClientConfig(peer_id=ME, urls=(URL,))
    assert config.network_name == "global"
    assert config.max_peers == 3
    assert config.keepalive_interval_s == 30.0
    assert config.liveness_timeout_s == 60.0
    assert config.connect_timeout_s == 10.0
    assert (config.reconnect_base_s, config.reconnect_cap_s) == (1.0, 30.0)
    assert config.max_reconnect_attempts is None
    assert (
        ClientConfig(peer_id=ME, urls=(URL,), keepalive_interval_s=None).liveness_timeout_s is None
    )
    assert (
        ClientConfig(peer_id=ME, urls=(URL,), keepalive_timeout_s=45.0).liveness_timeout_s == 45.0
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://h:3000", "ws://h:3000"),
        ("https://h/path", "wss://h/path"),
        ("ws://127.0.0.1:3000/x?a=1", "ws://127.0.0.1:3000/x?a=1"),
        ("wss://[::1]:443", "wss://[::1]:443"),
        ("ws://user@h", "ws://user@h"),
    ],
)
def test_normalize_hub_url(url: str, expected: str) -> None:
    assert normalize_hub_url(url) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ws://h:3000", f"ws://h:3000/?peerId={ME}"),
        ("http://h:3000/", f"ws://h:3000/?peerId={ME}"),
        ("ws://h/sig?x=1", f"ws://h/sig?x=1&peerId={ME}"),
        ("ws://h?peerId=old&x=1&peerId=older", f"ws://h/?peerId={ME}&x=1"),
        ("ws://h/?&&x", f"ws://h/?x&peerId={ME}"),
    ],
)
def test_hub_socket_url_sets_peer_id(url: str, expected: str) -> None:
    assert hub_socket_url(url, ME) == expected


# --- connect and announce ----------------------------------------------------------------


def test_connect_opens_socket_with_peer_id() -> None:
    m = make()
    assert m.next_deadline() is None
    m.connect(5.0)
    assert m.drain_actions() == [OpenSocket(f"ws://hub.test:3000/?peerId={ME}")]
    assert m.state is ClientState.CONNECTING
    assert m.next_deadline() == 15.0  # connect_timeout_s
    assert m.drain_events() == []


def test_announce_is_byte_compatible_with_js_client() -> None:
    m = make()
    m.connect(0.0)
    m.drain_actions()
    m.socket_opened(0.1)
    # Reference section 2.2.1, as JSON.stringify writes it.
    assert texts(m) == [
        '{"type":"announce","data":{"peerId":"a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"},'
        '"maxPeers":3,"networkName":"global"}'
    ]
    assert m.drain_events() == [SignalingConnected(f"ws://hub.test:3000/?peerId={ME}")]
    assert m.state is ClientState.OPEN


def test_announce_carries_network_and_max_peers() -> None:
    m = make(network_name="room-7", max_peers=8)
    m.connect(0.0)
    m.drain_actions()
    m.socket_opened(0.0)
    assert json.loads(texts(m)[0]) == {
        "type": "announce",
        "data": {"peerId": ME},
        "maxPeers": 8,
        "networkName": "room-7",
    }


def test_signals_are_byte_compatible_with_js_client() -> None:
    m = opened()
    m.send_offer(A, "v=0\r\n", 1.0)
    m.send_answer(A, "v=0\r\n", 1.0)
    m.send_ice_candidate(A, "candidate:1 1 udp 1 192.0.2.1 5 typ host", "0", 0, 1.0, "abcd")
    m.send_ice_candidate(A, "candidate:2", None, None, 1.0)
    assert texts(m) == [
        '{"type":"offer","data":{"type":"offer","sdp":"v=0\\r\\n"},"maxPeers":3,'
        f'"networkName":"global","targetPeerId":"{A}"}}',
        '{"type":"answer","data":{"type":"answer","sdp":"v=0\\r\\n"},"maxPeers":3,'
        f'"networkName":"global","targetPeerId":"{A}"}}',
        '{"type":"ice-candidate","data":{"candidate":"candidate:1 1 udp 1 192.0.2.1 5 typ host",'
        '"sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"abcd"},"maxPeers":3,'
        f'"networkName":"global","targetPeerId":"{A}"}}',
        '{"type":"ice-candidate","data":{"candidate":"candidate:2","sdpMid":null,'
        f'"sdpMLineIndex":null}},"maxPeers":3,"networkName":"global","targetPeerId":"{A}"}}',
    ]
    m.send_connection_rejected(A, {"reason": "max_peers_reached"}, 1.0)
    assert json.loads(texts(m)[0]) == {
        "type": "connection-rejected",
        "data": {"reason": "max_peers_reached"},
        "maxPeers": 3,
        "networkName": "global",
        "targetPeerId": A,
    }
    assert m.stats().frames_sent == 6  # the announce and five signals


# --- usage errors ----------------------------------------------------------------------


def test_sending_while_not_open_is_a_usage_error() -> None:
    m = make()
    for attempt in range(2):
        with pytest.raises(UsageError) as info:
            m.send_offer(A, "sdp", 0.0)
        assert str(info.value) == "state: not connected"
        with pytest.raises(UsageError):
            m.send_answer(A, "sdp", 0.0)
        with pytest.raises(UsageError):
            m.send_ice_candidate(A, "c", None, None, 0.0)
        with pytest.raises(UsageError):
            m.send_connection_rejected(A, {}, 0.0)
        if attempt == 0:
            m.connect(0.0)  # CONNECTING is not OPEN either
    assert m.drain_actions() == [OpenSocket(m.url)]


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda m: m.send_offer(PeerId("nope"), "sdp", 1.0), "target"),
        (lambda m: m.send_offer(ME, "sdp", 1.0), "target"),
        (lambda m: m.send_offer(A, 5, 1.0), "sdp"),
        (lambda m: m.send_answer(A, "x" * 2000, 1.0), "frame"),
        (lambda m: m.send_ice_candidate(A, "c", None, True, 1.0), "sdp_mline_index"),
        (lambda m: m.send_ice_candidate(A, "c", 0, None, 1.0), "sdp_mid"),
        (lambda m: m.send_ice_candidate(A, "c", None, None, 1.0, 5), "username_fragment"),
        (lambda m: m.send_connection_rejected(A, {"x": math.nan}, 1.0), "data"),
        (lambda m: m.send_connection_rejected(A, [], 1.0), "data"),
        (lambda m: m.connect(1.0), "state"),
    ],
)
def test_bad_application_calls_raise_usage_error(
    call: Callable[[SignalingClient], None], field: str
) -> None:
    m = opened(max_frame_bytes=1024)
    with pytest.raises(UsageError) as info:
        call(m)
    assert info.value.field == field
    assert m.drain_actions() == []  # nothing half-sent
    assert m.state is ClientState.OPEN


# --- timeouts, reconnection, failover ----------------------------------------------------


def test_connect_timeout_closes_and_schedules_retry() -> None:
    m = make()
    m.connect(0.0)
    m.drain_actions()
    m.handle_timer(9.9)  # early: nothing
    assert m.drain_actions() == []
    assert step(m) == 10.0
    assert m.drain_actions() == [CloseSocket(1011, "connect timeout")]
    assert m.drain_events() == [SignalingDisconnected(1006, "connect timeout", 11.0)]
    assert m.state is ClientState.WAITING_RECONNECT
    assert m.stats().connect_timeouts == 1
    assert step(m) == 11.0
    assert m.drain_actions() == [OpenSocket(m.url)]
    assert m.next_deadline() == 21.0  # CONNECTING again


def test_reconnect_schedule_is_capped_exponential_backoff() -> None:
    m = make(urls=(URL,))
    now = 0.0
    m.connect(now)
    delays = []
    for _ in range(9):
        assert m.drain_actions() == [OpenSocket(m.url)]
        m.socket_failed(now, "ECONNREFUSED")
        [event] = m.drain_events()
        assert isinstance(event, SignalingDisconnected)
        assert (event.code, event.reason) == (1006, "ECONNREFUSED")
        assert event.reconnect_at is not None
        delays.append(event.reconnect_at - now)
        now = step(m)
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]
    assert m.stats().connect_attempts == 10


def test_backoff_survives_a_very_long_outage() -> None:
    m = make()
    now = 0.0
    m.connect(now)
    for _ in range(1100):  # past 2.0 ** 1024, which would overflow
        m.socket_failed(now, "down")
        now = step(m)
    m.socket_failed(now, "down")
    assert m.next_deadline() == now + 30.0


def test_jitter_shortens_delays_within_bounds_and_is_seeded() -> None:
    def trace(seed: int) -> list[float]:
        config = ClientConfig(peer_id=ME, urls=(URL,), reconnect_jitter=0.5)
        m = SignalingClient(config, rng=random.Random(seed))
        now = 0.0
        m.connect(now)
        out = []
        for n in range(1, 9):
            m.socket_failed(now, "down")
            deadline = m.next_deadline()
            assert deadline is not None
            nominal = min(2.0 ** (n - 1), 30.0)
            assert nominal * 0.5 <= deadline - now <= nominal
            out.append(deadline - now)
            now = step(m)
        return out

    assert trace(1) == trace(1)
    assert trace(1) != trace(2)


def test_urls_fail_over_round_robin() -> None:
    urls = ("ws://one:1", "http://two:2/sig", "wss://three")
    m = make(urls=urls)
    now = 0.0
    m.connect(now)
    dialled = []
    for _ in range(4):
        [action] = m.drain_actions()
        assert isinstance(action, OpenSocket)
        dialled.append(action.url)
        m.socket_failed(now, "down")
        now = step(m)
    assert dialled == [
        f"ws://one:1/?peerId={ME}",
        f"ws://two:2/sig?peerId={ME}",
        f"wss://three/?peerId={ME}",
        f"ws://one:1/?peerId={ME}",
    ]


def test_dropped_session_fails_over_and_restarts_backoff() -> None:
    m = make(urls=("ws://one", "ws://two"))
    m.connect(0.0)
    m.drain_actions()
    m.socket_failed(0.0, "down")  # failure 1 of this outage
    step(m)
    m.socket_failed(1.0, "down")  # failure 2: next delay would be 4 s
    step(m)
    m.socket_opened(3.0)
    m.receive_frame(connected(), 3.0)  # confirmed: the outage is over
    assert m.url == f"ws://one/?peerId={ME}"
    m.drain_actions()
    m.drain_events()
    m.socket_closed(50.0, code=1001, reason="going away")
    assert m.drain_events() == [SignalingDisconnected(1001, "going away", 51.0)]
    assert m.drain_actions() == []  # the socket is already gone
    step(m)
    assert m.drain_actions() == [OpenSocket(f"ws://two/?peerId={ME}")]


def test_socket_refused_after_open_keeps_backing_off() -> None:
    """A hub that accepts the socket and closes it at once (1008) is an ongoing outage."""
    m = make()
    now = 0.0
    m.connect(now)
    delays = []
    for _ in range(4):
        m.socket_opened(now)
        m.socket_closed(now, code=1008, reason="Peer already connected")
        events = m.drain_events()
        assert isinstance(events[-1], SignalingDisconnected)
        assert events[-1].reconnect_at is not None
        delays.append(events[-1].reconnect_at - now)
        now = step(m)
    assert delays == [1.0, 2.0, 4.0, 8.0]


def test_server_close_1000_still_reconnects() -> None:
    m = opened()
    m.socket_closed(100.0, code=1000, reason="Server shutting down")
    assert m.drain_events() == [SignalingDisconnected(1000, "Server shutting down", 101.0)]
    assert m.state is ClientState.WAITING_RECONNECT


def test_socket_error_after_open_reconnects() -> None:
    m = opened()
    m.socket_failed(5.0, "connection reset")
    assert m.drain_events() == [SignalingDisconnected(1006, "connection reset", 6.0)]


@pytest.mark.parametrize("limit", [0, 1, 3])
def test_max_reconnect_attempts_gives_up(limit: int) -> None:
    m = opened(max_reconnect_attempts=limit)
    now = 10.0
    m.socket_closed(now, code=1006, reason="lost")
    attempts = 0
    while m.state is ClientState.WAITING_RECONNECT:
        now = step(m)
        assert m.drain_actions() == [OpenSocket(m.url)]
        attempts += 1
        m.socket_failed(now, "refused")
    assert attempts == limit
    assert m.state is ClientState.CLOSED
    last = m.drain_events()[-1]
    assert isinstance(last, SignalingDisconnected)
    assert last.reconnect_at is None
    assert m.next_deadline() is None


def test_connect_while_waiting_retries_at_once() -> None:
    m = make()
    m.connect(0.0)
    m.socket_failed(0.0, "down")
    m.drain_actions()
    m.connect(0.2)
    assert m.drain_actions() == [OpenSocket(m.url)]
    assert m.next_deadline() == pytest.approx(10.2)
    m.socket_failed(0.3, "down")  # still the same outage: the delay doubles
    assert m.next_deadline() == pytest.approx(2.3)


# --- keepalive ---------------------------------------------------------------------------


def test_keepalive_pings_when_idle_and_detects_dead_socket() -> None:
    m = opened(0.0)
    assert m.next_deadline() == 30.0
    assert step(m) == 30.0
    assert texts(m) == ['{"type":"ping"}']
    assert m.next_deadline() == 60.0  # the next ping and the liveness limit coincide
    assert step(m) == 60.0
    assert m.drain_actions() == [CloseSocket(1011, "keepalive timeout")]
    assert m.drain_events() == [SignalingDisconnected(1006, "keepalive timeout", 61.0)]
    stats = m.stats()
    assert (stats.pings_sent, stats.keepalive_timeouts) == (1, 1)


def test_any_frame_postpones_ping_and_liveness() -> None:
    m = opened(0.0)
    m.receive_frame(frame(type="pong", data={"timestamp": 1}, fromPeerId="system"), 20.0)
    assert m.next_deadline() == 50.0
    step(m)
    assert texts(m) == ['{"type":"ping"}']
    m.receive_frame(frame(type="pong", data={"timestamp": 1}), 50.5)
    assert m.next_deadline() == 80.5
    m.receive_frame("garbage", 70.0)  # even a bad frame proves the socket is alive
    assert m.next_deadline() == 100.0
    m.drain_events()
    assert m.stats().keepalive_timeouts == 0


def test_keepalive_can_be_disabled() -> None:
    m = opened(keepalive_interval_s=None)
    assert m.next_deadline() is None
    m.handle_timer(1e9)
    assert m.drain_actions() == []


def test_late_wakeup_detects_dead_socket_once() -> None:
    m = opened(0.0)
    m.handle_timer(500.0)  # e.g. the machine slept through both deadlines
    assert m.drain_actions() == [CloseSocket(1011, "keepalive timeout")]
    m.handle_timer(500.0)
    assert m.drain_actions() == []
    deadline = m.next_deadline()
    assert deadline is not None
    assert deadline > 500.0


# --- disconnect ------------------------------------------------------------------------


def test_disconnect_sends_goodbye_then_closes() -> None:
    m = opened(network_name="room")
    m.disconnect(5.0)
    actions = m.drain_actions()
    assert actions == [
        SendText(
            '{"type":"goodbye","data":{"peerId":"a1b2c3d4e5f60718293a4b5c6d7e8f9012345678",'
            '"timestamp":1735689605000},"maxPeers":3,"networkName":"room"}'
        ),
        CloseSocket(1000, "Client disconnect"),
    ]
    assert m.drain_events() == [SignalingDisconnected(1000, "Client disconnect", None)]
    assert m.state is ClientState.CLOSED
    assert m.next_deadline() is None
    assert m.discovered_peers == ()
    m.socket_closed(5.1, code=1000, reason="Client disconnect")  # the close completes: stale
    m.disconnect(6.0)  # idempotent
    assert m.drain_actions() == []
    assert m.drain_events() == []
    assert m.stats().stale_reports == 1


def test_disconnect_while_connecting_or_waiting() -> None:
    m = make()
    m.connect(0.0)
    m.drain_actions()
    m.disconnect(1.0)
    assert m.drain_actions() == [CloseSocket(1000, "Client disconnect")]
    assert m.drain_events() == [SignalingDisconnected(1000, "Client disconnect", None)]

    m = make()
    m.connect(0.0)
    m.socket_failed(0.0, "down")
    m.drain_actions()
    m.drain_events()
    m.disconnect(0.5)
    assert m.drain_actions() == []
    assert m.drain_events() == [SignalingDisconnected(1000, "Client disconnect", None)]
    m.handle_timer(100.0)
    assert m.drain_actions() == []


def test_connect_again_after_disconnect() -> None:
    m = opened()
    m.disconnect(1.0)
    m.drain_actions()
    m.connect(2.0)
    assert m.drain_actions() == [OpenSocket(m.url)]
    m.socket_opened(2.1)
    assert len(texts(m)) == 1


# --- receive pipeline ------------------------------------------------------------------


def test_discovery_reports_each_peer_once() -> None:
    m = opened()
    m.receive_frame(discovered(A), 1.0)
    m.receive_frame(discovered(A), 1.0)
    m.receive_frame(discovered(B, isHub=True, port=3001), 1.0)
    assert m.drain_events() == [
        PeerDiscovered(A, False, {"peerId": A, "isHub": False}),
        PeerDiscovered(B, True, {"peerId": B, "isHub": True, "port": 3001}),
    ]
    assert m.discovered_peers == (A, B)


def test_discovery_skips_self_and_rejects_bad_ids() -> None:
    m = opened()
    m.receive_frame(discovered(ME), 1.0)
    m.receive_frame(discovered("not-an-id"), 1.0)
    m.receive_frame(frame(type="peer-discovered", data={"isHub": True}, targetPeerId=ME), 1.0)
    assert m.drain_events() == [
        FrameRejected("data.peerId", "must be 40 hex characters"),
        FrameRejected("data.peerId", "must be a string"),
    ]
    assert m.discovered_peers == ()
    assert m.stats().frames_rejected == 2


def test_receive_only_announce_discovers_its_sender() -> None:
    m = opened()
    m.receive_frame(frame(type="announce", data={"peerId": A}, fromPeerId=A), 1.0)
    assert m.drain_events() == [PeerDiscovered(A, False, {"peerId": A})]


def test_namespace_filter() -> None:
    m = opened(network_name="room")
    m.receive_frame(discovered(A, network="room"), 1.0)
    m.receive_frame(discovered(B, network="global"), 1.0)
    m.receive_frame(discovered(C, network=None), 1.0)  # missing means "global"
    assert m.drain_events() == [PeerDiscovered(A, False, {"peerId": A, "isHub": False})]
    assert m.stats().frames_filtered == 2

    g = opened()
    g.receive_frame(discovered(C, network=None), 1.0)
    g.receive_frame(discovered(B, network=""), 1.0)  # empty means "global" too
    assert [e.peer_id for e in g.drain_events() if isinstance(e, PeerDiscovered)] == [C, B]


def test_unscoped_server_frames_pass_the_namespace_filter() -> None:
    m = make(network_name="room")
    m.connect(0.0)
    m.socket_opened(0.0)
    m.drain_events()
    m.receive_frame(connected(), 0.1)
    m.receive_frame(frame(type="pong", data={"timestamp": 5}, fromPeerId="system"), 0.2)
    text = "Signaling server does not route 'cleanup-all' messages."
    m.receive_frame(frame(type="error", error=text, timestamp=5), 0.3)
    assert m.drain_events() == [ServerError(text)]
    stats = m.stats()
    assert (stats.frames_ignored, stats.frames_filtered, stats.frames_rejected) == (2, 0, 0)


def test_frames_from_self_or_for_others_are_dropped() -> None:
    m = opened()
    sdp: dict[str, JsonValue] = {"type": "offer", "sdp": "v=0"}
    m.receive_frame(frame(type="offer", data=sdp, fromPeerId=ME, targetPeerId=ME), 1.0)
    m.receive_frame(frame(type="offer", data=sdp, fromPeerId=A, targetPeerId=B), 1.0)
    assert m.drain_events() == []
    assert m.stats().frames_filtered == 2
    m.receive_frame(frame(type="offer", data=sdp, fromPeerId=A, targetPeerId=""), 1.0)
    m.receive_frame(frame(type="offer", data=sdp, fromPeerId=A), 1.0)
    assert m.drain_events() == [OfferReceived(A, "v=0"), OfferReceived(A, "v=0")]


def test_signals_become_events() -> None:
    m = opened()
    relay: dict[str, JsonValue] = {
        "fromPeerId": A,
        "targetPeerId": ME,
        "networkName": "global",
        "timestamp": 1,
    }
    m.receive_frame(frame(type="offer", data={"type": "offer", "sdp": "o"}, **relay), 1.0)
    m.receive_frame(frame(type="answer", data={"type": "answer", "sdp": "a"}, **relay), 1.0)
    candidate: dict[str, JsonValue] = {
        "candidate": "candidate:1",
        "sdpMid": "0",
        "sdpMLineIndex": 0,
        "usernameFragment": "uf",
    }
    m.receive_frame(frame(type="ice-candidate", data=candidate, **relay), 1.0)
    m.receive_frame(frame(type="ice-candidate", data={"candidate": ""}, **relay), 1.0)
    rejected: dict[str, JsonValue] = {"reason": "max_peers_reached", "currentCount": 3}
    m.receive_frame(frame(type="connection-rejected", data=rejected, **relay), 1.0)
    assert m.drain_events() == [
        OfferReceived(A, "o"),
        AnswerReceived(A, "a"),
        IceCandidateReceived(A, "candidate:1", "0", 0, "uf"),
        IceCandidateReceived(A, "", None, None, None),
        ConnectionRejectedReceived(A, rejected),
    ]


def test_signal_with_bad_sender_is_rejected() -> None:
    m = opened()
    m.receive_frame(frame(type="offer", data={"sdp": "o"}, fromPeerId="system"), 1.0)
    m.receive_frame(frame(type="answer", data={"sdp": "a"}), 1.0)
    assert m.drain_events() == [
        FrameRejected("fromPeerId", "must be 40 hex characters"),
        FrameRejected("fromPeerId", "must be a string"),
    ]


def test_goodbye_and_peer_disconnected_report_one_departure() -> None:
    m = opened()
    m.receive_frame(discovered(A), 1.0)
    m.receive_frame(discovered(B), 1.0)
    m.drain_events()
    goodbye = frame(
        type="goodbye",
        data={"peerId": A, "timestamp": 1},
        fromPeerId=A,
        networkName="global",
        timestamp=2,
    )
    per_namespace = frame(
        type="peer-disconnected",
        data={"peerId": A, "isHub": False},
        networkName="global",
        fromPeerId="system",
        targetPeerId=ME,
        timestamp=2,
    )
    all_sockets = frame(
        type="peer-disconnected",
        data={"peerId": A, "reason": "disconnected", "timestamp": 2},
        fromPeerId="system",
        timestamp=2,
        targetPeerId=ME,
    )
    for text in (goodbye, per_namespace, all_sockets):
        m.receive_frame(text, 2.0)
    assert m.drain_events() == [PeerLeft(A, "goodbye")]
    m.receive_frame(per_namespace.replace(A, B), 3.0)
    assert m.drain_events() == [PeerLeft(B, "peer-disconnected")]
    assert m.discovered_peers == ()
    m.receive_frame(discovered(A), 4.0)  # back again: discovered again
    assert m.drain_events() == [PeerDiscovered(A, False, {"peerId": A, "isHub": False})]


def test_departure_of_unknown_peer_is_ignored() -> None:
    m = opened()
    m.receive_frame(frame(type="goodbye", data={"peerId": A}, fromPeerId=A), 1.0)
    m.receive_frame(frame(type="peer-disconnected", data={"peerId": B}), 1.0)
    assert m.drain_events() == []


def test_discovered_table_is_bounded_oldest_first() -> None:
    m = opened(max_discovered=2)
    for peer in (A, B, C):
        m.receive_frame(discovered(peer), 1.0)
    assert m.discovered_peers == (B, C)
    assert m.stats().discovered_evicted == 1
    assert [e.peer_id for e in m.drain_events() if isinstance(e, PeerDiscovered)] == [A, B, C]
    m.receive_frame(frame(type="goodbye", fromPeerId=A), 2.0)  # forgotten: no PeerLeft
    assert m.drain_events() == []


def test_discovered_table_is_forgotten_when_the_session_ends() -> None:
    m = opened()
    m.receive_frame(discovered(A), 1.0)
    m.drain_events()
    m.socket_closed(2.0, code=1006, reason="")
    assert m.discovered_peers == ()
    step(m)
    m.socket_opened(3.0)
    m.receive_frame(discovered(A), 3.1)
    events = m.drain_events()
    assert events[-1] == PeerDiscovered(A, False, {"peerId": A, "isHub": False})


@pytest.mark.parametrize(
    ("data", "field", "reason"),
    [
        ("not json", "frame", "not valid JSON"),
        (b"\xff\xfe", "frame", "not valid UTF-8"),
        ("[]", "frame", "must be a JSON object"),
        ('{"type":"x","data":1e999}', "frame", "not valid JSON"),
        ('{"type":"offer","data":NaN}', "frame", "not valid JSON"),
        ("{}", "type", "is required"),
        ('{"type":5}', "type", "must be a string"),
        ('{"type":"bogus"}', "type", "unknown message type 'bogus'"),
        ('{"type":"offer","data":{}}', "data.sdp", "must be a string"),
        ('{"type":"peer-discovered"}', "data", "is required"),
        ('{"type":"offer","networkName":7,"data":{"sdp":""}}', "networkName", "must be a string"),
        ("x" * 2000, "frame", "2000 bytes exceeds the limit of 1024"),
    ],
)
def test_garbage_frames_are_rejected_and_counted(
    data: str | bytes, field: str, reason: str
) -> None:
    m = opened(max_frame_bytes=1024)
    m.receive_frame(data, 1.0)
    assert m.drain_events() == [FrameRejected(field, reason)]
    assert m.stats().frames_rejected == 1
    m.receive_frame(discovered(A), 1.0)  # the machine keeps serving
    assert m.discovered_peers == (A,)


def test_ignored_frames_are_counted() -> None:
    m = opened()
    for kind in ("cleanup", "cleanup-all", "ping", "renegotiation-offer", "ice-restart-answer"):
        m.receive_frame(frame(type=kind, data={}), 1.0)
    assert m.drain_events() == []
    assert m.stats().frames_ignored == 6  # these five and the "connected" of opened()


def test_reports_with_no_socket_are_stale() -> None:
    m = make()
    m.socket_opened(0.0)
    m.socket_closed(0.0, code=1000, reason="")
    m.socket_failed(0.0, "x")
    m.receive_frame(discovered(A), 0.0)
    assert m.drain_actions() == []
    assert m.drain_events() == []
    assert m.stats().stale_reports == 4
    assert m.state is ClientState.IDLE


def test_one_seed_one_trace() -> None:
    def run() -> list[object]:
        config = ClientConfig(peer_id=ME, urls=("ws://a", "ws://b"), reconnect_jitter=0.9)
        m = SignalingClient(config, rng=random.Random(42))
        trace: list[object] = []
        now = 0.0
        m.connect(now)
        for i in range(20):
            if i % 3 == 0:
                m.socket_opened(now)
                m.receive_frame(discovered(A), now)
                m.socket_closed(now + 1, code=1006, reason="")
            else:
                m.socket_failed(now, "down")
            trace += m.drain_actions()
            trace += m.drain_events()
            now = step(m)
        return trace

    assert run() == run()


# --- every (state, input) pair -----------------------------------------------------------


def in_state(state: ClientState) -> SignalingClient:
    m = make()
    if state is not ClientState.IDLE:
        m.connect(0.0)
    if state in (ClientState.OPEN, ClientState.CLOSED):
        m.socket_opened(0.0)
    if state is ClientState.WAITING_RECONNECT:
        m.socket_failed(0.0, "down")
    if state is ClientState.CLOSED:
        m.disconnect(0.0)
    m.drain_actions()
    m.drain_events()
    assert m.state is state
    return m


INPUTS: Final[dict[str, Callable[[SignalingClient, float], None]]] = {
    "connect": lambda m, now: m.connect(now),
    "disconnect": lambda m, now: m.disconnect(now),
    "send_offer": lambda m, now: m.send_offer(A, "sdp", now),
    "socket_opened": lambda m, now: m.socket_opened(now),
    "socket_closed": lambda m, now: m.socket_closed(now, code=1000, reason=""),
    "socket_failed": lambda m, now: m.socket_failed(now, "x"),
    "receive_frame": lambda m, now: m.receive_frame(discovered(A), now),
    "handle_timer": lambda m, now: m.handle_timer(now),
}

S = ClientState
TRANSITIONS: Final[dict[tuple[ClientState, str], ClientState | type[UsageError]]] = {
    (S.IDLE, "connect"): S.CONNECTING,
    (S.IDLE, "disconnect"): S.IDLE,
    (S.IDLE, "send_offer"): UsageError,
    (S.IDLE, "socket_opened"): S.IDLE,
    (S.IDLE, "socket_closed"): S.IDLE,
    (S.IDLE, "socket_failed"): S.IDLE,
    (S.IDLE, "receive_frame"): S.IDLE,
    (S.IDLE, "handle_timer"): S.IDLE,
    (S.CONNECTING, "connect"): UsageError,
    (S.CONNECTING, "disconnect"): S.CLOSED,
    (S.CONNECTING, "send_offer"): UsageError,
    (S.CONNECTING, "socket_opened"): S.OPEN,
    (S.CONNECTING, "socket_closed"): S.WAITING_RECONNECT,
    (S.CONNECTING, "socket_failed"): S.WAITING_RECONNECT,
    (S.CONNECTING, "receive_frame"): S.CONNECTING,
    (S.CONNECTING, "handle_timer"): S.WAITING_RECONNECT,
    (S.OPEN, "connect"): UsageError,
    (S.OPEN, "disconnect"): S.CLOSED,
    (S.OPEN, "send_offer"): S.OPEN,
    (S.OPEN, "socket_opened"): S.OPEN,
    (S.OPEN, "socket_closed"): S.WAITING_RECONNECT,
    (S.OPEN, "socket_failed"): S.WAITING_RECONNECT,
    (S.OPEN, "receive_frame"): S.OPEN,
    (S.OPEN, "handle_timer"): S.OPEN,  # a ping
    (S.WAITING_RECONNECT, "connect"): S.CONNECTING,
    (S.WAITING_RECONNECT, "disconnect"): S.CLOSED,
    (S.WAITING_RECONNECT, "send_offer"): UsageError,
    (S.WAITING_RECONNECT, "socket_opened"): S.WAITING_RECONNECT,
    (S.WAITING_RECONNECT, "socket_closed"): S.WAITING_RECONNECT,
    (S.WAITING_RECONNECT, "socket_failed"): S.WAITING_RECONNECT,
    (S.WAITING_RECONNECT, "receive_frame"): S.WAITING_RECONNECT,
    (S.WAITING_RECONNECT, "handle_timer"): S.CONNECTING,
    (S.CLOSED, "connect"): S.CONNECTING,
    (S.CLOSED, "disconnect"): S.CLOSED,
    (S.CLOSED, "send_offer"): UsageError,
    (S.CLOSED, "socket_opened"): S.CLOSED,
    (S.CLOSED, "socket_closed"): S.CLOSED,
    (S.CLOSED, "socket_failed"): S.CLOSED,
    (S.CLOSED, "receive_frame"): S.CLOSED,
    (S.CLOSED, "handle_timer"): S.CLOSED,
}


def test_transition_table_is_complete() -> None:
    assert set(TRANSITIONS) == {(s, i) for s in ClientState for i in INPUTS}


@pytest.mark.parametrize(("state", "name"), [(s, i) for s in ClientState for i in INPUTS])
def test_every_state_and_input(state: ClientState, name: str) -> None:
    m = in_state(state)
    # The timer fires exactly when due; every other input comes before the deadline.
    now = (m.next_deadline() or 0.5) if name == "handle_timer" else 0.5
    expected = TRANSITIONS[state, name]
    if expected is UsageError:
        with pytest.raises(UsageError):
            INPUTS[name](m, now)
        assert m.state is state
        assert m.drain_actions() == []
        return
    INPUTS[name](m, now)
    assert m.state is expected
    deadline = m.next_deadline()
    assert deadline is None or deadline > now


# --- properties ------------------------------------------------------------------------

json_values: st.SearchStrategy[JsonValue] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
ids = st.sampled_from([ME, A, B, "system", "", ME.upper(), "zz"]) | st.text(max_size=5)
TYPES: Final = [
    "announce",
    "goodbye",
    "offer",
    "answer",
    "ice-candidate",
    "ping",
    "pong",
    "cleanup",
    "connected",
    "peer-discovered",
    "peer-disconnected",
    "error",
    "connection-rejected",
    "hub-auth",
    "bogus",
]
plausible_frames = st.fixed_dictionaries(
    {"type": st.sampled_from(TYPES)},
    optional={
        "data": json_values
        | st.fixed_dictionaries(
            {},
            optional={
                "peerId": ids,
                "isHub": st.booleans(),
                "sdp": st.text(max_size=5),
                "candidate": st.text(max_size=5),
                "sdpMid": st.none() | st.text(max_size=2),
                "sdpMLineIndex": json_values,
            },
        ),
        "networkName": st.sampled_from(["global", "room", ""]) | json_values,
        "fromPeerId": ids,
        "targetPeerId": ids,
        "timestamp": json_values,
        "error": json_values,
    },
)


@settings(max_examples=150, deadline=None)
@given(
    frames=st.lists(
        st.binary(max_size=64)
        | json_values.map(json.dumps)
        | plausible_frames.map(json.dumps)
        | plausible_frames.map(lambda f: json.dumps(f).encode()),
        max_size=20,
    ),
    dt=st.floats(min_value=0.0, max_value=100.0),
)
def test_arbitrary_frames_never_raise(frames: list[str | bytes], dt: float) -> None:
    m = opened(max_discovered=3)
    now = 0.0
    for data in frames:
        m.receive_frame(data, now)
        now += dt
        m.handle_timer(now)
        deadline = m.next_deadline()
        assert deadline is None or deadline > now
        assert len(m.discovered_peers) <= 3
    for event in m.drain_events():
        if isinstance(event, PeerDiscovered | PeerLeft):
            assert event.peer_id != ME


class ClientRules(RuleBasedStateMachine):
    """Random inputs, garbage and time jumps; invariants on deadlines, bounds and events."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.m = make(urls=("ws://a", "ws://b"), max_discovered=2, max_reconnect_attempts=6)
        self.session: set[PeerId] = set()  # reported discovered and not yet left

    @initialize()
    def start(self) -> None:
        self.m.connect(self.now)

    @rule(dt=st.floats(min_value=0.0, max_value=120.0))
    def time_passes(self, dt: float) -> None:
        self.now += dt
        self.m.handle_timer(self.now)
        deadline = self.m.next_deadline()
        assert deadline is None or deadline > self.now

    @rule()
    def wake_at_deadline(self) -> None:
        deadline = self.m.next_deadline()
        if deadline is not None:
            self.now = max(self.now, deadline)
            self.m.handle_timer(self.now)

    @rule()
    def opened(self) -> None:
        self.m.socket_opened(self.now)

    @rule(code=st.sampled_from([1000, 1001, 1006, 1008]))
    def closed(self, code: int) -> None:
        self.m.socket_closed(self.now, code=code, reason="r")

    @rule()
    def failed(self) -> None:
        self.m.socket_failed(self.now, "down")

    @rule(data=plausible_frames.map(json.dumps) | st.binary(max_size=32))
    def frame_arrives(self, data: str | bytes) -> None:
        self.m.receive_frame(data, self.now)

    @rule(peer=st.sampled_from([A, B, C]), leave=st.booleans())
    def peer_comes_or_goes(self, peer: PeerId, leave: bool) -> None:
        if leave:
            self.m.receive_frame(frame(type="goodbye", fromPeerId=peer), self.now)
        else:
            self.m.receive_frame(discovered(peer), self.now)

    @rule()
    def app_connects(self) -> None:
        state = self.m.state
        if state in (ClientState.CONNECTING, ClientState.OPEN):
            with pytest.raises(UsageError):
                self.m.connect(self.now)
        else:
            self.m.connect(self.now)

    @rule()
    def app_sends(self) -> None:
        if self.m.state is ClientState.OPEN:
            self.m.send_offer(A, "sdp", self.now)
        else:
            with pytest.raises(UsageError):
                self.m.send_offer(A, "sdp", self.now)

    @precondition(lambda self: self.m.state is not ClientState.CLOSED)
    @rule()
    def app_disconnects(self) -> None:
        self.m.disconnect(self.now)

    @invariant()
    def drains_are_consistent(self) -> None:
        for action in self.m.drain_actions():
            if isinstance(action, SendText):
                json.loads(action.text)
        events: list[ClientEvent] = self.m.drain_events()
        for event in events:
            if isinstance(event, PeerDiscovered):
                assert event.peer_id != ME
                self.session.add(event.peer_id)
            elif isinstance(event, PeerLeft):
                assert event.peer_id in self.session  # one departure per discovery
                self.session.discard(event.peer_id)
            elif isinstance(event, SignalingDisconnected):
                self.session.clear()
        assert len(self.m.discovered_peers) <= 2
        assert set(self.m.discovered_peers) <= self.session


ClientRules.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_client_rules = ClientRules.TestCase
