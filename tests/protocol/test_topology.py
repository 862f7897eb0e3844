"""Tests of the topology rules: ring, candidates, eviction, dial plans (pure functions)."""

from __future__ import annotations

from typing import Final

import pytest
from hypothesis import given
from hypothesis import strategies as st

from peerpigeon.protocol.errors import ConfigError
from peerpigeon.protocol.ids import PeerId, is_initiator
from peerpigeon.protocol.topology import (
    REJECT_MAX_PEERS,
    REJECT_ROLE_CONFLICT,
    Accept,
    DialPlan,
    Evict,
    LinkPhase,
    LinkSlot,
    PeerTable,
    Reject,
    TopologyConfig,
    choose_victim,
    decide_offer,
    fill_target,
    plan_dials,
)


def pid(prefix: str) -> PeerId:
    """A peer ID from a short hex prefix, padded with zeros."""
    return PeerId(prefix.ljust(40, "0"))


ME: Final = pid("8")
P1: Final = pid("1")
P2: Final = pid("2")
P4: Final = pid("4")
P7: Final = pid("7")
P9: Final = pid("9")
PA: Final = pid("a")
PF: Final = pid("f")


def table(*peers: PeerId, me: PeerId = ME, max_known: int = 100) -> PeerTable:
    t = PeerTable(me, max_known=max_known)
    for p in peers:
        t.add(p, 0.0, 1, protect=())
    return t


def slots(*peers: PeerId, phase: LinkPhase = LinkPhase.OPEN) -> dict[PeerId, LinkSlot]:
    return {p: LinkSlot(p, phase, float(i)) for i, p in enumerate(peers)}


def dist(a: str, b: str) -> int:
    return int(a, 16) ^ int(b, 16)


# --- config ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_peers": 0}, "max_peers"),
        ({"max_peers": 51}, "max_peers"),
        ({"max_peers": True}, "max_peers"),
        ({"min_peers": -1}, "min_peers"),
        ({"min_peers": 4, "max_peers": 3}, "min_peers"),
        ({"xor_routing": 1}, "xor_routing"),
        ({"keep_ring": None}, "keep_ring"),
    ],
)
def test_config_errors(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        TopologyConfig(**kwargs)  # type: ignore[arg-type]  # deliberately wrong values
    assert info.value.field == field


def test_ring_needs_two_slots() -> None:
    assert TopologyConfig().ring_enabled
    assert not TopologyConfig(max_peers=1, min_peers=1).ring_enabled
    assert not TopologyConfig(keep_ring=False).ring_enabled


@pytest.mark.parametrize(("max_peers", "target"), [(1, 1), (3, 3), (4, 2), (10, 7), (50, 35)])
def test_fill_target(max_peers: int, target: int) -> None:
    assert fill_target(TopologyConfig(max_peers=max_peers, min_peers=1)) == target


# --- the table -----------------------------------------------------------------------------------


def test_table_membership_and_order() -> None:
    t = table(P9, P1, PA)
    assert list(t) == [P9, P1, PA]
    assert len(t) == 3
    assert P1 in t
    assert not t.add(P1, 5.0, 2, protect=())  # known: only re-confirmed
    assert t.unconfirmed(2) == [P9, PA]
    assert not t.add(ME, 0.0, 1, protect=())  # never ourselves
    assert not t.add(PeerId("xyz"), 0.0, 1, protect=())
    assert t.discovered_at(P1) == 0.0
    assert t.remove(P9)
    assert not t.remove(P9)
    assert list(t) == [P1, PA]
    t.clear()
    assert len(t) == 0
    assert t.ring_neighbours() == ()


def test_table_bound_forgets_the_oldest_unprotected() -> None:
    t = table(P1, P2, me=ME, max_known=2)
    assert t.add(P4, 1.0, 1, protect={P1})
    assert list(t) == [P1, P4]
    assert t.forgotten_at_bound == 1
    assert not t.add(P7, 1.0, 1, protect={P1, P4})  # everything protected: refused
    assert list(t) == [P1, P4]


@pytest.mark.parametrize(
    ("peers", "ring"),
    [
        ((), ()),
        ((P1,), (P1,)),
        ((P1, P9), (P1, P9)),
        ((P1, P2, P9, PA), (P2, P9)),
        ((P1, P2), (P2, P1)),  # both below us: the successor wraps to the smallest
        ((P9, PA), (PA, P9)),  # both above us: the predecessor wraps to the largest
    ],
)
def test_ring_neighbours(peers: tuple[PeerId, ...], ring: tuple[PeerId, ...]) -> None:
    assert table(*peers).ring_neighbours() == ring


def test_backoff_bookkeeping() -> None:
    t = table(P1)
    assert t.retry_at(P1) == 0.0
    assert t.dial_failed(P1, 10.0) == 1
    assert t.dial_failed(P1, 5.0) == 2  # never shortened
    assert t.retry_at(P1) == 10.0
    assert t.failures(P1) == 2
    t.hold_off(P1, 20.0)
    assert (t.retry_at(P1), t.failures(P1)) == (20.0, 2)
    t.dial_succeeded(P1)
    assert (t.retry_at(P1), t.failures(P1)) == (0.0, 0)
    assert t.dial_failed(P9, 1.0) == 0  # unknown peers are ignored
    assert t.retry_at(P9) == 0.0


def test_dial_candidates_are_smaller_ids_best_first() -> None:
    t = table(P1, P9, P7, P2)
    assert list(t.dial_candidates((), 0.0, xor_routing=True)) == sorted(
        [P1, P7, P2], key=lambda p: dist(p, ME)
    )
    assert list(t.dial_candidates((), 0.0, xor_routing=False)) == [P1, P7, P2]
    t.dial_failed(P7, 10.0)
    assert list(t.dial_candidates({P1}, 5.0, xor_routing=False)) == [P2]
    assert list(t.dial_candidates({P1}, 10.0, xor_routing=False)) == [P7, P2]


# --- victims and offers ----------------------------------------------------------------------


def test_choose_victim_farthest_or_oldest() -> None:
    # Distances from ME = 8...: P1 -> 9, P2 -> a, P4 -> c, P7 -> f, P9 -> 1, PA -> 2, PF -> 7.
    links = slots(P7, P1, P4)
    assert choose_victim(ME, links, (), xor_routing=True) == P7
    assert choose_victim(ME, links, (P7,), xor_routing=True) == P4
    assert choose_victim(ME, links, (), xor_routing=False) == P7  # the oldest
    assert choose_victim(ME, links, (P7,), xor_routing=False, exclude=(P1,)) == P4
    assert choose_victim(ME, links, (P7, P1, P4), xor_routing=True) is None


def test_offer_from_a_larger_id_is_the_wrong_way() -> None:
    cfg = TopologyConfig()
    assert decide_offer(ME, P4, {}, (), cfg) == Reject(REJECT_ROLE_CONFLICT)
    assert decide_offer(ME, P9, {}, (), cfg) == Accept()


def test_offer_when_full() -> None:
    cfg = TopologyConfig()
    full = slots(P4, P1, P2)
    assert decide_offer(ME, pid("c"), full, (), cfg) == Evict(P4)  # 4 < c: the farthest goes
    assert decide_offer(ME, PF, full, (P4,), cfg) == Evict(P2)  # P4 protected; 7 < a
    assert decide_offer(ME, PF, slots(P9, PA, pid("b")), (), cfg) == Reject(REJECT_MAX_PEERS)
    off = TopologyConfig(eviction_strategy=False)
    assert decide_offer(ME, pid("c"), full, (), off) == Reject(REJECT_MAX_PEERS)


def test_a_ring_neighbour_always_gets_a_slot() -> None:
    cfg = TopologyConfig()
    links = slots(P9, PA, pid("b"))  # all closer to ME than PF
    assert decide_offer(ME, PF, links, (PF, P9), cfg) == Evict(pid("b"))
    fifo = TopologyConfig(xor_routing=False)
    assert decide_offer(ME, PF, links, (PF,), fifo) == Evict(P9)  # the oldest
    assert decide_offer(ME, pid("c"), links, (PF,), fifo) == Reject(REJECT_MAX_PEERS)
    assert decide_offer(ME, PF, links, (PF, P9, PA, pid("b")), cfg) == Reject(REJECT_MAX_PEERS)


def test_in_flight_links_take_slots() -> None:
    cfg = TopologyConfig(max_peers=2, min_peers=1)
    links = {P1: LinkSlot(P1, LinkPhase.OPEN, 0.0), P2: LinkSlot(P2, LinkPhase.DIALING, 1.0)}
    assert decide_offer(ME, P9, links, (), cfg) == Evict(P2)
    t = table(P4, P7, P1, P2)  # ring: P7 and (wrapping) P1
    no_ring = TopologyConfig(max_peers=2, min_peers=1, keep_ring=False)
    assert plan_dials(ME, t, links, no_ring, 0.0) == DialPlan()
    assert plan_dials(ME, t, links, cfg, 0.0) == DialPlan(
        evictions=(P2,), dials=(P7,), replacements=(P7,)
    )


# --- plans ------------------------------------------------------------------------------------


def test_plan_dials_ring_first_then_fill() -> None:
    cfg = TopologyConfig()
    t = table(P1, P2, P4, P7, P9)  # ring of ME: pred P7, succ P9
    plan = plan_dials(ME, t, {}, cfg, 0.0)
    assert plan.evictions == ()
    assert plan.dials[0] == P7  # the ring neighbour we may dial
    assert P9 not in plan.dials  # larger: it dials us
    assert len(plan.dials) == 2  # below min_peers: the gap, at once
    assert plan.dials[1] == min([P1, P2, P4], key=lambda p: dist(p, ME))


def test_plan_one_dial_per_run_above_min() -> None:
    cfg = TopologyConfig(max_peers=6, min_peers=2)
    t = table(P1, P2, P4, P7, P9)
    plan = plan_dials(ME, t, slots(P7, P9), cfg, 0.0)
    assert len(plan.dials) == 1


def test_plan_makes_room_for_a_ring_neighbour() -> None:
    cfg = TopologyConfig()
    t = table(P1, P2, P4, P7, P9)
    links = slots(P1, P2, P4)
    plan = plan_dials(ME, t, links, cfg, 0.0)
    assert plan.dials == (P7,)
    assert plan.evictions == (P4,)  # the farthest unprotected
    no_evict = TopologyConfig(eviction_strategy=False)
    assert plan_dials(ME, t, links, no_evict, 0.0) == DialPlan()


def test_plan_leaves_pending_peers_alone() -> None:
    cfg = TopologyConfig()
    t = table(P1, P2, P4, P7, P9)
    links = slots(P1, P2, P4)
    # A slot is being made for P7 already (an eviction waits for its victim's agreement).
    assert plan_dials(ME, t, links, cfg, 0.0, pending=(P7,)) == DialPlan()
    wide = TopologyConfig(max_peers=6)
    assert plan_dials(ME, t, slots(P7, P9), wide, 0.0).dials == (P1,)
    assert plan_dials(ME, t, slots(P7, P9), wide, 0.0, pending=(P1,)).dials == (P2,)


def test_plan_respects_backoff_and_switches() -> None:
    t = table(P7, P1)
    t.dial_failed(P7, 10.0)
    t.dial_failed(P1, 10.0)
    assert plan_dials(ME, t, {}, TopologyConfig(), 5.0) == DialPlan()
    assert plan_dials(ME, t, {}, TopologyConfig(), 10.0).dials == (P7, P1)
    assert plan_dials(ME, t, {}, TopologyConfig(auto_discovery=False), 10.0) == DialPlan()


def test_without_ring_a_full_peer_does_not_evict_for_dials() -> None:
    cfg = TopologyConfig(keep_ring=False)
    t = table(P1, P2, P4, P7, P9)
    assert plan_dials(ME, t, slots(P1, P2, P4), cfg, 0.0) == DialPlan()


def test_smallest_id_is_dialled_by_its_ring_neighbours() -> None:
    ids = [pid(x) for x in "13579bdf"]
    smallest = ids[0]
    dialers = []
    for me in ids[1:]:
        t = table(*[p for p in ids if p != me], me=me)
        if smallest in plan_dials(me, t, {}, TopologyConfig(), 0.0).dials:
            dialers.append(me)
    assert ids[1] in dialers  # its successor
    assert ids[-1] in dialers  # the largest, across the wrap


# --- properties --------------------------------------------------------------------------------

id_sets = st.lists(
    st.text(alphabet="0123456789abcdef", min_size=40, max_size=40).map(PeerId),
    min_size=2,
    max_size=40,
    unique=True,
)


@given(id_sets)
def test_ring_is_symmetric_connected_and_dialable(ids: list[PeerId]) -> None:
    rings = {me: table(*[p for p in ids if p != me], me=me).ring_neighbours() for me in ids}
    for me, ring in rings.items():
        for other in ring:
            assert me in rings[other]  # symmetric
            dialer = me if is_initiator(me, other) else other
            assert dialer in (me, other)  # every ring edge has a larger end that wants it
    seen = {ids[0]}
    stack = [ids[0]]
    while stack:
        for nxt in rings[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    assert seen == set(ids)


@given(
    id_sets,
    st.integers(min_value=0, max_value=6),
    st.integers(min_value=1, max_value=6),
    st.booleans(),
)
def test_plans_never_exceed_max_peers(
    ids: list[PeerId], linked: int, max_peers: int, xor: bool
) -> None:
    me, others = ids[0], ids[1:]
    cfg = TopologyConfig(max_peers=max_peers, min_peers=min(2, max_peers), xor_routing=xor)
    links = slots(*others[: min(linked, max_peers)])
    plan = plan_dials(me, table(*others, me=me), links, cfg, 0.0)
    assert len(links) - len(plan.evictions) + len(plan.dials) <= max_peers
    assert not set(plan.dials) & set(links)
    assert all(is_initiator(me, p) for p in plan.dials)
    assert set(plan.evictions) <= set(links)
