"""Pure tests of hub federation: several `SignalingServer` machines wired by a test helper.

No event loop, sockets or sleeps. `Fed` plays the adapters of io/hub.py: it opens the
connection an `OpenHubLink` asks for on the target machine, carries `SendText` both ways in
per-direction FIFO order (optionally interleaving directions with a seeded RNG), reports
`hub_link_opened` / `hub_link_failed` / `connection_closed`, answers pings, and caps the
number of deliveries so that a relay storm fails instead of hanging. See docs/federation.md.
"""

from __future__ import annotations

import itertools
import json
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peerpigeon.protocol.ids import PeerId
from peerpigeon.protocol.rand import SeededEntropy
from peerpigeon.protocol.server import (
    BootstrapConnected,
    BootstrapDisconnected,
    Close,
    ConnectionId,
    FrameRejected,
    HubRegistered,
    HubUnregistered,
    OpenHubLink,
    RemotePeerGone,
    RemotePeerLearned,
    SendPing,
    SendText,
    ServerConfig,
    ServerEvent,
    SignalingServer,
)
from peerpigeon.protocol.server.federation import (
    BootstrapBackoff,
    RelayCache,
    client_proof,
    server_proof,
    verify,
)

Json = dict[str, Any]

WALL_S: Final = 1_735_689_600.0
HUB_NS: Final = "pigeonhub-mesh"
SECRET: Final = "correct horse battery staple"
CAPS: Final = ["signaling", "relay", "departures"]
JS_CAPS: Final = ["signaling", "relay"]

P1: Final = PeerId("1" * 40)
P2: Final = PeerId("2" * 40)
P3: Final = PeerId("3" * 40)
P4: Final = PeerId("4" * 40)
P5: Final = PeerId("5" * 40)
P6: Final = PeerId("6" * 40)
JS_HUB: Final = PeerId("ab" * 20)
UNKNOWN: Final = PeerId("f" * 40)

Endpoint = tuple[str, ConnectionId]  # (hub name, connection handle on that hub)


def url(name: str) -> str:
    return f"ws://{name}:3000"


def hub_id(name: str) -> PeerId:
    """A fixed, recognisable hub ID per hub name."""
    return PeerId(name.encode().hex().ljust(40, "0")[:40])


def offer(target: str, network: str = "global", sdp: str = "v=0") -> Json:
    return {
        "type": "offer",
        "data": {"type": "offer", "sdp": sdp},
        "targetPeerId": target,
        "networkName": network,
        "maxPeers": 3,
    }


@dataclass
class Client:
    """A plain signaling client connected to one hub (frames it receives are kept)."""

    name: str
    peer_id: PeerId
    hub: str
    conn: ConnectionId
    network: str
    log: list[Json] = field(default_factory=list)  # every frame received
    mark: int = 0  # `inbox` starts here (moved by `Fed.clear`)
    closed: tuple[int, str] | None = None

    @property
    def inbox(self) -> list[Json]:
        """Frames received since the last `Fed.clear`."""
        return self.log[self.mark :]

    def of_type(self, kind: str) -> list[Json]:
        return [m for m in self.inbox if m.get("type") == kind]

    def discovered(self) -> list[str]:
        return [m["data"]["peerId"] for m in self.of_type("peer-discovered")]

    def departed(self) -> list[str]:
        return [m["data"]["peerId"] for m in self.of_type("peer-disconnected")]

    def known(self) -> set[str]:
        """Peers discovered and not departed since (all frames, in order)."""
        out: set[str] = set()
        for m in self.log:
            if m.get("type") == "peer-discovered":
                out.add(m["data"]["peerId"])
            elif m.get("type") == "peer-disconnected":
                out.discard(m["data"]["peerId"])
        return out


@dataclass
class HubFrame:
    """One frame that crossed a hub-to-hub connection."""

    src: str
    dst: str
    msg: Json

    @property
    def type(self) -> str:
        return str(self.msg.get("type"))

    @property
    def about(self) -> str | None:
        data = self.msg.get("data")
        return data.get("peerId") if isinstance(data, dict) else None

    @property
    def link(self) -> frozenset[str]:
        return frozenset((self.src, self.dst))


class Fed:
    """Several hub machines and their clients, wired in memory (see the module docstring)."""

    def __init__(self, *, rng: random.Random | None = None, max_deliveries: int = 20_000) -> None:
        self.now = 0.0
        self.hubs: dict[str, SignalingServer] = {}
        self.configs: dict[str, ServerConfig] = {}
        self.down: set[str] = set()
        self.events: dict[str, list[ServerEvent]] = {}
        self.clients: dict[str, Client] = {}
        self.by_endpoint: dict[Endpoint, Client] = {}
        self.pairs: dict[Endpoint, Endpoint] = {}  # hub-to-hub connections, both directions
        self.queues: dict[tuple[Endpoint, Endpoint], deque[str]] = {}
        self.hub_frames: list[HubFrame] = []
        self.closes: list[tuple[Endpoint, int, str]] = []
        self.failed_dials: list[tuple[str, str]] = []  # (dialler, url)
        self.rng = rng
        self.budget: int | None = None  # deliveries per pump (None: until quiet)
        self.max_deliveries = max_deliveries
        self.deliveries = 0
        self.incarnations = 0  # hubs started so far: seeds each machine's entropy

    # --- building --------------------------------------------------------------------------

    def hub(self, name: str, *bootstrap: str, **config: Any) -> SignalingServer:
        """Start (or restart) hub `name`, dialling the hubs named in `bootstrap`."""
        cfg = ServerConfig(
            is_hub=True,
            host=name,
            port=3000,
            hub_peer_id=hub_id(name),
            bootstrap_hubs=tuple(url(b) for b in bootstrap),
            **config,
        )
        self.configs[name] = cfg
        self.down.discard(name)
        self.incarnations += 1
        seed = f"{name}:{self.incarnations}"
        self.hubs[name] = SignalingServer(
            cfg,
            rng=random.Random(seed),
            entropy=SeededEntropy(seed),
            now=self.now,
            wall_offset_s=WALL_S,
        )
        self.events.setdefault(name, [])
        self.pump()
        return self.hubs[name]

    def client(self, hub: str, peer_id: str, network: str = "global", *, name: str = "") -> Client:
        """Connect a client to `hub` and announce it in `network`."""
        assert hub not in self.down, f"hub {hub} is down"
        conn = self.hubs[hub].open_connection(f"/?peerId={peer_id}", self.now)
        c = Client(name or peer_id[:4], PeerId(peer_id), hub, conn, network)
        self.clients[c.name] = c
        self.by_endpoint[(hub, conn)] = c
        self.pump()
        self.send(c, {"type": "announce", "networkName": network, "data": {"peerId": peer_id}})
        return c

    def raw(self, hub: str, peer_id: str) -> Client:
        """Open a connection without announcing (a client that speaks for itself)."""
        conn = self.hubs[hub].open_connection(f"/?peerId={peer_id}", self.now)
        c = Client(f"raw:{peer_id[:4]}:{conn}", PeerId(peer_id), hub, conn, "global")
        self.clients[c.name] = c
        self.by_endpoint[(hub, conn)] = c
        self.pump()
        return c

    def send(self, c: Client, frame: Json | str) -> None:
        text = frame if isinstance(frame, str) else json.dumps(frame)
        self.hubs[c.hub].receive_frame(c.conn, text, self.now)
        self.pump()

    def leave(self, c: Client, code: int = 1000) -> None:
        """The client's socket closes."""
        self.hubs[c.hub].connection_closed(c.conn, self.now, code=code, reason="bye")
        del self.by_endpoint[(c.hub, c.conn)]
        self.pump()

    def cut(self, a: str, b: str) -> None:
        """Break every connection between hubs `a` and `b` (both sides see 1006)."""
        for (hub, conn), (other, other_conn) in list(self.pairs.items()):
            if {hub, other} == {a, b} and (hub, conn) in self.pairs:
                self._drop_pair((hub, conn), (other, other_conn), 1006, "connection lost")
        self.pump()

    def kill(self, name: str) -> None:
        """Hub `name` dies: its peers see its sockets break; dials to it fail until restart."""
        self.down.add(name)
        for (hub, conn), (other, other_conn) in list(self.pairs.items()):
            if hub == name and (hub, conn) in self.pairs:
                self._drop_pair((hub, conn), (other, other_conn), 1006, "hub died")
        for endpoint, c in list(self.by_endpoint.items()):
            if endpoint[0] == name:
                c.closed = (1006, "hub died")
                del self.by_endpoint[endpoint]
        self.pump()

    # --- time ------------------------------------------------------------------------------

    def advance(self, to: float) -> None:
        """Fire every hub's timers due up to `to`, in time order, then set the clock."""
        while True:
            live = [
                (d, n)
                for n, h in self.hubs.items()
                if n not in self.down and (d := h.next_deadline()) is not None
            ]
            if not live:
                break
            due, _ = min(live)
            if due > to:
                break
            self.now = max(self.now, due)
            for name, h in self.hubs.items():
                d = h.next_deadline()
                if name not in self.down and d is not None and d <= self.now:
                    h.handle_timer(self.now)
            self.pump()
        self.now = max(self.now, to)

    # --- the wire --------------------------------------------------------------------------

    def _drop_pair(self, a: Endpoint, b: Endpoint, code: int, reason: str) -> None:
        self.pairs.pop(a, None)
        self.pairs.pop(b, None)
        self.queues.pop((a, b), None)
        self.queues.pop((b, a), None)
        for hub, conn in (a, b):
            if hub not in self.down:
                self.hubs[hub].connection_closed(conn, self.now, code=code, reason=reason)

    def _perform(self, name: str) -> bool:
        machine = self.hubs[name]
        actions = machine.drain_actions()
        self.events[name].extend(machine.drain_events())
        for action in actions:
            me: Endpoint = (name, action.connection)
            match action:
                case OpenHubLink(url=target_url):
                    target = target_url.split("://", 1)[1].split(":", 1)[0]
                    if target not in self.hubs or target in self.down:
                        self.failed_dials.append((name, target_url))
                        machine.hub_link_failed(action.connection, self.now, "refused")
                        continue
                    path = "/?" + target_url.split("?", 1)[1]
                    other_conn = self.hubs[target].open_connection(path, self.now)
                    other: Endpoint = (target, other_conn)
                    self.pairs[me] = other
                    self.pairs[other] = me
                    self.queues[(me, other)] = deque()
                    self.queues[(other, me)] = deque()
                    machine.hub_link_opened(action.connection, self.now)
                case SendText(text=text):
                    if me in self.by_endpoint:
                        self.by_endpoint[me].log.append(json.loads(text))
                    elif me in self.pairs:
                        self.queues[(me, self.pairs[me])].append(text)
                case SendPing():
                    machine.receive_pong(action.connection, self.now)
                case Close(code=code, reason=reason):
                    self.closes.append((me, code, reason))
                    if me in self.by_endpoint:
                        self.by_endpoint.pop(me).closed = (code, reason)
                        machine.connection_closed(action.connection, self.now, code=code)
                    elif me in self.pairs:
                        self._drop_pair(me, self.pairs[me], code, reason)
        return bool(actions)

    def pump(self) -> None:
        """Perform every machine's actions and deliver hub-to-hub frames until quiet.

        With `budget` set, stop after that many deliveries (frames stay in flight while the
        test makes its next move).
        """
        budget = self.budget
        while True:
            busy = True
            while busy:
                busy = False
                for name in list(self.hubs):
                    if name not in self.down:
                        busy = self._perform(name) or busy
            ready = [key for key, q in self.queues.items() if q]
            if not ready or budget == 0:
                return
            if budget is not None:
                budget -= 1
            key = self.rng.choice(ready) if self.rng is not None else ready[0]
            src, dst = key
            text = self.queues[key].popleft()
            self.deliveries += 1
            assert self.deliveries <= self.max_deliveries, "relay storm: delivery cap reached"
            self.hub_frames.append(HubFrame(src[0], dst[0], json.loads(text)))
            self.hubs[dst[0]].receive_frame(dst[1], text, self.now)

    # --- views -----------------------------------------------------------------------------

    def frames(self, kind: str, about: str | None = None) -> list[HubFrame]:
        return [
            f for f in self.hub_frames if f.type == kind and (about is None or f.about == about)
        ]

    def of(self, name: str, kind: type[Any]) -> list[Any]:
        return [e for e in self.events[name] if isinstance(e, kind)]

    def clear(self) -> None:
        self.hub_frames.clear()
        for c in self.clients.values():
            c.mark = len(c.log)
        for log in self.events.values():
            log.clear()


def crossings_per_link(frames: list[HubFrame]) -> dict[frozenset[str], int]:
    out: dict[frozenset[str], int] = {}
    for f in frames:
        out[f.link] = out.get(f.link, 0) + 1
    return out


# --- registration and greeting ------------------------------------------------------------


def test_bootstrap_link_registers_and_both_hubs_introduce_themselves() -> None:
    fed = Fed()
    a = fed.hub("A")
    assert a.hub_peer_id == hub_id("A")
    b = fed.hub("B", "A")
    # B dialled A with its hub ID in the query, announced itself, and A greeted it.
    assert fed.of("B", BootstrapConnected) == [BootstrapConnected(url=url("A"))]
    assert fed.of("A", HubRegistered) == [HubRegistered(peer_id=hub_id("B"), total_hubs=1)]
    from_b = [f.msg for f in fed.hub_frames if f.src == "B"]
    from_a = [f.msg for f in fed.hub_frames if f.src == "A"]
    assert [m["type"] for m in from_b] == ["announce"]
    assert [m["type"] for m in from_a] == ["connected", "peer-discovered"]
    announce = from_b[0]
    assert announce["networkName"] == HUB_NS
    assert announce["data"]["isHub"] is True
    assert announce["data"]["capabilities"] == CAPS
    assert "challenge" not in from_a[0]["data"]  # open federation
    assert from_a[0]["data"] == {"peerId": hub_id("B"), "capabilities": CAPS}
    greeting = from_a[1:]
    assert greeting[0]["data"] == {
        "peerId": hub_id("A"),
        "isHub": True,
        "capabilities": CAPS,
        "self": True,
    }
    assert greeting[0]["networkName"] == HUB_NS
    assert a.stats().hubs == 1
    assert b.bootstrap_status() == [{"uri": url("A"), "connected": True, "attemptNumber": 0}]
    info = json.loads(json.dumps(a.hubs_info(0.0)))
    assert [h["peerId"] for h in info["hubs"]] == [hub_id("B")]
    assert fed.frames("hub-auth") == []


def test_self_url_is_never_dialled() -> None:
    fed = Fed()
    fed.hub("A", "A")
    assert fed.hubs["A"].bootstrap_status() == []
    assert fed.hub_frames == []


# --- what crosses links ---------------------------------------------------------------------


def test_local_peers_are_exported_both_ways_at_link_up_and_later() -> None:
    fed = Fed()
    fed.hub("B", "A")  # A is not up yet: B's first dial fails
    c2 = fed.client("B", P2, "app")
    fed.hub("A")
    c1 = fed.client("A", P1, "app")
    assert c1.discovered() == []
    assert c2.discovered() == []
    fed.advance(5.0)  # B's retry: the link comes up with peers on both sides
    assert c1.discovered() == [P2]
    assert c2.discovered() == [P1]
    assert fed.hubs["A"].remote_peers("app") == [P2]
    assert fed.hubs["B"].remote_peers() == [P1]
    learned = fed.of("B", RemotePeerLearned)
    assert [(e.peer_id, e.network_name) for e in learned] == [(P1, "app")]
    # Peers joining after the link is up cross it too, and the data is the server's.
    c3 = fed.client("A", P3, "app")
    assert P3 in c2.discovered()
    disc = next(m for m in c2.of_type("peer-discovered") if m["data"]["peerId"] == P3)
    assert disc["data"]["isHub"] is False
    assert disc["targetPeerId"] == P2
    assert disc["fromPeerId"] == "system"
    assert sorted(c3.discovered()) == sorted([P1, P2])


def test_remote_peers_reach_only_their_namespace() -> None:
    fed = Fed()
    fed.hub("A")
    fed.hub("B", "A")
    red = fed.client("A", P1, "red")
    blue = fed.client("A", P2, "blue")
    other_red = fed.client("B", P3, "red")
    other_blue = fed.client("B", P4, "blue")
    assert red.known() == {P3}
    assert other_red.known() == {P1}
    assert blue.known() == {P4}
    assert other_blue.known() == {P2}
    for c in (red, blue, other_red, other_blue):
        assert {m.get("networkName") for m in c.inbox if m["type"] != "connected"} == {c.network}


def test_hub_namespace_members_are_not_exported_as_peers() -> None:
    fed = Fed()
    fed.hub("A")
    fed.hub("B", "A")
    fed.hub("C", "A")
    # Hubs know each other through A's hub namespace, but never as remote *peers*.
    for name in "ABC":
        assert fed.hubs[name].remote_peers() == []
    assert [f for f in fed.frames("peer-discovered") if f.msg["networkName"] != HUB_NS] == []


def test_multi_hop_discovery_along_a_chain() -> None:
    fed = Fed()
    fed.hub("A")
    fed.hub("B", "A")
    fed.hub("C", "B")
    fed.hub("D", "C")
    c1 = fed.client("A", P1)
    c4 = fed.client("D", P4)
    c2 = fed.client("B", P2)
    assert c1.known() == {P4, P2}
    assert c4.known() == {P1, P2}
    assert c2.known() == {P1, P4}
    learned = {n: {e.peer_id for e in fed.of(n, RemotePeerLearned)} for n in "ABCD"}
    assert learned == {"A": {P2, P4}, "B": {P1, P4}, "C": {P1, P2, P4}, "D": {P1, P2}}


def test_dedup_in_a_ring_each_announcement_crosses_each_link_at_most_twice() -> None:
    fed = Fed()
    fed.hub("A")
    fed.hub("B", "A")
    fed.hub("C", "B", "A")  # A-B, B-C, C-A: a ring
    fed.clear()
    clients = [fed.client(h, p) for h, p in (("A", P1), ("B", P2), ("C", P3))]
    for c in clients:
        assert c.known() == {P1, P2, P3} - {c.peer_id}
    for peer in (P1, P2, P3):
        per_link = crossings_per_link(fed.frames("peer-discovered", peer))
        assert len(per_link) == 3
        assert all(n <= 2 for n in per_link.values()), per_link
        assert sum(per_link.values()) <= 2 * 3
    for name in "ABC":
        learned = [e.peer_id for e in fed.of(name, RemotePeerLearned)]
        assert len(learned) == len(set(learned)) == 2  # once each, by the first link
    assert sum(fed.hubs[n].stats().duplicates_suppressed for n in "ABC") >= 1


@settings(max_examples=40)
@given(seed=st.integers(0, 2**32 - 1))
def test_ring_converges_under_any_interleaving(seed: int) -> None:
    """Joins and leaves in a 4-ring with a chord, frames of different links interleaved."""
    fed = Fed(rng=random.Random(seed))
    fed.hub("A")
    fed.hub("B", "A")
    fed.hub("C", "B")
    fed.hub("D", "C", "A", "B")
    order = random.Random(seed)
    peers = [P1, P2, P3, P4, P5, P6]
    clients = [fed.client(order.choice("ABCD"), p) for p in peers]
    gone = order.sample(clients, 3)
    for c in gone:
        fed.leave(c)
    alive = {c.peer_id for c in clients} - {c.peer_id for c in gone}
    for c in clients:
        if c not in gone:
            assert c.known() == alive - {c.peer_id}
    for name, h in fed.hubs.items():
        local = {c.peer_id for c in clients if c.hub == name and c not in gone}
        assert set(h.remote_peers()) == alive - local, name


# --- signaling relays ---------------------------------------------------------------------------


def test_relay_is_routed_along_the_learnt_path_to_a_remote_target() -> None:
    fed = Fed()
    fed.hub("A")
    fed.hub("B", "A")
    fed.hub("C", "B")
    fed.hub("X", "A")  # a side branch that must not see the relay
    c1 = fed.client("A", P1)
    c3 = fed.client("C", P3)
    fed.clear()
    fed.send(c3, offer(P1, sdp="v=0 from c3"))
    got = c1.of_type("offer")
    assert len(got) == 1
    assert got[0]["fromPeerId"] == P3
    assert got[0]["data"]["sdp"] == "v=0 from c3"
    assert "maxPeers" not in got[0]
    assert [(f.src, f.dst) for f in fed.frames("offer")] == [("C", "B"), ("B", "A")]
    fed.send(c1, {**offer(P3), "type": "answer", "data": {"type": "answer", "sdp": "ok"}})
    assert [m["fromPeerId"] for m in c3.of_type("answer")] == [P1]
    assert [(f.src, f.dst) for f in fed.frames("answer")] == [("A", "B"), ("B", "C")]


def test_relay_namespace_must_match_the_target_across_hubs() -> None:
    fed = Fed()
    fed.hub("A")
    fed.hub("B", "A")
    c1 = fed.client("A", P1, "red")
    c2 = fed.client("B", P2, "blue")
    fed.send(c2, offer(P1, "blue"))
    assert c1.of_type("offer") == []
    assert c2.of_type("offer") == []


def test_unknown_target_is_flooded_once_and_the_loop_is_suppressed_in_a_ring() -> None:
    fed = Fed()
    fed.hub("A")
    fed.hub("B", "A")
    fed.hub("C", "B", "A")
    c1 = fed.client("A", P1)
    fed.clear()
    fed.send(c1, offer(UNKNOWN))
    per_link = crossings_per_link(fed.frames("offer"))
    assert per_link, "an unknown target is asked of every other hub"
    assert all(n <= 2 for n in per_link.values()), per_link
    assert sum(fed.hubs[n].stats().duplicates_suppressed for n in "ABC") >= 1
    # The same frame again (a retransmission) is suppressed at the first hub it reaches.
    before = len(fed.hub_frames)
    fed.send(c1, offer(UNKNOWN))
    assert len(fed.hub_frames) - before <= len(per_link) * 2


def test_trusted_hub_may_relay_for_others_but_a_client_may_not() -> None:
    fed = Fed()
    fed.hub("A")
    c1 = fed.client("A", P1)
    spoofer = fed.client("A", P2)
    fed.send(spoofer, {**offer(P1), "fromPeerId": P3})
    assert c1.of_type("offer") == []
    assert fed.hubs["A"].stats().spoof_attempts == 1


# --- departures and link loss -------------------------------------------------------------------


def test_departures_cross_every_hop_and_reach_the_namespace() -> None:
    fed = Fed()
    fed.hub("A")
    fed.hub("B", "A")
    fed.hub("C", "B")
    c1 = fed.client("A", P1, "app")
    c3 = fed.client("C", P3, "app")
    other = fed.client("A", P2, "other")
    fed.clear()
    fed.leave(c3)
    assert c1.departed() == [P3]
    assert other.inbox == []
    assert [(f.src, f.dst) for f in fed.frames("peer-disconnected")] == [("C", "B"), ("B", "A")]
    for name in "AB":
        assert P3 not in fed.hubs[name].remote_peers()
        assert [e.peer_id for e in fed.of(name, RemotePeerGone)] == [P3]


def test_goodbye_and_reannounce_elsewhere_cross_hubs() -> None:
    fed = Fed()
    fed.hub("A")
    fed.hub("B", "A")
    c1 = fed.client("A", P1, "red")
    c2 = fed.client("B", P2, "red")
    fed.send(c2, {"type": "goodbye", "networkName": "red", "data": {}})
    assert c1.known() == set()
    fed.send(c2, {"type": "announce", "networkName": "blue", "data": {}})
    blue = fed.client("A", P3, "blue")
    assert blue.known() == {P2}
    assert c1.known() == set()
    assert fed.hubs["A"].remote_peers("blue") == [P2]


def test_link_drop_forgets_remotes_and_tells_local_members() -> None:
    fed = Fed()
    fed.hub("A")
    fed.hub("B", "A")
    fed.hub("C", "B")
    c1 = fed.client("A", P1)
    c2 = fed.client("B", P2)
    c3 = fed.client("C", P3)
    fed.clear()
    fed.cut("B", "C")
    assert c1.departed() == [P3]
    assert c2.departed() == [P3]
    assert sorted(c3.departed()) == sorted([P1, P2])
    assert fed.hubs["C"].remote_peers() == []
    assert fed.hubs["A"].remote_peers() == [P2]
    (down,) = fed.of("C", BootstrapDisconnected)
    assert down.url == url("B")
    assert down.code == 1006
    assert 2.5 <= down.retry_at - fed.now < 5.0  # base 5 s, jitter [d/2, d)
    assert fed.of("B", HubUnregistered) == [HubUnregistered(peer_id=hub_id("C"), total_hubs=0)]
    # The reconnect brings everything back.
    fed.advance(down.retry_at)
    assert c1.known() == {P2, P3}
    assert c3.known() == {P1, P2}


def test_hub_death_and_restart_in_a_chain() -> None:
    fed = Fed()
    fed.hub("A")
    fed.hub("B", "A", reconnect_interval_s=0.5)
    fed.hub("C", "B", reconnect_interval_s=0.5)
    c1 = fed.client("A", P1)
    fed.client("B", P2)
    c3 = fed.client("C", P3)
    fed.kill("B")
    assert sorted(c1.departed()) == sorted([P2, P3])
    assert sorted(c3.departed()) == sorted([P1, P2])
    fed.advance(fed.now + 2.0)  # C keeps trying while B is down
    assert fed.failed_dials
    fed.hub("B", "A", reconnect_interval_s=0.5)
    fed.client("B", P2)
    fed.advance(fed.now + 10.0)
    assert c1.known() == {P2, P3}
    assert c3.known() == {P1, P2}


@settings(max_examples=40)
@given(seed=st.integers(0, 2**32 - 1))
def test_link_drop_in_a_cycle_converges_and_keeps_reachable_peers(seed: int) -> None:
    """A square with a chord; one link drops, then another: knowledge follows reachability."""
    fed = Fed(rng=random.Random(seed))
    fed.hub("A")
    fed.hub("B", "A")
    fed.hub("C", "B")
    fed.hub("D", "C", "A")
    draw = random.Random(seed)
    clients = [fed.client(h, p) for h, p in zip("ABCD", (P1, P2, P3, P4), strict=True)]
    edges = [("A", "B"), ("B", "C"), ("C", "D"), ("D", "A")]
    for a, b in draw.sample(edges, 2):
        fed.cut(a, b)
    adj: dict[str, set[str]] = {n: set() for n in "ABCD"}
    for (h, _), (o, _) in fed.pairs.items():
        adj[h].add(o)
    for c in clients:
        seen, todo = {c.hub}, [c.hub]
        while todo:
            for nxt in adj[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        reachable = {o.peer_id for o in clients if o.hub in seen} - {c.peer_id}
        assert c.known() == reachable, (c.hub, seen)
        assert set(fed.hubs[c.hub].remote_peers()) == reachable


# --- routes, loop freedom and stale news ------------------------------------------------------

FAKE: Final = PeerId("fa" * 20)
FAR: Final = PeerId("ee" * 20)  # the home hub of remote peers in these tests
MID: Final = PeerId("dd" * 20)


def fake_hub(fed: Fed, hub: str, peer_id: str = FAKE, caps: list[str] = CAPS) -> Client:
    """A raw connection that registers as a hub (open mode) and speaks frames we script."""
    c = fed.raw(hub, peer_id)
    data: Json = {"isHub": True, "capabilities": caps}
    fed.send(c, {"type": "announce", "networkName": HUB_NS, "data": data})
    return c


def news(peer: str, path: list[list[Any]], network: str = "global") -> Json:
    return {
        "type": "peer-discovered",
        "networkName": network,
        "data": {"peerId": peer, "isHub": False, "hubPath": path},
    }


def gone(peer: str, network: str = "global", **extra: Any) -> Json:
    data: Json = {"peerId": peer, "isHub": False, "reason": "left network", **extra}
    return {"type": "peer-disconnected", "networkName": network, "data": data}


def test_discoveries_carry_their_route_and_clients_never_see_it() -> None:
    fed = Fed()
    fed.hub("A")
    fed.hub("B", "A")
    fed.hub("C", "B")
    c1 = fed.client("A", P1)
    c3 = fed.client("C", P3)
    (a_to_b,) = [f.msg for f in fed.frames("peer-discovered", P1) if f.src == "A"]
    (b_to_c,) = [f.msg for f in fed.frames("peer-discovered", P1) if f.src == "B"]
    home = a_to_b["data"]["hubPath"]
    assert [hop[0] for hop in home] == [hub_id("A")]
    assert [hop[0] for hop in b_to_c["data"]["hubPath"]] == [hub_id("B"), hub_id("A")]
    assert b_to_c["data"]["hubPath"][1:] == home
    assert all(isinstance(hop[1], int) for hop in b_to_c["data"]["hubPath"])
    for c in (c1, c3):
        assert all("hubPath" not in m.get("data", {}) for m in c.log)


def test_news_that_already_passed_through_us_is_dropped() -> None:
    fed = Fed()
    fed.hub("A")
    c1 = fed.client("A", P1)
    f = fake_hub(fed, "A")
    fed.send(f, news(P5, [[FAKE, 1], [hub_id("A"), 2], [FAR, 3]]))
    assert fed.hubs["A"].remote_peers() == []
    assert c1.known() == set()
    fed.send(f, news(P5, [[FAKE, 1], [FAR, 3]]))
    assert fed.hubs["A"].remote_peers() == [P5]
    assert c1.known() == {P5}


@pytest.mark.parametrize(
    "path",
    [
        [],
        [[FAKE, 1]] * 33,  # longer than MAX_HUB_PATH
        [[FAKE, -1]],
        [[FAKE, True]],
        [["not a hub id", 1]],
        [[FAKE, 1, 2]],
        "a string",
    ],
)
def test_malformed_routes_are_refused(path: object) -> None:
    fed = Fed()
    fed.hub("A")
    c1 = fed.client("A", P1)
    f = fake_hub(fed, "A")
    before = fed.hubs["A"].stats().rejected
    fed.send(f, {"type": "peer-discovered", "data": {"peerId": P5, "hubPath": path}})
    assert fed.hubs["A"].remote_peers() == []
    assert c1.known() == set()
    assert fed.hubs["A"].stats().rejected == before + 1


def test_stale_news_of_an_announcement_that_ended_is_refused() -> None:
    """A departure overtook the discovery on a shorter path: the late discovery is stale."""
    fed = Fed()
    fed.hub("A")
    c1 = fed.client("A", P1)
    near = fake_hub(fed, "A")
    far = fake_hub(fed, "A", MID)
    fed.send(near, news(P5, [[FAKE, 1], [FAR, 7]]))
    fed.send(near, gone(P5, hubPath=[[FAR, 7]]))
    assert c1.known() == set()
    fed.send(far, news(P5, [[MID, 4], [FAR, 7]]))  # the same announcement, late
    assert c1.known() == set()
    assert fed.hubs["A"].remote_peers() == []
    fed.send(far, news(P5, [[MID, 4], [FAR, 8]]))  # the peer announced again: news
    assert c1.known() == {P5}
    fed.send(near, gone(P5, hubPath=[[FAR, 7]]))  # the old departure again: not ours
    assert c1.known() == {P5}
    fed.send(near, gone(P5, hubPath=[[FAR, 8]]))
    assert c1.known() == set()


def test_a_departure_seen_before_the_discovery_still_refuses_it() -> None:
    fed = Fed()
    fed.hub("A")
    c1 = fed.client("A", P1)
    f = fake_hub(fed, "A")
    fed.send(f, gone(P5, hubPath=[[FAR, 7]]))  # never knew it: nothing to forget, remembered
    assert fed.frames("peer-disconnected") == []
    fed.send(f, news(P5, [[FAKE, 1], [FAR, 7]]))
    assert c1.known() == set()


def test_news_routed_over_a_link_known_to_be_lost_is_refused() -> None:
    fed = Fed()
    fed.hub("A")
    c1 = fed.client("A", P1)
    f = fake_hub(fed, "A")
    fed.send(f, news(P5, [[FAKE, 1], [MID, 4], [FAR, 7]]))
    fed.send(f, gone(P5, lostLink=[MID, 4]))
    assert c1.departed() == [P5]
    fed.send(f, news(P5, [[FAKE, 1], [MID, 4], [FAR, 7]]))  # crossed the loss: stale
    assert c1.known() == set()
    fed.send(f, news(P5, [[FAKE, 1], [MID, 5], [FAR, 7]]))  # a new link of MID: fine
    assert c1.known() == {P5}


def test_a_lost_route_elsewhere_is_healed_by_a_hub_whose_route_avoids_it() -> None:
    fed = Fed()
    fed.hub("A")
    c1 = fed.client("A", P1)
    f = fake_hub(fed, "A")
    fed.send(f, news(P5, [[FAKE, 1], [FAR, 7]]))
    other = fake_hub(fed, "A", MID)
    fed.clear()
    # MID lost its route to P5 (its link 9 broke); ours does not use that link.
    fed.send(other, gone(P5, lostLink=[MID, 9]))
    assert c1.departed() == []
    (heal,) = other.of_type("peer-discovered")
    assert heal["data"]["peerId"] == P5
    assert [hop[0] for hop in heal["data"]["hubPath"]] == [hub_id("A"), FAKE, FAR]
    # ... and our own peers are healed by us, their home.
    fed.send(other, gone(P1, lostLink=[MID, 9]))
    (heal,) = [m for m in other.of_type("peer-discovered") if m["data"]["peerId"] == P1]
    assert len(heal["data"]["hubPath"]) == 1
    # A loss on our own route makes us forget, and pass the news on.
    fed.send(other, gone(P5, lostLink=[FAKE, 1]))
    assert c1.departed() == [P5]
    (passed,) = f.of_type("peer-disconnected")
    assert passed["data"]["lostLink"] == [FAKE, 1]


def test_a_dialler_sends_peers_once_the_other_side_said_what_it_is() -> None:
    """Until the acceptor's 'connected' arrives the link carries only our announce: a peer
    that comes and goes meanwhile never crosses it, one that stays crosses it then."""
    fed = Fed()
    fed.hub("A")
    watcher = fed.client("A", P1)
    fed.budget = 0  # nothing is delivered: B's link is open, A's 'connected' in flight
    fed.hub("B", "A")
    brief = fed.client("B", P2)
    fed.leave(brief)
    stays = fed.client("B", P3)
    fed.budget = None
    fed.pump()
    assert [(f.src, f.type) for f in fed.hub_frames if f.src == "B"] == [
        ("B", "announce"),
        ("B", "peer-discovered"),
    ]
    assert fed.frames("peer-discovered", P2) == []
    assert watcher.known() == {P3}
    assert stays.known() == {P1}


def test_a_js_acceptor_gets_the_reference_data_and_no_departures() -> None:
    b = SignalingServer(
        ServerConfig(is_hub=True, bootstrap_hubs=(url("J"),), hub_peer_id=hub_id("B")),
        rng=random.Random(1),
        entropy=SeededEntropy(1),
        now=0.0,
    )
    (dial,) = b.drain_actions()
    assert isinstance(dial, OpenHubLink)
    b.hub_link_opened(dial.connection, 0.0)
    local = b.open_connection(f"/?peerId={P1}", 0.0)
    b.receive_frame(local, json.dumps({"type": "announce", "data": {}}), 0.0)
    # A JS hub's 'connected' lists no capabilities.
    b.receive_frame(dial.connection, json.dumps({"type": "connected", "data": {}}), 1.0)
    b.connection_closed(local, 1.5, code=1000)
    sent = [
        json.loads(a.text)
        for a in b.drain_actions()
        if isinstance(a, SendText) and a.connection == dial.connection
    ]
    assert [m["type"] for m in sent] == ["announce", "peer-discovered"]  # no departure
    assert sent[1]["data"] == {"peerId": P1, "isHub": False}  # no route: JS would pass it on


def test_a_restarted_hub_under_the_same_id_gives_new_route_names() -> None:
    def first_route(seed: int) -> list[Any]:
        fed = Fed()
        fed.hub("A")
        fed.incarnations = seed  # a different life of hub B (different entropy)
        fed.hub("B", "A")
        fed.client("B", P2)
        (msg,) = [f.msg for f in fed.frames("peer-discovered", P2)]
        route: list[Any] = msg["data"]["hubPath"]
        return route

    one, two = first_route(1), first_route(2)
    assert one[0][0] == two[0][0] == hub_id("B")
    assert one[0][1] != two[0][1]


class _Churn:
    """Random federations under churn, for `test_random_federations_converge`."""

    def __init__(self, seed: int, hubs: int) -> None:
        self.r = random.Random(seed)
        self.fed = Fed(rng=random.Random(seed))
        self.names = "ABCDEFGH"[:hubs]
        edges: set[tuple[str, str]] = set()
        for i in range(1, hubs):
            edges.add((self.names[i], self.names[self.r.randrange(i)]))
        for _ in range(self.r.randrange(hubs)):  # extra edges make cycles
            i, j = sorted(self.r.sample(range(hubs), 2))
            edges.add((self.names[j], self.names[i]))
        self.edges = sorted(edges)
        for name in self.names:
            self.start(name)
        self.clients: list[Client] = []

    def start(self, name: str) -> None:
        bootstrap = [b for a, b in self.edges if a == name]
        self.fed.hub(name, *bootstrap, reconnect_interval_s=1.0)

    def alive(self) -> list[Client]:
        return [c for c in self.clients if self.fed.by_endpoint.get((c.hub, c.conn)) is c]

    def step(self, n: int) -> None:
        fed, r = self.fed, self.r
        fed.budget = r.choice([0, 1, 3, 10])  # the move lands while frames are in flight
        op = r.random()
        if op < 0.35:
            up = [h for h in self.names if h not in fed.down]
            self.clients.append(fed.client(r.choice(up), f"{n:040x}", r.choice("xy"), name=str(n)))
        elif op < 0.55 and self.alive():
            fed.leave(r.choice(self.alive()))
        elif op < 0.6:
            name = r.choice(self.names)
            if name in fed.down:
                self.start(name)
            elif len(fed.down) < 2:
                fed.kill(name)
        elif op < 0.8 and fed.pairs:
            (a, _), (b, _) = r.choice(sorted(fed.pairs.items()))
            fed.cut(a, b)
        else:
            dt = r.choice([0.5, 3.0, 30.0])
            if dt > 1.0:
                fed.budget = None  # nothing stays in flight for seconds
                fed.pump()
            fed.advance(fed.now + dt)

    def check(self) -> None:
        fed = self.fed
        adj: dict[str, set[str]] = {n: set() for n in self.names}
        for (a, _), (b, _) in fed.pairs.items():
            adj[a].add(b)
        alive = self.alive()
        for name in self.names:
            if name in fed.down:
                continue
            seen, todo = {name}, [name]
            while todo:
                for nxt in adj[todo.pop()] - seen:
                    seen.add(nxt)
                    todo.append(nxt)
            remote = {c.peer_id for c in alive if c.hub in seen and c.hub != name}
            assert set(fed.hubs[name].remote_peers()) == remote, name
            for c in alive:
                if c.hub == name:
                    same = {o.peer_id for o in alive if o.hub in seen and o.network == c.network}
                    assert c.known() == same - {c.peer_id}, (c.name, name)


@settings(max_examples=60)
@given(seed=st.integers(0, 2**32 - 1), hubs=st.integers(3, 7))
def test_random_federations_converge(seed: int, hubs: int) -> None:
    """Any graph (cycles included), joins, leaves, link cuts, hub deaths and restarts, with
    frames in flight and interleaved at random: once quiet, every hub knows exactly the peers
    it can reach, and every client exactly the reachable peers of its namespace."""
    churn = _Churn(seed, hubs)
    for n in range(1, 41):
        churn.step(n)
        if churn.r.random() < 0.3:
            churn.fed.budget = None
            churn.fed.pump()
            churn.check()
    churn.fed.budget = None
    churn.fed.pump()
    for name in list(churn.fed.down):
        churn.start(name)
    churn.fed.advance(churn.fed.now + 100.0)  # every link redialled
    churn.check()


# --- reconnect policy ---------------------------------------------------------------------------


def test_backoff_is_capped_jittered_and_rests_after_a_burst() -> None:
    backoff = BootstrapBackoff(base_s=5.0, cap_s=60.0, max_attempts=10, rest_s=300.0)
    rng = random.Random(1)
    delays = [backoff.next_delay(rng) for _ in range(11)]
    for n, delay in enumerate(delays[:10], start=1):
        nominal = min(5.0 * 2 ** (n - 1), 60.0)
        assert nominal / 2 <= delay < nominal
    assert delays[10] == 300.0  # the rest after ten failures in a row
    assert backoff.failures == 0  # ... and a new burst from the base
    assert 2.5 <= backoff.next_delay(rng) < 5.0
    backoff.reset()
    assert 2.5 <= backoff.next_delay(rng) < 5.0
    other = [BootstrapBackoff(5.0, 60.0, 10, 300.0).next_delay(random.Random(s)) for s in range(8)]
    assert len(set(other)) == 8  # jitter: hubs that lost the same bootstrap do not stampede


def test_bootstrap_down_for_an_hour_is_found_again() -> None:
    fed = Fed()
    fed.hub("B", "A", max_reconnect_attempts=3, reconnect_rest_s=120.0)  # A is not there yet
    fed.advance(3600.0)
    attempts = len(fed.failed_dials)
    # A dial and three retries per burst (after ~5, 10, 20 s, jittered), then a two-minute
    # rest, and again, for the whole hour.
    assert 3600 / (35 + 120) * 4 - 4 <= attempts <= 3600 / (17.5 + 120) * 4 + 4
    waits = [e.retry_at for e in fed.of("B", BootstrapDisconnected)]
    gaps = [b - a for a, b in itertools.pairwise(waits)]
    assert max(gaps) <= 120.0 + 20.0
    fed.hub("A")
    c1 = fed.client("A", P1)
    deadline = fed.hubs["B"].next_deadline()
    assert deadline is not None
    assert deadline - fed.now <= 120.0 + 20.0
    fed.advance(fed.now + 141.0)
    assert fed.of("B", BootstrapConnected) == [BootstrapConnected(url=url("A"))]
    c2 = fed.client("B", P2)
    assert c1.known() == {P2}
    assert c2.known() == {P1}


def test_backoff_restarts_from_the_base_after_a_successful_link() -> None:
    fed = Fed()
    fed.hub("A")
    fed.hub("B", "A")
    fed.kill("A")
    fed.advance(fed.now + 100.0)  # several failures: the delay has grown
    grown = fed.hubs["B"].bootstrap_status()[0]["attemptNumber"]
    assert isinstance(grown, int)
    assert grown >= 3
    fed.hub("A")
    fed.advance(fed.now + 200.0)
    assert fed.hubs["B"].bootstrap_status()[0] == {
        "uri": url("A"),
        "connected": True,
        "attemptNumber": 0,
    }
    fed.of("B", BootstrapDisconnected).clear()
    fed.events["B"].clear()
    fed.cut("A", "B")
    (down,) = fed.of("B", BootstrapDisconnected)
    assert 2.5 <= down.retry_at - fed.now < 5.0  # a new outage starts from the base


def test_stop_cancels_reconnects() -> None:
    fed = Fed()
    fed.hub("A")
    b = fed.hub("B", "A")
    b.stop(fed.now)
    fed.pump()
    assert b.next_deadline() is None
    assert fed.of("B", BootstrapDisconnected) == []


# --- closed federation ----------------------------------------------------------------------------


def closed_pair(secret_b: str = SECRET) -> Fed:
    fed = Fed()
    fed.hub("A", hub_secret=SECRET)
    fed.hub("B", "A", hub_secret=secret_b)
    return fed


def test_closed_mode_proofs_travel_and_the_secret_never_does() -> None:
    fed = closed_pair()
    c1 = fed.client("A", P1)
    c2 = fed.client("B", P2)
    assert c1.known() == {P2}
    assert c2.known() == {P1}
    first = [(f.src, f.type) for f in fed.hub_frames[:4]]
    assert first == [("A", "connected"), ("B", "hub-auth"), ("A", "hub-auth"), ("B", "announce")]
    challenge = fed.hub_frames[0].msg["data"]["challenge"]
    b_auth = fed.hub_frames[1].msg["data"]
    a_auth = fed.hub_frames[2].msg["data"]
    assert set(b_auth) == {"nonce", "proof"}
    assert set(a_auth) == {"proof"}
    assert b_auth["proof"] == client_proof(SECRET, challenge, b_auth["nonce"], hub_id("B"))
    assert a_auth["proof"] == server_proof(SECRET, challenge, b_auth["nonce"])
    assert verify(a_auth["proof"], a_auth["proof"])
    assert not verify(a_auth["proof"], 1)
    wire = json.dumps([f.msg for f in fed.hub_frames])
    assert SECRET not in wire
    assert fed.of("B", BootstrapConnected) == [BootstrapConnected(url=url("A"))]
    # Plain clients of a closed hub see a challenge in 'connected' and ignore it.
    assert "challenge" in c1.inbox[0]["data"]


def test_closed_mode_wrong_secret_is_refused() -> None:
    fed = closed_pair(secret_b="not the secret")
    assert (("A", ConnectionId(1)), 1008, "Hub authentication failed") in fed.closes
    assert fed.hubs["A"].stats().hubs == 0
    assert fed.hubs["A"].stats().auth_failures == 1
    (down,) = fed.of("B", BootstrapDisconnected)
    assert (down.code, down.reason) == (1008, "Hub authentication failed")
    c1 = fed.client("A", P1)
    c2 = fed.client("B", P2)
    assert c1.known() == set()
    assert c2.known() == set()


def test_closed_dialler_refuses_an_acceptor_that_cannot_prove_the_secret() -> None:
    fed = Fed()
    fed.hub("A")  # open: gives no challenge
    fed.hub("B", "A", hub_secret=SECRET)
    (down,) = fed.of("B", BootstrapDisconnected)
    assert down.reason == "Hub gave no authentication challenge"
    assert fed.hubs["A"].stats().hubs == 0
    # An acceptor that sends a challenge but a bogus proof is refused as well.
    b = SignalingServer(
        ServerConfig(is_hub=True, bootstrap_hubs=(url("Z"),), hub_secret=SECRET),
        rng=random.Random(3),
        entropy=SeededEntropy(3),
        now=0.0,
    )
    (dial,) = b.drain_actions()
    assert isinstance(dial, OpenHubLink)
    b.hub_link_opened(dial.connection, 0.0)
    b.receive_frame(
        dial.connection, json.dumps({"type": "connected", "data": {"challenge": "c" * 32}}), 0.0
    )
    (auth,) = b.drain_actions()
    assert isinstance(auth, SendText)
    assert json.loads(auth.text)["type"] == "hub-auth"
    b.receive_frame(
        dial.connection, json.dumps({"type": "hub-auth", "data": {"proof": "0" * 64}}), 0.0
    )
    actions = b.drain_actions()
    assert (
        Close(connection=dial.connection, code=1008, reason="Hub authentication failed") in actions
    )
    assert not any(isinstance(a, SendText) for a in actions)  # nothing announced
    assert b.stats().auth_failures == 1


def test_closed_mode_replayed_proof_with_a_new_challenge_is_refused() -> None:
    fed = closed_pair()
    captured = next(f.msg for f in fed.frames("hub-auth") if f.src == "B")
    fed.kill("B")
    fed.down.discard("B")
    # A thief replays B's proof under B's ID on a new connection: the challenge differs.
    thief = fed.raw("A", hub_id("B"))
    new_challenge = thief.inbox[0]["data"]["challenge"]
    assert new_challenge != fed.hub_frames[0].msg["data"]["challenge"]
    fed.send(thief, captured)
    assert thief.closed == (1008, "Hub authentication failed")
    assert fed.hubs["A"].stats().hubs == 0


def test_closed_mode_unauthenticated_hub_announce_is_closed_1008() -> None:
    fed = Fed()
    fed.hub("A", hub_secret=SECRET)
    by_flag = fed.raw("A", JS_HUB)
    fed.send(by_flag, {"type": "announce", "networkName": "app", "data": {"isHub": True}})
    assert by_flag.closed == (1008, "Hub authentication required")
    by_namespace = fed.raw("A", P5)
    fed.send(by_namespace, {"type": "announce", "networkName": HUB_NS, "data": {}})
    assert by_namespace.closed == (1008, "Hub authentication required")
    assert fed.hubs["A"].stats().hubs == 0
    assert fed.hubs["A"].stats().auth_failures == 2


def test_closed_mode_unauthenticated_peer_discovered_is_rejected() -> None:
    fed = Fed()
    fed.hub("A", hub_secret=SECRET)
    victim = fed.client("A", P1)
    liar = fed.client("A", P2)
    fed.send(
        liar,
        {"type": "peer-discovered", "networkName": "global", "data": {"peerId": P6}},
    )
    fed.send(liar, {"type": "peer-disconnected", "data": {"peerId": P1}})
    fed.send(liar, {**offer(P1), "fromPeerId": P6})
    assert victim.known() == {P2}
    assert victim.of_type("offer") == []
    rejected = [e for e in fed.events["A"] if isinstance(e, FrameRejected)]
    assert [e.field for e in rejected] == ["type", "type", "fromPeerId"]
    assert fed.hubs["A"].remote_peers() == []


def test_hub_auth_is_not_expected_from_clients_of_an_open_hub() -> None:
    fed = Fed()
    fed.hub("A")
    c = fed.raw("A", P1)
    fed.send(c, {"type": "hub-auth", "data": {"nonce": "n" * 32, "proof": "0" * 64}})
    (rejected,) = [e for e in fed.events["A"] if isinstance(e, FrameRejected)]
    assert rejected.reason == "hub-auth is not expected here"
    assert c.closed is None


# --- bounds -------------------------------------------------------------------------------------


def test_max_remote_peers_drops_new_remote_peers_at_the_bound() -> None:
    fed = Fed()
    fed.hub("A")
    fed.hub("B", "A", max_remote_peers=3)
    for p in (P1, P2, P3, P4, P5):
        fed.client("A", p)
    watcher = fed.client("B", P6)
    assert len(fed.hubs["B"].remote_peers()) == 3
    assert fed.hubs["B"].remote_peers() == [P1, P2, P3]  # the first ones kept
    assert watcher.known() == {P1, P2, P3}
    # A departure frees a place for the next newcomer.
    fed.leave(fed.clients[P1[:4]])
    fed.client("A", UNKNOWN)
    assert fed.hubs["B"].remote_peers() == [P2, P3, UNKNOWN]


def test_relay_cache_is_bounded_and_expires() -> None:
    cache = RelayCache(max_entries=2, ttl_s=10.0)
    assert cache.check_and_add("a", 0.0)
    assert not cache.check_and_add("a", 1.0)
    assert cache.check_and_add("b", 1.0)
    assert cache.check_and_add("c", 2.0)  # at the bound: "a" is forgotten
    assert len(cache) == 2
    assert cache.check_and_add("a", 3.0)
    cache.expire(12.5)
    assert len(cache) == 1  # only "a" (expires at 13.0) is left
    assert cache.check_and_add("b", 12.5)


def test_relay_cache_bound_is_respected_by_the_machine() -> None:
    fed = Fed()
    fed.hub("A", max_relay_cache=2)
    fed.hub("B", "A", max_relay_cache=2)
    c1 = fed.client("A", P1)
    fed.clear()
    for n in range(5):
        fed.send(c1, offer(UNKNOWN, sdp=f"v=0 #{n}"))
    assert len(fed.frames("offer")) == 5  # each distinct frame crosses A->B once
    fed.send(c1, offer(UNKNOWN, sdp="v=0 #4"))  # still remembered: suppressed at B
    fed.send(c1, offer(UNKNOWN, sdp="v=0 #0"))  # forgotten at the bound: crosses again
    assert len(fed.frames("offer")) == 7
    assert fed.hubs["B"].stats().duplicates_suppressed == 1


def test_config_rejects_bad_federation_values() -> None:
    for kwargs in (
        {"max_remote_peers": 0},
        {"max_relay_cache": 0},
        {"max_reconnect_attempts": 0},
        {"reconnect_interval_s": 0.0},
        {"bootstrap_hubs": ("http://x",)},
        {"bootstrap_hubs": ["ws://x"]},
        {"hub_secret": ""},
    ):
        with pytest.raises(Exception, match=next(iter(kwargs))):
            ServerConfig(**kwargs)


# --- JavaScript hubs -----------------------------------------------------------------------------


def test_js_style_hub_never_receives_peer_disconnected() -> None:
    fed = Fed()
    fed.hub("A")
    fed.hub("B", "A")
    js = fed.raw("A", JS_HUB)  # a JS hub dialling us announces without "departures"
    fed.send(
        js,
        {
            "type": "announce",
            "networkName": HUB_NS,
            "data": {"isHub": True, "port": 3001, "host": "h", "capabilities": JS_CAPS},
        },
    )
    assert js.inbox[1]["data"]["self"] is True  # our self-description, which JS ignores
    fed.send(js, {"type": "peer-discovered", "networkName": "app", "data": {"peerId": P5}})
    c1 = fed.client("A", P1, "app")
    c2 = fed.client("B", P2, "app")
    assert c1.known() == {P2, P5}
    assert c2.known() == {P1, P5}
    assert {P1, P2} <= set(js.discovered())
    fed.leave(c1)
    fed.leave(c2)
    assert js.of_type("peer-disconnected") == []
    assert js.of_type("hub-auth") == []
    # ... while our own hub B did hear of P1's departure.
    assert P1 in [f.about for f in fed.frames("peer-disconnected") if f.dst == "B"]
    # A JS hub's peers are forgotten when its connection ends.
    watcher = fed.client("B", P3, "app")
    assert P5 in watcher.known()
    fed.leave(js)
    assert watcher.departed() == [P5]


def test_connection_rejected_crosses_only_to_our_hubs() -> None:
    fed = Fed()
    fed.hub("A")
    fed.hub("B", "A")
    js = fake_hub(fed, "A", JS_HUB, caps=JS_CAPS)
    c1 = fed.client("A", P1)
    c2 = fed.client("B", P2)
    fed.send(js, {"type": "peer-discovered", "data": {"peerId": P5}})
    rejection: Json = {"type": "connection-rejected", "data": {"reason": "max_peers_reached"}}
    fed.send(c1, {**rejection, "targetPeerId": P2})
    fed.send(c1, {**rejection, "targetPeerId": P5})  # a JS hub would answer with 'error'
    fed.send(c1, {**rejection, "targetPeerId": UNKNOWN})
    assert [m["fromPeerId"] for m in c2.of_type("connection-rejected")] == [P1]
    assert js.of_type("connection-rejected") == []
    assert {f.dst for f in fed.frames("connection-rejected")} == {"B"}


def test_link_to_a_js_style_acceptor_gets_no_departures() -> None:
    """Our hub dialled a JS hub: it never sends the self-description, so no 'departures'."""
    b = SignalingServer(
        ServerConfig(is_hub=True, bootstrap_hubs=(url("J"),), hub_peer_id=hub_id("B")),
        rng=random.Random(1),
        entropy=SeededEntropy(1),
        now=0.0,
    )
    (dial,) = b.drain_actions()
    assert isinstance(dial, OpenHubLink)
    assert dial.url == f"{url('J')}?peerId={hub_id('B')}"
    b.hub_link_opened(dial.connection, 0.0)
    b.receive_frame(dial.connection, json.dumps({"type": "connected", "data": {}}), 0.0)
    js_peer = {"type": "peer-discovered", "networkName": "app", "data": {"peerId": P5}}
    b.receive_frame(dial.connection, json.dumps({**js_peer, "targetPeerId": hub_id("B")}), 0.0)
    local = b.open_connection(f"/?peerId={P1}", 0.0)
    b.receive_frame(local, json.dumps({"type": "announce", "networkName": "app", "data": {}}), 0.0)
    b.connection_closed(local, 1.0, code=1000)
    sent = [
        json.loads(a.text)
        for a in b.drain_actions()
        if isinstance(a, SendText) and a.connection == dial.connection
    ]
    assert [m["type"] for m in sent] == ["announce", "peer-discovered"]
    assert sent[1]["data"]["peerId"] == P1
    assert b.remote_peers() == [P5]


def test_same_seed_same_federation_trace() -> None:
    def run() -> list[str]:
        fed = Fed(rng=random.Random(5))
        fed.hub("A", hub_secret=SECRET)
        fed.hub("B", "A", hub_secret=SECRET)
        fed.hub("C", "B", "A", hub_secret=SECRET)
        for h, p in (("A", P1), ("B", P2), ("C", P3)):
            fed.client(h, p)
        fed.cut("A", "C")
        fed.advance(30.0)
        return [f"{f.src}>{f.dst} {json.dumps(f.msg, sort_keys=True)}" for f in fed.hub_frames]

    assert run() == run()
