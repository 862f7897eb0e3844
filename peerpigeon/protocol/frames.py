"""Data-channel framing: JSON text frames <-> typed values; stateless, strict codecs.

Wire shapes: reference/data-plane.md sections 1.1 (receive dispatch), 3.1 (gossip envelope,
which also carries direct messages), 4.1 (eviction notice) and 4.2 (``signaling`` wrapper).
`decode_data_frame` turns one text frame into a `DataFrame` or raises `DecodeError` naming the
field; frames of kinds that later layers own (binary headers, streams, DHT, the receive-only
hub-era types) decode to `OtherFrame`, so those layers can add their own dataclasses here
without changing the dispatch.

Unlike the reference, a frame is gossip only when its ``type`` is ``"gossip"``: JS also treats
any frame of an unknown type that has gossip-like fields as gossip (data-plane W-GOS-8).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from typing import Final, TypeAlias

from .errors import DecodeError, UsageError
from .ids import PeerId, is_valid_peer_id, parse_peer_id
from .wire import GLOBAL_NETWORK, JsonObject, JsonValue, decode_json_object

__all__ = [
    "BINARY_HEADER_TYPE",
    "DEFAULT_EVICTION_REASON",
    "DEFAULT_GOSSIP_TTL",
    "DEFAULT_MAX_DATA_FRAME_BYTES",
    "FILTERED_TYPES",
    "GOSSIP_RESERVED_KEYS",
    "MAX_GOSSIP_ID_LENGTH",
    "MAX_PATH_LENGTH",
    "MAX_SUBTYPE_LENGTH",
    "STREAM_TYPE_PREFIX",
    "DataFrame",
    "EvictionNotice",
    "GossipMessage",
    "OtherFrame",
    "SignalingEnvelope",
    "decode_data_frame",
    "decode_eviction",
    "decode_gossip",
    "decode_signaling",
    "encode_data_frame",
    "encode_eviction",
    "encode_gossip",
    "encode_signaling",
]

DEFAULT_GOSSIP_TTL: Final = 10  # the reference's maxTTL (data-plane 3.7)
DEFAULT_MAX_DATA_FRAME_BYTES: Final = 262_144  # the a=max-message-size Chrome and aiortc offer
DEFAULT_EVICTION_REASON: Final = "topology optimization"
MAX_GOSSIP_ID_LENGTH: Final = 128  # JS ids are 32 hex characters
MAX_SUBTYPE_LENGTH: Final = 64
MAX_PATH_LENGTH: Final = 64  # a path grows by one per hop and the TTL is 10
BINARY_HEADER_TYPE: Final = "__BINARY__"
STREAM_TYPE_PREFIX: Final = "__STREAM_"
# Receive-only types of the hub era and top-level renegotiation (data-plane 4.3, 4.4).
FILTERED_TYPES: Final = frozenset(
    {
        "signaling-relay",
        "peer-announce-relay",
        "bootstrap-keepalive",
        "client-peer-announcement",
        "cross-bootstrap-signaling",
        "renegotiation-offer",
        "renegotiation-answer",
    }
)
GOSSIP_RESERVED_KEYS: Final = (
    "id",
    "type",
    "subtype",
    "content",
    "from",
    "to",
    "networkName",
    "timestamp",
    "ttl",
    "path",
)


# --- values ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class GossipMessage:
    """One gossip envelope (broadcast, direct message, key exchange, ...).

    ``None`` means "absent on the wire" for every optional field; ``content`` is always
    present (it may be JSON ``null``). ``to`` is kept as sent (JS compares it trimmed and
    lower-cased). ``extra`` holds the fields this codec does not know,
    in arrival order; a relay keeps them (data-plane 3.1).
    """

    id: str
    subtype: str
    content: JsonValue
    from_peer: PeerId
    to: str | None = None
    network_name: str | None = None
    timestamp: int | float | None = None
    ttl: int | float | None = None
    path: tuple[str, ...] | None = None
    extra: JsonObject = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Refuse ``extra`` keys that would shadow an envelope field."""
        for key in self.extra:
            if key in GOSSIP_RESERVED_KEYS:
                raise UsageError("extra", f"{key!r} is an envelope field")

    @property
    def network(self) -> str:
        """The namespace: ``networkName``, or ``"global"`` when absent (as JS reads it)."""
        return self.network_name or GLOBAL_NETWORK

    def relayed_by(self, peer_id: str) -> GossipMessage:
        """The copy a relay sends: ``ttl`` minus one and `peer_id` appended to ``path``."""
        ttl = None if self.ttl is None else self.ttl - 1
        return replace(self, ttl=ttl, path=(*(self.path or ()), peer_id))


@dataclass(frozen=True, slots=True)
class EvictionNotice:
    """``{"type":"eviction","reason":…,"from":…}``: the sender is about to close the link."""

    reason: str | None
    from_peer: str | None = None


@dataclass(frozen=True, slots=True)
class SignalingEnvelope:
    """The ``signaling`` wrapper: an inner signaling message sent over the data channel.

    ``message`` is the inner object as received (its ``type`` is a string); renegotiation
    uses it (data-plane 4.2).
    """

    message: JsonObject
    from_peer_id: str | None = None
    timestamp: int | float | None = None

    @property
    def inner_type(self) -> str:
        """The inner message's ``type``."""
        kind = self.message.get("type")
        return kind if isinstance(kind, str) else ""


@dataclass(frozen=True, slots=True)
class OtherFrame:
    """A well-formed frame of a type no codec here handles yet (kept whole for later layers).

    ``frame_type`` is its ``type``: ``__BINARY__``, ``__STREAM_*``, ``dht``, one of
    `FILTERED_TYPES`, or a type nobody knows.
    """

    frame_type: str
    body: JsonObject


DataFrame: TypeAlias = GossipMessage | EvictionNotice | SignalingEnvelope | OtherFrame


# --- decoding ----------------------------------------------------------------------------


def _opt_str(obj: JsonObject, key: str, *, max_length: int | None = None) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise DecodeError(key, "must be a string")
    if max_length is not None and len(value) > max_length:
        raise DecodeError(key, f"longer than {max_length} characters")
    return value


def _opt_number(obj: JsonObject, key: str) -> int | float | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DecodeError(key, "must be a finite number")
    return value


def _required_str(obj: JsonObject, key: str, max_length: int) -> str:
    value = obj.get(key)
    if value is None:
        raise DecodeError(key, "is required")
    if not isinstance(value, str):
        raise DecodeError(key, "must be a string")
    if not value:
        raise DecodeError(key, "must not be empty")
    if len(value) > max_length:
        raise DecodeError(key, f"longer than {max_length} characters")
    return value


def decode_gossip(obj: JsonObject) -> GossipMessage:
    """Validate a parsed ``gossip`` object; raises `DecodeError` naming the field."""
    if obj.get("type") != "gossip":
        raise DecodeError("type", "must be 'gossip'")
    msg_id = _required_str(obj, "id", MAX_GOSSIP_ID_LENGTH)
    subtype = _required_str(obj, "subtype", MAX_SUBTYPE_LENGTH)
    if "content" not in obj:  # JSON null is fine, a missing key is not (data-plane 3.4)
        raise DecodeError("content", "is required")
    sender = parse_peer_id(obj.get("from"), "from")
    to = _opt_str(obj, "to", max_length=MAX_GOSSIP_ID_LENGTH)
    if to is not None and not is_valid_peer_id(to.strip()):
        raise DecodeError("to", "must be 40 hex characters")
    raw_path = obj.get("path")
    path: tuple[str, ...] | None = None
    if raw_path is not None:
        if not isinstance(raw_path, list):
            raise DecodeError("path", "must be an array")
        if len(raw_path) > MAX_PATH_LENGTH:
            raise DecodeError("path", f"longer than {MAX_PATH_LENGTH} entries")
        for hop in raw_path:
            if not isinstance(hop, str) or len(hop) > MAX_GOSSIP_ID_LENGTH:
                raise DecodeError("path", "entries must be peer ID strings")
        path = tuple(hop for hop in raw_path if isinstance(hop, str))
    extra = {key: value for key, value in obj.items() if key not in GOSSIP_RESERVED_KEYS}
    return GossipMessage(
        id=msg_id,
        subtype=subtype,
        content=obj["content"],
        from_peer=sender,
        to=to,
        network_name=_opt_str(obj, "networkName", max_length=MAX_GOSSIP_ID_LENGTH),
        timestamp=_opt_number(obj, "timestamp"),
        ttl=_opt_number(obj, "ttl"),
        path=path,
        extra=extra,
    )


def decode_eviction(obj: JsonObject) -> EvictionNotice:
    """Validate a parsed ``eviction`` object; raises `DecodeError` naming the field."""
    if obj.get("type") != "eviction":
        raise DecodeError("type", "must be 'eviction'")
    return EvictionNotice(
        reason=_opt_str(obj, "reason", max_length=1024),
        from_peer=_opt_str(obj, "from", max_length=MAX_GOSSIP_ID_LENGTH),
    )


def decode_signaling(obj: JsonObject) -> SignalingEnvelope:
    """Validate a parsed ``signaling`` wrapper; raises `DecodeError` naming the field."""
    if obj.get("type") != "signaling":
        raise DecodeError("type", "must be 'signaling'")
    inner = obj.get("data")
    if not isinstance(inner, dict):
        raise DecodeError("data", "must be a JSON object")
    inner_type = inner.get("type")
    if not isinstance(inner_type, str) or not inner_type:
        raise DecodeError("data.type", "must be a non-empty string")
    return SignalingEnvelope(
        message=inner,
        from_peer_id=_opt_str(obj, "fromPeerId", max_length=MAX_GOSSIP_ID_LENGTH),
        timestamp=_opt_number(obj, "timestamp"),
    )


def decode_data_frame(
    raw: str | bytes, *, max_bytes: int = DEFAULT_MAX_DATA_FRAME_BYTES
) -> DataFrame:
    """Decode one text frame of the data channel; raises `DecodeError` naming the field.

    `max_bytes` bounds the frame's UTF-8 size (field ``frame``).
    """
    obj = decode_json_object(raw, max_bytes=max(max_bytes, 1))
    kind = obj.get("type")
    if kind is None:
        raise DecodeError("type", "is required")
    if not isinstance(kind, str):
        raise DecodeError("type", "must be a string")
    if kind == "gossip":
        return decode_gossip(obj)
    if kind == "eviction":
        return decode_eviction(obj)
    if kind == "signaling":
        return decode_signaling(obj)
    return OtherFrame(kind, obj)


# --- encoding ----------------------------------------------------------------------------


def _dumps(obj: JsonObject) -> str:
    try:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    except (ValueError, TypeError, RecursionError):
        raise UsageError("content", "is not encodable as JSON") from None


def encode_gossip(msg: GossipMessage) -> str:
    """Encode a gossip envelope as compact JSON (absent fields left out, ``extra`` last).

    Raises `UsageError` when the content is not JSON.
    """
    out: JsonObject = {
        "id": msg.id,
        "type": "gossip",
        "subtype": msg.subtype,
        "content": msg.content,
        "from": msg.from_peer,
    }
    if msg.to is not None:
        out["to"] = msg.to
    if msg.network_name is not None:
        out["networkName"] = msg.network_name
    if msg.timestamp is not None:
        out["timestamp"] = msg.timestamp
    if msg.ttl is not None:
        out["ttl"] = msg.ttl
    if msg.path is not None:
        out["path"] = list(msg.path)
    out.update(msg.extra)
    return _dumps(out)


def encode_eviction(notice: EvictionNotice) -> str:
    """Encode an eviction notice (``reason`` and ``from`` left out when ``None``)."""
    out: JsonObject = {"type": "eviction"}
    if notice.reason is not None:
        out["reason"] = notice.reason
    if notice.from_peer is not None:
        out["from"] = notice.from_peer
    return _dumps(out)


def encode_signaling(envelope: SignalingEnvelope) -> str:
    """Encode a ``signaling`` wrapper; raises `UsageError` without a string inner ``type``."""
    if not envelope.inner_type:
        raise UsageError("message.type", "must be a non-empty string")
    out: JsonObject = {"type": "signaling", "data": envelope.message}
    if envelope.from_peer_id is not None:
        out["fromPeerId"] = envelope.from_peer_id
    if envelope.timestamp is not None:
        out["timestamp"] = envelope.timestamp
    return _dumps(out)


def encode_data_frame(frame: DataFrame) -> str:
    """Encode any `DataFrame` (an `OtherFrame` is written back as its body)."""
    match frame:
        case GossipMessage():
            return encode_gossip(frame)
        case EvictionNotice():
            return encode_eviction(frame)
        case SignalingEnvelope():
            return encode_signaling(frame)
        case OtherFrame():
            return _dumps(frame.body)
