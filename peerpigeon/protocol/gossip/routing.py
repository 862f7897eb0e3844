"""Choosing the next hop of a direct message: greedy XOR with neighbour-of-neighbour lookahead.

Reference: data-plane.md section 3.5 (JS sends a DM to the neighbour(s) XOR-closest to the
target, with no progress check, W-GOS-5). Here, among the neighbours not on the path:

1. the target itself, if it is a neighbour;
2. else the neighbour whose best *reachable* distance is smallest: its own XOR distance
   to the target, or that of one of its neighbours (a Python neighbour tells us its
   neighbours in its hello), so a target two hops away is found, and greedy routing sees
   one step further (Manku, Naor and Wieder's neighbour-of-neighbour greedy routing);
   a neighbour known to lead nowhere (all its neighbours are on the path) comes last;
3. that neighbour is taken even when it is no closer than we are (a *local minimum*: the
   fallback), so the message moves on rather than dying; every peer forwards an id once
   and the path excludes visited peers, so the walk never loops and ends within the TTL.

Pure and deterministic: ties go to the smaller XOR distance, then to the smaller ID.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import dataclass

from peerpigeon.protocol.ids import PeerId

__all__ = ["Hop", "RouteCandidate", "next_hop"]


@dataclass(frozen=True, slots=True)
class RouteCandidate:
    """A neighbour we could forward to: its ID, as an integer, and its known neighbours."""

    peer: PeerId
    value: int
    onward: tuple[int, ...] | None  # None: unknown (a JS peer, or no hello yet)


@dataclass(frozen=True, slots=True)
class Hop:
    """The chosen neighbour; ``progress`` is false at a local minimum (the fallback)."""

    peer: PeerId
    progress: bool


def next_hop(
    me: int, target: int, candidates: Sequence[RouteCandidate], visited: Container[int]
) -> Hop | None:
    """The neighbour to forward a direct message for `target` to, or ``None`` (dead end).

    `candidates` are the open neighbours minus the sender and the peers on the path;
    `visited` holds the path (as integers), which onward lookahead skips.
    """
    best_key: tuple[bool, int, int, int] | None = None
    best: RouteCandidate | None = None
    for cand in candidates:
        dist = cand.value ^ target
        if dist == 0:
            return Hop(cand.peer, True)
        reach = dist
        dead = False
        if cand.onward is not None:
            dead = True
            for other in cand.onward:
                if other == me or other in visited:
                    continue
                dead = False
                d = other ^ target
                if d < reach:
                    reach = d
        key = (dead, reach, dist, cand.value)
        if best_key is None or key < best_key:
            best_key, best = key, cand
    if best is None or best_key is None:
        return None
    return Hop(best.peer, best_key[1] < (me ^ target))
