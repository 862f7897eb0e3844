"""Whom to dial, keep and evict: a ring for connectivity plus XOR-closest links.

Reference: reference/signaling-and-topology.md sections 6.2-6.6 (initiator rule, dialling,
answering, eviction, optimiser) and weaknesses 18-20 and 23 of section 8. Pure and
deterministic: candidates are ordered by XOR distance (ties by ID) or by discovery order,
never by set iteration.

The rules, and where they differ from the reference:

* **Initiator rule, unchanged.** Only the peer whose ID is larger as a string sends the
  offer (`ids.is_initiator`); an offer from a smaller ID is refused. JS peers insist on it.
* **The ring.** The reference only ever dials XOR-closest peers, which lets groups of
  mutually closest peers fill up and cut themselves off, and leaves the smallest IDs with
  nobody who wants to dial them (weakness 20). Here every peer also keeps its two *ring
  neighbours*: its predecessor and successor among the known peers ordered by numeric ID,
  wrapping around. Once peers know the same peers (the hub's all-to-all discovery), ring
  adjacency is symmetric, every ring edge has a larger end that dials it (the wrap edge
  too: the largest ID dials the smallest), and the ring is connected, so with
  max_peers >= 2 no peer is left out and the mesh is one component, all within the
  initiator rule and with no new wire messages. (A hub that announces only the k closest
  peers, ``discovery_k``, gives partial views; the ring then degrades gracefully but is
  no longer guaranteed to be one cycle.) Ring links are *protected*: never evicted,
  and a peer that is full makes room for a ring link by evicting an unprotected one (on
  the dialling side too, where the reference never evicts).
* **The other slots** go to the XOR-closest candidates we may dial (``xor_routing``) or to
  the oldest discovered (otherwise), up to `fill_target`: below ``min_peers`` the gap is
  dialled at once, above it one dial per optimiser run, as in the reference.
* **Capacity counts in-flight dials and answers**, so a peer never holds more than
  ``max_peers`` links (the reference counts only open ones, weakness 20).
* **Eviction** on an incoming offer when full: with ``xor_routing``, the farthest
  unprotected link is evicted if the newcomer is XOR-closer; a ring neighbour always gets a
  slot. With ``xor_routing`` off, the oldest unprotected link is evicted, but only for a
  ring neighbour: the reference's unconditional FIFO eviction makes a full mesh churn
  forever. The evictor swaps one link for another, so it never drops below ``min_peers``;
  the victim loses a link that is not a ring link on either side (ring adjacency is
  symmetric), so it keeps its ring links.
* **Victims keep ``min_peers``** (Python victims; an addition of this port). The caller
  passes as ``fragile`` the links that may not be victims now: a Python neighbour whose
  last ``__PP_HELLO__`` reports at most its ``min_peers`` links, a link open for less than
  a second without a hello (its hello may be in flight), and the neighbours the mesh is
  asking, or that refused, to be evicted. `decide_offer` and `plan_dials` never pick them,
  even when that refuses a ring neighbour. The mesh then asks a Python victim to agree
  before it evicts it (the eviction agreement, docs/eviction.md), so a report in flight
  cannot take it below ``min_peers``. JS peers report nothing and keep the reference's
  behaviour (bar that preference): a JS victim may drop below its ``minPeers`` and
  re-dials.
* **XOR buckets** (``xor_buckets``, the mesh's default; an addition of this port). The
  reference fills its free slots with the XOR-closest peers, so every link is short and a
  message needs about N/(2 * links) hops to cross the mesh (a degree-3 mesh of 1,000 peers
  is about 130 hops deep). With ``xor_buckets`` the links that are not ring links are
  spread over XOR-distance *levels* (level ``L``: the highest differing bit of the two IDs
  is ``L``; a Kademlia bucket), one link per level, in a per-peer order of the levels
  derived from the peer's ID (`level_order`), the XOR-closest candidate within a level.
  Greedy XOR routing then fixes at least one more leading bit per hop, and flooding
  crosses the mesh in O(log N) hops. The dial target rises to ``max_peers`` while a level
  that we may dial is uncovered (the reference's 70 % rule, `fill_target`, still applies
  to the other candidates). A full peer takes an offer only from a ring neighbour, or for
  a level it lacks when another level is covered twice (it evicts the XOR-farthest link of
  the most crowded level): the set of covered levels never shrinks by an eviction.
* **Retries with backoff** (weakness 19): a dial that fails, times out or is refused
  blocks that peer until ``retry_at``; the caller picks the delay. Known peers are never
  forgotten on a timer (weakness 18); `PeerTable` forgets them when the hub says they left
  or a new session does not confirm them.
"""

from __future__ import annotations

import bisect
import enum
import hashlib
from collections.abc import Container, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, Protocol, TypeAlias

from .errors import ConfigError
from .ids import PeerId, is_initiator, is_valid_peer_id

__all__ = [
    "ID_BITS",
    "REJECT_MAX_PEERS",
    "REJECT_ROLE_CONFLICT",
    "Accept",
    "CandidateView",
    "DialPlan",
    "Evict",
    "LinkPhase",
    "LinkSlot",
    "OfferDecision",
    "PeerTable",
    "Reject",
    "TopologyConfig",
    "choose_victim",
    "decide_offer",
    "fill_target",
    "level_order",
    "plan_dials",
    "xor_level",
    "xor_ordered",
]

# The ``reason`` values a JS peer puts in ``connection-rejected`` (section 6.4).
REJECT_MAX_PEERS: Final = "max_peers_reached"
REJECT_ROLE_CONFLICT: Final = "initiator_role_conflict"
ID_BITS: Final = 160  # levels 0..159


def xor_level(a: int, b: int) -> int:
    """The XOR-distance level of two IDs (as integers): the highest differing bit, or -1."""
    return (a ^ b).bit_length() - 1


@lru_cache(maxsize=4096)
def level_order(me: str) -> tuple[int, ...]:
    """This peer's order of preference of the XOR levels (a permutation of 0..159).

    Derived from the ID alone (BLAKE2b), so it is stable across restarts and different
    peers prefer different levels: over the mesh every level gets links.
    """
    keyed = [
        (hashlib.blake2b(me.encode() + level.to_bytes(1, "big"), digest_size=8).digest(), level)
        for level in range(ID_BITS)
    ]
    keyed.sort()
    return tuple(level for _, level in keyed)


@dataclass(frozen=True, slots=True, kw_only=True)
class TopologyConfig:
    """The topology's knobs; validated on construction (raises `ConfigError`).

    Attributes:
        min_peers: below this many links, dial the gap at once (0..max_peers).
        max_peers: links at most, dials and answers in flight included (1..50, as JS).
        xor_routing: prefer XOR-closest peers (else discovery order) and evict the
            farthest (else the oldest).
        eviction_strategy: allow evicting a link to make room for a better one.
        auto_discovery: dial on our own; when off `plan_dials` plans nothing and the
            application dials by hand (offers are still answered and evictions made).
        keep_ring: keep the two ring neighbours (see the module docstring); off gives the
            reference's pure XOR topology. Needs max_peers >= 2.
        xor_buckets: with ``xor_routing``, spread the links over XOR levels (see the module
            docstring) instead of taking the XOR-closest; off (the default here) is the
            reference's preference.
    """

    min_peers: int = 2
    max_peers: int = 3
    xor_routing: bool = True
    eviction_strategy: bool = True
    auto_discovery: bool = True
    keep_ring: bool = True
    xor_buckets: bool = False

    def __post_init__(self) -> None:
        """Validate every field."""
        for name, low, high in (("max_peers", 1, 50), ("min_peers", 0, 49)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(name, "must be an integer")
            if not low <= value <= high:
                raise ConfigError(name, f"must be {low}..{high}")
        if self.min_peers > self.max_peers:
            raise ConfigError("min_peers", "must not exceed max_peers")
        for name in (
            "xor_routing",
            "eviction_strategy",
            "auto_discovery",
            "keep_ring",
            "xor_buckets",
        ):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(name, "must be a bool")

    @property
    def ring_enabled(self) -> bool:
        """Whether ring neighbours are kept (``keep_ring`` and room for two of them)."""
        return self.keep_ring and self.max_peers >= 2

    @property
    def buckets_enabled(self) -> bool:
        """Whether links are spread over XOR levels (``xor_buckets`` with ``xor_routing``)."""
        return self.xor_buckets and self.xor_routing


class LinkPhase(enum.Enum):
    """Where one link is; every phase takes a slot."""

    DIALING = "dialing"  # we create and send the offer, and wait for the answer
    ANSWERING = "answering"  # we accepted their offer and send the answer
    CONNECTING = "connecting"  # offer and answer are applied; waiting for the channel
    OPEN = "open"  # the data channel is open


@dataclass(frozen=True, slots=True)
class LinkSlot:
    """One link as the topology sees it."""

    peer: PeerId
    phase: LinkPhase
    started_at: float  # when the dial or answer began (the reference's connectionStartTime)


@dataclass(frozen=True, slots=True)
class Accept:
    """Answer the offer: there is a free slot."""


@dataclass(frozen=True, slots=True)
class Evict:
    """Evict `victim` (notice, then close), then answer the offer."""

    victim: PeerId


@dataclass(frozen=True, slots=True)
class Reject:
    """Refuse the offer with ``connection-rejected`` carrying `reason`."""

    reason: str


OfferDecision: TypeAlias = Accept | Evict | Reject


@dataclass(frozen=True, slots=True)
class DialPlan:
    """What one optimiser run decided: evict these (to make room), then dial these.

    ``replacements[i]`` is the dial (a ring neighbour, also in ``dials``) that
    ``evictions[i]`` makes room for.
    """

    evictions: tuple[PeerId, ...] = ()
    dials: tuple[PeerId, ...] = ()
    replacements: tuple[PeerId, ...] = ()


@dataclass(slots=True)
class _Record:
    discovered_at: float
    epoch: int  # the signaling session that last confirmed the peer
    failures: int = 0
    retry_at: float = 0.0


def _ring_key(peer: str) -> tuple[int, str]:
    return (int(peer, 16), peer)


class PeerTable:
    """The known peers of our namespace, bounded, with per-peer dial backoff.

    Keeps two indexes for the optimiser: the ring (all known peers by numeric ID) and the
    peers we may dial (smaller IDs) by XOR distance to us. At ``max_known`` the oldest entry
    that is not protected is forgotten.
    """

    def __init__(self, me: PeerId, *, max_known: int) -> None:
        """Create an empty table for peer `me`."""
        if max_known < 1:
            raise ConfigError("max_known", "must be at least 1")
        self._me = me
        self._me_int = int(me, 16)
        self._max_known = max_known
        self._records: dict[PeerId, _Record] = {}  # discovery order
        self._ring: list[tuple[int, str]] = []  # sorted
        self._dialable: list[tuple[int, str]] = []  # (xor distance, peer), sorted
        self.forgotten_at_bound = 0

    # --- membership ---------------------------------------------------------------------

    def __contains__(self, peer: object) -> bool:
        return peer in self._records

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[PeerId]:
        return iter(tuple(self._records))

    def add(self, peer: PeerId, now: float, epoch: int, *, protect: Container[PeerId]) -> bool:
        """Learn `peer` (or re-confirm it in session `epoch`); returns whether it is new.

        At the bound the oldest unprotected entry goes; if every entry is protected the
        newcomer is not added (returns ``False``).
        """
        if not is_valid_peer_id(peer) or peer == self._me:
            return False
        record = self._records.get(peer)
        if record is not None:
            record.epoch = max(record.epoch, epoch)
            return False
        if len(self._records) >= self._max_known:
            victim = next((p for p in self._records if p not in protect), None)
            if victim is None:
                return False
            self.remove(victim)
            self.forgotten_at_bound += 1
        self._records[peer] = _Record(discovered_at=now, epoch=epoch)
        bisect.insort(self._ring, _ring_key(peer))
        if is_initiator(self._me, peer):
            bisect.insort(self._dialable, (int(peer, 16) ^ self._me_int, peer))
        return True

    def remove(self, peer: PeerId) -> bool:
        """Forget `peer`; returns whether it was known."""
        if self._records.pop(peer, None) is None:
            return False
        key = _ring_key(peer)
        i = bisect.bisect_left(self._ring, key)
        if i < len(self._ring) and self._ring[i] == key:
            del self._ring[i]
        dkey = (int(peer, 16) ^ self._me_int, peer)
        j = bisect.bisect_left(self._dialable, dkey)
        if j < len(self._dialable) and self._dialable[j] == dkey:
            del self._dialable[j]
        return True

    def clear(self) -> None:
        """Forget everyone."""
        self._records.clear()
        self._ring.clear()
        self._dialable.clear()

    def unconfirmed(self, epoch: int) -> list[PeerId]:
        """Peers not confirmed in session `epoch` or later, in discovery order."""
        return [p for p, r in self._records.items() if r.epoch < epoch]

    # --- backoff ------------------------------------------------------------------------

    def retry_at(self, peer: PeerId) -> float:
        """When `peer` may be dialled again (0.0: now)."""
        record = self._records.get(peer)
        return 0.0 if record is None else record.retry_at

    def discovered_at(self, peer: PeerId) -> float:
        """When `peer` was first learnt (0.0 if unknown)."""
        record = self._records.get(peer)
        return 0.0 if record is None else record.discovered_at

    def failures(self, peer: PeerId) -> int:
        """Failed dials to `peer` since the last success."""
        record = self._records.get(peer)
        return 0 if record is None else record.failures

    def dial_failed(self, peer: PeerId, retry_at: float) -> int:
        """Count a failed dial and block `peer` until `retry_at`; returns the failure count."""
        record = self._records.get(peer)
        if record is None:
            return 0
        record.failures += 1
        record.retry_at = max(record.retry_at, retry_at)
        return record.failures

    def hold_off(self, peer: PeerId, retry_at: float) -> None:
        """Block dials to `peer` until `retry_at` without counting a failure."""
        record = self._records.get(peer)
        if record is not None:
            record.retry_at = max(record.retry_at, retry_at)

    def dial_succeeded(self, peer: PeerId) -> None:
        """The link to `peer` opened: reset its failures and backoff."""
        record = self._records.get(peer)
        if record is not None:
            record.failures = 0
            record.retry_at = 0.0

    # --- queries ------------------------------------------------------------------------

    def ring_neighbours(self) -> tuple[PeerId, ...]:
        """Our predecessor and successor by numeric ID (wrapping); one peer if only one."""
        ring = self._ring
        if not ring:
            return ()
        i = bisect.bisect_left(ring, _ring_key(self._me))
        pred = PeerId(ring[i - 1][1])  # i == 0 wraps to the largest
        succ = PeerId(ring[i % len(ring)][1])
        return (pred,) if pred == succ else (pred, succ)

    def level_candidates(
        self, level: int, exclude: Container[PeerId], now: float
    ) -> Iterator[PeerId]:
        """Peers we may dial now at XOR `level` from us, XOR-closest first.

        Empty when our bit `level` is 0 (the peers there have larger IDs: they dial us).
        """
        me = self._me_int
        if level < 0 or not (me >> level) & 1:
            return
        low = (me >> (level + 1)) << (level + 1)  # our prefix above `level`, then a 0 bit
        ring = self._ring
        start = bisect.bisect_left(ring, (low,))
        stop = bisect.bisect_left(ring, (low | (1 << level),))
        for _value, peer in xor_ordered(ring, start, stop, me, level - 1):
            pid = PeerId(peer)
            if pid in exclude or self._records[pid].retry_at > now:
                continue
            yield pid

    def dial_candidates(
        self, exclude: Container[PeerId], now: float, *, xor_routing: bool
    ) -> Iterator[PeerId]:
        """Peers we may dial now (smaller IDs, not excluded, not backing off), best first.

        Best is XOR-closest with ``xor_routing``, else the earliest discovered.
        """
        if xor_routing:
            order: Iterator[PeerId] = (PeerId(p) for _, p in self._dialable)
        else:
            order = (p for p in self._records if is_initiator(self._me, p))
        for peer in order:
            if peer in exclude:
                continue
            if self._records[peer].retry_at > now:
                continue
            yield peer


def xor_ordered(
    ring: list[tuple[int, str]], start: int, stop: int, target: int, bit: int
) -> Iterator[tuple[int, str]]:
    """``ring[start:stop]`` (sorted; equal above `bit`) in increasing XOR distance to `target`.

    A walk down the implicit binary trie of the sorted IDs: at each bit the half that
    agrees with `target` comes first. Lazy, so taking the first few costs O(bits * log n).
    """
    while stop - start > 8 and bit >= 0:
        base = (ring[start][0] >> (bit + 1)) << (bit + 1)
        mid = bisect.bisect_left(ring, (base | (1 << bit),), start, stop)
        if mid in (start, stop):  # everyone agrees on this bit: no split
            bit -= 1
            continue
        if (target >> bit) & 1:
            yield from xor_ordered(ring, mid, stop, target, bit - 1)
            yield from xor_ordered(ring, start, mid, target, bit - 1)
        else:
            yield from xor_ordered(ring, start, mid, target, bit - 1)
            yield from xor_ordered(ring, mid, stop, target, bit - 1)
        return
    yield from sorted(ring[start:stop], key=lambda entry: entry[0] ^ target)


class CandidateView(Protocol):
    """What `plan_dials` reads of the known peers (`PeerTable` is one)."""

    def ring_neighbours(self) -> tuple[PeerId, ...]:
        """Our predecessor and successor by numeric ID."""
        ...

    def retry_at(self, peer: PeerId) -> float:
        """When `peer` may be dialled again."""
        ...

    def dial_candidates(
        self, exclude: Container[PeerId], now: float, *, xor_routing: bool
    ) -> Iterator[PeerId]:
        """Peers we may dial now, best first."""
        ...

    def level_candidates(
        self, level: int, exclude: Container[PeerId], now: float
    ) -> Iterator[PeerId]:
        """Peers we may dial now at XOR `level`, XOR-closest first."""
        ...


# --- decisions ------------------------------------------------------------------------------


def fill_target(config: TopologyConfig) -> int:
    """How many links the optimiser works towards (the reference's rule, section 6.6)."""
    if config.max_peers <= 3:
        return config.max_peers
    return max(config.min_peers, (7 * config.max_peers) // 10)


def choose_victim(
    me: PeerId,
    links: Mapping[PeerId, LinkSlot],
    protected: Container[PeerId],
    *,
    xor_routing: bool,
    exclude: Container[PeerId] = (),
    buckets: bool = False,
) -> PeerId | None:
    """The link to give up: the XOR-farthest (or oldest) one not protected nor excluded.

    With `buckets`, the XOR-farthest of the links in the most crowded XOR level (levels of
    protected links count too). Ties go to the larger ID (farthest) or the smaller ID
    (oldest), so the choice never depends on dict order.
    """
    pool = [s for p, s in links.items() if p not in protected and p not in exclude]
    if not pool:
        return None
    if buckets:
        me_int = int(me, 16)
        crowd = _level_counts(me_int, links)
        return max(
            pool,
            key=lambda s: (crowd[xor_level(me_int, int(s.peer, 16))], int(s.peer, 16) ^ me_int),
        ).peer
    if xor_routing:
        me_int = int(me, 16)
        return max(pool, key=lambda s: (int(s.peer, 16) ^ me_int, s.peer)).peer
    return min(pool, key=lambda s: (s.started_at, s.peer)).peer


def decide_offer(
    me: PeerId,
    offerer: PeerId,
    links: Mapping[PeerId, LinkSlot],
    protected: Container[PeerId],
    config: TopologyConfig,
    *,
    fragile: Container[PeerId] = (),
    spare: Container[PeerId] = (),
) -> OfferDecision:
    """Answer, evict then answer, or refuse an offer from `offerer` (no link to it yet).

    `links` are the links that take a slot; `protected` our ring neighbours; `fragile` the
    neighbours an eviction would take below their ``min_peers`` (never victims, even for a
    ring neighbour: the offer is refused if nobody else can go); `spare` neighbours that
    are victims only when no other link may go (their degree is not known yet).
    """
    if is_initiator(me, offerer):
        return Reject(REJECT_ROLE_CONFLICT)
    if len(links) < config.max_peers:
        return Accept()
    if not config.eviction_strategy:
        return Reject(REJECT_MAX_PEERS)
    victim = _spared_victim(
        me,
        links,
        protected,
        xor_routing=config.xor_routing,
        exclude=fragile,
        spare=spare,
        buckets=config.buckets_enabled,
    )
    if victim is None:
        return Reject(REJECT_MAX_PEERS)
    if offerer in protected:
        return Evict(victim)
    if config.buckets_enabled:
        me_int = int(me, 16)
        crowd = _level_counts(me_int, links)
        if crowd.get(xor_level(me_int, int(offerer, 16)), 0) == 0:
            victim = _spared_victim(
                me, links, protected, xor_routing=True, exclude=fragile, spare=spare, buckets=True
            )
            if victim is not None and crowd[xor_level(me_int, int(victim, 16))] > 1:
                return Evict(victim)
        return Reject(REJECT_MAX_PEERS)
    if config.xor_routing and (int(offerer, 16) ^ int(me, 16)) < (int(victim, 16) ^ int(me, 16)):
        return Evict(victim)
    return Reject(REJECT_MAX_PEERS)


def plan_dials(
    me: PeerId,
    table: CandidateView,
    links: Mapping[PeerId, LinkSlot],
    config: TopologyConfig,
    now: float,
    *,
    fragile: Container[PeerId] = (),
    spare: Container[PeerId] = (),
    pending: Container[PeerId] = (),
) -> DialPlan:
    """One optimiser run: ring repairs first, then fill towards `fill_target`.

    `links` are the links that take a slot; `fragile` neighbours are never evicted, `spare`
    ones only when no other may go (see `decide_offer`); `pending` peers already wait for a
    slot being made for them (neither dialled nor counted). A ring neighbour we should
    dial gets a slot even when full (an unprotected link is evicted for it, if eviction is
    allowed); other dials only use free slots. With buckets, an uncovered XOR level we may
    dial is filled first, up to ``max_peers``.
    """
    if not config.auto_discovery:
        return DialPlan()
    ring = table.ring_neighbours() if config.ring_enabled else ()
    buckets = config.buckets_enabled
    count = len(links)
    evictions: list[PeerId] = []
    replacements: list[PeerId] = []
    dials: list[PeerId] = []
    for peer in ring:
        if peer in links or peer in dials or peer in pending or not is_initiator(me, peer):
            continue
        if table.retry_at(peer) > now:
            continue
        if count >= config.max_peers:
            if not config.eviction_strategy:
                continue
            victim = _spared_victim(
                me,
                links,
                ring,
                xor_routing=config.xor_routing,
                exclude=_Union(evictions, fragile),
                spare=spare,
                buckets=buckets,
            )
            if victim is None:
                continue
            evictions.append(victim)
            replacements.append(peer)
            count -= 1
        dials.append(peer)
        count += 1
    taken = _Union(_Union(links, dials), pending)
    bucket_dials = 0
    if buckets and count < config.max_peers:
        want = max(config.min_peers - count, 1)
        me_int = int(me, 16)
        covered = {xor_level(me_int, int(p, 16)) for p in links if p not in evictions}
        covered.update(xor_level(me_int, int(p, 16)) for p in dials)
        for level in level_order(me):
            if bucket_dials == want or count >= config.max_peers:
                break
            if level in covered or not (me_int >> level) & 1:
                continue
            for peer in table.level_candidates(level, taken, now):
                dials.append(peer)
                covered.add(level)
                count += 1
                bucket_dials += 1
                break
    target = fill_target(config)
    want = config.min_peers - count if count < config.min_peers else int(count < target)
    if bucket_dials and count >= config.min_peers:
        want = 0  # one dial per run above min_peers, and a level was worth more
    if want > 0:
        for peer in table.dial_candidates(taken, now, xor_routing=config.xor_routing):
            dials.append(peer)
            want -= 1
            if want == 0:
                break
    return DialPlan(
        evictions=tuple(evictions), dials=tuple(dials), replacements=tuple(replacements)
    )


def _spared_victim(
    me: PeerId,
    links: Mapping[PeerId, LinkSlot],
    protected: Container[PeerId],
    *,
    xor_routing: bool,
    exclude: Container[PeerId],
    spare: Container[PeerId],
    buckets: bool,
) -> PeerId | None:
    """`choose_victim` that passes over the `spare` links unless nobody else may go."""
    victim = choose_victim(
        me,
        links,
        protected,
        xor_routing=xor_routing,
        exclude=_Union(exclude, spare),
        buckets=buckets,
    )
    if victim is None:
        victim = choose_victim(
            me, links, protected, xor_routing=xor_routing, exclude=exclude, buckets=buckets
        )
    return victim


def _level_counts(me_int: int, links: Mapping[PeerId, LinkSlot]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for peer in links:
        level = xor_level(me_int, int(peer, 16))
        counts[level] = counts.get(level, 0) + 1
    return counts


class _Union:
    """Membership in either of two containers (no copy)."""

    __slots__ = ("_a", "_b")

    def __init__(self, a: Container[PeerId], b: Container[PeerId]) -> None:
        self._a = a
        self._b = b

    def __contains__(self, item: object) -> bool:
        return item in self._a or item in self._b
