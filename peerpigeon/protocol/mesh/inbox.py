"""What the mesh does with a gossip envelope from a neighbour, before the gossip layer exists.

Reference: data-plane.md sections 3.4 (the receive algorithm), 3.6 (subtypes) and 9.5 (key
exchange). Direct messages for us and ``chat`` broadcasts are delivered; key exchanges and
other subtypes are dropped after dedup (never shown to the application); nothing is relayed.
"""

from __future__ import annotations

import enum
from typing import Final

from peerpigeon.protocol.errors import DecodeError
from peerpigeon.protocol.frames import DEFAULT_GOSSIP_TTL, GossipMessage
from peerpigeon.protocol.ids import PeerId
from peerpigeon.protocol.wire import JsonObject, JsonValue, decode_json_object

from .events import MessageReceived

__all__ = ["Delivery", "Inbox", "is_control_content"]

# DM contents a JS peer handles internally and never shows the application (data-plane
# 3.6.4); we act on none of them (they let anyone inject signaling, W-CTL-2) and drop them.
_CONTROL_CONTENT_TYPES: Final = frozenset(
    {
        "signaling-relay",
        "peer-announce-relay",
        "bootstrap-keepalive",
        "client-peer-announcement",
        "cross-bootstrap-signaling",
    }
)
_KEY_EXCHANGE_SUBTYPES: Final = frozenset({"key_exchange", "key_exchange_response"})


class Delivery(enum.Enum):
    """What became of one envelope."""

    DELIVERED = "delivered"  # a MessageReceived for the application
    DUPLICATE = "duplicate"  # its id was seen already
    DROPPED = "dropped"  # other namespace, spent TTL, loop, not for us, or a control content
    IGNORED = "ignored"  # valid, for a later layer (key exchange, encrypted, media, ...)


def is_control_content(content: JsonValue) -> bool:
    """Whether a message content is one of the JS internal control objects (filtered)."""
    obj: JsonObject | None = None
    if isinstance(content, dict):
        obj = content
    elif isinstance(content, str) and content.startswith("{"):
        try:
            obj = decode_json_object(content)
        except DecodeError:
            obj = None
    return obj is not None and obj.get("type") in _CONTROL_CONTENT_TYPES


class Inbox:
    """The receive side of gossip for this layer, with a bounded, expiring seen-id cache.

    At ``max_seen`` the oldest id is forgotten; ids expire ``seen_ttl_s`` after insertion.
    """

    def __init__(self, me: PeerId, *, max_seen: int, seen_ttl_s: float) -> None:
        """Create an empty inbox for peer `me`."""
        self._me = me
        self._me_lower = me.lower()
        self._max_seen = max_seen
        self._seen_ttl_s = seen_ttl_s
        self._seen: dict[str, float] = {}  # id -> expiry; insertion order == expiry order

    def __len__(self) -> int:
        return len(self._seen)

    def remember(self, msg_id: str, now: float) -> None:
        """Mark `msg_id` as seen (our own messages too)."""
        seen = self._seen
        if msg_id in seen:
            return
        if len(seen) >= self._max_seen:
            del seen[next(iter(seen))]
        seen[msg_id] = now + self._seen_ttl_s

    def expire(self, now: float) -> None:
        """Forget the ids whose time is up."""
        seen = self._seen
        for msg_id, expiry in list(seen.items()):
            if expiry > now:
                break
            del seen[msg_id]

    def receive(
        self, via: PeerId, msg: GossipMessage, network: str, now: float
    ) -> tuple[Delivery, MessageReceived | None]:
        """Apply the reference's receive checks to `msg` from neighbour `via`."""
        if msg.network != network:
            return Delivery.DROPPED, None
        if msg.id in self._seen:  # dedup before any other check, as JS does
            return Delivery.DUPLICATE, None
        ttl = msg.ttl
        if (ttl is not None and ttl <= 0) or self._me in (msg.path or ()):
            return Delivery.DROPPED, None
        self.remember(msg.id, now)
        if msg.subtype in _KEY_EXCHANGE_SUBTYPES:
            # JS peers with crypto on send these when a channel opens; without crypto we
            # neither answer nor show them (relaying comes with the gossip layer).
            return Delivery.IGNORED, None
        if msg.subtype == "dm":
            to = msg.to
            if to is None or to.strip().lower() != self._me_lower:
                return Delivery.DROPPED, None  # routing comes with the gossip layer
            direct = True
        elif msg.subtype == "chat":
            # JS delivers only non-empty strings (data-plane 3.4 step 10).
            if not isinstance(msg.content, str) or not msg.content.strip():
                return Delivery.DROPPED, None
            direct = False
        else:
            return Delivery.IGNORED, None  # encrypted, media, ...: later layers
        if is_control_content(msg.content):
            return Delivery.DROPPED, None
        hops: int | float = 0 if ttl is None else max(0, DEFAULT_GOSSIP_TTL - ttl)
        if isinstance(hops, float) and hops.is_integer():
            hops = int(hops)
        event = MessageReceived(
            from_peer=msg.from_peer,
            content=msg.content,
            timestamp=msg.timestamp,
            message_id=msg.id,
            hops=hops,
            direct=direct,
            encrypted=False,
            via=via,
        )
        return Delivery.DELIVERED, event
