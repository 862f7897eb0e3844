"""The eviction agreement between Python peers: asks, answers and reservations.

Pure bookkeeping for `Mesh` (which sends the frames); the rules and the wire are in
docs/eviction.md. Two roles, both in every peer:

* **Evictor.** To take the slot of an open link to a Python neighbour that speaks the
  agreement, it first asks (`Ask`, one per victim, at most ``max_asks`` at once) and only
  evicts once the victim accepts. An ask waits for its answer until its deadline.
* **Victim.** It accepts an ask only if, once the asker's link is gone, it keeps at least
  ``min_peers`` open links, counting as already gone the links it has promised to others
  (*reservations*) and the links it is itself asking to evict. An accepted ask reserves
  the asker's link until the eviction comes, the asker cancels, the link ends, or
  ``reserve_s`` passes. While it holds reservations, its own evictions obey the same count
  (`may_evict`), so a promise is never broken by the promiser.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import TypeAlias

from peerpigeon.protocol.errors import ConfigError, UsageError
from peerpigeon.protocol.ids import PeerId

__all__ = ["Agreements", "Ask", "HeldOffer", "Purpose", "RingDial"]


@dataclass(frozen=True, slots=True)
class HeldOffer:
    """An offer from `peer` we answer once a slot is made (its SDP kept until then)."""

    peer: PeerId
    sdp: str


@dataclass(frozen=True, slots=True)
class RingDial:
    """A dial to the ring neighbour `peer` that needs the evicted link's slot."""

    peer: PeerId


Purpose: TypeAlias = HeldOffer | RingDial


@dataclass(frozen=True, slots=True)
class Ask:
    """One outgoing ask: may we evict `victim` to make room for `purpose`?"""

    request_id: str
    victim: PeerId
    purpose: Purpose
    deadline: float


@dataclass(frozen=True, slots=True)
class _Reservation:
    request_id: str
    expires_at: float


class Agreements:
    """Outgoing asks (we evict) and reservations (we are evicted) of one peer.

    Every map is bounded: asks by ``max_asks``; reservations by the open links (one per
    asking neighbour, and only while accepting keeps ``min_peers``).
    """

    def __init__(self, *, max_asks: int) -> None:
        """Start with no ask and no reservation."""
        if isinstance(max_asks, bool) or not isinstance(max_asks, int) or max_asks < 0:
            raise ConfigError("max_asks", "must be an integer >= 0")
        self._max_asks = max_asks
        self._asks: dict[str, Ask] = {}  # by request id, oldest first
        self._reserved: dict[PeerId, _Reservation] = {}  # by asker (evictor), oldest first

    # --- views ---------------------------------------------------------------------------

    def asks(self) -> tuple[Ask, ...]:
        """The asks waiting for an answer, oldest first."""
        return tuple(self._asks.values())

    def reserved(self) -> tuple[PeerId, ...]:
        """The neighbours we agreed may evict us, oldest first."""
        return tuple(self._reserved)

    def victims(self) -> tuple[PeerId, ...]:
        """The neighbours we are asking about."""
        return tuple(ask.victim for ask in self._asks.values())

    def purposes(self) -> tuple[PeerId, ...]:
        """The peers whose offer or dial waits for an ask."""
        return tuple(ask.purpose.peer for ask in self._asks.values())

    def held_for(self, peer: PeerId) -> Ask | None:
        """The ask made for `peer`'s offer or dial, if any."""
        for ask in self._asks.values():
            if ask.purpose.peer == peer:
                return ask
        return None

    def can_ask(self) -> bool:
        """Whether one more ask fits (``max_asks``)."""
        return len(self._asks) < self._max_asks

    def deadline(self) -> float | None:
        """The earliest ask deadline or reservation expiry."""
        times = [a.deadline for a in self._asks.values()]
        times += [r.expires_at for r in self._reserved.values()]
        return min(times, default=None)

    # --- the counting rule -----------------------------------------------------------------

    def _kept(self, open_peers: Collection[PeerId], also: PeerId) -> int:
        """Open links left once the reserved ones, our asks' victims and `also` are gone."""
        gone = {*self._reserved, *(a.victim for a in self._asks.values()), also}
        return sum(1 for peer in open_peers if peer not in gone)

    def may_evict(self, victim: PeerId, open_peers: Collection[PeerId], min_peers: int) -> bool:
        """Whether evicting (or asking to evict) `victim` keeps our promises.

        Always true without reservations (an evictor swaps a link for a new one, as in the
        reference); with some, we must keep ``min_peers`` open links once every promised
        link, every victim we ask about and `victim` are gone.
        """
        if not self._reserved:
            return True
        return self._kept(open_peers, victim) >= min_peers

    # --- evictor side ----------------------------------------------------------------------

    def start(self, request_id: str, victim: PeerId, purpose: Purpose, deadline: float) -> Ask:
        """Record a new ask; raises `UsageError` at ``max_asks`` or for a victim asked already."""
        if not self.can_ask():
            raise UsageError("asks", f"at most {self._max_asks} asks at once")
        if victim in self.victims() or request_id in self._asks:
            raise UsageError("victim", "already asked")
        ask = Ask(request_id, victim, purpose, deadline)
        self._asks[request_id] = ask
        return ask

    def answered(self, sender: PeerId, request_id: str) -> Ask | None:
        """Take the ask `request_id` answered by `sender`; None if unknown or not its victim.

        An answer for an ask already answered, cancelled or timed out, or from a peer other
        than the one asked, finds nothing (the caller drops it and counts it).
        """
        ask = self._asks.get(request_id)
        if ask is None or ask.victim != sender:
            return None
        del self._asks[request_id]
        return ask

    def take(self, request_id: str) -> Ask | None:
        """Remove the ask `request_id` (to cancel it); None if unknown."""
        return self._asks.pop(request_id, None)

    def replace_offer(self, peer: PeerId, sdp: str) -> bool:
        """A held offerer offered again: keep its newest SDP; returns whether one was held."""
        for request_id, ask in self._asks.items():
            if isinstance(ask.purpose, HeldOffer) and ask.purpose.peer == peer:
                self._asks[request_id] = Ask(
                    request_id, ask.victim, HeldOffer(peer, sdp), ask.deadline
                )
                return True
        return False

    def purpose_lost(self, peer: PeerId) -> list[Ask]:
        """Remove and return the asks made for `peer` (it left; the caller cancels them)."""
        gone = [a for a in self._asks.values() if a.purpose.peer == peer]
        for ask in gone:
            del self._asks[ask.request_id]
        return gone

    # --- victim side -----------------------------------------------------------------------

    def consider(
        self,
        asker: PeerId,
        request_id: str,
        open_peers: Collection[PeerId],
        min_peers: int,
        expires_at: float,
    ) -> bool:
        """Answer `asker`'s ask: accept (and reserve its link) only if we keep ``min_peers``.

        A new ask from a neighbour that holds a reservation replaces it (its earlier ask
        is over on its side); refused, the old reservation goes too.
        """
        self._reserved.pop(asker, None)
        if asker not in open_peers or self._kept(open_peers, asker) < min_peers:
            return False
        self._reserved[asker] = _Reservation(request_id, expires_at)
        return True

    def cancelled(self, sender: PeerId, request_id: str) -> bool:
        """`sender` cancelled its ask `request_id`: drop its reservation; returns whether held."""
        held = self._reserved.get(sender)
        if held is None or held.request_id != request_id:
            return False
        del self._reserved[sender]
        return True

    # --- both ------------------------------------------------------------------------------

    def link_lost(self, peer: PeerId) -> list[Ask]:
        """The link to `peer` is gone: drop its reservation; remove and return our asks about it.

        The returned asks' slots are free now (the caller uses them for the asks' purposes).
        """
        self._reserved.pop(peer, None)
        gone = [a for a in self._asks.values() if a.victim == peer]
        for ask in gone:
            del self._asks[ask.request_id]
        return gone

    def expire(self, now: float) -> list[Ask]:
        """Drop reservations past their expiry; remove and return the asks past their deadline."""
        for peer in [p for p, r in self._reserved.items() if r.expires_at <= now]:
            del self._reserved[peer]
        late = [a for a in self._asks.values() if a.deadline <= now]
        for ask in late:
            del self._asks[ask.request_id]
        return late

    def clear(self) -> None:
        """Forget every ask and reservation (the mesh is leaving)."""
        self._asks.clear()
        self._reserved.clear()
