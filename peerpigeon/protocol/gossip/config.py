"""`GossipConfig`: the gossip layer's TTL, caches and size bounds.

Reference: data-plane.md sections 3.7 (gossip numbers), 5 (binary) and 13; the bounds are
ours (the reference has none, W-GOS-2, W-GOS-4, W-BIN-2, W-BIN-3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from peerpigeon.protocol.errors import ConfigError
from peerpigeon.protocol.frames import DEFAULT_GOSSIP_TTL, MAX_PATH_LENGTH

__all__ = ["GossipConfig"]

_MAX_TTL_LIMIT = 1024


def _count(value: object, name: str, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(name, "must be an integer")
    if value < low or (high is not None and value > high):
        raise ConfigError(name, f"must be {low}..{high}" if high else f"must be at least {low}")


def _seconds(value: object, name: str, *, zero_ok: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(name, "must be a finite number")
    if value < 0 or (value == 0 and not zero_ok):
        raise ConfigError(name, "must be >= 0" if zero_ok else "must be greater than 0")


@dataclass(frozen=True, slots=True, kw_only=True)
class GossipConfig:
    """Settings of one `Gossip` machine; validated on construction (raises `ConfigError`).

    Attributes:
        max_ttl: the TTL of the messages we originate and the largest TTL we accept (a
            frame above it is rejected). JS peers always get at most 10 (they report
            ``10 - ttl`` as hops); a Python neighbour gets at most the ``maxTtl`` of its
            hello. Raise it among Python peers when the mesh is deeper than 10 hops.
        max_path_length: the longest ``path`` accepted; a relay never sends a longer one.
            Must exceed ``max_ttl``.
        max_seen: ids remembered for dedup; at the bound the oldest is forgotten.
        seen_ttl_s: how long an id is remembered (the reference's 5 minutes).
        max_message_age_s: a message whose ``timestamp`` is older than this (by our wall
            clock) is dropped, so that a copy arriving after its id was forgotten is not
            delivered again. Off (``None``) by default: timestamps are the sender's clock,
            so a peer whose clock is this far behind would be cut off, and a malicious
            neighbour can rewrite the timestamp anyway (nothing is signed, W-GOS-1).
        max_message_bytes: the largest gossip frame we originate, path growth on the way
            included (each hop adds 43 bytes); bigger ones raise `UsageError`. The default
            fits every data channel (aiortc before 1.10 allowed 65,536 bytes).
        max_binary_bytes: the largest binary payload sent or accepted to or from one
            neighbour (also capped by the channel's negotiated maximum).
        max_broadcast_binary_bytes: the largest binary broadcast we originate or accept.
        max_pending_binary: binary headers awaiting their payload per channel; one more
            is rejected and the queue cleared (the peer broke the pairing rule).
        max_neighbour_list: neighbours kept from one hello.
        advert_delay_s: after our links change, wait this long (coalescing) before sending
            the new neighbour list to the Python neighbours.
    """

    max_ttl: int = DEFAULT_GOSSIP_TTL
    max_path_length: int = MAX_PATH_LENGTH
    max_seen: int = 10_000
    seen_ttl_s: float = 300.0
    max_message_age_s: float | None = None
    max_message_bytes: int = 65_536
    max_binary_bytes: int = 262_144
    max_broadcast_binary_bytes: int = 65_536
    max_pending_binary: int = 16
    max_neighbour_list: int = 50
    advert_delay_s: float = 0.5

    def __post_init__(self) -> None:
        """Validate every field."""
        _count(self.max_ttl, "max_ttl", 1, _MAX_TTL_LIMIT)
        _count(self.max_path_length, "max_path_length", 2, _MAX_TTL_LIMIT + 1)
        if self.max_path_length <= self.max_ttl:
            raise ConfigError("max_path_length", "must exceed max_ttl")
        _count(self.max_seen, "max_seen", 1)
        _seconds(self.seen_ttl_s, "seen_ttl_s")
        if self.max_message_age_s is not None:
            _seconds(self.max_message_age_s, "max_message_age_s")
        _count(self.max_message_bytes, "max_message_bytes", 1024)
        _count(self.max_binary_bytes, "max_binary_bytes", 0)
        _count(self.max_broadcast_binary_bytes, "max_broadcast_binary_bytes", 0)
        _count(self.max_pending_binary, "max_pending_binary", 1)
        _count(self.max_neighbour_list, "max_neighbour_list", 0, 50)
        _seconds(self.advert_delay_s, "advert_delay_s", zero_ok=True)
