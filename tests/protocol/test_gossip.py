"""Tests of the gossip layer: dedup, TTL, flooding, routing, binary pairing, bounds, bad input.

Pure: literal frames at literal times, no event loop. `Net` carries the drained sends of
several `Gossip` machines over a fixed graph, FIFO per channel, with a cap on rounds (a
livelock fails instead of hanging). The last sections cover the mesh's use of the layer
(API, control frames that name another peer) and the bucket topology routing relies on.
"""

from __future__ import annotations

import json
import random
from collections import deque
from collections.abc import Sequence
from typing import Final

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from peerpigeon.protocol.errors import ConfigError, UsageError
from peerpigeon.protocol.frames import (
    BinaryGossipHeader,
    Hello,
    decode_data_frame,
    encode_binary_gossip_header,
    encode_hello,
)
from peerpigeon.protocol.gossip import (
    BinaryMessageReceived,
    Gossip,
    GossipConfig,
    GossipEvent,
    GossipRejected,
    GossipSend,
    MessageReceived,
    RouteCandidate,
    StreamChunkPaired,
    is_control_content,
    next_hop,
)
from peerpigeon.protocol.ids import PeerId
from peerpigeon.protocol.mesh import (
    CloseLink,
    FrameRejected,
    Mesh,
    MeshAction,
    MeshConfig,
    MeshEvent,
    PeerEvicted,
    SendData,
)
from peerpigeon.protocol.rand import SeededEntropy
from peerpigeon.protocol.topology import (
    Accept,
    Evict,
    LinkPhase,
    LinkSlot,
    PeerTable,
    Reject,
    TopologyConfig,
    choose_victim,
    decide_offer,
    level_order,
    plan_dials,
    xor_level,
)
from peerpigeon.protocol.wire import JsonObject, JsonValue

WALL: Final = 1_735_689_600.0
NOW_MS: Final = int(WALL * 1000)


def pid(prefix: str) -> PeerId:
    """A peer ID from a short hex prefix, padded with zeros."""
    return PeerId(prefix.ljust(40, "0"))


ME: Final = pid("8")
A: Final = pid("1")
B: Final = pid("2")
C: Final = pid("c")
D: Final = pid("d")
E: Final = pid("e")


def make(me: PeerId = ME, **overrides: object) -> Gossip:
    config = GossipConfig(**overrides)  # type: ignore[arg-type]  # typed per test
    return Gossip(me, config, entropy=SeededEntropy(me), wall_offset_s=WALL)


def envelope(
    sender: PeerId,
    *,
    msg_id: str = "1" * 32,
    subtype: str = "chat",
    content: JsonValue = "hello mesh",
    origin: PeerId | None = None,
    path: Sequence[str] | None = None,
    **extra: JsonValue,
) -> JsonObject:
    """A gossip envelope as `sender` relays it (or originates it when `origin` is None)."""
    origin = origin or sender
    hops: list[JsonValue] = list(path) if path is not None else [origin]
    if path is None and origin != sender:
        hops.append(sender)
    frame: JsonObject = {
        "id": msg_id,
        "type": "gossip",
        "subtype": subtype,
        "content": content,
        "from": origin,
        "networkName": "global",
        "timestamp": NOW_MS,
        "ttl": 10,
        "path": hops,
    }
    frame.update(extra)
    return frame


def text(obj: JsonObject) -> str:
    return json.dumps(obj, separators=(",", ":"))


class Solo:
    """One machine with neighbours that are JS peers unless told otherwise."""

    def __init__(self, *neighbours: PeerId, me: PeerId = ME, **overrides: object) -> None:
        self.g = make(me, **overrides)
        self.now = 0.0
        for peer in neighbours:
            self.g.peer_connected(peer, 262_144, self.now)
        self.sent: list[GossipSend] = list(self.g.drain_actions())
        self.events: list[GossipEvent] = []

    def hello(
        self, peer: PeerId, *, max_ttl: int = 10, neighbours: tuple[PeerId, ...] = ()
    ) -> None:
        hello = Hello(
            from_peer=peer,
            max_ttl=max_ttl,
            features=("binary-broadcast", "neighbours"),
            neighbours=neighbours,
        )
        self.g.receive_text(peer, encode_hello(hello), self.now)
        self.drain()

    def recv(
        self, peer: PeerId, frame: JsonObject | str | bytes
    ) -> tuple[list[GossipSend], list[GossipEvent]]:
        data = text(frame) if isinstance(frame, dict) else frame
        self.g.receive_text(peer, data, self.now)
        return self.drain()

    def binary(self, peer: PeerId, data: bytes) -> tuple[list[GossipSend], list[GossipEvent]]:
        self.g.receive_binary(peer, data, self.now)
        return self.drain()

    def drain(self) -> tuple[list[GossipSend], list[GossipEvent]]:
        actions, events = self.g.drain_actions(), self.g.drain_events()
        self.sent += actions
        self.events += events
        return actions, events


def sent_to(actions: list[GossipSend]) -> dict[PeerId, list[JsonObject]]:
    out: dict[PeerId, list[JsonObject]] = {}
    for action in actions:
        if isinstance(action.data, str):
            out.setdefault(action.peer, []).append(json.loads(action.data))
    return out


def messages(events: list[GossipEvent]) -> list[MessageReceived]:
    return [e for e in events if isinstance(e, MessageReceived)]


def rejected(events: list[GossipEvent]) -> list[tuple[str, str]]:
    return [(e.field, e.reason) for e in events if isinstance(e, GossipRejected)]


class Net:
    """Several machines on a fixed graph; frames travel instantly, FIFO per channel."""

    def __init__(self, graph: dict[PeerId, list[PeerId]], **overrides: object) -> None:
        self.nodes = {p: make(p, **overrides) for p in graph}
        self.queues: dict[tuple[PeerId, PeerId], deque[str | bytes]] = {}
        self.events: dict[PeerId, list[GossipEvent]] = {p: [] for p in graph}
        self.now = 0.0
        for a, nbs in graph.items():
            for b in nbs:
                if (a, b) not in self.queues:
                    self.queues[(a, b)] = deque()
                    self.queues[(b, a)] = deque()
                    self.nodes[a].peer_connected(b, 262_144, self.now)
                    self.nodes[b].peer_connected(a, 262_144, self.now)
        self.run()

    def run(self, max_rounds: int = 1000) -> None:
        for _ in range(max_rounds):
            for p, g in self.nodes.items():
                for action in g.drain_actions():
                    self.queues[(p, action.peer)].append(action.data)
                self.events[p] += g.drain_events()
            busy = False
            for (a, b), queue in self.queues.items():
                if queue:
                    busy = True
                    data = queue.popleft()
                    if isinstance(data, str):
                        self.nodes[b].receive_text(a, data, self.now)
                    else:
                        self.nodes[b].receive_binary(a, data, self.now)
            if not busy:
                return
        raise AssertionError("livelock: the machines never went quiet")

    def advance(self, dt: float) -> None:
        self.now += dt
        for g in self.nodes.values():
            deadline = g.next_deadline()
            if deadline is not None and deadline <= self.now:
                g.handle_timer(self.now)
        self.run()

    def delivered(self, msg_id: str) -> dict[PeerId, int]:
        out: dict[PeerId, int] = {}
        for p, events in self.events.items():
            for e in events:
                if (
                    isinstance(e, MessageReceived | BinaryMessageReceived)
                    and e.message_id == msg_id
                ):
                    out[p] = out.get(p, 0) + 1
        return out


def line(n: int) -> dict[PeerId, list[PeerId]]:
    """n peers in a path: p1 - p2 - ... - pn (IDs increasing)."""
    ids = [pid(f"{i + 1:02x}") for i in range(n)]
    return {
        p: [q for q in (ids[i - 1] if i else None, ids[i + 1] if i + 1 < n else None) if q]
        for i, p in enumerate(ids)
    }


# --- config ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_ttl": 0}, "max_ttl"),
        ({"max_ttl": 2000}, "max_ttl"),
        ({"max_ttl": 64, "max_path_length": 64}, "max_path_length"),
        ({"max_seen": 0}, "max_seen"),
        ({"seen_ttl_s": 0}, "seen_ttl_s"),
        ({"max_message_age_s": -1.0}, "max_message_age_s"),
        ({"max_message_bytes": 10}, "max_message_bytes"),
        ({"max_pending_binary": 0}, "max_pending_binary"),
        ({"max_neighbour_list": 51}, "max_neighbour_list"),
        ({"advert_delay_s": float("nan")}, "advert_delay_s"),
    ],
)
def test_config_errors(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        GossipConfig(**kwargs)  # type: ignore[arg-type]  # deliberately wrong values
    assert info.value.field == field


# --- originating -------------------------------------------------------------------------------


def test_broadcast_envelope_is_the_references() -> None:
    s = Solo(A, C)
    msg_id = s.g.broadcast("hello mesh", s.now)
    actions, _ = s.drain()
    frames = sent_to(actions)
    assert set(frames) == {A, C}
    sent = frames[A][0]
    assert sent == {
        "id": msg_id,
        "type": "gossip",
        "subtype": "chat",
        "content": "hello mesh",
        "from": ME,
        "networkName": "global",
        "timestamp": NOW_MS,
        "ttl": 10,
        "path": [ME],
    }
    assert len(msg_id) == 32
    assert int(msg_id, 16) >= 0
    assert s.g.stats().originated == 1


@pytest.mark.parametrize("content", ["", "   ", 5, None, {"text": "x"}])
def test_chat_must_be_a_non_empty_string(content: JsonValue) -> None:
    s = Solo(A)
    with pytest.raises(UsageError) as info:
        s.g.broadcast(content, s.now)
    assert info.value.field == "content"


def test_first_frame_on_a_channel_is_our_hello() -> None:
    s = Solo()
    s.g.peer_connected(A, 65_536, 0.0)
    (action,) = s.g.drain_actions()
    hello = json.loads(action.data)
    assert hello["type"] == "__PP_HELLO__"
    assert (hello["from"], hello["maxTtl"], hello["neighbours"]) == (ME, 10, [A])
    assert "id" not in hello
    assert "subtype" not in hello


# --- receiving and flooding --------------------------------------------------------------------


def test_chat_is_delivered_once_and_flooded_except_to_sender_and_path() -> None:
    s = Solo(A, B, C)
    frame = envelope(A, origin=B, path=[B, A], extra_field={"kept": True})
    actions, events = s.recv(A, frame)
    (msg,) = messages(events)
    assert (msg.from_peer, msg.via, msg.hops, msg.direct, msg.content) == (
        B,
        A,
        1,
        False,
        "hello mesh",
    )
    frames = sent_to(actions)
    assert set(frames) == {C}  # not back to A, not to B (on the path)
    relayed = frames[C][0]
    assert relayed["ttl"] == 9
    assert relayed["path"] == [B, A, ME]
    assert relayed["extra_field"] == {"kept": True}  # unknown fields survive relaying
    # The same id again, from anyone: nothing.
    assert s.recv(C, envelope(C, origin=B, path=[B, C])) == ([], [])
    assert s.g.stats().duplicates == 1
    assert s.g.stats().delivered == 1


def test_ttl_one_is_delivered_but_not_relayed() -> None:
    s = Solo(A, C)
    actions, events = s.recv(A, envelope(A, ttl=1))
    assert len(messages(events)) == 1
    assert actions == []
    assert s.g.stats().ttl_exhausted == 1  # counted: C was waiting


def test_ttl_toward_js_peers_never_exceeds_ten() -> None:
    s = Solo(A, B, C, max_ttl=32, max_path_length=40)
    s.hello(B, max_ttl=32)  # B is a Python peer, A and C are JS peers
    s.hello(C, max_ttl=20)
    s.g.broadcast("far and wide", s.now)
    frames = sent_to(s.drain()[0])
    assert [f["ttl"] for f in frames[A]] == [10]
    assert [f["ttl"] for f in frames[B] if f["type"] == "gossip"] == [32]
    assert [f["ttl"] for f in frames[C] if f["type"] == "gossip"] == [20]


def test_hops_come_from_the_path() -> None:
    s = Solo(A, max_ttl=32, max_path_length=40)
    path = [pid(f"{i:02x}f") for i in range(20, 25)] + [A]
    (msg,) = messages(s.recv(A, envelope(A, origin=PeerId(path[0]), path=path, ttl=27))[1])
    assert msg.hops == 5


def test_invalid_chat_is_dropped_and_not_relayed_like_js() -> None:
    s = Solo(A, C)
    contents: list[JsonValue] = [{"text": "obj"}, "  ", 7]
    for i, content in enumerate(contents):
        actions, events = s.recv(A, envelope(A, msg_id=f"{i:032x}", content=content))
        assert (actions, events) == ([], [])
    assert s.g.stats().filtered == 3


def test_a_huge_integer_ttl_is_rejected_not_raised() -> None:
    """An integer too big for a float once escaped `receive_text` as OverflowError."""
    s = Solo(A, C)
    frame = envelope(A, msg_id="f" * 32)
    frame["ttl"] = 10**400
    actions, events = s.recv(A, frame)
    assert actions == []
    assert messages(events) == []
    assert [field for field, _ in rejected(events)] == ["ttl"]


def test_chat_string_that_looks_like_a_control_message_is_relayed_not_shown() -> None:
    s = Solo(A, C)
    actions, events = s.recv(A, envelope(A, content='{"type":"signaling-relay"}'))
    assert messages(events) == []
    assert set(sent_to(actions)) == {C}


@pytest.mark.parametrize("subtype", ["key_exchange", "key_exchange_response", "encrypted", "zzz"])
def test_other_subtypes_are_relayed_never_delivered(subtype: str) -> None:
    s = Solo(A, C)
    content: JsonValue = {"type": subtype, "publicKey": {"pub": "x.y", "epub": "z.w"}}
    actions, events = s.recv(A, envelope(A, subtype=subtype, content=content, to=ME))
    assert messages(events) == []
    (relayed,) = sent_to(actions)[C]
    assert relayed["subtype"] == subtype
    assert relayed["to"] == ME
    assert s.g.stats().ignored == 1


def test_other_namespace_loops_and_own_messages_are_dropped() -> None:
    s = Solo(A, C)
    assert s.recv(A, envelope(A, networkName="other")) == ([], [])
    assert s.recv(A, envelope(A, msg_id="2" * 32, origin=C, path=[C, ME, A])) == ([], [])
    assert s.recv(A, envelope(A, msg_id="3" * 32, origin=ME, path=[ME, A])) == ([], [])
    stats = s.g.stats()
    assert (stats.other_network, stats.loops) == (1, 2)  # our own message: its path has us
    s.g.set_network("other")
    assert len(messages(s.recv(A, envelope(A, msg_id="4" * 32, networkName="other"))[1])) == 1


def test_messages_older_than_the_age_bound_are_dropped_when_asked() -> None:
    s = Solo(A, max_message_age_s=60.0)
    assert s.recv(A, envelope(A, timestamp=NOW_MS - 61_000)) == ([], [])
    assert s.g.stats().stale == 1
    assert len(messages(s.recv(A, envelope(A, msg_id="2" * 32, timestamp=NOW_MS - 59_000))[1])) == 1


# --- dedup: exactly once, bounded in size and age ----------------------------------------------


def test_flood_delivers_exactly_once_everywhere() -> None:
    ids = [pid(f"{i:02x}") for i in range(1, 9)]
    graph = {p: [q for q in ids if q != p] for p in ids}  # a clique: many copies of each
    net = Net(graph)
    msg_id = net.nodes[ids[0]].broadcast("to all", net.now)
    net.run()
    assert net.delivered(msg_id) == {p: 1 for p in ids[1:]}
    assert sum(net.nodes[p].stats().duplicates for p in ids) > 0


def test_seen_cache_is_bounded_in_size() -> None:
    s = Solo(A, max_seen=3)
    for i in range(4):
        s.recv(A, envelope(A, msg_id=f"{i:032x}"))
    assert s.g.seen_count() == 3
    assert s.g.stats().seen_evicted == 1
    # The oldest id was forgotten at the bound: a replay of it is delivered again.
    assert len(messages(s.recv(A, envelope(A, msg_id=f"{0:032x}"))[1])) == 1


def test_seen_cache_is_bounded_in_age_and_timers_are_harmless() -> None:
    s = Solo(A, seen_ttl_s=10.0)
    s.recv(A, envelope(A))
    assert s.g.next_deadline() == 10.0
    s.g.handle_timer(5.0)  # early: nothing
    assert s.g.seen_count() == 1
    assert s.recv(A, envelope(A)) == ([], [])  # still a duplicate
    s.g.handle_timer(10.0)
    s.g.handle_timer(10.0)  # twice: harmless
    assert s.g.seen_count() == 0
    assert s.g.next_deadline() is None
    assert len(messages(s.recv(A, envelope(A))[1])) == 1  # forgotten: delivered again


# --- direct messages ---------------------------------------------------------------------------


def test_dm_for_us_is_delivered_and_not_relayed() -> None:
    s = Solo(A, C)
    actions, events = s.recv(
        A, envelope(A, origin=B, path=[B, A], subtype="dm", to=ME.upper(), content={"n": 1})
    )
    (msg,) = messages(events)
    assert (msg.direct, msg.content, msg.from_peer, msg.hops) == (True, {"n": 1}, B, 1)
    assert actions == []


@pytest.mark.parametrize(
    "content",
    [
        {"type": "signaling-relay"},
        '{"type":"bootstrap-keepalive"}',
        {"type": "peer-announce-relay"},
    ],
)
def test_dm_control_contents_are_dropped(content: JsonValue) -> None:
    assert is_control_content(content)
    s = Solo(A, C)
    assert s.recv(A, envelope(A, subtype="dm", to=ME, content=content)) == ([], [])
    assert s.g.stats().filtered == 1


def test_dm_is_routed_to_the_xor_closest_neighbour_only() -> None:
    target = pid("f1")
    s = Solo(A, B, C, E)  # E = e000... is closest to f100...
    actions, _ = s.recv(A, envelope(A, subtype="dm", to=target, content="x"))
    frames = sent_to(actions)
    assert list(frames) == [E]
    assert frames[E][0]["path"] == [A, ME]
    assert frames[E][0]["ttl"] == 9
    assert s.g.stats().dm_routed == 1


def test_dm_to_a_neighbour_goes_straight_to_it() -> None:
    s = Solo(A, C, E)
    s.g.send_direct(C, "hi", s.now)
    assert list(sent_to(s.drain()[0])) == [C]


def test_dm_sees_one_step_further_through_python_neighbours() -> None:
    target = pid("3")
    s = Solo(A, E)
    s.hello(E, neighbours=(ME, target))  # E is far from the target, but knows it
    s.g.send_direct(target, "via e", s.now)
    assert list(sent_to(s.drain()[0])) == [E]


def test_local_minimum_falls_back_to_the_closest_neighbour_off_the_path() -> None:
    target = pid("81")  # ME = 80... is closer than any neighbour
    s = Solo(A, C, E)
    actions, _ = s.recv(A, envelope(A, subtype="dm", to=target, content="x"))
    assert list(sent_to(actions)) == [C]  # c0.. is the closest not on the path
    assert s.g.stats().dm_local_minima == 1


def test_dm_never_goes_to_a_peer_on_the_path_and_dead_ends_are_counted() -> None:
    target = pid("e1")
    s = Solo(A, E)
    actions, _ = s.recv(A, envelope(A, origin=E, path=[E, A], subtype="dm", to=target, content="x"))
    assert actions == []  # E is closest, but on the path; A sent it
    assert s.g.stats().dm_dead_ends == 1


def test_dm_walks_a_line_to_its_target() -> None:
    graph = line(12)
    ids = list(graph)
    net = Net(graph, max_ttl=16, max_path_length=20)
    msg_id = net.nodes[ids[-1]].send_direct(ids[0], "end to end", net.now)
    net.run()
    assert net.delivered(msg_id) == {ids[0]: 1}
    (msg,) = messages(net.events[ids[0]])
    assert msg.hops == 10


def test_send_direct_errors() -> None:
    s = Solo()
    with pytest.raises(UsageError, match="no neighbour"):
        s.g.send_direct(A, "x", 0.0)
    s.g.peer_connected(A, 262_144, 0.0)
    for bad in ("xyz", ME, ME.upper()):
        with pytest.raises(UsageError):
            s.g.send_direct(PeerId(bad), "x", 0.0)
    with pytest.raises(UsageError):
        s.g.send_direct(B, float("nan"), 0.0)
    with pytest.raises(UsageError, match="limit"):
        s.g.send_direct(B, "x" * 70_000, 0.0)
    assert s.g.stats().originated == 0


def test_next_hop_rules() -> None:
    me, target = 0b1000, 0b0001
    near = RouteCandidate(pid("3"), 0b0011, None)
    far = RouteCandidate(pid("c"), 0b1100, (0b0001,))
    hop = next_hop(me, target, [near, far], set())
    assert hop is not None
    assert hop.peer == far.peer
    assert hop.progress
    dead = RouteCandidate(pid("2"), 0b0010, (me,))  # leads back to us only
    hop = next_hop(me, target, [dead, RouteCandidate(pid("4"), 0b0100, None)], set())
    assert hop is not None
    assert hop.peer == pid("4")
    assert next_hop(me, target, [], set()) is None
    hop = next_hop(0b0000, 0b0001, [RouteCandidate(pid("4"), 0b0100, None)], set())
    assert hop is not None
    assert not hop.progress


# --- binary ------------------------------------------------------------------------------------


def test_binary_to_a_neighbour_is_the_references_pair() -> None:
    s = Solo(A)
    s.g.send_binary(A, b"\x01\x02\x03\x04\x05", s.now)
    actions, _ = s.drain()
    assert [a.data for a in actions] == ['{"type":"__BINARY__","size":5}', b"\x01\x02\x03\x04\x05"]


def test_binary_pairs_in_fifo_order_across_text_frames() -> None:
    s = Solo(A)
    s.recv(A, '{"type":"__BINARY__","size":1}')
    s.recv(A, '{"type":"__BINARY__","size":2}')
    s.recv(A, envelope(A))  # other frames may sit between a header and its payload
    s.recv(A, '{"type":"__STREAM_CHUNK__","encoding":"binary","streamId":"s"}')
    s.recv(A, '{"type":"__BINARY__","size":0}')
    got = []
    paired = []
    for data in (b"a", b"bb", b"chunk-bytes", b""):
        events = s.binary(A, data)[1]
        got += [e for e in events if isinstance(e, BinaryMessageReceived)]
        paired += [e for e in events if isinstance(e, StreamChunkPaired)]
    assert [(e.data, e.size, e.from_peer, e.broadcast) for e in got] == [
        (b"a", 1, A, False),
        (b"bb", 2, A, False),
        (b"", 0, A, False),
    ]
    assert got[0].timestamp == NOW_MS
    assert s.g.stats().binary_discarded == 0
    assert [(e.peer, e.header["streamId"], e.data) for e in paired] == [(A, "s", b"chunk-bytes")]


def test_binary_without_header_or_with_a_lying_size_is_rejected() -> None:
    s = Solo(A)
    assert rejected(s.binary(A, b"stray")[1]) == [("binary", "payload without a header")]
    s.recv(A, '{"type":"__BINARY__","size":3}')
    assert rejected(s.binary(A, b"four")[1]) == [("size", "header said 3 bytes, payload has 4")]
    s.recv(A, '{"type":"__BINARY__","size":4}')
    assert [e.data for e in s.binary(A, b"next")[1] if isinstance(e, BinaryMessageReceived)] == [
        b"next"
    ]


@pytest.mark.parametrize(
    "header",
    [
        '{"type":"__BINARY__","size":"3"}',
        '{"type":"__BINARY__"}',
        '{"type":"__BINARY__","size":-1}',
    ],
)
def test_a_bad_binary_header_still_pairs_with_its_payload(header: str) -> None:
    s = Solo(A)
    _, events = s.recv(A, header)
    assert rejected(events)[0][0] == "size"
    assert s.binary(A, b"abc") == ([], [])  # dropped, and the pairing is intact:
    s.recv(A, '{"type":"__BINARY__","size":2}')
    assert [e.data for e in s.binary(A, b"ok")[1] if isinstance(e, BinaryMessageReceived)] == [
        b"ok"
    ]


def test_binary_size_bounds() -> None:
    s = Solo(A, max_binary_bytes=10)
    _, events = s.recv(A, '{"type":"__BINARY__","size":11}')
    assert rejected(events) == [("size", "11 bytes exceeds the limit of 10")]
    assert s.binary(A, b"x" * 11) == ([], [])
    with pytest.raises(UsageError, match="limit of 10"):
        s.g.send_binary(A, b"x" * 11, s.now)
    with pytest.raises(UsageError, match="neighbour"):
        s.g.send_binary(B, b"x", s.now)
    small = Solo(A)
    small.g.peer_connected(B, 4, 0.0)  # a channel that negotiated 4 bytes
    with pytest.raises(UsageError, match="limit of 4"):
        small.g.send_binary(B, b"12345", 0.0)


def test_pending_binary_headers_are_bounded() -> None:
    s = Solo(A, max_pending_binary=3)
    for _ in range(3):
        s.recv(A, '{"type":"__BINARY__","size":1}')
    assert s.g.pending_binary(A) == 3
    _, events = s.recv(A, '{"type":"__BINARY__","size":1}')
    assert rejected(events) == [("binary", "more than 3 headers without a payload")]
    assert s.g.pending_binary(A) == 0  # the pairing is broken: start over


def test_binary_broadcast_reaches_python_peers_once_and_skips_js() -> None:
    graph = {A: [B, C], B: [A, C, D], C: [A, B, D], D: [B, C]}
    net = Net(graph)
    msg_id = net.nodes[A].broadcast_binary(b"\x00\xffpayload", net.now)
    net.run()
    assert net.delivered(msg_id) == {B: 1, C: 1, D: 1}
    got = [e for e in net.events[D] if isinstance(e, BinaryMessageReceived)]
    assert (got[0].from_peer, got[0].broadcast, got[0].data, got[0].hops) == (
        A,
        True,
        b"\x00\xffpayload",
        1,
    )
    js = Solo(A)  # a neighbour that never said hello is a JS peer
    with pytest.raises(UsageError, match="JS peers do not"):
        js.g.broadcast_binary(b"x", 0.0)
    s = Solo(A, B, max_broadcast_binary_bytes=4)
    s.hello(B)
    with pytest.raises(UsageError, match="limit of 4"):
        s.g.broadcast_binary(b"12345", 0.0)
    s.g.broadcast_binary(b"1234", 0.0)
    assert list(sent_to(s.drain()[0])) == [B]


def test_binary_broadcast_header_is_checked_like_gossip() -> None:
    s = Solo(A, C)
    s.hello(C)
    header = BinaryGossipHeader(
        id="9" * 32, from_peer=B, size=3, network_name="global", ttl=10, path=(B,)
    )
    _, events = s.recv(A, encode_binary_gossip_header(header))  # path does not end with A
    assert rejected(events) == [("path", "does not end with the sending neighbour")]
    assert s.binary(A, b"abc") == ([], [])  # its payload is paired and dropped
    good = BinaryGossipHeader(
        id="9" * 32, from_peer=B, size=3, network_name="global", ttl=10, path=(B, A)
    )
    s.recv(A, encode_binary_gossip_header(good))
    actions, events = s.binary(A, b"abc")
    assert [e.data for e in events if isinstance(e, BinaryMessageReceived)] == [b"abc"]
    relay = [a.data for a in actions if a.peer == C]
    assert json.loads(relay[0])["path"] == [B, A, ME]
    assert relay[1] == b"abc"


# --- bad input: dropped, counted, never raised ---------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"path": [B, C]}, "path", "does not end with the sending neighbour"),
        ({"path": [C, A]}, "path", "does not start with the origin"),
        ({"path": [B, A, B, A]}, "path", "repeats a peer"),
        ({"path": ["nope", A]}, "path", "entries must be peer IDs"),
        ({"path": []}, "path", "is required"),
        ({"ttl": 11}, "ttl", "must be an integer 1..10"),
        ({"ttl": -3}, "ttl", "must be an integer 1..10"),
        ({"ttl": 0}, "ttl", "must be an integer 1..10"),
        ({"ttl": 2.5}, "ttl", "must be an integer 1..10"),
        ({"ttl": None}, "ttl", "is required"),
    ],
)
def test_forged_or_broken_envelopes_are_rejected(
    change: JsonObject, field: str, reason: str
) -> None:
    s = Solo(A, C)
    frame: JsonObject = envelope(A, origin=B, path=[B, A])
    frame.update(change)
    if change.get("ttl", 0) is None:
        del frame["ttl"]
    actions, events = s.recv(A, frame)
    assert actions == []
    assert messages(events) == []
    assert rejected(events) == [(field, reason)]
    assert s.g.stats().rejected == 1


def test_a_huge_path_is_rejected_by_the_bound() -> None:
    s = Solo(A)
    path = [pid(f"{i:04x}") for i in range(1, 100)] + [A]
    _, events = s.recv(A, envelope(A, origin=PeerId(path[0]), path=path))
    assert rejected(events) == [("path", "longer than 64 entries")]


def test_non_utf8_and_garbage_are_rejected() -> None:
    s = Solo(A)
    assert rejected(s.recv(A, b"\xff\xfe{")[1]) == [("frame", "not valid UTF-8")]
    assert rejected(s.recv(A, "not json")[1]) == [("frame", "not valid JSON")]
    assert rejected(s.recv(A, "x" * 300_000)[1])[0][0] == "frame"


def test_a_hello_from_someone_else_is_rejected() -> None:
    s = Solo(A)
    _, events = s.recv(A, encode_hello(Hello(from_peer=B, neighbours=(ME,))))
    assert rejected(events) == [("from", "is not the sending neighbour")]
    assert s.g.python_neighbours() == ()
    too_many: JsonObject = {
        "type": "__PP_HELLO__",
        "v": 1,
        "from": A,
        "maxTtl": 10,
        "neighbours": [pid(f"{i:03x}") for i in range(51)],
    }
    assert rejected(s.recv(A, too_many)[1])[0][0] == "neighbours"


def test_frames_from_strangers_are_ignored() -> None:
    s = Solo(A)
    s.g.receive_text(B, text(envelope(B)), 0.0)
    s.g.receive_binary(B, b"x", 0.0)
    assert s.drain() == ([], [])


@settings(max_examples=200)
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_arbitrary_frames_never_raise(data: str | bytes) -> None:
    s = Solo(A, C)
    s.recv(A, data)
    s.binary(A, data.encode() if isinstance(data, str) else data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=200)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "id",
                "type",
                "subtype",
                "content",
                "from",
                "to",
                "ttl",
                "path",
                "networkName",
                "size",
                "v",
                "maxTtl",
                "neighbours",
            ]
        ),
        json_values,
        max_size=10,
    )
)
def test_arbitrary_envelopes_never_raise(fields: JsonObject) -> None:
    s = Solo(A, C)
    base = envelope(A)
    base.update(fields)
    s.recv(A, base)
    s.binary(A, b"payload")


# --- a stateful test: random frames, binary, time -----------------------------------------------

PEERS: Final = (A, B, C)


class GossipRules(RuleBasedStateMachine):
    """Frames from three neighbours, garbage, binary and time; exactly once, bounded."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.g = make(ME, max_seen=8, seen_ttl_s=5.0, max_pending_binary=4)
        for p in PEERS:
            self.g.peer_connected(p, 1_000, self.now)
        self.last: dict[str, float] = {}  # id -> time of its latest delivery

    def drain(self) -> None:
        self.g.drain_actions()
        for event in self.g.drain_events():
            msg_id = (
                event.message_id
                if isinstance(event, MessageReceived | BinaryMessageReceived)
                else None
            )
            if msg_id is not None:
                # Delivered again only once the id may have left the cache (age or size).
                assert (
                    msg_id not in self.last
                    or self.g.stats().seen_evicted > 0
                    or self.now >= self.last[msg_id] + 5.0
                )
                self.last[msg_id] = self.now

    @rule(
        peer=st.sampled_from(PEERS),
        msg_id=st.sampled_from(["a" * 32, "b" * 32, "c" * 32]),
        ttl=st.integers(min_value=-2, max_value=12),
        subtype=st.sampled_from(["chat", "dm", "key_exchange"]),
        relayed=st.booleans(),
    )
    def gossip_arrives(
        self, peer: PeerId, msg_id: str, ttl: int, subtype: str, relayed: bool
    ) -> None:
        origin = D if relayed else peer
        frame = envelope(peer, msg_id=msg_id, origin=origin, ttl=ttl, subtype=subtype, to=ME)
        self.g.receive_text(peer, text(frame), self.now)
        self.drain()

    @rule(
        peer=st.sampled_from(PEERS), size=st.integers(min_value=-1, max_value=5), bad=st.booleans()
    )
    def binary_header(self, peer: PeerId, size: int, bad: bool) -> None:
        value: JsonValue = str(size) if bad else size
        self.g.receive_text(peer, text({"type": "__BINARY__", "size": value}), self.now)
        self.drain()

    @rule(peer=st.sampled_from(PEERS), data=st.binary(max_size=6))
    def binary_payload(self, peer: PeerId, data: bytes) -> None:
        self.g.receive_binary(peer, data, self.now)
        self.drain()

    @rule(peer=st.sampled_from(PEERS), data=st.text(max_size=30))
    def garbage(self, peer: PeerId, data: str) -> None:
        self.g.receive_text(peer, data, self.now)
        self.drain()

    @rule(peer=st.sampled_from(PEERS))
    def channel_flaps(self, peer: PeerId) -> None:
        self.g.peer_lost(peer, self.now)
        self.g.peer_connected(peer, 1_000, self.now)
        self.drain()

    @rule(dt=st.floats(min_value=0.0, max_value=4.0))
    def time_passes(self, dt: float) -> None:
        self.now += dt
        self.g.handle_timer(self.now)
        deadline = self.g.next_deadline()
        assert deadline is None or deadline > self.now  # nothing due is left behind
        self.drain()

    @invariant()
    def bounded(self) -> None:
        assert self.g.seen_count() <= 8
        assert all(self.g.pending_binary(p) <= 4 for p in PEERS)


GossipRules.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
test_gossip_rules = GossipRules.TestCase


# --- the bucket topology routing relies on ------------------------------------------------------


def test_level_order_is_a_stable_permutation() -> None:
    order = level_order(ME)
    assert sorted(order) == list(range(160))
    assert level_order(ME) == order
    assert level_order(A) != order


def test_level_candidates_are_the_smaller_ids_of_one_level_closest_first() -> None:
    me = pid("8")
    t = PeerTable(me, max_known=100)
    peers = [pid("0f"), pid("01"), pid("7f"), pid("40"), pid("9"), pid("c")]
    for p in peers:
        t.add(p, 0.0, 1, protect=())
    me_int = int(me, 16)
    # XOR from 80...: 01 -> 81, 0f -> 8f, 40 -> c0, 7f -> ff.
    assert list(t.level_candidates(159, (), 0.0)) == [pid("01"), pid("0f"), pid("40"), pid("7f")]
    assert all(xor_level(me_int, int(p, 16)) == 159 for p in t.level_candidates(159, (), 0.0))
    assert list(t.level_candidates(158, (), 0.0)) == []  # our bit 158 is 0: they dial us
    t.dial_failed(pid("01"), 10.0)
    assert next(t.level_candidates(159, {pid("0f")}, 0.0)) == pid("40")


def test_bucket_plan_covers_new_levels_first() -> None:
    me = pid("f")
    cfg = TopologyConfig(max_peers=8, min_peers=2, xor_buckets=True)
    t = PeerTable(me, max_known=100)
    ids = [pid(x) for x in ("e", "e8", "d", "c", "b", "a", "7", "3", "1")]
    for p in ids:
        t.add(p, 0.0, 1, protect=())
    plan = plan_dials(me, t, {}, cfg, 0.0)
    levels = [xor_level(int(me, 16), int(p, 16)) for p in plan.dials]
    assert plan.dials[0] == pid("e8")  # the ring predecessor first
    assert len(set(levels)) == len(levels)  # then one per level


def test_bucket_offers_and_victims() -> None:
    cfg = TopologyConfig(max_peers=3, min_peers=1, keep_ring=False, xor_buckets=True)
    me = pid("8")
    slots = {p: LinkSlot(p, LinkPhase.OPEN, 0.0) for p in (pid("9"), pid("a"), pid("c"))}
    # Levels from 8...: 9 -> 156, a -> 157, c -> 158; all distinct: no offer is worth a link.
    assert decide_offer(me, pid("f"), slots, (), cfg) == Reject("max_peers_reached")
    crowded = {p: LinkSlot(p, LinkPhase.OPEN, 0.0) for p in (pid("c"), pid("d"), pid("9"))}
    # c and d share level 158: an offer for an uncovered level (a: 157) evicts the farther.
    assert decide_offer(me, pid("a"), crowded, (), cfg) == Evict(pid("d"))
    assert decide_offer(me, pid("e"), crowded, (), cfg) == Reject("max_peers_reached")
    assert choose_victim(me, crowded, (), xor_routing=True, buckets=True) == pid("d")
    assert decide_offer(me, pid("9"), {}, (), cfg) == Accept()


def test_bucket_overlay_routes_in_few_hops() -> None:
    rng = random.Random(4)
    ids = [PeerId(f"{rng.getrandbits(160):040x}") for _ in range(200)]
    from peerpigeon.sim.overlay import build_overlay

    graph = build_overlay(ids, TopologyConfig(max_peers=8, xor_buckets=True), seed=1).graph
    net = Net({p: list(n) for p, n in graph.items()}, max_ttl=20, max_path_length=32)
    hops = []
    for _ in range(40):
        a, b = rng.sample(ids, 2)
        msg_id = net.nodes[a].send_direct(b, "x", net.now)
        net.run()
        assert net.delivered(msg_id) == {b: 1}
        hops += [m.hops for m in messages(net.events[b]) if m.message_id == msg_id]
    assert sum(hops) / len(hops) + 1 < 5.0  # links crossed; log2(200) is 7.6


# --- the mesh: its API, and control frames that name another peer -----------------------------


class MeshSolo:
    """One `Mesh` with one open link to `peer` (a larger ID, so it dialled us)."""

    def __init__(
        self, peer: PeerId = C, max_message_size: int = 262_144, **overrides: object
    ) -> None:
        fields: dict[str, object] = {"peer_id": ME, "keepalive_interval_s": None}
        fields.update(overrides)
        self.m = Mesh(
            MeshConfig(**fields),  # type: ignore[arg-type]  # typed per test
            rng=random.Random(1),
            entropy=SeededEntropy(ME),
            wall_offset_s=WALL,
        )
        self.peer = peer
        m = self.m
        m.connect(["ws://hub.test"], 0.0)
        m.socket_opened(0.0)
        m.socket_frame(json.dumps({"type": "connected", "data": {"peerId": ME}}), 0.0)
        offer = {"type": "offer", "sdp": "v=0 offer"}
        m.socket_frame(
            json.dumps({"type": "offer", "data": offer, "fromPeerId": peer, "targetPeerId": ME}),
            0.0,
        )
        m.link_answer_created(peer, "v=0 answer", 0.0)
        m.link_open(peer, max_message_size, 0.0)
        self.drain()

    def drain(self) -> tuple[list[MeshAction], list[MeshEvent]]:
        return self.m.drain_actions(), self.m.drain_events()

    def text(self, frame: JsonObject | str) -> tuple[list[MeshAction], list[MeshEvent]]:
        self.m.link_text(self.peer, frame if isinstance(frame, str) else text(frame), 0.0)
        return self.drain()


def test_mesh_send_message_and_its_errors() -> None:
    s = MeshSolo()
    msg_id = s.m.send_message("hello mesh", 0.0)
    actions, _ = s.drain()
    (sent,) = [json.loads(a.data) for a in actions if isinstance(a, SendData)]
    assert (sent["id"], sent["subtype"], sent["content"]) == (msg_id, "chat", "hello mesh")
    for bad in ("", "  ", 3, {"text": "x"}):
        with pytest.raises(UsageError):
            s.m.send_message(bad, 0.0)  # type: ignore[arg-type]  # deliberately wrong
    assert s.m.stats().messages_sent == 1


def test_mesh_delivers_binary_and_refuses_what_the_channel_cannot_carry() -> None:
    s = MeshSolo(max_message_size=1_000)
    s.text('{"type":"__BINARY__","size":3}')
    s.m.link_binary(C, b"xyz", 0.0)
    _, events = s.drain()
    (got,) = [e for e in events if isinstance(e, BinaryMessageReceived)]
    assert (got.from_peer, got.data, got.size, got.via) == (C, b"xyz", 3, C)
    s.m.send_binary_data(C, b"\x00" * 1_000, 0.0)
    actions, _ = s.drain()
    assert [type(a.data) for a in actions if isinstance(a, SendData)] == [str, bytes]
    with pytest.raises(UsageError, match="limit of 1000"):
        s.m.send_binary_data(C, b"\x00" * 1_001, 0.0)
    with pytest.raises(UsageError, match="limit"):
        s.m.send_message("x" * 2_000, 0.0)  # a gossip frame over the channel's maximum


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        ({"type": "eviction", "reason": "x", "from": D}, "from"),
        ({"type": "signaling", "data": {"type": "goodbye"}, "fromPeerId": D}, "fromPeerId"),
        ({"type": "__PP_HELLO__", "v": 1, "from": D, "maxTtl": 10}, "from"),
    ],
)
def test_mesh_rejects_control_frames_speaking_for_another_peer(
    frame: JsonObject, field: str
) -> None:
    s = MeshSolo()
    _, events = s.text(frame)
    assert [(e.field, e.reason) for e in events if isinstance(e, FrameRejected)] == [
        (field, "is not the sending neighbour")
    ]
    assert s.m.connected_peers() == (C,)  # the eviction did not happen
    assert s.m.stats().data_frames_rejected == 1


def test_mesh_accepts_an_honest_eviction_notice() -> None:
    s = MeshSolo()
    _, events = s.text({"type": "eviction", "reason": "x", "from": C})
    assert any(isinstance(e, PeerEvicted) for e in events)
    assert s.m.connected_peers() == ()


def test_mesh_counts_rejected_gossip_as_bad_frames_and_closes_at_the_bound() -> None:
    s = MeshSolo(max_bad_frames=1)
    s.text(envelope(C, ttl=99))
    actions, events = s.text(envelope(C, msg_id="2" * 32, path=[D, C]))
    assert CloseLink(C, "protocol violation") in actions
    assert [e.field for e in events if isinstance(e, FrameRejected)] == ["path"]


def test_hello_carries_min_peers_and_degree() -> None:
    hello = Hello(from_peer=B, neighbours=(ME, A), min_peers=2)
    text = encode_hello(hello)
    assert json.loads(text)["minPeers"] == 2
    assert decode_data_frame(text) == hello
    assert "minPeers" not in json.loads(encode_hello(Hello(from_peer=B)))
    legacy = json.loads(text)
    del legacy["minPeers"]
    assert decode_data_frame(json.dumps(legacy)) == Hello(from_peer=B, neighbours=(ME, A))
