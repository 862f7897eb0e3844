"""Peer IDs: 40 hex characters (160 bits), XOR distance and k-closest selection.

See reference/signaling-and-topology.md section 3.1. IDs are kept exactly as received:
the reference compares ID strings exactly (an upper- and a lower-case spelling are two
peers) and its initiator rule compares them as strings. Generated IDs are lowercase.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable
from typing import Final, NewType

from .errors import DecodeError
from .rand import Entropy

__all__ = [
    "PEER_ID_LENGTH",
    "PeerId",
    "generate_peer_id",
    "is_initiator",
    "is_valid_peer_id",
    "k_closest",
    "parse_peer_id",
    "xor_distance",
]

PeerId = NewType("PeerId", str)

PEER_ID_LENGTH: Final = 40
_PEER_ID_RE: Final = re.compile(r"[a-fA-F0-9]{40}")


def is_valid_peer_id(value: object) -> bool:
    """Tell whether `value` is a string of exactly 40 hex characters (either case)."""
    return isinstance(value, str) and _PEER_ID_RE.fullmatch(value) is not None


def parse_peer_id(value: object, field: str = "peerId") -> PeerId:
    """Return `value` as a `PeerId`, unchanged, or raise `DecodeError` naming `field`."""
    if not isinstance(value, str):
        raise DecodeError(field, "must be a string")
    if _PEER_ID_RE.fullmatch(value) is None:
        raise DecodeError(field, "must be 40 hex characters")
    return PeerId(value)


def generate_peer_id(entropy: Entropy) -> PeerId:
    """Return a fresh random lowercase ID from 20 bytes of `entropy`."""
    return PeerId(entropy.token_bytes(20).hex())


def xor_distance(a: str, b: str) -> int:
    """XOR distance of two IDs read as 160-bit big-endian integers."""
    return int(a, 16) ^ int(b, 16)


def k_closest(target: str, candidates: Iterable[PeerId], k: int) -> list[PeerId]:
    """Return the `k` candidates XOR-closest to `target`, closest first.

    Ties (only possible between spellings of one number) keep the candidates' order.
    """
    if k <= 0:
        return []
    t = int(target, 16)
    indexed = ((int(c, 16) ^ t, i, c) for i, c in enumerate(candidates))
    return [c for _, _, c in heapq.nsmallest(k, indexed)]


def is_initiator(me: str, other: str) -> bool:
    """The reference's initiator rule: the larger ID as a string sends the offer."""
    return me > other
