"""Tests of the Mesh machine: pure, stepped time, no event loop.

`Solo` drives one machine with literal hub frames and link facts; `Wire` carries the
actions of several machines through a real `SignalingServer` and instant fake links, with
a cap on rounds (a livelock fails instead of hanging), like h11's ConnectionPair.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Final, TypeVar

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from peerpigeon.protocol import server as ps
from peerpigeon.protocol.client import ClientState
from peerpigeon.protocol.errors import ConfigError, UsageError
from peerpigeon.protocol.frames import GossipMessage, encode_gossip
from peerpigeon.protocol.ids import PeerId
from peerpigeon.protocol.mesh import (
    AcceptAnswer,
    AcceptOffer,
    AddRemoteCandidate,
    CloseLink,
    CloseSocket,
    CreateOffer,
    FallbackState,
    FrameRejected,
    Mesh,
    MeshAction,
    MeshConfig,
    MeshEvent,
    MessageReceived,
    OpenSocket,
    PeerConnected,
    PeerDisconnected,
    PeerDiscovered,
    PeerEvicted,
    PeersUpdated,
    SendData,
    SendText,
    StatusChanged,
)
from peerpigeon.protocol.mesh.machine import HELLO_GRACE_S
from peerpigeon.protocol.rand import SeededEntropy
from peerpigeon.protocol.wire import JsonObject, JsonValue

T = TypeVar("T")

URL: Final = "ws://hub.test:3000"
WALL: Final = 1_735_689_600.0


def pid(prefix: str) -> PeerId:
    """A peer ID from a short hex prefix, padded with zeros."""
    return PeerId(prefix.ljust(40, "0"))


ME: Final = pid("8")
P1: Final = pid("1")
P2: Final = pid("2")
P7: Final = pid("7")
P9: Final = pid("9")
PA: Final = pid("a")
PC: Final = pid("c")
PF: Final = pid("f")


def only(items: list[object], kind: type[T]) -> list[T]:
    return [x for x in items if isinstance(x, kind)]


def state(mesh: Mesh) -> FallbackState:
    """The fallback state (a call, so that mypy does not narrow it between steps)."""
    return mesh.fallback_state


def make(me: PeerId = ME, **overrides: object) -> Mesh:
    fields: dict[str, object] = {
        "peer_id": me,
        "dial_jitter": 0.0,
        "reconnect_jitter": 0.0,
        "keepalive_interval_s": None,
        "xor_buckets": False,  # these tests pin the reference's XOR-closest preference
    }
    fields.update(overrides)
    config = MeshConfig(**fields)  # type: ignore[arg-type]  # overrides are typed per test
    return Mesh(config, rng=random.Random(1), entropy=SeededEntropy(me), wall_offset_s=WALL)


# --- Solo: one machine, literal frames ---------------------------------------------------------


class Solo:
    """One Mesh fed by hand; every drained action and event is kept."""

    def __init__(self, **overrides: object) -> None:
        me = PeerId(str(overrides.pop("me", ME)))
        network = str(overrides.pop("network", "global"))
        self.m = make(me, network_name=network, **overrides)
        self.me = me
        self.net = network
        self.now = 0.0
        self.actions: list[MeshAction] = []
        self.events: list[MeshEvent] = []

    def drain(self) -> tuple[list[MeshAction], list[MeshEvent]]:
        actions, events = self.m.drain_actions(), self.m.drain_events()
        self.actions += actions
        self.events += events
        return actions, events

    def online(self) -> None:
        self.m.connect([URL], self.now)
        self.m.socket_opened(self.now)
        self.hub({"type": "connected", "data": {"peerId": self.me}, "fromPeerId": "system"})

    def hub(self, frame: JsonObject) -> tuple[list[MeshAction], list[MeshEvent]]:
        self.m.socket_frame(json.dumps(frame), self.now)
        return self.drain()

    def routed(self, kind: str, sender: PeerId, data: JsonValue) -> None:
        self.hub(
            {
                "type": kind,
                "data": data,
                "fromPeerId": sender,
                "targetPeerId": self.me,
                "networkName": self.net,
                "timestamp": 1,
            }
        )

    def discover(self, *peers: PeerId) -> None:
        for peer in peers:
            self.routed("peer-discovered", PeerId("system"), {"peerId": peer, "isHub": False})

    def offer(self, sender: PeerId) -> None:
        self.hub(
            {
                "type": "offer",
                "data": {"type": "offer", "sdp": f"v=0 offer {sender}"},
                "fromPeerId": sender,
                "targetPeerId": self.me,
                "networkName": self.net,
            }
        )

    def answer(self, sender: PeerId) -> None:
        self.hub(
            {
                "type": "answer",
                "data": {"type": "answer", "sdp": "v=0 answer"},
                "fromPeerId": sender,
                "targetPeerId": self.me,
                "networkName": self.net,
            }
        )

    def accept(self, sender: PeerId) -> None:
        """An offer from a larger peer, answered and opened."""
        self.offer(sender)
        assert AcceptOffer(sender, f"v=0 offer {sender}") in self.actions
        self.m.link_answer_created(sender, "v=0 answer", self.now)
        self.m.link_open(sender, 262_144, self.now)
        self.drain()

    def complete_dial(self, peer: PeerId) -> None:
        """Our pending dial to `peer`: offer created, answered, opened."""
        self.m.link_offer_created(peer, "v=0 our offer", self.now)
        self.answer(peer)
        assert AcceptAnswer(peer, "v=0 answer") in self.actions
        self.m.link_open(peer, 262_144, self.now)
        self.drain()

    def text(
        self, peer: PeerId, frame: JsonObject | str
    ) -> tuple[list[MeshAction], list[MeshEvent]]:
        self.m.link_text(peer, frame if isinstance(frame, str) else json.dumps(frame), self.now)
        return self.drain()

    def advance(self, to: float, *, max_steps: int = 10_000) -> None:
        """Step the timer (aioquic style) until `to`; fails on a deadline in the past."""
        for _ in range(max_steps):
            deadline = self.m.next_deadline()
            if deadline is None or deadline > to:
                break
            self.now = max(self.now, deadline)
            self.m.handle_timer(self.now)
            after = self.m.next_deadline()
            assert after is None or after > self.now
            self.drain()
        else:
            raise AssertionError("timer livelock")
        self.now = to

    def sent_types(self) -> list[str]:
        return [json.loads(a.text)["type"] for a in only(list(self.actions), SendText)]

    def sent(self, kind: str) -> list[JsonObject]:
        out = []
        for a in only(list(self.actions), SendText):
            obj = json.loads(a.text)
            if obj["type"] == kind:
                out.append(obj)
        return out


def dm_frame(
    sender: PeerId, to: PeerId, content: JsonValue, *, msg_id: str = "1" * 32, **extra: JsonValue
) -> JsonObject:
    frame: JsonObject = {
        "id": msg_id,
        "type": "gossip",
        "subtype": "dm",
        "content": content,
        "from": sender,
        "to": to,
        "networkName": "global",
        "timestamp": 1730000000000,
        "ttl": 10,
        "path": [sender],
    }
    frame.update(extra)
    return frame


# --- Wire: several machines and a real hub ------------------------------------------------------


class Wire:
    """Carries actions between meshes through a `SignalingServer` and instant fake links."""

    def __init__(self, *meshes: Mesh) -> None:
        self.server = ps.SignalingServer(
            ps.ServerConfig(),
            rng=random.Random(0),
            entropy=SeededEntropy("hub"),
            now=0.0,
            wall_offset_s=WALL,
        )
        self.meshes = {m.peer_id: m for m in meshes}
        self.conn: dict[PeerId, ps.ConnectionId] = {}
        self.owner: dict[ps.ConnectionId, PeerId] = {}
        self.links: dict[frozenset[PeerId], bool] = {}  # pair -> open
        self.actions: dict[PeerId, list[MeshAction]] = {p: [] for p in self.meshes}
        self.events: dict[PeerId, list[MeshEvent]] = {p: [] for p in self.meshes}
        self.drop: Callable[[PeerId, MeshAction], bool] = lambda peer, action: False
        self.now = 0.0

    def run(self, *, max_rounds: int = 100) -> None:
        for _ in range(max_rounds):
            busy = False
            for me, mesh in self.meshes.items():
                actions = mesh.drain_actions()
                self.events[me] += mesh.drain_events()
                for action in actions:
                    busy = True
                    self.actions[me].append(action)
                    if not self.drop(me, action):
                        self._perform(me, action)
            for server_action in self.server.drain_actions():
                busy = True
                self._perform_server(server_action)
            self.server.drain_events()
            if not busy:
                return
        raise AssertionError("livelock: the machines never went quiet")

    def advance(self, to: float, *, max_steps: int = 10_000) -> None:
        for _ in range(max_steps):
            due = [d for m in self.meshes.values() if (d := m.next_deadline()) is not None]
            if not due or min(due) > to:
                break
            self.now = max(self.now, min(due))
            for mesh in self.meshes.values():
                deadline = mesh.next_deadline()
                if deadline is not None and deadline <= self.now:
                    mesh.handle_timer(self.now)
            self.run()
        else:
            raise AssertionError("timer livelock")
        self.now = to

    def _perform(self, me: PeerId, action: MeshAction) -> None:
        mesh, now = self.meshes[me], self.now
        match action:
            case OpenSocket(url=url):
                path = "/" + url.split("://", 1)[1].split("/", 1)[1]
                conn = self.server.open_connection(path, now)
                self.conn[me], self.owner[conn] = conn, me
                mesh.socket_opened(now)
            case SendText(text=text):
                self.server.receive_frame(self.conn[me], text, now)
            case CloseSocket(code=code, reason=reason):
                conn = self.conn.pop(me)
                del self.owner[conn]
                self.server.connection_closed(conn, now, code=code, reason=reason)
            case CreateOffer(peer=peer):
                mesh.link_offer_created(peer, f"v=0 offer {me}", now)
            case AcceptOffer(peer=peer):
                self.links[frozenset((me, peer))] = False
                mesh.link_answer_created(peer, f"v=0 answer {me}", now)
            case AcceptAnswer(peer=peer):
                pair = frozenset((me, peer))
                if pair in self.links:
                    self.links[pair] = True
                    mesh.link_open(peer, 262_144, now)
                    self.meshes[peer].link_open(me, 262_144, now)
            case SendData(peer=peer, data=data):
                if self.links.get(frozenset((me, peer))) and isinstance(data, str):
                    self.meshes[peer].link_text(me, data, now)
            case CloseLink(peer=peer):
                if self.links.pop(frozenset((me, peer)), False):
                    self.meshes[peer].link_closed(me, "closed by peer", now)
            case AddRemoteCandidate():
                pass

    def _perform_server(self, action: ps.ServerAction) -> None:
        peer = self.owner.get(action.connection)
        if peer is None:
            return
        match action:
            case ps.SendText(text=text):
                self.meshes[peer].socket_frame(text, self.now)
            case ps.Close(code=code, reason=reason):
                self.meshes[peer].socket_closed(self.now, code=code, reason=reason)
                self.server.connection_closed(action.connection, self.now, code=code)
            case ps.SendPing():
                self.server.receive_pong(action.connection, self.now)
            case _:
                pass  # no hub links here


def pair() -> tuple[Wire, Mesh, Mesh]:
    a, b = make(PA), make(P1)
    wire = Wire(a, b)
    a.connect([URL], 0.0)
    b.connect([URL], 0.0)
    wire.run()
    wire.advance(1.0)  # the optimiser runs optimize_delay_s after discovery
    return wire, a, b


# --- two machines through a hub --------------------------------------------------------------


def test_two_peers_discover_and_connect() -> None:
    wire, a, b = pair()
    assert PeerDiscovered(P1) in wire.events[PA]
    assert PeerDiscovered(PA) in wire.events[P1]
    assert CreateOffer(P1) in wire.actions[PA]  # the larger ID dials
    assert not only(list(wire.actions[P1]), CreateOffer)
    assert PeerConnected(P1) in wire.events[PA]
    assert PeerConnected(PA) in wire.events[P1]
    assert a.connected_peers() == (P1,)
    assert b.connected_peers() == (PA,)
    assert a.peers()[0].is_initiator
    assert b.peers()[0].status == "connected"
    assert a.status().connected_count == 1


def test_direct_messages_both_ways() -> None:
    wire, a, b = pair()
    first = a.send_direct_message(P1, {"text": "hi"}, wire.now)
    second = b.send_direct_message(PA, "hello back", wire.now)
    wire.run()
    got_b = only(list(wire.events[P1]), MessageReceived)
    got_a = only(list(wire.events[PA]), MessageReceived)
    assert got_b == [
        MessageReceived(
            from_peer=PA,
            content={"text": "hi"},
            timestamp=int((wire.now + WALL) * 1000),
            message_id=first,
            hops=0,
            direct=True,
            encrypted=False,
            via=PA,
        )
    ]
    assert [(m.content, m.message_id) for m in got_a] == [("hello back", second)]
    assert len(first) == 32
    assert int(first, 16) >= 0
    sent = json.loads(only(list(wire.actions[PA]), SendData)[-1].data)
    assert (sent["subtype"], sent["to"], sent["ttl"]) == ("dm", P1, 10)
    assert (sent["path"], sent["networkName"]) == ([PA], "global")


def test_eviction_through_the_wire() -> None:
    a = make(PA, min_peers=0)  # losing its one link keeps it at min_peers: a fair victim
    b = make(P1, max_peers=1, min_peers=1)  # one slot: no ring to protect
    c = make(P2)  # closer to P1 than PA is
    wire = Wire(a, b, c)
    a.connect([URL], 0.0)
    b.connect([URL], 0.0)
    wire.run()
    wire.advance(1.0)
    assert b.connected_peers() == (PA,)
    c.connect([URL], 1.0)
    wire.run()
    wire.advance(2.0)
    assert PeerEvicted(PA, "topology optimization", initiated_by_peer=False) in wire.events[P1]
    assert PeerDisconnected(PA, "evicted: topology optimization") in wire.events[P1]
    assert PeerEvicted(P1, "topology optimization", initiated_by_peer=True) in wire.events[PA]
    assert PeerDisconnected(P1, "evicted: topology optimization") in wire.events[PA]
    assert b.connected_peers() == (P2,)
    assert P1 not in a.connected_peers()
    # The victim closed at once, so the evictor had nothing left to close.
    assert not [x for x in wire.actions[P1] if isinstance(x, CloseLink) and x.peer == PA]


def test_eviction_spares_a_python_victim_at_min_peers() -> None:
    a = make(PA)  # min_peers 2, one link: its hello says so, and it must not lose it
    b = make(P1, max_peers=1, min_peers=1)
    c = make(P2)  # closer to P1 than PA is: evicting PA would be the reference's choice
    wire = Wire(a, b, c)
    a.connect([URL], 0.0)
    b.connect([URL], 0.0)
    wire.run()
    wire.advance(1.5)  # past the hello grace: the report decides, not the link's age
    assert b.connected_peers() == (PA,)
    c.connect([URL], 1.5)
    wire.run()
    wire.advance(2.0)
    assert not [e for e in wire.events[P1] if isinstance(e, PeerEvicted)]
    assert b.connected_peers() == (PA,)
    assert P1 in a.connected_peers()


def test_refused_offer_costs_one_round_trip() -> None:
    a = make(PA, max_peers=1, min_peers=0)
    b = make(P1, max_peers=1, min_peers=0, eviction_strategy=False)
    c = make(PC, max_peers=1, min_peers=0, eviction_strategy=False)
    wire = Wire(a, b, c)
    b.connect([URL], 0.0)
    wire.run()
    c.connect([URL], 0.0)
    wire.run()
    wire.advance(1.0)
    assert b.connected_peers() == (PC,)
    a.connect([URL], 1.0)
    wire.run()
    wire.advance(2.0)
    rejected = [
        json.loads(x.text)
        for x in only(list(wire.actions[P1]), SendText)
        if '"connection-rejected"' in x.text
    ]
    assert rejected
    assert rejected[0]["data"] == {"reason": "max_peers_reached"}
    assert CloseLink(P1, "connection failed") in wire.actions[PA]
    assert a.link_count() == 0


# --- offers and the initiator rule --------------------------------------------------------------


def test_wrong_way_offer_is_refused() -> None:
    s = Solo()
    s.online()
    s.offer(P2)  # smaller than us: we are the initiator
    assert not only(list(s.actions), AcceptOffer)
    assert s.sent("connection-rejected") == [
        {
            "type": "connection-rejected",
            "data": {"reason": "initiator_role_conflict"},
            "maxPeers": 3,
            "networkName": "global",
            "targetPeerId": P2,
        }
    ]


def test_offer_when_full_and_farther_is_refused() -> None:
    s = Solo(keep_ring=False, max_peers=2, min_peers=1)
    s.online()
    s.accept(P9)
    s.accept(PA)
    s.offer(PF)  # 8^f = 7 is farther than both (1 and 2)
    assert s.sent("connection-rejected")[-1]["data"] == {"reason": "max_peers_reached"}
    assert s.m.link_count() == 2


def test_eviction_by_a_closer_offer_gives_the_notice_a_chance() -> None:
    s = Solo(keep_ring=False, max_peers=2, min_peers=1)
    s.online()
    s.accept(P9)
    s.accept(PF)
    s.advance(s.now + HELLO_GRACE_S)  # no hello (a JS peer): evictable once the grace ends
    s.actions.clear()
    s.events.clear()
    s.offer(PA)  # 8^a = 2 beats 8^f = 7
    notice = SendData(PF, f'{{"type":"eviction","reason":"topology optimization","from":"{ME}"}}')
    assert s.actions[:2] == [notice, AcceptOffer(PA, f"v=0 offer {PA}")]
    assert s.events[:2] == [
        PeerEvicted(PF, "topology optimization", initiated_by_peer=False),
        PeerDisconnected(PF, "evicted: topology optimization"),
    ]
    assert not only(list(s.actions), CloseLink)
    s.advance(s.now + 1.0)  # eviction_linger_s
    assert CloseLink(PF, "evicted") in s.actions
    assert s.m.stats().evictions_sent == 1


def test_evicted_peer_closing_first_needs_no_close_link() -> None:
    s = Solo(keep_ring=False, max_peers=2, min_peers=1)
    s.online()
    s.accept(P9)
    s.accept(PF)
    s.offer(PA)
    s.m.link_closed(PF, "closed by peer", s.now)
    s.drain()
    s.advance(s.now + 5.0)
    assert not [a for a in only(list(s.actions), CloseLink) if a.peer == PF]
    assert len([e for e in only(list(s.events), PeerDisconnected) if e.peer_id == PF]) == 1


def test_ring_neighbour_offer_evicts_even_when_farther() -> None:
    s = Solo(max_peers=2, min_peers=1)
    s.online()
    s.discover(P9, PA, PF)  # our ring: predecessor PF (wrapping), successor P9
    s.accept(P9)
    s.accept(PA)
    s.advance(s.now + HELLO_GRACE_S)
    s.offer(PF)  # farther than PA, but a ring neighbour
    assert PeerEvicted(PA, "topology optimization", initiated_by_peer=False) in s.events


def test_receiving_an_eviction_notice() -> None:
    s = Solo()
    s.online()
    s.accept(P9)
    actions, events = s.text(P9, {"type": "eviction", "reason": "make room", "from": P9})
    assert events[:2] == [
        PeerEvicted(P9, "make room", initiated_by_peer=True),
        PeerDisconnected(P9, "evicted: make room"),
    ]
    assert CloseLink(P9, "evicted: make room") in actions
    assert s.m.connected_peers() == ()
    s.m.link_closed(P9, "late", s.now)  # the adapter must not, but it is harmless
    assert s.m.stats().stale_reports >= 1


# --- dialling: timeouts, refusals, retries --------------------------------------------------------


def test_dial_timeout_is_retried_with_backoff() -> None:
    s = Solo()
    s.online()
    s.discover(P1)
    s.advance(1.0)
    assert only(list(s.actions), CreateOffer) == [CreateOffer(P1)]
    s.m.link_offer_created(P1, "v=0 our offer", s.now)
    s.drain()
    assert s.sent("offer")[0]["targetPeerId"] == P1
    s.advance(16.5)  # connection_timeout_s = 15 after the dial at 0.5
    assert CloseLink(P1, "connection timeout") in s.actions
    assert s.m.stats().dial_timeouts == 1
    assert s.m.link_count() == 0
    s.advance(30.0)  # backoff 1 s, then the next optimiser run
    assert only(list(s.actions), CreateOffer) == [CreateOffer(P1), CreateOffer(P1)]


def test_refused_dial_waits_for_the_reject_backoff() -> None:
    s = Solo()
    s.online()
    s.discover(P1)
    s.advance(1.0)
    s.m.link_offer_created(P1, "v=0 our offer", s.now)
    s.routed("connection-rejected", P1, {"reason": "max_peers_reached"})
    assert CloseLink(P1, "connection failed") in s.actions
    assert any(isinstance(e, StatusChanged) and e.type == "info" for e in s.events)
    s.advance(14.0)
    assert len(only(list(s.actions), CreateOffer)) == 1
    s.advance(25.0)
    assert len(only(list(s.actions), CreateOffer)) == 2


def test_discovery_does_not_forget_and_links_heal() -> None:
    s = Solo()
    s.online()
    s.discover(P1)
    s.advance(1.0)
    s.complete_dial(P1)
    assert s.m.connected_peers() == (P1,)
    s.advance(600.0)  # the reference forgets discovered peers after 5 minutes
    assert [d.peer_id for d in s.m.discovered_peers()] == [P1]
    s.m.link_failed(P1, "ICE failed", s.now)
    s.drain()
    assert PeerDisconnected(P1, "connection failed", "ICE failed") in s.events
    s.advance(610.0)
    assert only(list(s.actions), CreateOffer)[-1] == CreateOffer(P1)
    assert len(only(list(s.actions), CreateOffer)) == 2


def test_answer_for_no_dial_is_stale() -> None:
    s = Solo()
    s.online()
    s.answer(P1)
    assert not only(list(s.actions), AcceptAnswer)
    assert s.m.stats().stale_reports == 1


def test_in_flight_dials_count_against_max_peers() -> None:
    s = Solo(max_peers=2, min_peers=2)
    s.online()
    s.discover(P1, P2, P7, pid("3"), pid("4"))
    s.advance(1.0)
    assert len(only(list(s.actions), CreateOffer)) == 2
    assert s.m.link_count() == 2
    s.advance(5.0)
    assert len(only(list(s.actions), CreateOffer)) == 2  # none opened, none more


def test_remote_candidates_are_forwarded_and_bounded() -> None:
    s = Solo(max_candidates_per_link=2)
    s.online()
    s.offer(P9)
    for i in range(4):
        s.routed("ice-candidate", P9, {"candidate": f"candidate:{i}", "sdpMid": "0"})
    assert only(list(s.actions), AddRemoteCandidate) == [
        AddRemoteCandidate(P9, "candidate:0", "0", None, None),
        AddRemoteCandidate(P9, "candidate:1", "0", None, None),
    ]
    assert s.m.stats().candidates_dropped == 2


def test_local_candidates_go_to_the_hub() -> None:
    s = Solo()
    s.online()
    s.offer(P9)
    s.m.link_candidate(P9, "candidate:x", "0", 0, "uf", s.now)
    s.drain()
    assert s.sent("ice-candidate")[0]["data"] == {
        "candidate": "candidate:x",
        "sdpMid": "0",
        "sdpMLineIndex": 0,
        "usernameFragment": "uf",
    }


def test_connect_to_peer() -> None:
    s = Solo()
    with pytest.raises(UsageError):
        s.m.connect_to_peer(ME, 0.0)
    with pytest.raises(UsageError):
        s.m.connect_to_peer(PeerId("nope"), 0.0)
    assert not s.m.connect_to_peer(P1, 0.0)  # not connected to the hub
    s.online()
    assert not s.m.connect_to_peer(P9, 0.0)  # larger: it must dial us
    assert s.m.connect_to_peer(P1, 0.0)
    assert not s.m.connect_to_peer(P1, 0.0)
    assert CreateOffer(P1) in s.drain()[0]


# --- the data channel ------------------------------------------------------------------------


def test_direct_message_delivery_rules() -> None:
    s = Solo()
    s.online()
    s.accept(P9)
    _, events = s.text(P9, dm_frame(PC, PeerId(ME.upper()), "routed to us", ttl=9, path=[PC, P9]))
    assert only(list(events), MessageReceived)[0].hops == 1  # len(path) - 1
    assert only(list(events), MessageReceived)[0].from_peer == PC
    # Duplicates, other namespaces, spent TTL, loops, other targets and control contents.
    for frame in (
        dm_frame(P9, ME, "again", path=[P9]) | {"id": "1" * 32},
        dm_frame(P9, ME, "x", msg_id="2" * 32, networkName="other"),
        dm_frame(P9, ME, "x", msg_id="3" * 32, ttl=0),
        dm_frame(P9, ME, "x", msg_id="4" * 32, path=[P9, ME]),
        dm_frame(P9, PC, "x", msg_id="5" * 32),
        dm_frame(P9, ME, {"type": "signaling-relay"}, msg_id="6" * 32),
        dm_frame(P9, ME, '{"type":"bootstrap-keepalive"}', msg_id="7" * 32),
    ):
        _, events = s.text(P9, frame)
        assert not only(list(events), MessageReceived), frame
    assert s.m.stats().gossip_duplicates == 1


def test_chat_from_a_neighbour_is_delivered() -> None:
    s = Solo()
    s.online()
    s.accept(P9)
    chat = dm_frame(P9, ME, "hello mesh") | {"subtype": "chat"}
    del chat["to"]
    _, events = s.text(P9, chat)
    assert only(list(events), MessageReceived)[0].direct is False
    _, events = s.text(P9, chat | {"id": "9" * 32, "content": "   "})
    assert not only(list(events), MessageReceived)


def test_key_exchange_from_js_peers_is_ignored() -> None:
    s = Solo()
    s.online()
    s.accept(P9)
    frame = dm_frame(
        P9,
        ME,
        {"type": "key_exchange", "publicKey": {"pub": "x.y", "epub": "z.w"}, "timestamp": 1},
    ) | {"subtype": "key_exchange"}
    actions, events = s.text(P9, frame)
    assert (actions, events) == ([], [])
    assert s.m.stats().data_frames_ignored == 1
    assert s.m.connected_peers() == (P9,)


@pytest.mark.parametrize(
    "frame",
    [
        '{"type":"signaling","data":{"type":"renegotiation-offer","data":{}}}',
        '{"type":"dht","messageType":"dht_store"}',
    ],
)
def test_frames_for_later_layers_are_ignored(frame: str) -> None:
    s = Solo()
    s.online()
    s.accept(P9)
    assert s.text(P9, frame) == ([], [])
    assert s.m.stats().data_frames_ignored == 1


def test_garbage_frames_are_rejected_then_the_link_closed() -> None:
    s = Solo(max_bad_frames=2)
    s.online()
    s.accept(P9)
    for _ in range(2):
        _, events = s.text(P9, "not json")
        assert events == [FrameRejected(P9, "data", "frame", "not valid JSON")]
    actions, events = s.text(P9, '{"type":"gossip"}')
    assert CloseLink(P9, "protocol violation") in actions
    assert PeerDisconnected(P9, "protocol violation") in events


def test_send_direct_message_errors() -> None:
    s = Solo()
    s.online()
    with pytest.raises(UsageError):
        s.m.send_direct_message(P9, "x", 0.0)
    s.accept(P9)
    with pytest.raises(UsageError):
        s.m.send_direct_message(P9, float("nan"), 0.0)
    with pytest.raises(UsageError):
        s.m.send_direct_message(P9, "x" * 300_000, 0.0)
    assert s.m.stats().messages_sent == 0


def test_seen_cache_is_bounded() -> None:
    s = Solo(max_seen_messages=2)
    s.online()
    s.accept(P9)
    for i in range(3):
        s.text(P9, dm_frame(P9, ME, "x", msg_id=f"{i:032x}"))
    # The oldest id was forgotten at the bound: it is delivered again.
    _, events = s.text(P9, dm_frame(P9, ME, "x", msg_id=f"{0:032x}"))
    assert len(only(list(events), MessageReceived)) == 1


# --- hub facts --------------------------------------------------------------------------------


def test_goodbye_closes_the_link() -> None:
    s = Solo()
    s.online()
    s.discover(P9)
    s.accept(P9)
    s.routed("goodbye", P9, {"peerId": P9})
    assert PeerDisconnected(P9, "left network") in s.events
    assert CloseLink(P9, "left network") in s.actions
    assert s.m.discovered_peers() == ()


def test_hub_losing_a_peer_keeps_its_open_link() -> None:
    s = Solo()
    s.online()
    s.discover(P9, P1)
    s.accept(P9)
    s.routed("peer-disconnected", PeerId("system"), {"peerId": P9})
    s.routed("peer-disconnected", PeerId("system"), {"peerId": P1})
    assert s.m.connected_peers() == (P9,)
    assert [d.peer_id for d in s.m.discovered_peers()] == [P9]
    s.m.link_closed(P9, "closed by peer", s.now)
    s.drain()
    assert s.m.discovered_peers() == ()  # gone from the hub, and now from us


def test_signaling_drop_keeps_links_and_rediscovery_purges() -> None:
    s = Solo()
    s.online()
    s.discover(P9, PC)
    s.accept(P9)
    s.m.socket_closed(s.now, code=1006, reason="gone")
    s.drain()
    assert s.m.connected_peers() == (P9,)
    assert any(isinstance(e, StatusChanged) and e.type == "disconnected" for e in s.events)
    s.advance(s.now + 1.0)  # reconnect_base_s
    assert only(list(s.actions), OpenSocket)[-1].url.startswith(URL)
    s.m.socket_opened(s.now)
    s.hub({"type": "connected", "data": {"peerId": ME}, "fromPeerId": "system"})
    s.advance(s.now + 11.0)  # rediscovery_grace_s: PC was not re-announced
    assert [d.peer_id for d in s.m.discovered_peers()] == [P9]  # linked: kept


def test_disconnect_closes_everything() -> None:
    s = Solo()
    s.online()
    s.accept(P9)
    s.discover(P1)
    s.actions.clear()
    s.m.disconnect(s.now)
    actions, events = s.drain()
    assert CloseLink(P9, "mesh disconnected") in actions
    assert s.sent_types() == ["goodbye"]
    assert isinstance(actions[-1], CloseSocket)
    assert PeerDisconnected(P9, "mesh disconnected") in events
    assert s.m.status().connected is False
    assert s.m.next_deadline() is None
    s.m.disconnect(s.now)  # idempotent
    assert s.drain() == ([], [])
    s.m.connect([URL], s.now)  # and it may come back
    assert isinstance(s.drain()[0][0], OpenSocket)


def test_hub_frame_errors_surface() -> None:
    s = Solo()
    s.online()
    _, events = s.hub({"type": "offer", "fromPeerId": P9, "networkName": "global"})
    assert events == [FrameRejected(None, "signaling", "data", "is required")]
    _, events = s.hub({"type": "error", "error": "Unknown message type: foo"})
    assert events == [StatusChanged("warning", message="hub error: Unknown message type: foo")]


# --- global fallback ----------------------------------------------------------------------------


def test_global_fallback_enter_probe_return_and_leave() -> None:
    s = Solo(network="room")
    s.online()
    assert s.m.status().network_name == "room"
    s.advance(29.0)
    assert state(s.m) is FallbackState.NORMAL
    s.actions.clear()
    s.advance(30.5)  # alone for fallback_after_s
    status = s.m.status()
    assert (status.network_name, status.original_network_name) == ("global", "room")
    assert status.is_in_fallback_mode
    assert s.sent_types() == ["goodbye"]
    assert [type(a) for a in s.actions][-2:] == [CloseSocket, OpenSocket]
    assert (
        StatusChanged(
            "network",
            message="no peers in 'room': using the global network",
            network_name="global",
        )
        in s.events
    )
    # A new session in "global": it announces there and meets P9.
    s.net = "global"
    s.m.socket_opened(s.now)
    s.hub({"type": "connected", "data": {"peerId": ME}, "fromPeerId": "system"})
    assert json.loads(only(list(s.actions), SendText)[-1].text)["networkName"] == "global"
    s.discover(P9)
    s.accept(P9)
    assert s.m.connected_peers() == (P9,)
    # The probe: back in "room" for fallback_probe_window_s, global links kept.
    s.advance(30.5 + 120.0)
    assert state(s.m) is FallbackState.PROBING
    assert s.m.connected_peers() == (P9,)
    s.net = "room"
    s.m.socket_opened(s.now)
    s.hub({"type": "connected", "data": {"peerId": ME}, "fromPeerId": "system"})
    s.advance(s.now + 15.0)  # nobody in "room": back to global
    assert state(s.m) is FallbackState.FALLBACK
    assert s.m.connected_peers() == (P9,)
    # The next probe finds a peer in "room": leave the fallback, drop the global link.
    s.advance(s.now + 120.0)
    assert state(s.m) is FallbackState.PROBING
    s.m.socket_opened(s.now)
    s.hub({"type": "connected", "data": {"peerId": ME}, "fromPeerId": "system"})
    s.discover(PC)
    assert state(s.m) is FallbackState.NORMAL
    assert s.m.status().network_name == "room"
    assert PeerDisconnected(P9, "network changed") in s.events
    assert [d.peer_id for d in s.m.discovered_peers()] == [PC]
    assert s.m.stats().fallback_switches == 2


def test_no_fallback_when_disabled_or_global() -> None:
    for s in (Solo(network="room", allow_global_fallback=False), Solo()):
        s.online()
        s.advance(100.0)
        assert state(s.m) is FallbackState.NORMAL
        assert not s.m.status().is_in_fallback_mode


# --- config, status, deadlines ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"peer_id": "nope"}, "peer_id"),
        ({"network_name": ""}, "network_name"),
        ({"max_peers": 0}, "max_peers"),
        ({"min_peers": 5}, "min_peers"),
        ({"connection_timeout_s": 0}, "connection_timeout_s"),
        ({"dial_jitter": 1.0}, "dial_jitter"),
        ({"dial_backoff_cap_s": 0.5}, "dial_backoff_cap_s"),
        ({"max_seen_messages": 0}, "max_seen_messages"),
        ({"reconnect_jitter": 2.0}, "reconnect_jitter"),
        ({"allow_global_fallback": "yes"}, "allow_global_fallback"),
    ],
)
def test_config_errors(overrides: dict[str, object], field: str) -> None:
    fields: dict[str, object] = {"peer_id": ME}
    fields.update(overrides)
    with pytest.raises(ConfigError) as info:
        MeshConfig(**fields)  # type: ignore[arg-type]  # deliberately wrong values
    assert info.value.field == field


def test_initial_status_and_events() -> None:
    m = make()
    assert m.drain_events() == [StatusChanged("initialized", peer_id=ME)]
    status = m.status()
    assert status.peer_id == ME
    assert not status.connected
    assert status.signaling_url is None
    assert (status.min_peers, status.max_peers, status.discovered_count) == (2, 3, 0)
    assert m.signaling_state is ClientState.IDLE
    assert m.next_deadline() is None
    m.socket_opened(0.0)  # no socket asked for: stale
    assert m.stats().stale_reports == 1
    with pytest.raises(ConfigError):
        m.connect(["ftp://nope"], 0.0)
    m.connect([URL], 0.0)
    with pytest.raises(UsageError):
        m.connect([URL], 0.0)
    assert m.drain_events()[0].type == "connecting"  # type: ignore[union-attr]


def test_discovered_peers_view() -> None:
    s = Solo()
    s.online()
    s.discover(P9, P1)
    s.accept(P9)
    view = {d.peer_id: d for d in s.m.discovered_peers()}
    assert view[P9].is_connected
    assert not view[P9].is_connecting
    assert view[P9].distance == int(P9, 16) ^ int(ME, 16)
    assert s.m.ring_neighbours() == (P1, P9)
    assert s.m.status().discovered_count == 2
    assert PeersUpdated() in s.events


def test_known_peers_are_bounded() -> None:
    s = Solo(max_known_peers=3)
    s.online()
    s.discover(*[pid(f"{i:x}1") for i in range(1, 8)])
    assert len(s.m.discovered_peers()) == 3
    assert s.m.stats().known_forgotten == 4


# --- stateful: anything the outside world can do, in any order -----------------------------------

PEERS: Final = [P1, P7, P9, PF]


class MeshRules(RuleBasedStateMachine):
    """Random hub frames, link facts and time jumps; bounds and deadlines always hold."""

    OVERRIDES: dict[str, object] = {}  # noqa: RUF012  # read-only per subclass

    def __init__(self) -> None:
        super().__init__()
        self.s = Solo(max_peers=2, min_peers=1, max_bad_frames=3, **self.OVERRIDES)
        self.s.online()
        self.live: set[PeerId] = set()  # links the adapter holds, by the contract
        self.seen_actions = 0

    def sync(self) -> None:
        """Replay new actions onto the adapter's model of live links."""
        for action in self.s.actions[self.seen_actions :]:
            if isinstance(action, CreateOffer | AcceptOffer):
                assert action.peer not in self.live, "a second link while one is live"
                self.live.add(action.peer)
            elif isinstance(action, CloseLink):
                self.live.discard(action.peer)
        self.seen_actions = len(self.s.actions)

    @rule(peer=st.sampled_from(PEERS))
    def discover(self, peer: PeerId) -> None:
        self.s.discover(peer)

    @rule(peer=st.sampled_from(PEERS))
    def offer(self, peer: PeerId) -> None:
        self.s.offer(peer)

    @rule(peer=st.sampled_from(PEERS))
    def answer(self, peer: PeerId) -> None:
        self.s.answer(peer)

    @rule(peer=st.sampled_from(PEERS))
    def offer_answered_and_opened(self, peer: PeerId) -> None:
        self.s.offer(peer)
        if AcceptOffer(peer, f"v=0 offer {peer}") in self.s.actions[-3:]:
            self.s.m.link_answer_created(peer, "v=0 a", self.s.now)
            self.s.m.link_open(peer, 65536, self.s.now)
            self.s.drain()

    @rule()
    def dials_complete(self) -> None:
        for info in self.s.m.peers():
            if info.is_initiator and info.status == "connecting":
                self.s.m.link_offer_created(info.peer_id, "v=0 o", self.s.now)
                self.s.answer(info.peer_id)
                self.s.m.link_open(info.peer_id, 65536, self.s.now)
                self.s.drain()

    @rule(peer=st.sampled_from(PEERS), kind=st.sampled_from(["goodbye", "peer-disconnected"]))
    def departure(self, peer: PeerId, kind: str) -> None:
        self.s.routed(kind, peer if kind == "goodbye" else PeerId("system"), {"peerId": peer})

    @rule(peer=st.sampled_from(PEERS))
    def rejected(self, peer: PeerId) -> None:
        self.s.routed("connection-rejected", peer, {"reason": "max_peers_reached"})

    @rule(
        peer=st.sampled_from(PEERS),
        fact=st.sampled_from(["offer", "answer", "open", "closed", "failed", "candidate"]),
    )
    def link_fact(self, peer: PeerId, fact: str) -> None:
        m, now = self.s.m, self.s.now
        self.sync()
        if fact in ("closed", "failed"):
            self.live.discard(peer)  # the adapter reports the end of a live link once
        if fact == "offer":
            m.link_offer_created(peer, "v=0 o", now)
        elif fact == "answer":
            m.link_answer_created(peer, "v=0 a", now)
        elif fact == "open":
            m.link_open(peer, 65536, now)
        elif fact == "closed":
            m.link_closed(peer, "x", now)
        elif fact == "failed":
            m.link_failed(peer, "x", now)
        else:
            m.link_candidate(peer, "candidate:1", "0", 0, None, now)
        self.s.drain()

    @rule(peer=st.sampled_from(PEERS), data=st.text(max_size=40))
    def garbage(self, peer: PeerId, data: str) -> None:
        self.s.text(peer, data)

    @rule(peer=st.sampled_from(PEERS), content=st.text(max_size=10))
    def direct_message(self, peer: PeerId, content: str) -> None:
        msg = GossipMessage(
            id=f"{len(self.s.events):032x}",
            subtype="dm",
            content=content,
            from_peer=peer,
            to=ME,
            network_name="global",
            ttl=10,
            path=(peer,),
        )
        self.s.text(peer, encode_gossip(msg))

    @rule(peer=st.sampled_from(PEERS))
    def send(self, peer: PeerId) -> None:
        if peer in self.s.m.connected_peers():
            self.s.m.send_direct_message(peer, "hi", self.s.now)
            self.s.drain()

    @rule(dt=st.floats(min_value=0.0, max_value=40.0))
    def time_passes(self, dt: float) -> None:
        self.s.advance(self.s.now + dt)

    @rule()
    def hub_drop(self) -> None:
        if self.s.m.signaling_state is ClientState.OPEN:
            self.s.m.socket_failed(self.s.now, "reset")
            self.s.drain()

    @rule()
    def hub_back(self) -> None:
        if self.s.m.signaling_state is ClientState.CONNECTING:
            self.s.m.socket_opened(self.s.now)
            self.s.hub({"type": "connected", "data": {"peerId": ME}, "fromPeerId": "system"})

    @invariant()
    def bounded(self) -> None:
        m = self.s.m
        assert m.link_count() <= 2
        assert len(m.connected_peers()) <= m.link_count()
        deadline = m.next_deadline()
        assert deadline is None or deadline >= self.s.now

    @invariant()
    def one_disconnect_per_connect(self) -> None:
        up: dict[PeerId, int] = {}
        for event in self.s.events:
            if isinstance(event, PeerConnected):
                up[event.peer_id] = up.get(event.peer_id, 0) + 1
                assert up[event.peer_id] == 1
            elif isinstance(event, PeerDisconnected):
                up[event.peer_id] = up.get(event.peer_id, 0) - 1
                assert up[event.peer_id] == 0
        assert {p for p, n in up.items() if n} == set(self.s.m.connected_peers())

    @invariant()
    def no_second_link_while_one_is_live(self) -> None:
        self.sync()
        assert {p.peer_id for p in self.s.m.peers()} <= self.live


class ZeroDelayRules(MeshRules):
    """The same with every optional delay at zero (deadlines due at once must not stick)."""

    OVERRIDES: dict[str, object] = {  # noqa: RUF012
        "eviction_linger_s": 0.0,
        "rediscovery_grace_s": 0.0,
        "evicted_backoff_s": 0.0,
        "keep_ring": False,
    }


class FallbackRules(MeshRules):
    """The same in a namespace of its own, with a quick global fallback."""

    OVERRIDES: dict[str, object] = {  # noqa: RUF012
        "network": "room",
        "fallback_after_s": 5.0,
        "fallback_probe_interval_s": 10.0,
        "fallback_probe_window_s": 3.0,
    }


RULE_SETTINGS = settings(max_examples=60, stateful_step_count=40, deadline=None)
MeshRules.TestCase.settings = RULE_SETTINGS
ZeroDelayRules.TestCase.settings = RULE_SETTINGS
FallbackRules.TestCase.settings = RULE_SETTINGS
test_mesh_rules = MeshRules.TestCase
test_mesh_rules_zero_delays = ZeroDelayRules.TestCase
test_mesh_rules_fallback = FallbackRules.TestCase
