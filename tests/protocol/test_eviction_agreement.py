"""The eviction agreement between Python peers (docs/eviction.md): pure, stepped time.

The evictor asks (``__PP_EVICT_ASK__``) and evicts only on an accepting answer; the victim
accepts only if it keeps ``min_peers`` open links, counting its promises and its own asks.
`Solo` (from test_mesh) feeds one machine by hand; `Wire` carries real machines.
"""

from __future__ import annotations

import json
from typing import Final

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from peerpigeon.protocol.errors import UsageError
from peerpigeon.protocol.ids import PeerId
from peerpigeon.protocol.mesh import (
    AcceptOffer,
    CloseLink,
    CreateOffer,
    EvictionRequested,
    FrameRejected,
    MeshAction,
    PeerEvicted,
    SendData,
)
from peerpigeon.protocol.mesh.eviction import Agreements, HeldOffer, RingDial
from peerpigeon.protocol.mesh.machine import HELLO_GRACE_S
from peerpigeon.protocol.wire import JsonObject, JsonValue
from tests.protocol.test_mesh import ME, P1, P2, P9, PA, PC, PF, URL, Solo, Wire, make, only, pid

P7: Final = pid("7")
TIMEOUT_S: Final = 2.0  # MeshConfig.eviction_ask_timeout_s


def hello(peer: PeerId, degree: int, *, min_peers: int = 1, agrees: bool = True) -> JsonObject:
    """A Python peer's hello: `degree` open links (fillers after us), its ``min_peers``."""
    neighbours: list[JsonValue] = [ME, *(pid(f"e{i}") for i in range(degree - 1))]
    features: list[JsonValue] = ["binary-broadcast", "neighbours"]
    if agrees:
        features.append("evict-ask")
    return {
        "type": "__PP_HELLO__",
        "v": 1,
        "from": peer,
        "maxTtl": 10,
        "features": features,
        "neighbours": neighbours,
        "minPeers": min_peers,
    }


def sent_frames(actions: list[MeshAction], kind: str) -> list[tuple[PeerId, JsonObject]]:
    """The `SendData` text frames of type `kind`, as (peer, parsed frame)."""
    out = []
    for action in only(list(actions), SendData):
        if isinstance(action.data, str) and f'"{kind}"' in action.data:
            out.append((action.peer, json.loads(action.data)))
    return out


def asks(s: Solo) -> list[tuple[PeerId, str]]:
    return [(p, str(f["requestId"])) for p, f in sent_frames(s.actions, "__PP_EVICT_ASK__")]


def answer(s: Solo, peer: PeerId, request_id: str, *, accept: bool) -> None:
    s.text(
        peer,
        {"type": "__PP_EVICT_ANSWER__", "from": peer, "requestId": request_id, "accept": accept},
    )


def ask_us(s: Solo, peer: PeerId, request_id: str) -> JsonObject:
    """`peer` asks to evict us; returns our answer."""
    s.text(peer, {"type": "__PP_EVICT_ASK__", "from": peer, "requestId": request_id})
    (reply,) = [f for p, f in sent_frames(s.actions, "__PP_EVICT_ANSWER__") if p == peer][-1:]
    assert reply["requestId"] == request_id
    assert reply["from"] == ME
    return reply


def evictor(*python: PeerId, degree: int = 3, **overrides: object) -> Solo:
    """Us, full (two links, or three with ``max_peers=3``), with Python neighbours `python`.

    No ring (XOR-closest rules only); the links are past the hello grace.
    """
    fields: dict[str, object] = {"keep_ring": False, "max_peers": 2, "min_peers": 1}
    fields.update(overrides)
    s = Solo(**fields)
    s.online()
    for peer in python:
        s.accept(peer)
        s.text(peer, hello(peer, degree))
    s.advance(s.now + HELLO_GRACE_S)
    s.actions.clear()
    s.events.clear()
    return s


def victim(*links: PeerId, min_peers: int = 2) -> Solo:
    """Us with open links to `links` (all larger IDs: they dialled us)."""
    s = Solo(max_peers=5, min_peers=min_peers, keep_ring=False)
    s.online()
    for peer in links:
        s.accept(peer)
    s.actions.clear()
    s.events.clear()
    return s


# --- the evictor -----------------------------------------------------------------------------


def test_our_hello_offers_the_agreement() -> None:
    s = Solo()
    s.online()
    s.accept(P9)
    ((_, ours),) = sent_frames(s.actions, "__PP_HELLO__")
    features = ours["features"]
    assert isinstance(features, list)
    assert "evict-ask" in features


def test_a_python_victim_is_asked_and_evicted_once_it_agrees() -> None:
    s = evictor(P9, PF)
    s.offer(PA)  # 8^a = 2 beats 8^f = 7: PF is the victim
    ((peer, request_id),) = asks(s)
    assert peer == PF
    assert len(request_id) == 16
    assert not only(list(s.actions), AcceptOffer)  # the offer waits for the answer
    assert not only(list(s.events), PeerEvicted)
    assert [a.victim for a in s.m.eviction_asks()] == [PF]
    answer(s, PF, request_id, accept=True)
    notice = SendData(PF, f'{{"type":"eviction","reason":"topology optimization","from":"{ME}"}}')
    assert notice in s.actions
    assert AcceptOffer(PA, f"v=0 offer {PA}") in s.actions
    assert PeerEvicted(PF, "topology optimization", initiated_by_peer=False) in s.events
    stats = s.m.stats()
    assert (stats.eviction_asks_sent, stats.eviction_asks_accepted, stats.evictions_sent) == (
        1,
        1,
        1,
    )
    assert s.m.eviction_asks() == ()
    assert s.m.next_deadline() is not None  # the eviction's linger


def test_a_refusal_moves_on_to_the_next_victim() -> None:
    s = evictor(PA, PC, PF, max_peers=3)
    s.offer(P9)  # 8^9 = 1: closer than all of them
    assert asks(s)[-1][0] == PF  # the farthest first
    answer(s, PF, asks(s)[-1][1], accept=False)
    assert not only(list(s.events), PeerEvicted)
    assert asks(s)[-1][0] == PC  # PF is spared now: the next farthest
    answer(s, PC, asks(s)[-1][1], accept=True)
    assert PeerEvicted(PC, "topology optimization", initiated_by_peer=False) in s.events
    assert AcceptOffer(P9, f"v=0 offer {P9}") in s.actions
    assert PF in s.m.connected_peers()
    assert s.m.stats().eviction_asks_refused == 1


def test_a_refusal_with_no_other_victim_refuses_the_offer() -> None:
    s = evictor(P9, PF)
    s.offer(PA)
    answer(s, PF, asks(s)[-1][1], accept=False)  # P9 (1) is closer than PA (2): no victim
    assert s.sent("connection-rejected")[-1]["data"] == {"reason": "max_peers_reached"}
    assert not only(list(s.actions), AcceptOffer)
    assert s.m.connected_peers() == (P9, PF)
    s.offer(PA)  # the dialler retries at once: the refusing victim is spared for a while
    assert len(asks(s)) == 1
    assert s.sent("connection-rejected")[-1]["data"] == {"reason": "max_peers_reached"}


def test_an_unanswered_ask_times_out_cancels_and_refuses_the_offer() -> None:
    s = evictor(P9, PF)
    s.offer(PA)
    ((_, request_id),) = asks(s)
    deadline = s.m.next_deadline()
    assert deadline == pytest.approx(s.now + TIMEOUT_S)
    s.advance(s.now + TIMEOUT_S)
    cancels = sent_frames(s.actions, "__PP_EVICT_CANCEL__")
    assert cancels == [(PF, {"type": "__PP_EVICT_CANCEL__", "from": ME, "requestId": request_id})]
    assert s.sent("connection-rejected")[-1]["data"] == {"reason": "max_peers_reached"}
    assert s.m.stats().eviction_asks_timed_out == 1
    answer(s, PF, request_id, accept=True)  # too late: dropped, no eviction
    assert s.m.stats().eviction_answers_dropped == 1
    assert not only(list(s.events), PeerEvicted)
    assert s.m.connected_peers() == (P9, PF)


def test_bad_answers_are_dropped_and_counted() -> None:
    s = evictor(P9, PF)
    s.offer(PA)
    ((_, request_id),) = asks(s)
    answer(s, PF, "0" * 16, accept=True)  # an id we never sent
    answer(s, P9, request_id, accept=True)  # the right id from the wrong neighbour
    assert s.m.stats().eviction_answers_dropped == 2
    assert not only(list(s.events), PeerEvicted)
    _, events = s.text(  # a `from` naming another peer: a protocol error
        PF, {"type": "__PP_EVICT_ANSWER__", "from": P9, "requestId": request_id, "accept": True}
    )
    assert FrameRejected(PF, "data", "from", "is not the sending neighbour") in events
    _, events = s.text(PF, {"type": "__PP_EVICT_ANSWER__", "from": PF, "requestId": request_id})
    assert FrameRejected(PF, "data", "accept", "must be a boolean") in events
    answer(s, PF, request_id, accept=False)  # the real one still counts
    assert s.m.stats().eviction_asks_refused == 1
    answer(s, PF, request_id, accept=False)  # a duplicate
    answer(s, PF, request_id, accept=True)  # a change of mind: the ask is over
    assert s.m.stats().eviction_answers_dropped == 4
    assert not only(list(s.events), PeerEvicted)
    assert s.m.connected_peers() == (P9, PF)


def test_the_victim_leaving_while_asked_frees_its_slot() -> None:
    s = evictor(P9, PF)
    s.offer(PA)
    ((_, request_id),) = asks(s)
    s.m.link_closed(PF, "closed by peer", s.now)
    s.drain()
    assert AcceptOffer(PA, f"v=0 offer {PA}") in s.actions  # no eviction needed
    assert not only(list(s.events), PeerEvicted)
    assert s.m.eviction_asks() == ()
    answer(s, PF, request_id, accept=True)  # from a closed link: stale
    assert s.m.stats().evictions_sent == 0


def test_a_slot_freed_elsewhere_cancels_the_ask() -> None:
    s = evictor(P9, PF)
    s.offer(PA)
    ((_, request_id),) = asks(s)
    s.m.link_failed(P9, "ICE failed", s.now)  # not the victim: a slot frees anyway
    s.drain()
    assert AcceptOffer(PA, f"v=0 offer {PA}") in s.actions
    assert sent_frames(s.actions, "__PP_EVICT_CANCEL__") == [
        (PF, {"type": "__PP_EVICT_CANCEL__", "from": ME, "requestId": request_id})
    ]
    assert s.m.stats().eviction_asks_cancelled == 1
    assert PF in s.m.connected_peers()


def test_a_held_offer_replaced_by_a_new_one_keeps_the_newest() -> None:
    s = evictor(P9, PF)
    s.offer(PA)
    s.hub(
        {
            "type": "offer",
            "data": {"type": "offer", "sdp": "v=0 second offer"},
            "fromPeerId": PA,
            "targetPeerId": ME,
            "networkName": "global",
        }
    )
    assert len(asks(s)) == 1  # still one ask
    answer(s, PF, asks(s)[0][1], accept=True)
    assert only(list(s.actions), AcceptOffer) == [AcceptOffer(PA, "v=0 second offer")]


def test_the_offerer_leaving_cancels_the_ask() -> None:
    s = evictor(P9, PF)
    s.discover(PA)
    s.offer(PA)
    ((_, request_id),) = asks(s)
    s.routed("goodbye", PA, {"peerId": PA})
    assert sent_frames(s.actions, "__PP_EVICT_CANCEL__") == [
        (PF, {"type": "__PP_EVICT_CANCEL__", "from": ME, "requestId": request_id})
    ]
    assert s.m.eviction_asks() == ()
    answer(s, PF, request_id, accept=True)
    assert not only(list(s.events), PeerEvicted)


def test_asks_in_flight_are_bounded() -> None:
    s = evictor(PA, PC, PF, max_peers=3, max_eviction_asks=1)
    s.offer(P9)  # asks PF
    s.offer(pid("b"))  # 8^b = 3 beats PC (4): it would ask PC, but one ask is the bound
    assert [p for p, _ in asks(s)] == [PF]
    assert s.sent("connection-rejected")[-1]["data"] == {"reason": "max_peers_reached"}
    assert len(s.m.eviction_asks()) == 1


def test_an_older_python_peer_without_the_feature_is_evicted_at_once() -> None:
    s = Solo(keep_ring=False, max_peers=2, min_peers=1)
    s.online()
    s.accept(P9)
    s.accept(PF)
    s.text(PF, hello(PF, 3, agrees=False))
    s.advance(s.now + HELLO_GRACE_S)
    s.offer(PA)
    assert asks(s) == []
    assert PeerEvicted(PF, "topology optimization", initiated_by_peer=False) in s.events


def test_an_offer_needing_a_young_links_slot_waits_for_its_grace() -> None:
    s = Solo(keep_ring=False, max_peers=2, min_peers=1)
    s.online()
    s.accept(P9)
    s.accept(PF)
    s.actions.clear()
    opened = s.now
    s.offer(PA)  # only PF could go, and its hello may be on its way: decide later
    assert not only(list(s.actions), AcceptOffer)
    assert s.sent("connection-rejected") == []
    assert not only(list(s.events), PeerEvicted)
    s.advance(opened + HELLO_GRACE_S - 0.01)
    assert not only(list(s.events), PeerEvicted)
    s.advance(opened + HELLO_GRACE_S)  # no hello came: a JS peer, the reference's rules
    assert PeerEvicted(PF, "topology optimization", initiated_by_peer=False) in s.events
    assert AcceptOffer(PA, f"v=0 offer {PA}") in s.actions
    assert asks(s) == []


def test_a_young_link_whose_hello_comes_is_asked_after_the_grace() -> None:
    s = Solo(keep_ring=False, max_peers=2, min_peers=1)
    s.online()
    s.accept(P9)
    s.accept(PF)
    s.offer(PA)
    s.text(PF, hello(PF, 3))  # a Python peer after all
    s.advance(s.now + HELLO_GRACE_S)
    assert [p for p, _ in asks(s)] == [PF]
    assert not only(list(s.events), PeerEvicted)  # not without its agreement
    answer(s, PF, asks(s)[0][1], accept=True)
    assert AcceptOffer(PA, f"v=0 offer {PA}") in s.actions


def test_offers_waiting_for_young_links_are_bounded() -> None:
    s = Solo(keep_ring=False, max_peers=2, min_peers=1, max_eviction_asks=1)
    s.online()
    s.accept(P9)
    s.accept(PF)
    s.offer(PA)  # waits
    s.offer(pid("b"))  # 8^b = 3 beats PF (7) too, but one offer waits already: refused
    assert s.sent("connection-rejected")[-1]["targetPeerId"] == pid("b")
    assert len(s.sent("connection-rejected")) == 1


def ring_dial_wants_a_slot() -> Solo:
    """Full (max_peers=2) with the Python neighbours PA and PC, whose hellos report 3 links;
    then P7 appears. Our ring becomes P7 (the predecessor, we dial it) and PA, so PC is
    not protected: the optimiser asks PC whether it may be evicted."""
    s = Solo(max_peers=2, min_peers=1)
    s.online()
    s.accept(PA)
    s.accept(PC)
    for peer in (PA, PC):
        s.text(peer, hello(peer, 3))
    s.advance(s.now + HELLO_GRACE_S)
    s.discover(P7)
    s.advance(s.now + 1.0)
    return s


def test_a_ring_dial_waits_for_the_victims_agreement() -> None:
    s = ring_dial_wants_a_slot()
    ((peer, request_id),) = asks(s)
    assert peer == PC
    assert CreateOffer(P7) not in s.actions  # no slot yet
    s.advance(s.now + 1.0)  # the optimiser runs again meanwhile: no second ask, no dial
    assert len(asks(s)) == 1
    assert CreateOffer(P7) not in s.actions
    answer(s, PC, request_id, accept=True)
    assert PeerEvicted(PC, "topology optimization", initiated_by_peer=False) in s.events
    assert CreateOffer(P7) in s.actions


def test_a_refused_ring_dial_does_not_dial() -> None:
    s = ring_dial_wants_a_slot()
    answer(s, PC, asks(s)[0][1], accept=False)
    s.advance(s.now + 3.0)  # PC is spared; PA is a ring neighbour: nobody to evict
    assert CreateOffer(P7) not in s.actions
    assert len(asks(s)) == 1
    assert s.m.connected_peers() == (PA, PC)


def test_an_agreement_for_a_dial_that_cannot_go_out_is_cancelled() -> None:
    s = ring_dial_wants_a_slot()
    ((_, request_id),) = asks(s)
    s.m.socket_closed(s.now, code=1006, reason="hub gone")  # our offer could not be sent
    s.drain()
    answer(s, PC, request_id, accept=True)
    assert not only(list(s.events), PeerEvicted)  # no eviction for nothing
    assert sent_frames(s.actions, "__PP_EVICT_CANCEL__") == [
        (PC, {"type": "__PP_EVICT_CANCEL__", "from": ME, "requestId": request_id})
    ]
    assert CreateOffer(P7) not in s.actions


# --- the victim ------------------------------------------------------------------------------


def test_a_victim_accepts_only_while_it_keeps_min_peers() -> None:
    s = victim(P9, PA, PC, PF, min_peers=2)  # four open links
    assert ask_us(s, P9, "r1")["accept"] is True  # 3 left
    assert ask_us(s, PA, "r2")["accept"] is True  # 2 left: the first is reserved
    assert ask_us(s, PC, "r3")["accept"] is False  # would leave 1
    assert s.m.eviction_reservations() == (P9, PA)
    assert only(list(s.events), EvictionRequested) == [
        EvictionRequested(P9, True),
        EvictionRequested(PA, True),
        EvictionRequested(PC, False),
    ]
    stats = s.m.stats()
    assert (stats.eviction_requests_accepted, stats.eviction_requests_refused) == (2, 1)
    # Both accepted evictions come: we keep min_peers.
    for peer in (P9, PA):
        s.text(peer, {"type": "eviction", "reason": "topology optimization", "from": peer})
    assert len(s.m.connected_peers()) == 2
    assert s.m.eviction_reservations() == ()


def test_a_cancel_releases_the_reservation() -> None:
    s = victim(P9, PA, PC, min_peers=1)
    assert ask_us(s, P9, "r1")["accept"] is True
    assert ask_us(s, PA, "r2")["accept"] is True
    assert ask_us(s, PC, "r3")["accept"] is False
    s.text(P9, {"type": "__PP_EVICT_CANCEL__", "from": P9, "requestId": "other"})
    assert s.m.eviction_reservations() == (P9, PA)  # not its ask: ignored
    s.text(P9, {"type": "__PP_EVICT_CANCEL__", "from": P9, "requestId": "r1"})
    assert s.m.eviction_reservations() == (PA,)
    assert ask_us(s, PC, "r4")["accept"] is True


def test_the_evictors_link_ending_releases_its_reservation() -> None:
    s = victim(P9, PA, PC, min_peers=1)
    assert ask_us(s, P9, "r1")["accept"] is True
    assert ask_us(s, PA, "r2")["accept"] is True
    s.m.link_closed(P9, "closed by peer", s.now)
    s.drain()
    assert s.m.eviction_reservations() == (PA,)
    assert ask_us(s, PC, "r3")["accept"] is False  # 2 open, PA promised: PC would leave 0


def test_a_reservation_lapses_after_twice_the_ask_timeout() -> None:
    s = victim(P9, PA, PC, min_peers=1)
    assert ask_us(s, P9, "r1")["accept"] is True
    start = s.now
    s.advance(start + 2 * TIMEOUT_S - 0.01)
    assert s.m.eviction_reservations() == (P9,)
    s.advance(start + 2 * TIMEOUT_S)
    assert s.m.eviction_reservations() == ()


def test_a_victim_below_min_peers_refuses() -> None:
    s = victim(P9, min_peers=2)
    assert ask_us(s, P9, "r1")["accept"] is False
    assert s.m.eviction_reservations() == ()


def test_a_promise_stops_our_own_evictions() -> None:
    s = Solo(keep_ring=False, max_peers=3, min_peers=2)
    s.online()
    for peer in (PA, PC, PF):
        s.accept(peer)
    s.advance(s.now + HELLO_GRACE_S)  # no hellos: JS peers, evicted at once when allowed
    assert ask_us(s, PA, "r1")["accept"] is True  # 3 open, 2 once PA is gone
    s.offer(P9)  # closer than PF: the reference would evict PF and go down to 1
    assert not only(list(s.events), PeerEvicted)
    assert s.sent("connection-rejected")[-1]["data"] == {"reason": "max_peers_reached"}
    s.text(PA, {"type": "eviction", "reason": "topology optimization", "from": PA})
    assert len(s.m.connected_peers()) == 2  # the promise held


def test_our_own_asks_count_against_the_asks_we_accept() -> None:
    s = evictor(PA, PC, PF, max_peers=3, min_peers=2)
    s.offer(P9)  # we ask PF
    assert asks(s)[-1][0] == PF
    assert ask_us(s, PA, "r1")["accept"] is False  # 3 open, PF and PA gone: 1 left
    assert s.m.eviction_reservations() == ()
    assert ask_us(s, PF, "r2")["accept"] is True  # PF asked and asking: one link, counted once


def test_an_ask_from_a_peer_whose_link_is_not_open_is_stale() -> None:
    s = victim(P9, min_peers=0)
    s.text(P1, {"type": "__PP_EVICT_ASK__", "from": P1, "requestId": "r1"})
    assert sent_frames(s.actions, "__PP_EVICT_ANSWER__") == []
    assert s.m.stats().stale_reports >= 1


# --- end to end ------------------------------------------------------------------------------


def test_eviction_between_python_peers_is_agreed_through_the_wire() -> None:
    a = make(PA, min_peers=0)
    b = make(P1, max_peers=1, min_peers=1)
    c = make(P2)  # closer to P1 than PA is
    wire = Wire(a, b, c)
    a.connect([URL], 0.0)
    b.connect([URL], 0.0)
    wire.run()
    wire.advance(1.5)
    c.connect([URL], 1.5)
    wire.run()
    wire.advance(3.0)
    assert EvictionRequested(P1, True) in wire.events[PA]
    assert PeerEvicted(P1, "topology optimization", initiated_by_peer=True) in wire.events[PA]
    assert b.connected_peers() == (P2,)
    assert b.stats().eviction_asks_accepted == 1
    assert not [x for x in wire.actions[P1] if isinstance(x, CloseLink) and x.peer == PA]


def test_a_stale_degree_report_is_caught_by_the_refusal() -> None:
    a = make(PA, min_peers=1)  # one link (to B): it must keep it
    b = make(P1, max_peers=1, min_peers=1)
    c = make(P2)  # closer to P1 than PA is
    wire = Wire(a, b, c)
    a.connect([URL], 0.0)
    b.connect([URL], 0.0)
    wire.run()
    wire.advance(1.5)
    assert b.connected_peers() == (PA,)
    # B's view of A is out of date: a hello (in flight before A lost two links) says 3.
    b.link_text(PA, json.dumps(hello(PA, 3, min_peers=1)), wire.now)
    c.connect([URL], 1.5)
    wire.run()
    wire.advance(3.0)
    assert EvictionRequested(P1, False) in wire.events[PA]
    assert not [e for e in wire.events[P1] if isinstance(e, PeerEvicted)]
    assert b.connected_peers() == (PA,)
    assert P1 in a.connected_peers()
    assert b.stats().eviction_asks_refused == 1


# --- Agreements on its own -------------------------------------------------------------------


def test_agreements_refuse_misuse() -> None:
    ag = Agreements(max_asks=1)
    ag.start("r1", P9, HeldOffer(PA, "sdp"), 1.0)
    with pytest.raises(UsageError):
        ag.start("r2", PC, RingDial(P7), 1.0)  # the bound
    ag2 = Agreements(max_asks=2)
    ag2.start("r1", P9, RingDial(P7), 1.0)
    with pytest.raises(UsageError):
        ag2.start("r2", P9, RingDial(P2), 1.0)  # one ask per victim


NEIGHBOURS: Final = (P1, P2, P7, P9, PA, PC, PF)


class AgreementRules(RuleBasedStateMachine):
    """Whatever arrives, a peer with reservations keeps its promises: ``min_peers`` open
    links remain once every reserved link and every link it asks to evict is gone."""

    def __init__(self) -> None:
        super().__init__()
        self.ag = Agreements(max_asks=3)
        self.open: list[PeerId] = list(NEIGHBOURS[:5])
        self.min = 2
        self.now = 0.0
        self.n = 0

    def _rid(self) -> str:
        self.n += 1
        return f"r{self.n}"

    @rule(peer=st.sampled_from(NEIGHBOURS))
    def ask_arrives(self, peer: PeerId) -> None:
        self.ag.consider(peer, self._rid(), self.open, self.min, self.now + 4.0)

    @rule(peer=st.sampled_from(NEIGHBOURS))
    def we_ask(self, peer: PeerId) -> None:
        if (
            peer in self.open
            and self.ag.can_ask()
            and peer not in self.ag.victims()
            and self.ag.may_evict(peer, self.open, self.min)
        ):
            self.ag.start(self._rid(), peer, RingDial(P2), self.now + 2.0)

    @rule(peer=st.sampled_from(NEIGHBOURS))
    def link_lost_by_eviction(self, peer: PeerId) -> None:
        # Only an agreed eviction (a reservation, or our ask accepted) takes an open link.
        ours = [a for a in self.ag.asks() if a.victim == peer]
        if peer not in self.open or (not ours and peer not in self.ag.reserved()):
            return
        for ask in ours:
            assert self.ag.answered(peer, ask.request_id) == ask
        self.open.remove(peer)
        self.ag.link_lost(peer)

    @rule(peer=st.sampled_from(NEIGHBOURS))
    def link_opens(self, peer: PeerId) -> None:
        if peer not in self.open:
            self.open.append(peer)

    @rule(dt=st.floats(min_value=0.0, max_value=5.0))
    def time_passes(self, dt: float) -> None:
        self.now += dt
        self.ag.expire(self.now)
        deadline = self.ag.deadline()
        assert deadline is None or deadline > self.now

    @precondition(lambda self: bool(self.ag.reserved()))
    @invariant()
    def promises_hold(self) -> None:
        gone = {*self.ag.reserved(), *self.ag.victims()}
        assert sum(1 for p in self.open if p not in gone) >= self.min

    @invariant()
    def bounded(self) -> None:
        assert len(self.ag.asks()) <= 3
        assert len(self.ag.reserved()) <= max(0, len(self.open) - self.min)


TestAgreementRules = AgreementRules.TestCase
