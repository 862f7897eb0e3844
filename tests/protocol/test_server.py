"""Pure tests of the signaling server machine (`peerpigeon.protocol.server.SignalingServer`).

No event loop, sockets or sleeps: literal inputs at literal times, assertions on what is
drained. Wire shapes follow reference/signaling-and-topology.md sections 1-4; the fixed
weaknesses are numbered as in its section 8.
"""

from __future__ import annotations

import json
import random
import unittest.mock
from dataclasses import dataclass
from typing import Any, Final

import hypothesis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from peerpigeon.protocol import wire
from peerpigeon.protocol.errors import ConfigError, UsageError
from peerpigeon.protocol.ids import PeerId, generate_peer_id, k_closest
from peerpigeon.protocol.rand import SeededEntropy
from peerpigeon.protocol.server import (
    Close,
    ConnectionId,
    ConnectionRefused,
    FrameRejected,
    HubRegistered,
    HubUnregistered,
    PeerAnnounced,
    PeerConnected,
    PeerDeparted,
    PeerGoodbye,
    SendPing,
    SendText,
    ServerAction,
    ServerConfig,
    ServerEvent,
    SignalingServer,
)
from peerpigeon.protocol.server import machine as server_machine

Json = dict[str, Any]

A: Final = PeerId("a1b2c3d4e5f60718293a4b5c6d7e8f9012345678")
B: Final = PeerId("0f1e2d3c4b5a69788796a5b4c3d2e1f00a1b2c3d")
C: Final = PeerId("c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00")
D: Final = PeerId("d" * 40)
E: Final = PeerId("e" * 40)
H: Final = PeerId("5e" * 20)
UNKNOWN: Final = PeerId("f" * 40)

WALL_S: Final = 1_735_689_600.0  # monotonic 0.0 is 2025-01-01T00:00:00Z
HUB_NS: Final = "pigeonhub-mesh"

ACTION_TYPES: Final = (SendText, Close, SendPing)
EVENT_TYPES: Final = (
    PeerConnected,
    ConnectionRefused,
    PeerDeparted,
    PeerAnnounced,
    PeerGoodbye,
    HubRegistered,
    HubUnregistered,
    FrameRejected,
)


def ms(now: float) -> int:
    """The ``timestamp`` the server writes at monotonic time `now`."""
    return int((now + WALL_S) * 1000)


def error_text(message_type: str) -> str:
    return (
        f"Signaling server does not route '{message_type}' messages. "
        "Use WebRTC data channels for peer-to-peer communication."
    )


# --- helpers ----------------------------------------------------------------------------


@dataclass
class Step:
    """What one input produced."""

    actions: list[ServerAction]
    events: list[ServerEvent]

    def texts(self) -> list[tuple[ConnectionId, Json]]:
        out: list[tuple[ConnectionId, Json]] = []
        for act in self.actions:
            if isinstance(act, SendText):
                value = json.loads(act.text)
                assert isinstance(value, dict)
                out.append((act.connection, value))
        return out

    def to(self, conn: ConnectionId) -> list[Json]:
        return [msg for c, msg in self.texts() if c == conn]

    def closes(self) -> list[Close]:
        return [a for a in self.actions if isinstance(a, Close)]

    def pings(self) -> list[ConnectionId]:
        return [a.connection for a in self.actions if isinstance(a, SendPing)]

    def of_type(self, kind: str) -> list[tuple[ConnectionId, Json]]:
        return [(c, m) for c, m in self.texts() if m.get("type") == kind]

    def rejected(self) -> list[FrameRejected]:
        return [e for e in self.events if isinstance(e, FrameRejected)]


class Harness:
    """A server plus shorthands; every input is followed by a drain."""

    def __init__(
        self, config: ServerConfig | None = None, *, seed: int = 7, now: float = 0.0
    ) -> None:
        self.s = SignalingServer(
            config,
            rng=random.Random(seed),
            entropy=SeededEntropy(seed),
            now=now,
            wall_offset_s=WALL_S,
        )
        self.log: list[ServerAction | ServerEvent] = []  # everything drained, in order

    def drain(self) -> Step:
        step = Step(self.s.drain_actions(), self.s.drain_events())
        self.log.extend(step.actions)
        self.log.extend(step.events)
        return step

    def open_raw(self, path: str, now: float = 0.0) -> tuple[ConnectionId, Step]:
        conn = self.s.open_connection(path, now)
        return conn, self.drain()

    def open(self, peer: str, now: float = 0.0) -> ConnectionId:
        conn, step = self.open_raw(f"/?peerId={peer}", now)
        assert step.closes() == [], step
        return conn

    def send(self, conn: ConnectionId, frame: Json | str | bytes, now: float = 0.0) -> Step:
        data = json.dumps(frame) if isinstance(frame, dict) else frame
        self.s.receive_frame(conn, data, now)
        return self.drain()

    def announce(
        self,
        conn: ConnectionId,
        network: str | None = None,
        data: Json | None = None,
        now: float = 0.0,
    ) -> Step:
        frame: Json = {"type": "announce", "data": data if data is not None else {}}
        if network is not None:
            frame["networkName"] = network
        return self.send(conn, frame, now)

    def join(self, peer: str, network: str | None = None, now: float = 0.0) -> ConnectionId:
        conn = self.open(peer, now)
        self.announce(conn, network, {"peerId": peer}, now)
        return conn

    def close(
        self,
        conn: ConnectionId,
        now: float = 0.0,
        *,
        code: int = 1000,
        reason: str = "Client disconnect",
    ) -> Step:
        self.s.connection_closed(conn, now, code=code, reason=reason)
        return self.drain()

    def tick(self) -> tuple[float, Step]:
        """Step to the next deadline, aioquic style."""
        deadline = self.s.next_deadline()
        assert deadline is not None
        self.s.handle_timer(deadline)
        return deadline, self.drain()

    def hubs(self, now: float = 0.0) -> list[Json]:
        """The ``hubs`` list of ``/hubs``, as a client would parse it."""
        parsed: Json = json.loads(json.dumps(self.s.hubs_info(now)))
        hubs: list[Json] = parsed["hubs"]
        return hubs

    def assert_empty(self) -> None:
        stats = self.s.stats()
        assert (stats.connections, stats.peers, stats.hubs, stats.networks) == (0, 0, 0, 0)
        assert self.s.peer_ids() == []
        assert self.s.networks() == []
        assert self.s.next_deadline() is None
        assert self.hubs() == []


def signal(kind: str, target: str | None, network: str | None = "global", **extra: Any) -> Json:
    """A client frame of `kind` the way a JS client sends it (with ``maxPeers``)."""
    data: Json
    if kind in ("offer", "answer"):
        data = {"type": kind, "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}
    elif kind == "ice-candidate":
        data = {
            "candidate": "candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host generation 0",
            "sdpMid": "0",
            "sdpMLineIndex": 0,
            "usernameFragment": "abcd",
        }
    else:
        data = {"reason": "max_peers_reached", "currentCount": 3, "maxPeers": 3}
    frame: Json = {"type": kind, "data": data, "maxPeers": 3}
    if network is not None:
        frame["networkName"] = network
    if target is not None:
        frame["targetPeerId"] = target
    frame.update(extra)
    return frame


# --- config -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field_name"),
    [
        ({"max_connections": 0}, "max_connections"),
        ({"max_message_bytes": True}, "max_message_bytes"),
        ({"max_bad_frames": 1.5}, "max_bad_frames"),
        ({"ping_interval_s": 0}, "ping_interval_s"),
        ({"peer_timeout_s": -1.0}, "peer_timeout_s"),
        ({"discovery_k": 0}, "discovery_k"),
        ({"hub_mesh_namespace": ""}, "hub_mesh_namespace"),
        ({"hub_peer_id": PeerId("xyz")}, "hub_peer_id"),
    ],
)
def test_config_rejects_bad_values(kwargs: Json, field_name: str) -> None:
    with pytest.raises(ConfigError) as info:
        ServerConfig(**kwargs)
    assert info.value.field == field_name


def test_hub_id_comes_from_injected_entropy() -> None:
    one = Harness(ServerConfig(is_hub=True), seed=3).s.hub_peer_id
    two = Harness(ServerConfig(is_hub=True), seed=3).s.hub_peer_id
    other = Harness(ServerConfig(is_hub=True), seed=4).s.hub_peer_id
    assert one == two == SeededEntropy(3).token_bytes(20).hex()
    assert other != one
    assert Harness(ServerConfig(is_hub=True, hub_peer_id=H)).s.hub_peer_id == H
    assert Harness().s.hub_peer_id is None


# --- accepting connections ------------------------------------------------------------------


def test_connected_frame_shape() -> None:
    h = Harness()
    conn, step = h.open_raw(f"/?peerId={A}", now=1.5)
    assert [type(a) for a in step.actions] == [SendText]
    (text,) = [a.text for a in step.actions if isinstance(a, SendText)]
    assert text == (
        f'{{"type":"connected","data":{{"peerId":"{A}"}},"fromPeerId":"system",'
        f'"timestamp":{ms(1.5)}}}'
    )
    assert step.events == [PeerConnected(peer_id=A, connection=conn, total_connections=1)]
    assert h.s.peer_ids() == [A]
    assert h.s.connection_of(A) == conn


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "",
        "/?",
        "/?peerId=",
        "/?peerId",
        "/?peerId=xyz",
        f"/?peerId={A[:-1]}",
        f"/?peerId={A}0",
        "/?peerId=" + "g" * 40,
        f"/?peerid={A}",
        f"/?PeerId={A}",
        f"/{A}",
        f"/?peerId=%20{A}",
        f"/?peerId={A[:20]}%20{A[21:]}",
        f"/?other={A}",
    ],
)
def test_invalid_or_missing_peer_id_is_refused(path: str) -> None:
    h = Harness()
    conn, step = h.open_raw(path)
    assert step.actions == [Close(connection=conn, code=1008, reason="Invalid peerId format")]
    assert step.events == [
        ConnectionRefused(connection=conn, code=1008, reason="Invalid peerId format")
    ]
    assert h.s.stats().refused_connections == 1
    assert h.s.stats().connections == 0
    assert h.s.peer_ids() == []
    assert h.s.next_deadline() is None
    # Frames and closes on the refused handle are ignored.
    assert h.send(conn, {"type": "ping"}).actions == []
    assert h.close(conn) == Step([], [])


@pytest.mark.parametrize(
    "path",
    [
        f"/?peerId={A}",
        f"?peerId={A}",
        f"/ws?peerId={A}",
        f"/any/deep/path/?foo=bar&peerId={A}&x",
        f"/?peerId={A}&foo=1",
        f"/?peerId={A}#fragment",
        f"/?peerId={A}&peerId={B}",  # the first value wins, as URLSearchParams.get does
        "/?peerId=" + "".join(f"%{ord(ch):02X}" for ch in A),
        f"/?p%65erId={A}",
    ],
)
def test_peer_id_is_read_from_the_query_of_any_path(path: str) -> None:
    h = Harness()
    conn, step = h.open_raw(path)
    assert step.closes() == []
    assert step.to(conn)[0]["data"] == {"peerId": A}
    assert h.s.peer_ids() == [A]


def test_ids_are_kept_exactly_as_received() -> None:
    h = Harness()
    lower = h.open(A)
    upper_id = A.upper()
    upper, step = h.open_raw(f"/?peerId={upper_id}")
    assert step.closes() == []
    assert step.to(upper)[0]["data"] == {"peerId": upper_id}
    assert h.s.peer_ids() == [A, upper_id]
    assert h.s.connection_of(A) == lower
    assert h.s.connection_of(upper_id) == upper
    h.announce(lower)
    step = h.announce(upper)
    assert [m["data"]["peerId"] for m in step.to(lower)] == [upper_id]
    assert [m["data"]["peerId"] for m in step.to(upper)] == [A]


def test_max_connections_is_enforced() -> None:
    h = Harness(ServerConfig(max_connections=2))
    a = h.open(A)
    h.open(B)
    conn, step = h.open_raw(f"/?peerId={C}")
    assert step.actions == [Close(connection=conn, code=1008, reason="Maximum connections reached")]
    assert step.events == [
        ConnectionRefused(connection=conn, code=1008, reason="Maximum connections reached")
    ]
    # The duplicate check comes first, as in the reference.
    dup, step = h.open_raw(f"/?peerId={A}", now=1.0)
    assert step.actions == [Close(connection=dup, code=1008, reason="Peer already connected")]
    assert h.s.stats().connections == 2
    assert h.s.stats().refused_connections == 2
    h.close(a)
    h.open(C, now=2.0)
    assert h.s.peer_ids() == [B, C]


# --- duplicate IDs ------------------------------------------------------------------------------


def test_live_duplicate_is_refused_and_the_first_keeps_its_place() -> None:
    h = Harness(ServerConfig(stale_after_s=60.0))
    first = h.join(A, "x")
    h.join(B, "x")
    dup, step = h.open_raw(f"/?peerId={A}", now=59.999)
    assert step.actions == [Close(connection=dup, code=1008, reason="Peer already connected")]
    assert step.events == [
        ConnectionRefused(connection=dup, code=1008, reason="Peer already connected")
    ]
    assert h.s.connection_of(A) == first
    assert h.s.network_members("x") == [A, B]
    assert h.send(first, {"type": "ping"}, now=60.0).to(first)[0]["type"] == "pong"


@pytest.mark.parametrize("keepalive", ["frame", "pong"])
def test_activity_keeps_a_connection_from_being_replaced(keepalive: str) -> None:
    h = Harness(ServerConfig(stale_after_s=60.0))
    first = h.open(A)
    if keepalive == "frame":
        h.send(first, {"type": "cleanup"}, now=30.0)
    else:
        h.s.receive_pong(first, 30.0)
    dup, step = h.open_raw(f"/?peerId={A}", now=60.0)
    assert step.actions == [Close(connection=dup, code=1008, reason="Peer already connected")]
    assert h.s.connection_of(A) == first


def test_stale_duplicate_is_replaced() -> None:
    h = Harness(ServerConfig(stale_after_s=60.0))
    old = h.join(A, "x")
    b = h.join(B, "x")
    new, step = h.open_raw(f"/?peerId={A}", now=60.0)  # idle == stale_after_s: stale
    assert new != old
    assert step.closes() == [
        Close(connection=old, code=1008, reason="Replaced by a new connection")
    ]
    assert [m["type"] for m in step.to(b)] == ["peer-disconnected"]
    assert step.to(b)[0]["data"]["peerId"] == A
    assert [m["type"] for m in step.to(new)] == ["connected"]
    assert step.to(old) == []
    assert step.events == [
        PeerDeparted(peer_id=A, code=1008, reason="replaced", total_connections=1),
        PeerConnected(peer_id=A, connection=new, total_connections=2),
    ]
    assert h.s.connection_of(A) == new
    assert h.s.network_members("x") == [B]


def test_late_close_of_a_replaced_connection_never_removes_its_successor() -> None:
    # Weakness 10: the reference cleaned up by ID, so the old socket's close killed the new one.
    h = Harness(ServerConfig(stale_after_s=60.0))
    old = h.join(A, "x")
    b = h.join(B, "x")
    new, _ = h.open_raw(f"/?peerId={A}", now=100.0)
    h.announce(new, "x", now=100.0)
    assert h.close(old, 101.0, code=1006, reason="") == Step([], [])
    assert h.close(old, 102.0) == Step([], [])  # reported twice: still nothing
    assert h.send(old, signal("offer", B, "x"), now=102.0) == Step([], [])
    h.s.receive_pong(old, 102.0)
    assert h.s.connection_of(A) == new
    assert h.s.network_members("x") == [B, A]
    assert h.s.stats().connections == 2
    step = h.send(new, signal("offer", B, "x"), now=103.0)
    assert [(c, m["fromPeerId"]) for c, m in step.texts()] == [(b, A)]
    step = h.send(b, signal("answer", A, "x"), now=103.0)
    assert [(c, m["fromPeerId"]) for c, m in step.texts()] == [(new, B)]


def test_open_after_stop_is_a_usage_error() -> None:
    h = Harness()
    h.open(A)
    h.s.stop(1.0)
    with pytest.raises(UsageError):
        h.s.open_connection(f"/?peerId={B}", 2.0)


# --- announce -------------------------------------------------------------------------------------


def test_announce_discovery_goes_both_ways_with_exact_shapes() -> None:
    h = Harness()
    a = h.open(A)
    b = h.open(B)
    step = h.announce(a, "global", {"peerId": A}, now=1.0)
    assert step.actions == []
    assert step.events == [PeerAnnounced(peer_id=A, network_name="global", is_hub=False)]
    step = h.announce(b, "global", {"peerId": B, "extra": [1, "two"]}, now=2.0)
    assert [type(act) for act in step.actions] == [SendText, SendText]
    to_a, to_b = (json.loads(act.text) for act in step.actions if isinstance(act, SendText))
    assert to_a == {
        "type": "peer-discovered",
        "data": {"peerId": B, "isHub": False, "extra": [1, "two"]},
        "networkName": "global",
        "fromPeerId": "system",
        "targetPeerId": A,
        "timestamp": ms(2.0),
    }
    assert list(to_a) == ["type", "data", "networkName", "fromPeerId", "targetPeerId", "timestamp"]
    assert to_b == {
        "type": "peer-discovered",
        "data": {"peerId": A, "isHub": False},
        "networkName": "global",
        "fromPeerId": "system",
        "targetPeerId": B,
        "timestamp": ms(2.0),
    }
    assert [a_.connection for a_ in step.actions] == [a, b]
    assert step.events == [PeerAnnounced(peer_id=B, network_name="global", is_hub=False)]


@pytest.mark.parametrize("is_hub", ["true", 1, None, False])
def test_announcer_cannot_override_peer_id_or_is_hub(is_hub: object) -> None:
    # Weakness 3: the reference spread the announcer's data last.
    h = Harness()
    a = h.join(A)
    b = h.open(B)
    step = h.announce(b, None, {"peerId": C, "isHub": is_hub, "label": "bob"})
    assert step.to(a)[0]["data"] == {"peerId": B, "isHub": False, "label": "bob"}
    assert h.s.stats().hubs == 0
    c = h.open(C)
    step = h.announce(c)
    assert [m["data"] for m in step.to(c)] == [
        {"peerId": A, "isHub": False},
        {"peerId": B, "isHub": False, "label": "bob"},
    ]


@pytest.mark.parametrize("frame_extra", [{}, {"networkName": ""}, {"networkName": None}])
def test_missing_or_empty_network_name_means_global(frame_extra: Json) -> None:
    h = Harness()
    a = h.open(A)
    step = h.send(a, {"type": "announce", "data": {}, **frame_extra})
    assert step.events == [PeerAnnounced(peer_id=A, network_name="global", is_hub=False)]
    assert h.s.networks() == ["global"]
    assert h.s.network_members("global") == [A]
    b = h.open(B)
    step = h.send(b, {"type": "announce"})  # no data at all
    assert step.to(a)[0]["networkName"] == "global"


def test_namespaces_are_isolated() -> None:
    h = Harness()
    a = h.join(A, "x")
    c = h.open(C)
    step = h.announce(c, "y")
    assert step.actions == []
    b = h.open(B)
    step = h.announce(b, "x")
    assert {conn for conn, _ in step.texts()} == {a, b}
    assert [m["data"]["peerId"] for m in step.to(b)] == [A]
    assert all(m["networkName"] == "x" for _, m in step.texts())
    assert h.s.networks() == ["x", "y"]
    assert h.s.network_members("x") == [A, B]
    assert h.s.network_members("y") == [C]
    assert h.s.network_members("nope") == []


def test_reannounce_in_the_same_namespace_repeats_discovery() -> None:
    h = Harness()
    a = h.join(A, "x")
    b = h.join(B, "x")
    step = h.announce(a, "x", now=5.0)
    assert [m["type"] for m in step.to(b)] == ["peer-discovered"]
    assert [m["type"] for m in step.to(a)] == ["peer-discovered"]
    assert h.s.network_members("x") == [B, A]  # moved to the end: announcement order


def test_reannounce_into_another_namespace_leaves_the_old_one() -> None:
    # Weakness 11: the reference left the ID in the old namespace set forever.
    h = Harness()
    a = h.join(A, "x")
    b = h.join(B, "x")
    c = h.join(C, "x")
    d = h.join(D, "y")
    step = h.announce(a, "y", now=3.0)
    disconnected = step.of_type("peer-disconnected")
    assert [conn for conn, _ in disconnected] == [b, c]
    assert disconnected[0][1] == {
        "type": "peer-disconnected",
        "data": {"peerId": A, "isHub": False, "reason": "changed network", "timestamp": ms(3.0)},
        "networkName": "x",
        "fromPeerId": "system",
        "targetPeerId": B,
        "timestamp": ms(3.0),
    }
    discovered = step.of_type("peer-discovered")
    assert {conn for conn, _ in discovered} == {a, d}
    assert all(m["networkName"] == "y" for _, m in discovered)
    assert h.s.network_members("x") == [B, C]
    assert h.s.network_members("y") == [D, A]
    assert h.s.health(3.0)["networks"] == 2
    h.announce(b, "y")
    h.announce(c, "z")
    assert h.s.networks() == ["y", "z"]
    assert h.s.health(3.0)["networks"] == 2
    # A closes: only "y" hears of it, once.
    step = h.close(a, 4.0)
    assert sorted(conn for conn, _ in step.texts()) == sorted([d, b])
    assert h.s.network_members("y") == [D, B]


def _ids(n: int, seed: int) -> list[PeerId]:
    entropy = SeededEntropy(seed)
    return [generate_peer_id(entropy) for _ in range(n)]


@pytest.mark.parametrize("k", [1, 3, 8])
def test_discovery_k_answers_with_only_the_k_xor_closest(k: int) -> None:
    peers = _ids(24, seed=11)
    h = Harness(ServerConfig(discovery_k=k))
    conns: dict[ConnectionId, PeerId] = {}
    announced: list[PeerId] = []
    total = 0
    for i, peer in enumerate(peers):
        conn = h.open(peer, now=float(i))
        conns[conn] = peer
        step = h.announce(conn, "x", now=float(i))
        expected = k_closest(peer, announced, k)
        told_newcomer = [m["data"]["peerId"] for m in step.to(conn)]
        assert told_newcomer == expected
        heard = [conns[c] for c, m in step.texts() if c != conn]
        assert heard == expected
        assert all(m["data"]["peerId"] == peer for c, m in step.texts() if c != conn)
        total += len(step.texts())
        announced.append(peer)
    n = len(peers)
    assert total == sum(2 * min(i, k) for i in range(n))
    assert total <= 2 * n * k


def test_discovery_without_k_is_quadratic() -> None:
    peers = _ids(24, seed=11)
    h = Harness()
    total = 0
    for peer in peers:
        total += len(h.announce(h.open(peer), "x").texts())
    n = len(peers)
    assert total == n * (n - 1)


def test_announce_data_over_the_bound_is_refused() -> None:
    limit = 64
    h = Harness(ServerConfig(max_announce_data_bytes=limit))
    a = h.join(A)
    b = h.open(B)
    at_limit = {"pad": "x" * (limit - len('{"pad":""}'))}
    assert len(json.dumps(at_limit, separators=(",", ":"))) == limit
    over = {"pad": "x" * (limit - len('{"pad":""}') + 1)}
    step = h.announce(b, None, over)
    assert step.actions == []
    assert step.rejected() == [
        FrameRejected(connection=b, peer_id=B, field="data", reason=f"exceeds {limit} bytes")
    ]
    assert h.s.network_members("global") == [A]
    step = h.announce(b, None, at_limit)
    assert step.to(a)[0]["data"] == {"peerId": B, "isHub": False, **at_limit}
    assert h.s.stats().rejected == 1


# --- relaying ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["offer", "answer", "ice-candidate"])
@pytest.mark.parametrize("network", ["global", "x"])
def test_signal_is_relayed_to_its_target(kind: str, network: str) -> None:
    h = Harness()
    a = h.join(A, network)
    b = h.join(B, network)
    frame = signal(kind, B, network)
    step = h.send(a, frame, now=2.5)
    assert step.to(a) == []
    assert step.to(b) == [
        {
            "type": kind,
            "data": frame["data"],
            "networkName": network,
            "fromPeerId": A,
            "targetPeerId": B,
            "timestamp": ms(2.5),
        }
    ]
    assert "maxPeers" not in step.to(b)[0]
    assert step.events == []
    assert h.s.stats().relayed == 1
    # Naming oneself as the sender is not a spoof.
    step = h.send(a, signal(kind, B, network, fromPeerId=A))
    assert step.to(b)[0]["fromPeerId"] == A


def test_unannounced_peers_relay_in_global() -> None:
    h = Harness()
    a = h.open(A)
    b = h.open(B)
    step = h.send(a, signal("offer", B, network=None))
    assert step.to(b)[0]["networkName"] == "global"


@pytest.mark.parametrize("kind", ["offer", "answer", "ice-candidate", "goodbye"])
def test_plain_client_cannot_spoof_from_peer_id(kind: str) -> None:
    # Weakness 1: the reference relayed any client-supplied fromPeerId verbatim.
    h = Harness()
    a = h.join(A)
    b = h.join(B)
    h.join(C)
    if kind == "goodbye":
        frame: Json = {"type": "goodbye", "data": {"peerId": C}, "fromPeerId": C}
    else:
        frame = signal(kind, B, fromPeerId=C)
    step = h.send(a, frame)
    assert step.actions == []
    assert step.events == [
        FrameRejected(
            connection=a,
            peer_id=A,
            field="fromPeerId",
            reason="only a hub may relay for another peer",
        )
    ]
    stats = h.s.stats()
    assert (stats.spoof_attempts, stats.rejected, stats.relayed) == (1, 1, 0)
    assert h.s.network_members("global") == [A, B, C]
    assert h.send(b, signal("offer", A)).to(a)[0]["fromPeerId"] == B


def test_relay_namespace_must_match_sender_and_target() -> None:
    # Weakness 5: the reference only compared the claimed namespace with the target's.
    h = Harness()
    a = h.join(A, "x")
    b = h.join(B, "x")
    c = h.join(C, "y")
    wrong_ns = FrameRejected(
        connection=a, peer_id=A, field="networkName", reason="is not the sender's namespace"
    )
    # Claiming the target's namespace instead of one's own.
    step = h.send(a, signal("offer", C, "y"))
    assert (step.actions, step.events) == ([], [wrong_ns])
    # Claiming one's own namespace towards a target elsewhere: dropped, not delivered.
    step = h.send(a, signal("offer", C, "x"))
    assert (step.actions, step.events) == ([], [])
    assert h.s.stats().dropped_unroutable == 1
    # Claiming another namespace (or none, which is "global") towards a same-namespace target.
    assert h.send(a, signal("offer", B, "y")).events == [wrong_ns]
    assert h.send(a, signal("offer", B, None)).events == [wrong_ns]
    stats = h.s.stats()
    assert (stats.rejected, stats.relayed) == (3, 0)
    assert h.send(c, signal("offer", A, "y")).actions == []
    assert h.send(a, signal("offer", B, "x")).to(b)[0]["networkName"] == "x"


@pytest.mark.parametrize(
    "target",
    [UNKNOWN, None, "", "not-an-id", A.upper()],
)
def test_unroutable_signal_is_dropped_and_counted(target: str | None) -> None:
    h = Harness()
    a = h.join(A)
    step = h.send(a, signal("ice-candidate", target))
    assert step == Step([], [])
    assert h.s.stats().dropped_unroutable == 1
    assert h.s.stats().rejected == 0


def test_signal_to_a_departed_peer_is_dropped() -> None:
    h = Harness()
    a = h.join(A)
    b = h.join(B)
    h.close(b)
    assert h.send(a, signal("offer", B)) == Step([], [])
    assert h.s.stats().dropped_unroutable == 1


def test_connection_rejected_is_routed() -> None:
    # Weakness 15: the reference answered it with 'error'; routing it shortens failed dials.
    h = Harness()
    a = h.join(A, "x")
    b = h.join(B, "x")
    frame = signal("connection-rejected", A, "x")
    step = h.send(b, frame, now=4.0)
    assert step.to(a) == [
        {
            "type": "connection-rejected",
            "data": frame["data"],
            "networkName": "x",
            "fromPeerId": B,
            "targetPeerId": A,
            "timestamp": ms(4.0),
        }
    ]
    assert step.to(b) == []


def test_connection_rejected_gets_the_reference_error_when_not_routed() -> None:
    h = Harness(ServerConfig(route_connection_rejected=False))
    a = h.join(A)
    b = h.join(B)
    step = h.send(b, signal("connection-rejected", A), now=1.0)
    assert step.to(a) == []
    assert step.to(b) == [
        {"type": "error", "error": error_text("connection-rejected"), "timestamp": ms(1.0)}
    ]


# --- goodbye and departures -----------------------------------------------------------------------


def test_goodbye_is_relayed_to_the_namespace_and_the_sender_leaves() -> None:
    h = Harness()
    a = h.join(A, "x")
    b = h.join(B, "x")
    c = h.join(C, "x")
    d = h.join(D, "y")
    bye = {"peerId": A, "timestamp": 123}
    step = h.send(a, {"type": "goodbye", "data": bye, "maxPeers": 3, "networkName": "x"}, 6.0)
    expected = {
        "type": "goodbye",
        "data": bye,
        "networkName": "x",
        "fromPeerId": A,
        "timestamp": ms(6.0),
    }
    assert step.texts() == [(b, expected), (c, expected)]
    assert step.to(d) == []
    assert step.events == [PeerGoodbye(peer_id=A)]
    assert h.s.network_members("x") == [B, C]
    # The socket stays open but the later close tells nobody again.
    assert h.close(a, 7.0).actions == []
    assert h.s.network_members("x") == [B, C]


def test_goodbye_without_network_uses_the_stored_namespace() -> None:
    # The browser unload goodbye has no networkName; it reaches the sender's real namespace.
    h = Harness()
    a = h.join(A, "x")
    b = h.join(B, "x")
    step = h.send(a, {"type": "goodbye", "data": {"peerId": A, "reason": "peer_disconnect"}})
    assert [(conn, m["networkName"]) for conn, m in step.texts()] == [(b, "x")]


def test_goodbye_from_unannounced_peer_or_last_member() -> None:
    h = Harness()
    a = h.open(A)
    assert h.send(a, {"type": "goodbye"}) == Step([], [])
    h.announce(a, "solo")
    step = h.send(a, {"type": "goodbye", "data": {}})
    assert step.actions == []
    assert step.events == [PeerGoodbye(peer_id=A)]
    assert h.s.networks() == []
    h.announce(a, "solo")  # may come back later
    assert h.s.network_members("solo") == [A]


def test_departure_reaches_only_its_namespace_exactly_once() -> None:
    # Weaknesses 5 and 12: the reference told every socket, and namespace members twice.
    h = Harness()
    a = h.join(A, "x")
    b = h.join(B, "x")
    c = h.join(C, "y")
    u = h.open(D)  # never announced
    step = h.close(a, 9.0, code=1000, reason="Client disconnect")
    assert step.texts() == [
        (
            b,
            {
                "type": "peer-disconnected",
                "data": {
                    "peerId": A,
                    "isHub": False,
                    "reason": "Client disconnect",
                    "timestamp": ms(9.0),
                },
                "networkName": "x",
                "fromPeerId": "system",
                "targetPeerId": B,
                "timestamp": ms(9.0),
            },
        )
    ]
    assert step.to(c) == step.to(u) == []
    assert step.events == [
        PeerDeparted(peer_id=A, code=1000, reason="Client disconnect", total_connections=3)
    ]
    # The adapter reports the same close again (error, then close): nothing more.
    assert h.close(a, 9.5, code=1006, reason="WebSocket error") == Step([], [])
    step = h.close(b, 10.0, code=1006, reason="")
    assert step.actions == []  # B was the last member of "x"
    assert step.events[0] == PeerDeparted(
        peer_id=B, code=1006, reason="disconnected", total_connections=2
    )
    assert h.s.networks() == ["y"]


def test_close_of_unknown_handle_is_ignored() -> None:
    h = Harness()
    h.open(A)
    assert h.close(ConnectionId(999)) == Step([], [])
    assert h.s.stats().connections == 1


# --- other message types --------------------------------------------------------------------------


def test_ping_gets_pong() -> None:
    h = Harness()
    a = h.open(A)
    step = h.send(a, {"type": "ping", "data": {"anything": 1}, "networkName": "x"}, now=3.0)
    assert [act.text for act in step.actions if isinstance(act, SendText)] == [
        f'{{"type":"pong","data":{{"timestamp":{ms(3.0)}}},"fromPeerId":"system",'
        f'"targetPeerId":"{A}","timestamp":{ms(3.0)}}}'
    ]
    assert step.events == []


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "cleanup", "data": {"peerId": A, "targetPeerId": B, "reason": "x"}},
        {"type": "cleanup", "targetPeerId": B, "networkName": "global", "maxPeers": 3},
        {"type": "cleanup-all", "data": {"peerId": A, "reason": "browser_unload"}},
    ],
)
def test_cleanup_messages_are_accepted_silently(frame: Json) -> None:
    h = Harness()
    a = h.join(A)
    h.join(B)
    assert h.send(a, frame) == Step([], [])
    assert h.s.stats().rejected == 0


@pytest.mark.parametrize(
    ("frame", "shown_type", "reason"),
    [
        ({"type": "renegotiation-offer", "data": {}}, "renegotiation-offer", None),
        ({"type": "ice-restart-answer", "data": {}}, "ice-restart-answer", None),
        ({"type": "pong"}, "pong", None),
        ({"type": "connected"}, "connected", None),
        ({"type": "error", "error": "x"}, "error", None),
        ({"type": "whatever"}, "whatever", "unknown message type 'whatever'"),
        ({"type": ""}, "", "unknown message type ''"),
        ({"data": {"peerId": A}}, "undefined", "is required"),
        ({"type": None, "networkName": "global"}, "undefined", "is required"),
    ],
)
def test_unrouted_types_get_the_exact_reference_error(
    frame: Json, shown_type: str, reason: str | None
) -> None:
    h = Harness()
    a = h.join(A)
    b = h.join(B)
    step = h.send(a, frame, now=2.0)
    assert [act.text for act in step.actions if isinstance(act, SendText)] == [
        json.dumps(
            {"type": "error", "error": error_text(shown_type), "timestamp": ms(2.0)},
            separators=(",", ":"),
        )
    ]
    assert step.to(b) == []
    assert step.events == [
        FrameRejected(
            connection=a, peer_id=A, field="type", reason=reason or "is not routed by this server"
        )
    ]
    assert h.s.stats().rejected == 1  # one frame, one strike


@pytest.mark.parametrize("kind", ["peer-discovered", "peer-disconnected"])
def test_peer_notices_from_a_non_hub_are_rejected(kind: str) -> None:
    h = Harness()
    a = h.join(A, "x")
    h.join(B, "x")
    step = h.send(a, {"type": kind, "data": {"peerId": C}, "networkName": "x"})
    assert step.actions == []
    assert step.events == [
        FrameRejected(
            connection=a, peer_id=A, field="type", reason="only a registered hub may send this"
        )
    ]


# --- bad input ------------------------------------------------------------------------------------


TO_B: Final = f'"targetPeerId":"{B}"'
BAD_FRAMES: Final[list[tuple[str | bytes, str]]] = [
    (b"\xff\xfe\x00", "frame"),
    (b'{"type":"ping","x":"\xc3"}', "frame"),
    ("not json", "frame"),
    ("", "frame"),
    ("[1, 2]", "frame"),
    ("null", "frame"),
    ("42", "frame"),
    ('"announce"', "frame"),
    ('{"type":"ping","x":NaN}', "frame"),
    ('{"type":"ping","x":Infinity}', "frame"),
    ('{"type":"announce","data":{"x":1e999}}', "frame"),
    ('{"type":"announce","data":' + '{"a":' * 2000 + "1" + "}" * 2000 + "}", "frame"),
    ('{"type":"announce","data":' + "[" * 100 + "]" * 100 + "}", "frame"),
    ('{"type":"announce","data":{"n":1' + "0" * 5000 + "}}", "frame"),
    ('{"type":5}', "type"),
    ('{"type":["offer"]}', "type"),
    ('{"type":"offer","data":"sdp",' + TO_B + "}", "data"),
    ('{"type":"offer",' + TO_B + "}", "data"),
    ('{"type":"offer","data":{"sdp":1},' + TO_B + "}", "data.sdp"),
    ('{"type":"offer","data":{"type":"answer","sdp":""},' + TO_B + "}", "data.type"),
    ('{"type":"ice-candidate","data":{"candidate":null},' + TO_B + "}", "data.candidate"),
    ('{"type":"ice-candidate","data":{"candidate":"c","sdpMLineIndex":"0"}}', "data.sdpMLineIndex"),
    ('{"type":"offer","data":{"sdp":""},"targetPeerId":5}', "targetPeerId"),
    ('{"type":"offer","data":{"sdp":""},' + TO_B + ',"fromPeerId":7}', "fromPeerId"),
    ('{"type":"announce","networkName":7}', "networkName"),
    ('{"type":"announce","data":[1]}', "data"),
    ('{"type":"announce","timestamp":"now"}', "timestamp"),
    ('{"type":"announce","maxPeers":"3"}', "maxPeers"),
    ('{"type":"announce","maxPeers":true}', "maxPeers"),
    ('{"type":"peer-discovered"}', "data"),
]


@pytest.mark.parametrize(
    ("raw", "field_name"),
    BAD_FRAMES,
    ids=[f"{i}-{field}" for i, (_, field) in enumerate(BAD_FRAMES)],
)
def test_bad_frames_are_rejected_counted_and_harmless(raw: str | bytes, field_name: str) -> None:
    h = Harness()
    a = h.join(A)
    b = h.join(B)
    c = h.join(C)
    step = h.send(a, raw, now=1.0)
    assert step.actions == []
    assert len(step.events) == 1
    event = step.events[0]
    assert isinstance(event, FrameRejected)
    assert (event.connection, event.peer_id, event.field) == (a, A, field_name)
    stats = h.s.stats()
    assert (stats.rejected, stats.frames_received, stats.connections) == (1, 4, 3)
    assert h.s.network_members("global") == [A, B, C]
    # Everyone, the offender included, keeps working.
    assert h.send(b, signal("offer", C)).to(c)[0]["fromPeerId"] == B
    assert h.send(a, signal("answer", B)).to(b)[0]["fromPeerId"] == A


def test_text_with_lone_surrogates_does_not_break_encoding() -> None:
    h = Harness()
    a = h.join(A)
    b = h.open(B)
    step = h.announce(b, None, {"name": "\ud800x"})
    assert step.to(a)[0]["data"]["name"] == "\ud800x"
    step = h.send(a, '{"type":"goodbye","data":{"n":"\\udfff"}}')
    assert step.to(b)[0]["data"] == {"n": "\udfff"}


@pytest.mark.parametrize("as_bytes", [False, True])
def test_oversized_frame_closes_with_1009(as_bytes: bool) -> None:
    limit = 200
    h = Harness(ServerConfig(max_message_bytes=limit))
    a = h.join(A, "x")
    b = h.join(B, "x")
    filler = "é" * 100  # two UTF-8 bytes each: the bound counts bytes, not characters
    ok = json.dumps({"type": "ping", "p": ""}, ensure_ascii=False)
    ok = ok[:-2] + "x" * (limit - len(ok.encode())) + '"}'
    assert len(ok.encode()) == limit
    assert h.send(a, ok.encode() if as_bytes else ok).to(a)[0]["type"] == "pong"
    big = json.dumps({"type": "ping", "p": filler}, ensure_ascii=False)
    assert len(big) <= limit < len(big.encode())
    step = h.send(b, big.encode() if as_bytes else big, now=1.0)
    assert step.closes() == [Close(connection=b, code=1009, reason="Message too big")]
    assert [m["type"] for m in step.to(a)] == ["peer-disconnected"]
    assert step.to(a)[0]["data"]["reason"] == "message too big"
    assert step.to(b) == []
    assert [type(e) for e in step.events] == [FrameRejected, PeerDeparted]
    assert step.events[1] == PeerDeparted(
        peer_id=B, code=1009, reason="message too big", total_connections=1
    )
    assert h.s.peer_ids() == [A]
    assert h.s.network_members("x") == [A]
    assert h.close(b, 2.0) == Step([], [])  # the adapter's report of our close


def test_too_many_invalid_frames_close_with_1008() -> None:
    h = Harness(ServerConfig(max_bad_frames=3))
    a = h.join(A)
    b = h.join(B)
    for i in range(3):
        step = h.send(b, "garbage", now=float(i))
        assert step.closes() == []
    step = h.send(b, {"type": "no-such-type"}, now=3.0)
    assert [type(act) for act in step.actions] == [SendText, Close, SendText]
    assert step.to(b)[0]["type"] == "error"  # the reply still goes out before the close
    assert step.closes() == [Close(connection=b, code=1008, reason="Too many invalid frames")]
    assert step.to(a)[0]["type"] == "peer-disconnected"
    assert step.events[-1] == PeerDeparted(
        peer_id=B, code=1008, reason="too many invalid frames", total_connections=1
    )
    assert h.s.stats().rejected == 4
    assert h.send(b, {"type": "ping"}, now=4.0) == Step([], [])
    assert h.s.stats().frames_received == 6  # 2 announces + 4 bad; the last ping is ignored
    assert h.send(a, {"type": "ping"}, now=4.0).to(a)[0]["type"] == "pong"


def test_unrouted_js_types_are_answered_but_cost_no_strike() -> None:
    # JS peers send renegotiation and ICE-restart frames in normal operation; the reference
    # answers them with 'error'. A long-lived JS peer must never be closed for them.
    h = Harness(ServerConfig(max_bad_frames=3))
    a = h.join(A)
    for i, kind in enumerate(["renegotiation-offer", "ice-restart-offer"] * 5):
        step = h.send(a, {"type": kind, "data": {}, "targetPeerId": B}, now=float(i))
        assert step.closes() == []
        assert step.to(a)[0]["error"] == error_text(kind)
    assert h.s.peer_ids() == [A]
    assert h.s.stats().rejected == 10


def test_outbound_overflow_closes_the_connection() -> None:
    h = Harness(ServerConfig(max_outbound_frames=8))
    a = h.join(A, "x")
    b = h.join(B, "x")
    h.s.connection_overflowed(b, 5.0)
    step = h.drain()
    assert step.closes() == [Close(connection=b, code=1008, reason="Outbound queue overflow")]
    assert step.to(b) == []
    assert step.to(a)[0]["data"]["reason"] == "outbound queue overflow"
    assert step.events == [
        PeerDeparted(peer_id=B, code=1008, reason="outbound queue overflow", total_connections=1)
    ]
    h.s.connection_overflowed(b, 6.0)
    h.s.connection_overflowed(ConnectionId(999), 6.0)
    assert h.drain() == Step([], [])
    assert h.close(b, 7.0) == Step([], [])


# --- timers ---------------------------------------------------------------------------------------


def test_no_deadline_without_connections() -> None:
    h = Harness()
    assert h.s.next_deadline() is None
    h.s.handle_timer(1000.0)
    assert h.drain() == Step([], [])
    a = h.open(A)
    assert h.s.next_deadline() is not None
    h.close(a)
    assert h.s.next_deadline() is None


def test_ping_every_interval_and_harmless_early_or_repeated_timers() -> None:
    h = Harness(ServerConfig(ping_interval_s=30.0, peer_timeout_s=300.0))
    a = h.open(A)
    b = h.open(B)
    assert h.s.next_deadline() == 30.0
    h.s.handle_timer(29.9)  # early
    assert h.drain() == Step([], [])
    assert h.s.next_deadline() == 30.0
    for expected in (30.0, 60.0, 90.0):
        now, step = h.tick()
        assert now == expected
        assert step.actions == [SendPing(connection=a), SendPing(connection=b)]
        assert step.events == []
        h.s.handle_timer(now)  # twice
        assert h.drain() == Step([], [])
        deadline = h.s.next_deadline()
        assert deadline is not None
        assert deadline > now
        h.s.receive_pong(a, now + 0.1)
        h.s.receive_pong(b, now + 0.1)


def test_idle_connection_is_timed_out() -> None:
    # Weakness 9: the reference printed peerTimeout and never used it.
    h = Harness(ServerConfig(ping_interval_s=30.0, peer_timeout_s=100.0))
    a = h.join(A, "x")
    b = h.join(B, "x")
    c = h.join(C, "y")
    log: list[tuple[float, Step]] = []
    for _ in range(4):
        now, step = h.tick()
        log.append((now, step))
        h.s.receive_pong(b, now + 1.0)  # B answers its pings
        h.send(c, {"type": "ping"}, now=now + 1.0)  # C keeps talking
    assert [now for now, _ in log] == [30.0, 60.0, 90.0, 120.0]
    for _, step in log[:3]:
        assert step.pings() == [a, b, c]
    now, step = log[3]
    assert step.closes() == [Close(connection=a, code=1001, reason="Peer timeout")]
    assert step.pings() == [b, c]
    assert step.to(b)[0]["type"] == "peer-disconnected"
    assert step.to(b)[0]["data"]["reason"] == "peer timeout"
    assert step.to(c) == []
    assert step.events == [
        PeerDeparted(peer_id=A, code=1001, reason="peer timeout", total_connections=2)
    ]
    assert h.s.stats().timed_out == 1
    assert h.s.peer_ids() == [B, C]
    assert h.close(a, 121.0) == Step([], [])


def test_timeout_boundary_is_inclusive() -> None:
    h = Harness(ServerConfig(ping_interval_s=10.0, peer_timeout_s=20.0))
    a = h.open(A)
    h.s.handle_timer(10.0)
    assert h.drain().pings() == [a]
    h.s.handle_timer(20.0)  # idle == peer_timeout_s
    step = h.drain()
    assert step.closes() == [Close(connection=a, code=1001, reason="Peer timeout")]
    assert h.s.next_deadline() is None


def test_stepped_timers_never_leave_a_deadline_in_the_past() -> None:
    h = Harness(ServerConfig(ping_interval_s=7.0, peer_timeout_s=20.0))
    a = h.open(A)
    h.open(B, now=3.0)
    now = 0.0
    while (deadline := h.s.next_deadline()) is not None:
        now = deadline + 0.5  # the adapter wakes a little late
        h.s.handle_timer(now)
        h.s.receive_pong(a, now)
        h.drain()
        after = h.s.next_deadline()
        assert after is None or after > now
        if now > 200:
            h.close(a, now)
    assert h.s.stats().timed_out == 1  # B never answered


# --- memory bounds and cleanup --------------------------------------------------------------------


def test_all_maps_are_empty_after_everyone_leaves() -> None:
    h = Harness(ServerConfig(max_connections=8, ping_interval_s=10.0, peer_timeout_s=15.0))
    conns = [h.join(p, net) for p, net in [(A, "x"), (B, "x"), (C, "y"), (D, None)]]
    hub = h.open(H)
    h.announce(hub, HUB_NS, {"isHub": True})
    e = h.open(E)
    h.announce(e, "z")
    h.announce(e, "x")  # moved namespace
    h.send(conns[0], {"type": "goodbye"})  # left its namespace, still connected
    h.open_raw(f"/?peerId={B}")  # refused duplicate
    h.open_raw("/?peerId=bad")  # refused
    assert h.s.stats().hubs == 1
    assert h.s.networks() == ["x", "y", "global", HUB_NS]
    h.s.connection_overflowed(conns[1], 1.0)
    h.close(conns[2], 1.0)
    h.close(hub, 1.0)
    h.close(e, 1.0)
    h.s.receive_pong(conns[3], 1.0)
    # The rest time out.
    while h.s.next_deadline() is not None:
        h.tick()
    h.assert_empty()
    for net in ("x", "y", "z", "global", HUB_NS):
        assert h.s.network_members(net) == []
    assert h.s.stats().timed_out == 2


# --- HTTP -----------------------------------------------------------------------------------------


def test_health_body_has_the_reference_fields_and_types() -> None:
    h = Harness(now=0.0)
    h.join(A, "x")
    h.join(B, "y")
    h.open(C)
    body = h.s.health(10.5, memory={"rss": 1, "heapTotal": 2})
    assert list(body) == [
        "status",
        "timestamp",
        "uptime",
        "isHub",
        "connections",
        "peers",
        "hubs",
        "networks",
        "memory",
    ]
    assert body == {
        "status": "healthy",
        "timestamp": "2025-01-01T00:00:10.500Z",
        "uptime": 10.5,
        "isHub": False,
        "connections": 3,
        "peers": 3,
        "hubs": 0,
        "networks": 2,
        "memory": {"rss": 1, "heapTotal": 2},
    }
    assert type(body["uptime"]) is float
    for key in ("connections", "peers", "hubs", "networks"):
        assert type(body[key]) is int
    assert Harness(ServerConfig(is_hub=True)).s.health(0.0)["isHub"] is True
    assert Harness().s.health(0.0)["memory"] == {}


def test_hubs_register_by_flag_or_namespace_and_unregister_on_close() -> None:
    h = Harness()
    hub1 = h.open(H, now=1.0)
    hub_data: Json = {
        "isHub": True,
        "port": 3001,
        "host": "0.0.0.0",
        "capabilities": ["signaling", "relay"],
        "timestamp": 1,
    }
    step = h.announce(hub1, HUB_NS, hub_data, now=2.0)
    assert step.events == [
        HubRegistered(peer_id=H, total_hubs=1),
        PeerAnnounced(peer_id=H, network_name=HUB_NS, is_hub=True),
    ]
    hub2 = h.open(D, now=3.0)
    step = h.announce(hub2, HUB_NS, {}, now=4.0)  # the namespace alone makes a hub
    assert step.events[0] == HubRegistered(peer_id=D, total_hubs=2)
    assert step.to(hub1)[0]["data"] == {"peerId": D, "isHub": True}
    hub3 = h.open(E, now=5.0)
    h.announce(hub3, "app", {"isHub": True}, now=5.0)  # the flag alone makes a hub
    h.join(A, "app")
    info: Json = json.loads(h.s.http_response("GET", "/hubs", 6.0).body)
    assert h.s.hubs_info(6.0) == info
    assert list(info) == ["timestamp", "totalHubs", "hubs"]
    assert info["timestamp"] == "2025-01-01T00:00:06.000Z"
    assert info["totalHubs"] == 3
    first = info["hubs"][0]
    assert list(first) == [
        "peerId",
        "registeredAt",
        "lastActivity",
        "networkName",
        "data",
        "connectedAt",
    ]
    assert first == {
        "peerId": H,
        "registeredAt": ms(2.0),
        "lastActivity": ms(2.0),
        "networkName": HUB_NS,
        "data": hub_data,
        "connectedAt": ms(1.0),
    }
    assert [x["peerId"] for x in info["hubs"]] == [H, D, E]
    assert info["hubs"][2]["networkName"] == "app"
    step = h.close(hub1, 7.0)
    assert HubUnregistered(peer_id=H, total_hubs=2) in step.events
    assert [x["peerId"] for x in h.hubs(7.0)] == [D, E]
    assert h.s.health(7.0)["hubs"] == 2


def test_http_routes_and_cors() -> None:
    h = Harness(ServerConfig(cors_origin="https://app.example"))
    cors = ("Access-Control-Allow-Origin", "https://app.example")
    for method, path in [("OPTIONS", "/anything"), ("options", "/health"), ("OPTIONS", "/")]:
        response = h.s.http_response(method, path, 1.0)
        assert response.status == 200
        assert response.body == b""
        assert response.headers == (
            cors,
            ("Access-Control-Allow-Methods", "GET, POST, OPTIONS"),
            ("Access-Control-Allow-Headers", "Content-Type, Authorization"),
        )
    for method in ("GET", "POST", "DELETE"):
        response = h.s.http_response(method, "/health", 1.0, memory={"rss": 5})
        assert response.status == 200
        assert response.headers == (("Content-Type", "application/json"), cors)
        body = json.loads(response.body)
        assert body["status"] == "healthy"
        assert body["memory"] == {"rss": 5}
        assert b" " not in response.body  # compact, like JSON.stringify
    for path in ("/", "/health?x=1", "/health/", "/hubs/", "/HEALTH", "/stats"):
        response = h.s.http_response("GET", path, 1.0)
        assert response.status == 200
        assert response.headers == (("Content-Type", "text/plain"), cors)
        assert response.body == b"PeerPigeon WebSocket Signaling Server"


def test_default_cors_origin_is_star() -> None:
    response = Harness().s.http_response("GET", "/hubs", 0.0)
    assert ("Access-Control-Allow-Origin", "*") in response.headers
    assert json.loads(response.body) == {
        "timestamp": "2025-01-01T00:00:00.000Z",
        "totalHubs": 0,
        "hubs": [],
    }


# --- stop -----------------------------------------------------------------------------------------


def test_stop_closes_everyone_with_1000() -> None:
    h = Harness()
    a = h.join(A, "x")
    b = h.join(B, "x")
    c = h.open(C)
    h.s.stop(5.0)
    step = h.drain()
    assert step.actions == [
        Close(connection=conn, code=1000, reason="Server shutting down") for conn in (a, b, c)
    ]
    assert h.s.next_deadline() is None
    h.s.handle_timer(100.0)
    assert h.send(a, {"type": "ping"}, now=100.0) == Step([], [])
    h.s.stop(6.0)  # twice: nothing more
    assert h.drain() == Step([], [])
    # The adapter reports the closes: departures, but nothing is sent to closing sockets.
    for conn in (a, b, c):
        step = h.close(conn, 7.0)
        assert step.actions == []
        assert [type(e) for e in step.events] == [PeerDeparted]
    h.assert_empty()


# --- hypothesis: garbage from one client ----------------------------------------------------------


def _fresh_with_bystanders() -> tuple[Harness, ConnectionId, ConnectionId, ConnectionId]:
    h = Harness(ServerConfig(max_message_bytes=4096, max_bad_frames=1000))
    fuzzer = h.join(A)
    b = h.join(B)
    c = h.join(C)
    return h, fuzzer, b, c


def _check_only_allowed_outputs(step: Step) -> None:
    for act in step.actions:
        assert isinstance(act, ACTION_TYPES)
        if isinstance(act, SendText):
            assert isinstance(json.loads(act.text), dict)
            act.text.encode("ascii")  # ensure_ascii: always encodable
    for event in step.events:
        assert isinstance(event, EVENT_TYPES)


def _bystanders_still_work(h: Harness, b: ConnectionId, c: ConnectionId) -> None:
    d = h.open(D, now=10.0)
    step = h.announce(d, None, {}, now=10.0)
    assert B in [m["data"]["peerId"] for m in step.to(d)]
    step = h.send(b, signal("offer", D), now=10.0)
    assert step.to(d)[0]["fromPeerId"] == B
    step = h.send(d, signal("answer", C), now=10.0)
    assert step.to(c)[0]["fromPeerId"] == D


MESSAGE_TYPES: Final = [
    "announce",
    "goodbye",
    "offer",
    "answer",
    "ice-candidate",
    "ping",
    "pong",
    "cleanup",
    "cleanup-all",
    "connected",
    "peer-discovered",
    "peer-disconnected",
    "error",
    "connection-rejected",
    "renegotiation-offer",
    "hub-auth",
    "unknown",
]

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["\ud800", "x\udfff"])  # lone surrogates survive json.dumps as escapes
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
envelopes = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(MESSAGE_TYPES) | json_scalars,
        "data": json_values
        | st.fixed_dictionaries(
            {},
            optional={
                "sdp": st.text(max_size=8) | json_scalars,
                "type": st.sampled_from(["offer", "answer"]) | json_scalars,
                "candidate": st.text(max_size=8) | json_scalars,
                "sdpMLineIndex": json_scalars,
                "peerId": st.sampled_from([A, B, C, D]) | json_scalars,
                "isHub": json_scalars,
            },
        ),
        "networkName": st.sampled_from(["global", "x", "", HUB_NS]) | json_values,
        "targetPeerId": st.sampled_from([A, B, C, D, UNKNOWN, ""]) | json_values,
        "fromPeerId": st.sampled_from([A, B, "system"]) | json_values,
        "timestamp": json_scalars,
        "maxPeers": json_scalars,
        "error": json_scalars,
    },
)


# Arbitrary bytes, and valid frames cut short or with a byte flipped.
raw_frames = (
    st.binary(max_size=300)
    | st.tuples(envelopes, st.integers(0, 300)).map(lambda t: json.dumps(t[0]).encode()[: t[1]])
    | st.tuples(envelopes, st.integers(0, 299), st.integers(0, 255)).map(
        lambda t: _flip(json.dumps(t[0]).encode(), t[1], t[2])
    )
)


def _flip(raw: bytes, at: int, value: int) -> bytes:
    if not raw:
        return raw
    at %= len(raw)
    return raw[:at] + bytes([value]) + raw[at + 1 :]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=raw_frames)
def test_arbitrary_bytes_never_break_the_server(data: bytes) -> None:
    h, fuzzer, b, c = _fresh_with_bystanders()
    h.s.receive_frame(fuzzer, data, 1.0)
    _check_only_allowed_outputs(h.drain())
    _bystanders_still_work(h, b, c)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=json_values | envelopes, as_bytes=st.booleans())
def test_arbitrary_json_never_breaks_the_server(value: object, as_bytes: bool) -> None:
    h, fuzzer, b, c = _fresh_with_bystanders()
    text = json.dumps(value)
    h.s.receive_frame(fuzzer, text.encode() if as_bytes else text, 1.0)
    step = h.drain()
    _check_only_allowed_outputs(step)
    # Nothing reaches another peer under a name other than the fuzzer's own.
    for conn, msg in step.texts():
        if conn != fuzzer:
            assert msg.get("fromPeerId") in (A, "system")
    _bystanders_still_work(h, b, c)


_DEEP: Final[Any] = json.loads("[" * 70 + "]" * 70)  # past MAX_JSON_DEPTH
relay_data = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["offer", "answer"]) | json_scalars,
        "sdp": st.text() | json_scalars | st.just("v" * 5000),
        "candidate": st.text(max_size=40) | json_scalars,
        "sdpMid": st.sampled_from(["0", "audio"]) | json_scalars,
        "sdpMLineIndex": st.integers(min_value=0, max_value=5) | json_scalars,
        "usernameFragment": st.text(max_size=8) | json_scalars,
        "extra": json_values | st.just(_DEEP),
    },
)
relay_frames = st.fixed_dictionaries(
    {"type": st.sampled_from(["offer", "answer", "ice-candidate"])},
    optional={
        "data": relay_data | json_values,
        "networkName": st.sampled_from(["x", "global", ""]) | json_scalars,
        "fromPeerId": st.sampled_from([A, B, C, D, H]) | json_scalars,
        "targetPeerId": st.sampled_from([A, B, C, D, H, UNKNOWN, ""]) | json_scalars,
        "timestamp": st.integers(min_value=0, max_value=2**53) | json_scalars,
        "maxPeers": st.integers(min_value=1, max_value=10) | json_scalars,
        "extra": json_values,
    },
)


def _relay_scene() -> tuple[Harness, dict[str, ConnectionId]]:
    """A (and B) in ``x``, C in ``global``, D connected but unannounced, H a hub; one closing."""
    h = Harness(ServerConfig(max_message_bytes=4096, max_bad_frames=3))
    conns = {A: h.join(A, "x"), B: h.join(B, "x"), C: h.join(C), D: h.open(D), H: h.open(H)}
    h.announce(conns[H], HUB_NS, {"isHub": True})
    return h, conns


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    frame=relay_frames | envelopes,
    sender=st.sampled_from([A, B, C, D, H]),
    as_bytes=st.booleans(),
    repeat=st.integers(min_value=1, max_value=5),
)
def test_relay_fast_path_does_what_the_general_path_does(
    frame: Json, sender: PeerId, as_bytes: bool, repeat: int
) -> None:
    """Fast path (relay_parts + encode_relay) and general path: same actions, events, stats.

    Valid relays must come out byte for byte as the general path writes them; invalid ones
    must be rejected with the same errors, strikes and closes.
    """
    fast, fast_conns = _relay_scene()
    general, general_conns = _relay_scene()
    text = json.dumps(frame)
    data = text.encode() if as_bytes else text
    with unittest.mock.patch.object(server_machine, "relay_parts", return_value=None):
        for _ in range(repeat):  # repeats reach the strike limit
            general.s.receive_frame(general_conns[sender], data, 1.0)
        general_step = general.drain()
    for _ in range(repeat):
        fast.s.receive_frame(fast_conns[sender], data, 1.0)
    fast_step = fast.drain()
    assert fast_step == general_step
    assert fast.s.stats() == general.s.stats()


text_with_surrogates = st.text() | st.sampled_from(["\ud800", "x\udfff", '\u00e9\r\n"\\/'])
routable_relays = st.tuples(
    st.sampled_from([(A, B, "x"), (B, A, "x"), (C, D, "global"), (D, C, None), (C, D, "")]),
    st.sampled_from(["offer", "answer", "ice-candidate"]),
    st.fixed_dictionaries(
        {"sdp": text_with_surrogates, "candidate": text_with_surrogates},
        optional={
            "type": st.sampled_from(["offer", "answer"]),
            "sdpMid": st.none() | text_with_surrogates,
            "sdpMLineIndex": st.none() | st.integers(min_value=0, max_value=2**70),
            "usernameFragment": st.none() | text_with_surrogates,
            "extra": json_values,
        },
    ),
    st.fixed_dictionaries(
        {},
        optional={
            "fromPeerId": st.none() | st.just("sender"),
            "timestamp": st.none() | st.integers(min_value=-(2**70), max_value=2**70),
            "maxPeers": st.none() | st.integers(min_value=-(2**70), max_value=2**70),
            "extra": json_values,
        },
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(relay=routable_relays, now=st.floats(min_value=0.0, max_value=1e6))
def test_routable_relays_come_out_byte_for_byte_as_before(
    relay: tuple[tuple[PeerId, PeerId, str | None], str, Json, Json], now: float
) -> None:
    (sender, target, network), kind, data, envelope = relay
    frame: Json = {"type": kind, "data": data, "targetPeerId": target, **envelope}
    if network is not None:
        frame["networkName"] = network
    if envelope.get("fromPeerId") == "sender":
        frame["fromPeerId"] = sender
    fast, fast_conns = _relay_scene()
    general, general_conns = _relay_scene()
    with unittest.mock.patch.object(server_machine, "relay_parts", return_value=None):
        general_step = general.send(general_conns[sender], frame, now)
    fast_step = fast.send(fast_conns[sender], frame, now)
    assert fast_step == general_step
    assert fast.s.stats() == general.s.stats()
    if wire.relay_parts(frame) is not None and not fast_step.rejected():  # a fast delivery
        assert [c for c, _ in fast_step.texts()] == [fast_conns[target]]


@pytest.mark.parametrize("kind", ["offer", "answer", "ice-candidate"])
def test_plain_relays_take_the_fast_path(kind: str) -> None:
    h, conns = _relay_scene()
    frame = signal(kind, B, "x")
    assert wire.relay_parts(frame) is not None
    with unittest.mock.patch.object(
        server_machine, "message_from_object", side_effect=AssertionError("general path")
    ):
        step = h.send(conns[A], frame, now=2.0)
    assert [c for c, _ in step.texts()] == [conns[B]]


# --- hypothesis: stateful -------------------------------------------------------------------------


SM_PEERS: Final = [A, B, C, A.upper()]
SM_NETS: Final = [None, "x", "y"]
SM_CONFIG: Final = ServerConfig(
    max_connections=3,
    max_message_bytes=512,
    max_announce_data_bytes=64,
    max_bad_frames=3,
    ping_interval_s=10.0,
    peer_timeout_s=25.0,
    stale_after_s=15.0,
)


class ServerRules(RuleBasedStateMachine):
    """Churn, namespaces, signaling, garbage and time over a handful of peer IDs."""

    handles = Bundle("handles")

    @initialize(target=handles)
    def first_connection(self) -> ConnectionId:
        conn = self.h.s.open_connection(f"/?peerId={A}", self.now)
        self._run()
        return conn

    def __init__(self) -> None:
        super().__init__()
        self.h = Harness(SM_CONFIG, seed=5)
        self.now = 0.0
        self.peer_of: dict[ConnectionId, str] = {}  # every accepted handle
        self.closed: set[ConnectionId] = set()  # handles the server has closed
        self.model_net: dict[str, str] = {}  # peer -> namespace, from events only
        self.hubs_seen: set[str] = set()  # peers that registered as hubs (this run)

    # -- plumbing --

    def _net_view(self) -> dict[str, str]:
        view: dict[str, str] = {}
        for net in self.h.s.networks():
            for peer in self.h.s.network_members(net):
                assert peer not in view, f"{peer} is in {view[peer]} and {net}"
                view[peer] = net
        return view

    def _run(self) -> Step:
        step = self.h.drain()
        before = dict(self.model_net)
        for event in step.events:
            assert isinstance(event, EVENT_TYPES)
            match event:
                case PeerConnected(peer_id=peer, connection=conn):
                    self.peer_of[conn] = peer
                case PeerAnnounced(peer_id=peer, network_name=net, is_hub=is_hub):
                    self.model_net[peer] = net
                    if is_hub:
                        self.hubs_seen.add(peer)
                case PeerGoodbye(peer_id=peer) | PeerDeparted(peer_id=peer):
                    self.model_net.pop(peer, None)
                case _:
                    pass
        after = self._net_view()
        assert after == self.model_net
        closed_later = {a.connection for a in step.actions if isinstance(a, Close)}
        hubs = {x["peerId"] for x in self.h.hubs(self.now)} | self.hubs_seen
        pairs: set[tuple[ConnectionId, str]] = set()
        for act in step.actions:
            assert isinstance(act, ACTION_TYPES)
            assert act.connection not in self.closed, f"{act} after Close"
            if isinstance(act, Close):
                hypothesis.event(f"closed: {act.reason}")
                self.closed.add(act.connection)
                continue
            assert act.connection in self.peer_of, f"{act} to a refused connection"
            if not isinstance(act, SendText):
                continue
            msg = json.loads(act.text)
            recipient = self.peer_of[act.connection]
            kind = msg["type"]
            hypothesis.event(f"sent {kind}")
            if recipient in hubs and kind != "goodbye":
                continue  # federation traffic: a hub hears of peers of every namespace
            if kind in ("peer-disconnected", "peer-discovered", "goodbye"):
                net = msg["networkName"]
                about = msg["data"]["peerId"] if kind != "goodbye" else msg["fromPeerId"]
                if act.connection not in closed_later:
                    assert after.get(recipient) == net, (kind, recipient, net)
                if kind == "peer-disconnected":
                    # Only to members of the namespace the peer left, once per departure.
                    assert before.get(about) == net
                    assert after.get(about) != net
                    assert (act.connection, about) not in pairs
                    pairs.add((act.connection, about))
                if kind == "peer-discovered":
                    assert after.get(about) == net
        return step

    # -- rules --

    @rule(
        target=handles, peer=st.sampled_from(SM_PEERS), valid=st.sampled_from([True, True, False])
    )
    def connect(self, peer: str, valid: bool) -> ConnectionId:
        return self._connect(peer, valid)

    def _connect(self, peer: str, valid: bool) -> ConnectionId:
        path = f"/?peerId={peer}" if valid else f"/?peerId={peer[:-1]}"
        conn = self.h.s.open_connection(path, self.now)
        step = self._run()
        if conn not in self.peer_of:
            assert step.actions == [a for a in step.actions if isinstance(a, Close)]
            assert conn in self.closed
        return conn

    @rule(conn=handles, code=st.sampled_from([1000, 1001, 1006]), twice=st.booleans())
    def close(self, conn: ConnectionId, code: int, twice: bool) -> None:
        for _ in range(2 if twice else 1):
            self.h.s.connection_closed(conn, self.now, code=code, reason="")
            self._run()
        self.closed.add(conn)

    @rule(target=handles, peer=st.sampled_from(SM_PEERS), net=st.sampled_from(SM_NETS))
    def join(self, peer: str, net: str | None) -> ConnectionId:
        conn = self._connect(peer, valid=True)
        self.announce(conn, net, hub=False, pad=0)
        return conn

    @rule(
        conn=handles,
        net=st.sampled_from(SM_NETS),
        hub=st.sampled_from([False, False, False, True]),
        pad=st.sampled_from([0, 0, 0, 10, 80]),
    )
    def announce(self, conn: ConnectionId, net: str | None, hub: bool, pad: int) -> None:
        data: Json = {"pad": "p" * pad}  # 80 is over max_announce_data_bytes
        if hub:
            data["isHub"] = True
        frame: Json = {"type": "announce", "data": data}
        if net is not None:
            frame["networkName"] = net
        self.h.s.receive_frame(conn, json.dumps(frame), self.now)
        self._run()

    @rule(
        conn=handles,
        kind=st.sampled_from(["offer", "answer", "ice-candidate", "connection-rejected"]),
        to=st.sampled_from([*SM_PEERS, *SM_PEERS, UNKNOWN]),
        claim=st.sampled_from(["own", "own", "own", *SM_NETS]),
        spoof=st.sampled_from([False, False, True]),
    )
    def send_signal(
        self, conn: ConnectionId, kind: str, to: str, claim: str | None, spoof: bool
    ) -> None:
        sender = self.peer_of.get(conn)
        own = self.model_net.get(sender, "global") if sender is not None else "global"
        network = own if claim == "own" else claim
        extra: Json = {"fromPeerId": C if sender != C else B} if spoof else {}
        self.h.s.receive_frame(conn, json.dumps(signal(kind, to, network, **extra)), self.now)
        is_hub = sender is not None and any(x["peerId"] == sender for x in self.h.hubs(self.now))
        step = self._run()
        for recipient_conn, msg in step.texts():
            if msg["type"] != kind:
                continue  # an error reply, or news of the sender's own strike-out
            recipient = self.peer_of[recipient_conn]
            assert msg["targetPeerId"] == to
            if recipient != to:
                # An unknown target: the frame goes to the registered hubs (federation).
                assert recipient in {x["peerId"] for x in self.h.hubs(self.now)}
                continue
            assert msg["networkName"] == self.model_net.get(recipient, "global")
            if not is_hub:
                assert msg["fromPeerId"] == sender
                assert msg["networkName"] == own

    @rule(conn=handles)
    def goodbye(self, conn: ConnectionId) -> None:
        self.h.s.receive_frame(conn, '{"type":"goodbye","data":{}}', self.now)
        self._run()

    @rule(
        conn=handles,
        data=st.binary(max_size=32)
        | st.sampled_from(
            [b"x" * 600, b'{"type":"nope"}', b"{}", b'{"type":"peer-discovered","data":{}}']
        ),
    )
    def garbage(self, conn: ConnectionId, data: bytes) -> None:
        self.h.s.receive_frame(conn, data, self.now)
        self._run()

    @rule(conn=handles)
    def pong(self, conn: ConnectionId) -> None:
        self.h.s.receive_pong(conn, self.now)
        self._run()

    @rule(conn=handles)
    def overflow(self, conn: ConnectionId) -> None:
        self.h.s.connection_overflowed(conn, self.now)
        self._run()

    @rule(dt=st.sampled_from([0.0, 0.5, 4.0, 9.0, 16.0, 30.0]))
    def time_passes(self, dt: float) -> None:
        self.now += dt
        self.h.s.handle_timer(self.now)  # due or early: both must be fine
        self._run()
        deadline = self.h.s.next_deadline()
        assert deadline is None or deadline > self.now

    # -- invariants --

    @invariant()
    def members_are_registered(self) -> None:
        registered = set(self.h.s.peer_ids())
        for net in self.h.s.networks():
            members = self.h.s.network_members(net)
            assert members, f"empty namespace {net} kept"
            assert set(members) <= registered

    @invariant()
    def no_peer_in_two_namespaces(self) -> None:
        self._net_view()

    @invariant()
    def bounded(self) -> None:
        stats = self.h.s.stats()
        assert stats.connections <= SM_CONFIG.max_connections
        assert stats.connections == stats.peers == len(self.h.s.peer_ids())
        assert stats.networks == len(self.h.s.networks())
        assert stats.hubs <= stats.connections
        for peer in self.h.s.peer_ids():
            conn = self.h.s.connection_of(peer)
            assert conn is not None
            assert conn not in self.closed

    def teardown(self) -> None:
        for conn in list(self.peer_of):
            self.h.s.connection_closed(conn, self.now)
            self._run()
        self.h.assert_empty()


ServerRules.TestCase.settings = settings(max_examples=200, stateful_step_count=50, deadline=None)
TestServerRules = ServerRules.TestCase


# --- determinism ----------------------------------------------------------------------------------


def _scenario(seed: int) -> tuple[PeerId | None, list[ServerAction | ServerEvent]]:
    h = Harness(
        ServerConfig(is_hub=True, discovery_k=2, ping_interval_s=5.0, peer_timeout_s=12.0),
        seed=seed,
    )
    peers = _ids(6, seed)
    conns = [h.open(p, now=float(i)) for i, p in enumerate(peers)]
    hub = h.open(H, now=1.0)
    h.announce(hub, HUB_NS, {"isHub": True}, now=1.0)
    for i, conn in enumerate(conns):
        net = "x" if i % 2 else "y"
        h.announce(conn, net, {"i": i}, now=2.0)
        h.send(conn, signal("offer", peers[(i + 2) % 6], net), now=2.5)
        h.send(conn, b"\xff", now=2.5)
    h.send(conns[0], {"type": "goodbye"}, now=3.0)
    h.close(conns[1], 3.0)
    h.s.receive_pong(conns[2], 8.0)
    h.s.connection_overflowed(conns[3], 9.0)
    while h.s.next_deadline() is not None:
        h.tick()
    h.s.stop(30.0)
    h.drain()
    return h.s.hub_peer_id, h.log


def test_same_seed_same_trace() -> None:
    hub_id, first = _scenario(21)
    again_id, second = _scenario(21)
    assert hub_id is not None
    assert hub_id == again_id
    assert len(first) > 50
    assert first == second
    texts = [a.text for a in first if isinstance(a, SendText)]
    assert len(texts) > 20
    assert texts == [a.text for a in second if isinstance(a, SendText)]
    other_id, third = _scenario(22)
    assert (other_id, third) != (hub_id, first)
