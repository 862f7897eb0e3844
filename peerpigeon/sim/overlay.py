"""Build a mesh's steady-state overlay straight from the topology rules, for large sizes.

A `MeshSim` forms its mesh the real way (a hub, all-to-all discovery, offers and answers),
which costs O(N^2) announcements: fine for a thousand peers, too slow for ten thousand.
`build_overlay` skips the hub: every peer knows every other peer (what all-to-all discovery
gives it), and rounds of the optimiser run in a seeded order. In each round every peer
whose situation changed runs `topology.plan_dials`; each dial is answered by the target's
`topology.decide_offer` on its current links (accept, evict then accept, or refuse); an
eviction or a refusal holds the pair off for a few rounds, as the backoffs of the real
machine do. It stops when a round changes nothing. The same functions decide as in the
`Mesh` machine; only timing (dials in flight, timeouts, jitter) is left out.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Container, Iterator, Sequence
from dataclasses import dataclass, field

from peerpigeon.protocol.ids import PeerId
from peerpigeon.protocol.topology import (
    Evict,
    LinkPhase,
    LinkSlot,
    Reject,
    TopologyConfig,
    decide_offer,
    plan_dials,
    xor_ordered,
)

__all__ = ["Overlay", "build_overlay", "graph_depth"]

_REJECT_HOLD_ROUNDS = 3  # reject_backoff_s (15 s) over optimize_interval_s (5 s), doubling
_REJECT_HOLD_CAP_ROUNDS = 60  # reject_backoff_cap_s (300 s) over optimize_interval_s
_EVICT_HOLD_ROUNDS = 6  # evicted_backoff_s (30 s) over optimize_interval_s


@dataclass(slots=True)
class _Peer:
    peer: PeerId
    value: int
    index: int
    links: dict[PeerId, LinkSlot] = field(default_factory=dict)
    blocked: dict[PeerId, int] = field(default_factory=dict)  # peer -> round it may retry
    refused: dict[PeerId, int] = field(default_factory=dict)  # peer -> refusals so far


class _View:
    """What one peer knows: everyone (the `CandidateView` protocol, over shared indexes)."""

    __slots__ = ("_me", "_now", "_ring")

    def __init__(self, ring: list[tuple[int, str]], me: _Peer, now: int) -> None:
        self._ring = ring
        self._me = me
        self._now = now

    def ring_neighbours(self) -> tuple[PeerId, ...]:
        ring, i = self._ring, self._me.index
        n = len(ring)
        if n < 2:
            return ()
        pred = PeerId(ring[i - 1][1])
        succ = PeerId(ring[(i + 1) % n][1])
        return (pred,) if pred == succ else (pred, succ)

    def retry_at(self, peer: PeerId) -> float:
        return float(self._me.blocked.get(peer, 0))

    def _ok(self, peer: PeerId, exclude: Container[PeerId]) -> bool:
        return peer not in exclude and self._me.blocked.get(peer, 0) <= self._now

    def dial_candidates(
        self, exclude: Container[PeerId], now: float, *, xor_routing: bool
    ) -> Iterator[PeerId]:
        me = self._me
        if xor_routing:
            order = (p for _, p in xor_ordered(self._ring, 0, me.index, me.value, 159))
        else:
            order = (p for _, p in self._ring[: me.index])
        for peer in order:
            if self._ok(PeerId(peer), exclude):
                yield PeerId(peer)

    def level_candidates(
        self, level: int, exclude: Container[PeerId], now: float
    ) -> Iterator[PeerId]:
        me = self._me.value
        if level < 0 or not (me >> level) & 1:
            return
        low = (me >> (level + 1)) << (level + 1)
        start = bisect.bisect_left(self._ring, (low,))
        stop = bisect.bisect_left(self._ring, (low | (1 << level),))
        for _, peer in xor_ordered(self._ring, start, stop, me, level - 1):
            if self._ok(PeerId(peer), exclude):
                yield PeerId(peer)


@dataclass(frozen=True, slots=True)
class Overlay:
    """The links of every peer, and how the build went."""

    graph: dict[PeerId, tuple[PeerId, ...]]
    rounds: int
    dials: int
    evictions: int
    refusals: int


def build_overlay(
    ids: Sequence[PeerId], config: TopologyConfig, *, seed: int | str = 0, max_rounds: int = 60
) -> Overlay:
    """The overlay `ids` settle into under `config`'s rules (see the module docstring).

    Deterministic for one `seed` (the order in which peers run each round).
    """
    ring = sorted((int(p, 16), str(p)) for p in ids)
    peers = {PeerId(p): _Peer(PeerId(p), v, i) for i, (v, p) in enumerate(ring)}
    rng = random.Random(f"{seed}:overlay")
    order = list(peers)
    dirty = dict.fromkeys(order)
    dials = evictions = refusals = 0
    rounds = 0
    for rounds in range(1, max_rounds + 1):  # the count is reported
        if not dirty:
            break
        rng.shuffle(order)
        todo, dirty = dirty, {}
        for pid in order:
            if pid not in todo:
                continue
            me = peers[pid]
            plan = plan_dials(pid, _View(ring, me, rounds), me.links, config, float(rounds))
            for victim in plan.evictions:
                _unlink(peers, pid, victim, dirty, rounds)
                evictions += 1
            for target in plan.dials:
                dials += 1
                other = peers[target]
                protected = _View(ring, other, rounds).ring_neighbours()
                decision = decide_offer(target, pid, other.links, protected, config)
                if isinstance(decision, Reject):
                    refusals += 1
                    count = me.refused[target] = me.refused.get(target, 0) + 1
                    hold = min(_REJECT_HOLD_ROUNDS << (count - 1), _REJECT_HOLD_CAP_ROUNDS)
                    me.blocked[target] = rounds + hold
                    dirty[pid] = None
                    continue
                if isinstance(decision, Evict):
                    _unlink(peers, target, decision.victim, dirty, rounds)
                    evictions += 1
                slot = LinkSlot(target, LinkPhase.OPEN, float(rounds))
                me.links[target] = slot
                other.links[pid] = LinkSlot(pid, LinkPhase.OPEN, float(rounds))
                dirty[pid] = dirty[target] = None
            if plan.dials or plan.evictions:
                dirty[pid] = None
        for p in peers.values():  # a hold-off that ends makes its peer look again
            if any(at == rounds + 1 for at in p.blocked.values()):
                dirty[p.peer] = None
    graph = {p: tuple(sorted(peers[p].links)) for p in peers}
    return Overlay(graph, rounds, dials, evictions, refusals)


def _unlink(
    peers: dict[PeerId, _Peer], a: PeerId, b: PeerId, dirty: dict[PeerId, None], now: int
) -> None:
    peers[a].links.pop(b, None)
    peers[b].links.pop(a, None)
    hold = now + _EVICT_HOLD_ROUNDS
    peers[a].blocked[b] = hold
    peers[b].blocked[a] = hold
    dirty[a] = dirty[b] = None


def graph_depth(
    graph: dict[PeerId, tuple[PeerId, ...]], sources: Sequence[PeerId]
) -> tuple[int, float, int]:
    """Eccentricity from each of `sources`: ``(max, mean, unreachable)`` over them.

    ``max`` is the largest hop count any source needs to reach every reachable peer, the
    TTL a flood from there needs; ``unreachable`` counts peers some source cannot reach.
    """
    worst = 0
    total = 0
    missing = 0
    for source in sources:
        dist = {source: 0}
        frontier = [source]
        depth = 0
        while frontier:
            depth += 1
            nxt = []
            for u in frontier:
                for v in graph[u]:
                    if v not in dist:
                        dist[v] = depth
                        nxt.append(v)
            frontier = nxt
        ecc = max(dist.values())
        worst = max(worst, ecc)
        total += ecc
        missing += len(graph) - len(dist)
    return worst, total / max(len(sources), 1), missing
