"""What a `Gossip` machine asks of its owner (actions) and reports (events, counters).

Event names and payloads mirror the JS mesh events ``messageReceived`` and
``binaryMessageReceived`` (data-plane.md sections 5.3 and 12) in snake_case.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias

from peerpigeon.protocol.ids import PeerId
from peerpigeon.protocol.wire import JsonObject, JsonValue

__all__ = [
    "BinaryMessageReceived",
    "GossipAction",
    "GossipEvent",
    "GossipRejected",
    "GossipSend",
    "GossipStats",
    "MessageReceived",
    "StreamChunkPaired",
]


@dataclass(frozen=True, slots=True)
class GossipSend:
    """Send one frame on `peer`'s data channel: text (JSON) or binary, in order."""

    peer: PeerId
    data: str | bytes = field(repr=False)


GossipAction: TypeAlias = GossipSend


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A message for the application (``messageReceived``); each id is delivered once.

    ``from_peer`` is the claimed origin (unauthenticated, as in JS); ``via`` the neighbour
    it came from; ``hops`` the relays between the origin and us (``len(path) - 1``; JS
    computes ``10 - ttl``, the same for JS traffic); ``direct`` is true for direct messages.
    """

    from_peer: PeerId
    content: JsonValue
    timestamp: int | float | None
    message_id: str
    hops: int | float
    direct: bool
    encrypted: bool
    via: PeerId


@dataclass(frozen=True, slots=True, kw_only=True)
class BinaryMessageReceived:
    """Binary data for the application (``binaryMessageReceived``).

    ``from_peer`` is the neighbour that sent it (JS's ``from``), or the claimed origin of a
    broadcast (``broadcast`` true, ours); ``timestamp`` is our wall clock at receipt in ms,
    as in JS; ``size`` is ``len(data)``; ``message_id`` and ``hops`` are set for
    broadcasts (``None`` and 0 for data from a neighbour).
    """

    from_peer: PeerId
    data: bytes = field(repr=False)
    size: int
    timestamp: int
    via: PeerId
    broadcast: bool = False
    message_id: str | None = None
    hops: int = 0


@dataclass(frozen=True, slots=True)
class GossipRejected:
    """A frame from neighbour `peer` was dropped as invalid (`field`: `reason`)."""

    peer: PeerId
    field: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamChunkPaired:
    """A binary stream chunk paired with its header: for the stream layer (data-plane 5.2)."""

    peer: PeerId
    header: JsonObject
    data: bytes = field(repr=False)


GossipEvent: TypeAlias = (
    MessageReceived | BinaryMessageReceived | GossipRejected | StreamChunkPaired
)


@dataclass(frozen=True, slots=True, kw_only=True)
class GossipStats:
    """Read-only counters of one `Gossip` (a snapshot). Nothing is lost without a count."""

    received: int = 0  # gossip envelopes from neighbours
    delivered: int = 0  # MessageReceived emitted
    duplicates: int = 0  # id seen already
    rejected: int = 0  # invalid: GossipRejected emitted
    other_network: int = 0
    loops: int = 0  # our ID already in the path (our own messages coming back too)
    stale: int = 0  # older than max_message_age_s
    filtered: int = 0  # chat with bad content, DM control contents (not delivered, not relayed)
    ignored: int = 0  # for us, but for a later layer (dht-routing) or nobody (key exchange)
    originated: int = 0  # messages we sent as origin
    relayed: int = 0  # frames sent on behalf of others
    ttl_exhausted: int = 0  # relay copies not sent: no TTL left (neighbours were waiting)
    path_exhausted: int = 0  # relay copies not sent: the path would exceed its bound
    too_large: int = 0  # copies not sent: bigger than a channel's maximum
    dm_routed: int = 0  # direct messages forwarded towards their target
    dm_local_minima: int = 0  # ... to a neighbour no closer than us (the fallback)
    dm_dead_ends: int = 0  # ... that could go nowhere (every neighbour on the path)
    binary_delivered: int = 0
    binary_relayed: int = 0
    binary_discarded: int = 0  # payloads paired with an unusable or unwanted header
    hellos_received: int = 0
    seen_evicted: int = 0  # ids forgotten at max_seen before their time
