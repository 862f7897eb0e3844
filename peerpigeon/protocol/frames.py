"""Data-channel framing: JSON text frames <-> typed values; stateless, strict codecs.

Wire shapes: reference/data-plane.md sections 1.1 (receive dispatch), 3.1 (gossip envelope,
which also carries direct messages), 4.1 (eviction notice), 4.2 (``signaling`` wrapper) and
5 (binary header). `decode_data_frame` turns one text frame into a `DataFrame` or raises
`DecodeError` naming the field; frames of kinds that later layers own (streams, DHT, the
receive-only hub-era types) decode to `OtherFrame`, so those layers can add their own
dataclasses here without changing the dispatch.

Two frame types are this port's own, spoken between Python peers only (a JS peer hands an
unknown ``type`` to its gossip handler, which drops it for lack of ``id``/``subtype``):

* ``__PP_HELLO__`` (`Hello`): sent on every new channel; says "I am a Python peer", the
  largest TTL it accepts, its features and its current neighbours (for routing).
* ``__PP_BINARY__`` (`BinaryGossipHeader`): a gossip envelope without ``content`` whose
  payload is the next binary frame: binary broadcast. It is only sent to peers that said
  hello, and pairs with its payload like ``__BINARY__`` (data-plane 5.2).
* ``__PP_EVICT_ASK__``, ``__PP_EVICT_ANSWER__``, ``__PP_EVICT_CANCEL__`` (`EvictionAsk`,
  `EvictionAnswer`, `EvictionCancel`): the eviction agreement (docs/eviction.md), sent
  only to peers whose hello lists the ``evict-ask`` feature. Their request id is
  ``requestId``, not ``id``, so a JS peer could not mistake one for gossip.

A binary header that cannot be used (bad ``size``, bad envelope) still decodes, to
`BadBinaryHeader`: its payload follows on the channel and must be paired and dropped, or
every later binary message on that channel would be misattributed (data-plane W-BIN-2).

Unlike the reference, a frame is gossip only when its ``type`` is ``"gossip"``: JS also treats
any frame of an unknown type that has gossip-like fields as gossip (data-plane W-GOS-8).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from typing import Final, TypeAlias

from peerpigeon.protocol.fields import opt_number, opt_str

from .errors import DecodeError, UsageError
from .ids import PeerId, is_valid_peer_id, parse_peer_id
from .wire import GLOBAL_NETWORK, JsonObject, JsonValue, decode_json_object

__all__ = [
    "BINARY_GOSSIP_TYPE",
    "BINARY_HEADER_TYPE",
    "DEFAULT_EVICTION_REASON",
    "DEFAULT_GOSSIP_TTL",
    "DEFAULT_MAX_DATA_FRAME_BYTES",
    "EVICT_ANSWER_TYPE",
    "EVICT_ASK_TYPE",
    "EVICT_CANCEL_TYPE",
    "FILTERED_TYPES",
    "GOSSIP_RESERVED_KEYS",
    "HELLO_TYPE",
    "HELLO_VERSION",
    "JS_MAX_TTL",
    "MAX_BINARY_SIZE",
    "MAX_EVICT_REQUEST_ID_LENGTH",
    "MAX_GOSSIP_ID_LENGTH",
    "MAX_HELLO_FEATURES",
    "MAX_HELLO_NEIGHBOURS",
    "MAX_PATH_LENGTH",
    "MAX_SUBTYPE_LENGTH",
    "STREAM_CHUNK_TYPE",
    "STREAM_TYPE_PREFIX",
    "BadBinaryHeader",
    "BinaryGossipHeader",
    "BinaryHeader",
    "DataFrame",
    "EvictionAnswer",
    "EvictionAsk",
    "EvictionCancel",
    "EvictionNotice",
    "GossipMessage",
    "Hello",
    "OtherFrame",
    "SignalingEnvelope",
    "decode_data_frame",
    "decode_data_object",
    "decode_eviction",
    "decode_gossip",
    "decode_signaling",
    "encode_binary_gossip_header",
    "encode_binary_header",
    "encode_data_frame",
    "encode_eviction",
    "encode_eviction_answer",
    "encode_eviction_ask",
    "encode_eviction_cancel",
    "encode_gossip",
    "encode_hello",
    "encode_relayed_gossip",
    "encode_signaling",
    "expects_payload",
]

DEFAULT_GOSSIP_TTL: Final = 10  # the reference's maxTTL (data-plane 3.7)
JS_MAX_TTL: Final = 10  # a JS peer reports 10 - ttl as hops: never send it more
DEFAULT_MAX_DATA_FRAME_BYTES: Final = 262_144  # the a=max-message-size Chrome and aiortc offer
DEFAULT_EVICTION_REASON: Final = "topology optimization"
MAX_GOSSIP_ID_LENGTH: Final = 128  # JS ids are 32 hex characters
MAX_SUBTYPE_LENGTH: Final = 64
MAX_PATH_LENGTH: Final = 64  # a path grows by one per hop and the TTL is 10
BINARY_HEADER_TYPE: Final = "__BINARY__"
BINARY_GOSSIP_TYPE: Final = "__PP_BINARY__"
HELLO_TYPE: Final = "__PP_HELLO__"
HELLO_VERSION: Final = 1
EVICT_ASK_TYPE: Final = "__PP_EVICT_ASK__"
EVICT_ANSWER_TYPE: Final = "__PP_EVICT_ANSWER__"
EVICT_CANCEL_TYPE: Final = "__PP_EVICT_CANCEL__"
MAX_EVICT_REQUEST_ID_LENGTH: Final = 64  # ours are 16 hex characters
MAX_HELLO_NEIGHBOURS: Final = 50  # max_peers is 1..50
MAX_HELLO_FEATURES: Final = 16
MAX_BINARY_SIZE: Final = 1 << 31  # a size field above this is nonsense (SCTP tops at 2**32)
STREAM_TYPE_PREFIX: Final = "__STREAM_"
STREAM_CHUNK_TYPE: Final = "__STREAM_CHUNK__"
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
_RESERVED: Final = frozenset(GOSSIP_RESERVED_KEYS)


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
        extra = self.extra
        if extra:
            for key in extra:
                if key in _RESERVED:
                    raise UsageError("extra", f"{key!r} is an envelope field")

    @property
    def network(self) -> str:
        """The namespace: ``networkName``, or ``"global"`` when absent (as JS reads it)."""
        return self.network_name or GLOBAL_NETWORK

    def relayed_by(self, peer_id: str) -> GossipMessage:
        """The copy a relay sends: ``ttl`` minus one and `peer_id` appended to ``path``."""
        ttl = self.ttl
        return GossipMessage(  # not dataclasses.replace: this is the relay's hot path
            id=self.id,
            subtype=self.subtype,
            content=self.content,
            from_peer=self.from_peer,
            to=self.to,
            network_name=self.network_name,
            timestamp=self.timestamp,
            ttl=None if ttl is None else ttl - 1,
            path=(*(self.path or ()), peer_id),
            extra=self.extra,
        )


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
class BinaryHeader:
    """``{"type":"__BINARY__","size":N}``: the next binary frame is a payload of N bytes."""

    size: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BinaryGossipHeader:
    """``__PP_BINARY__`` (ours): a broadcast whose payload is the next binary frame.

    The fields are the gossip envelope's (data-plane 3.1) without ``subtype`` and
    ``content``; ``size`` is the payload's length. ``extra`` keeps unknown fields.
    """

    id: str
    from_peer: PeerId
    size: int
    network_name: str | None = None
    timestamp: int | float | None = None
    ttl: int | float | None = None
    path: tuple[str, ...] | None = None
    extra: JsonObject = field(default_factory=dict)

    @property
    def network(self) -> str:
        """The namespace: ``networkName``, or ``"global"`` when absent."""
        return self.network_name or GLOBAL_NETWORK

    def relayed_by(self, peer_id: str) -> BinaryGossipHeader:
        """The copy a relay sends: ``ttl`` minus one and `peer_id` appended to ``path``."""
        ttl = None if self.ttl is None else self.ttl - 1
        return replace(self, ttl=ttl, path=(*(self.path or ()), peer_id))


@dataclass(frozen=True, slots=True)
class BadBinaryHeader:
    """A binary header (``__BINARY__`` or ``__PP_BINARY__``) that cannot be used.

    Its payload still follows: the receiver pairs it with this header and drops it.
    """

    frame_type: str
    field: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Hello:
    """``__PP_HELLO__`` (ours): a Python peer's capabilities and neighbours.

    ``max_ttl`` is the largest TTL it accepts (senders cap what they send it);
    ``neighbours`` its open links when sent (for neighbour-of-neighbour routing, and as its
    degree: an evictor spares a neighbour that would drop below its ``min_peers``, the
    optional ``minPeers`` key; absent from older Python peers).
    """

    from_peer: PeerId
    version: int = HELLO_VERSION
    max_ttl: int = DEFAULT_GOSSIP_TTL
    features: tuple[str, ...] = ()
    neighbours: tuple[PeerId, ...] = ()
    min_peers: int | None = None


@dataclass(frozen=True, slots=True)
class EvictionAsk:
    """``__PP_EVICT_ASK__`` (ours): "may I evict you?"; the victim answers `request_id`."""

    from_peer: PeerId
    request_id: str


@dataclass(frozen=True, slots=True)
class EvictionAnswer:
    """``__PP_EVICT_ANSWER__`` (ours): the victim's answer to the ask `request_id`.

    ``accept`` true: the victim reserved the link and stays at or above its
    ``min_peers`` once it is gone; false: it does not agree (the link must stay).
    """

    from_peer: PeerId
    request_id: str
    accept: bool


@dataclass(frozen=True, slots=True)
class EvictionCancel:
    """``__PP_EVICT_CANCEL__`` (ours): the evictor will not evict after all (ask `request_id`)."""

    from_peer: PeerId
    request_id: str


@dataclass(frozen=True, slots=True)
class OtherFrame:
    """A well-formed frame of a type no codec here handles yet (kept whole for later layers).

    ``frame_type`` is its ``type``: ``__BINARY__``, ``__STREAM_*``, ``dht``, one of
    `FILTERED_TYPES`, or a type nobody knows.
    """

    frame_type: str
    body: JsonObject


DataFrame: TypeAlias = (
    GossipMessage
    | EvictionNotice
    | SignalingEnvelope
    | BinaryHeader
    | BinaryGossipHeader
    | BadBinaryHeader
    | Hello
    | EvictionAsk
    | EvictionAnswer
    | EvictionCancel
    | OtherFrame
)


def expects_payload(frame: DataFrame) -> bool:
    """Whether a binary frame carrying this header's payload follows on the channel.

    True for every binary header, usable or not, and for a stream chunk sent as binary
    (data-plane 5.2: one FIFO of descriptors per channel, shared with streams).
    """
    if isinstance(frame, BinaryHeader | BinaryGossipHeader | BadBinaryHeader):
        return True
    return (
        isinstance(frame, OtherFrame)
        and frame.frame_type == STREAM_CHUNK_TYPE
        and frame.body.get("encoding") == "binary"
    )


# --- decoding ----------------------------------------------------------------------------


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


def _path(obj: JsonObject, max_path: int) -> tuple[str, ...] | None:
    raw_path = obj.get("path")
    if raw_path is None:
        return None
    if not isinstance(raw_path, list):
        raise DecodeError("path", "must be an array")
    if len(raw_path) > max_path:
        raise DecodeError("path", f"longer than {max_path} entries")
    for hop in raw_path:
        if not isinstance(hop, str) or len(hop) > MAX_GOSSIP_ID_LENGTH:
            raise DecodeError("path", "entries must be peer ID strings")
    return tuple(raw_path)  # type: ignore[arg-type]  # every entry is a string


def decode_gossip(obj: JsonObject, *, max_path: int = MAX_PATH_LENGTH) -> GossipMessage:
    """Validate a parsed ``gossip`` object; raises `DecodeError` naming the field.

    `max_path` bounds the ``path`` array (field ``path``).
    """
    get = obj.get
    if get("type") != "gossip":
        raise DecodeError("type", "must be 'gossip'")
    msg_id = get("id")
    if type(msg_id) is not str or not 0 < len(msg_id) <= MAX_GOSSIP_ID_LENGTH:
        msg_id = _required_str(obj, "id", MAX_GOSSIP_ID_LENGTH)
    subtype = get("subtype")
    if type(subtype) is not str or not 0 < len(subtype) <= MAX_SUBTYPE_LENGTH:
        subtype = _required_str(obj, "subtype", MAX_SUBTYPE_LENGTH)
    if "content" not in obj:  # JSON null is fine, a missing key is not (data-plane 3.4)
        raise DecodeError("content", "is required")
    sender = parse_peer_id(get("from"), "from")
    to = get("to")
    if to is not None:
        to = opt_str(obj, "to", max_length=MAX_GOSSIP_ID_LENGTH)
        if to is not None and not is_valid_peer_id(to.strip()):
            raise DecodeError("to", "must be 40 hex characters")
    path = _path(obj, max_path)
    network_name = get("networkName")
    if network_name is not None and (
        type(network_name) is not str or len(network_name) > MAX_GOSSIP_ID_LENGTH
    ):
        network_name = opt_str(obj, "networkName", max_length=MAX_GOSSIP_ID_LENGTH)
    timestamp = get("timestamp")
    if timestamp is not None and type(timestamp) is not int:
        timestamp = opt_number(obj, "timestamp")
    ttl = get("ttl")
    if ttl is not None and type(ttl) is not int:
        ttl = opt_number(obj, "ttl")
    # Most envelopes carry only known fields: find that out without a loop in Python.
    extra = (
        {key: value for key, value in obj.items() if key not in _RESERVED}
        if obj.keys() - _RESERVED
        else {}
    )
    return GossipMessage(
        id=msg_id,
        subtype=subtype,
        content=obj["content"],
        from_peer=sender,
        to=to,
        network_name=network_name,
        timestamp=timestamp,
        ttl=ttl,
        path=path,
        extra=extra,
    )


def decode_eviction(obj: JsonObject) -> EvictionNotice:
    """Validate a parsed ``eviction`` object; raises `DecodeError` naming the field."""
    if obj.get("type") != "eviction":
        raise DecodeError("type", "must be 'eviction'")
    return EvictionNotice(
        reason=opt_str(obj, "reason", max_length=1024),
        from_peer=opt_str(obj, "from", max_length=MAX_GOSSIP_ID_LENGTH),
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
        from_peer_id=opt_str(obj, "fromPeerId", max_length=MAX_GOSSIP_ID_LENGTH),
        timestamp=opt_number(obj, "timestamp"),
    )


def _size(obj: JsonObject) -> int:
    size = obj.get("size")
    if isinstance(size, bool) or not isinstance(size, int):
        raise DecodeError("size", "must be an integer")
    if not 0 <= size <= MAX_BINARY_SIZE:
        raise DecodeError("size", f"must be 0..{MAX_BINARY_SIZE}")
    return size


def _decode_binary_gossip(obj: JsonObject, max_path: int) -> BinaryGossipHeader:
    size = _size(obj)
    msg_id = _required_str(obj, "id", MAX_GOSSIP_ID_LENGTH)
    sender = parse_peer_id(obj.get("from"), "from")
    extra = {
        key: value
        for key, value in obj.items()
        if key not in GOSSIP_RESERVED_KEYS and key != "size"
    }
    return BinaryGossipHeader(
        id=msg_id,
        from_peer=sender,
        size=size,
        network_name=opt_str(obj, "networkName", max_length=MAX_GOSSIP_ID_LENGTH),
        timestamp=opt_number(obj, "timestamp"),
        ttl=opt_number(obj, "ttl"),
        path=_path(obj, max_path),
        extra=extra,
    )


def _decode_hello(obj: JsonObject) -> Hello:
    sender = parse_peer_id(obj.get("from"), "from")
    version = obj.get("v")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise DecodeError("v", "must be a positive integer")
    max_ttl = obj.get("maxTtl")
    if isinstance(max_ttl, bool) or not isinstance(max_ttl, int) or not 1 <= max_ttl <= 1024:
        raise DecodeError("maxTtl", "must be an integer 1..1024")
    features = obj.get("features", [])
    if not isinstance(features, list) or len(features) > MAX_HELLO_FEATURES:
        raise DecodeError("features", f"must be an array of at most {MAX_HELLO_FEATURES}")
    if not all(isinstance(f, str) and len(f) <= MAX_SUBTYPE_LENGTH for f in features):
        raise DecodeError("features", "entries must be short strings")
    neighbours = obj.get("neighbours", [])
    if not isinstance(neighbours, list) or len(neighbours) > MAX_HELLO_NEIGHBOURS:
        raise DecodeError("neighbours", f"must be an array of at most {MAX_HELLO_NEIGHBOURS}")
    min_peers = obj.get("minPeers")
    if min_peers is not None and (
        isinstance(min_peers, bool) or not isinstance(min_peers, int) or not 0 <= min_peers <= 49
    ):
        raise DecodeError("minPeers", "must be an integer 0..49")
    return Hello(
        from_peer=sender,
        version=version,
        max_ttl=max_ttl,
        features=tuple(f for f in features if isinstance(f, str)),
        neighbours=tuple(parse_peer_id(n, "neighbours") for n in neighbours),
        min_peers=min_peers,
    )


def _decode_eviction_agreement(
    kind: str, obj: JsonObject
) -> EvictionAsk | EvictionAnswer | EvictionCancel:
    sender = parse_peer_id(obj.get("from"), "from")
    request_id = _required_str(obj, "requestId", MAX_EVICT_REQUEST_ID_LENGTH)
    if kind == EVICT_ASK_TYPE:
        return EvictionAsk(sender, request_id)
    if kind == EVICT_CANCEL_TYPE:
        return EvictionCancel(sender, request_id)
    accept = obj.get("accept")
    if not isinstance(accept, bool):
        raise DecodeError("accept", "must be a boolean")
    return EvictionAnswer(sender, request_id, accept)


def decode_data_frame(
    raw: str | bytes,
    *,
    max_bytes: int = DEFAULT_MAX_DATA_FRAME_BYTES,
    max_path: int = MAX_PATH_LENGTH,
) -> DataFrame:
    """Decode one text frame of the data channel; raises `DecodeError` naming the field.

    `max_bytes` bounds the frame's UTF-8 size (field ``frame``), `max_path` the ``path`` of
    gossip. A binary header never raises once its ``type`` is read: an unusable one is a
    `BadBinaryHeader`, since its payload must still be paired and dropped.
    """
    obj = decode_json_object(raw, max_bytes=max(max_bytes, 1))
    return decode_data_object(obj, max_path=max_path)


def decode_data_object(obj: JsonObject, *, max_path: int = MAX_PATH_LENGTH) -> DataFrame:
    """`decode_data_frame` for a frame already parsed as a JSON object."""
    kind = obj.get("type")
    if kind is None:
        raise DecodeError("type", "is required")
    if not isinstance(kind, str):
        raise DecodeError("type", "must be a string")
    if kind == "gossip":
        return decode_gossip(obj, max_path=max_path)
    if kind == "eviction":
        return decode_eviction(obj)
    if kind == "signaling":
        return decode_signaling(obj)
    if kind == BINARY_HEADER_TYPE:
        try:
            return BinaryHeader(_size(obj))
        except DecodeError as err:
            return BadBinaryHeader(kind, err.field, err.reason)
    if kind == BINARY_GOSSIP_TYPE:
        try:
            return _decode_binary_gossip(obj, max_path)
        except DecodeError as err:
            return BadBinaryHeader(kind, err.field, err.reason)
    if kind == HELLO_TYPE:
        return _decode_hello(obj)
    if kind in (EVICT_ASK_TYPE, EVICT_ANSWER_TYPE, EVICT_CANCEL_TYPE):
        return _decode_eviction_agreement(kind, obj)
    return OtherFrame(kind, obj)


# --- encoding ----------------------------------------------------------------------------


# Built once: json.dumps with these options would build an encoder per call.
_ENCODE: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode
_ESCAPE: Final = json.encoder.encode_basestring_ascii  # what _ENCODE does to a string


def _dumps(obj: JsonValue) -> str:
    try:
        return _ENCODE(obj)
    except (ValueError, TypeError, RecursionError):
        raise UsageError("content", "is not encodable as JSON") from None


def _number(value: object) -> str:
    """`value` as `_ENCODE` writes it, for an int or finite float; TypeError otherwise."""
    kind = type(value)
    if kind is int:
        return int.__repr__(value)
    if kind is float and math.isfinite(value):  # type: ignore[arg-type]
        return float.__repr__(value)
    raise TypeError("not a plain number")


def encode_gossip(msg: GossipMessage) -> str:
    """Encode a gossip envelope as compact JSON (absent fields left out, ``extra`` last).

    Raises `UsageError` when the content is not JSON.
    """
    return _encode_gossip(msg, msg.ttl, msg.path)


def encode_relayed_gossip(msg: GossipMessage, peer_id: str, *, ttl: int | None = None) -> str:
    """``encode_gossip(msg.relayed_by(peer_id))``, with `ttl` as its TTL when given.

    The relay's hot path: the copy is encoded without being built.
    """
    new_ttl = ttl if ttl is not None or msg.ttl is None else msg.ttl - 1
    path = (*(msg.path or ()), peer_id)
    if msg.extra:  # build the copy: it checks extra as relayed_by would
        return _encode_gossip(msg.relayed_by(peer_id), new_ttl, path)
    return _encode_gossip(msg, new_ttl, path)


def _encode_gossip(
    msg: GossipMessage, ttl: int | float | None, path: tuple[str, ...] | None
) -> str:
    """`encode_gossip` of `msg` with `ttl` and `path` in place of its own."""
    if not msg.extra:
        # The envelope's own fields written directly (the text _dumps would give), as a
        # relay does this for every message; anything unusual takes the general way.
        try:
            return _encode_plain_gossip(msg, ttl, path)
        except (TypeError, ValueError):
            pass
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
    if ttl is not None:
        out["ttl"] = ttl
    if path is not None:
        out["path"] = list(path)
    out.update(msg.extra)
    return _dumps(out)


def _encode_plain_gossip(
    msg: GossipMessage, ttl: int | float | None, path: tuple[str, ...] | None
) -> str:
    """`_encode_gossip` without ``extra``; TypeError or ValueError if a field is unusual."""
    escape = _ESCAPE
    content = msg.content
    parts = [
        '{"id":',
        escape(msg.id),
        ',"type":"gossip","subtype":',
        escape(msg.subtype),
        ',"content":',
        escape(content) if type(content) is str else _dumps(content),
        ',"from":',
        escape(msg.from_peer),
    ]
    if msg.to is not None:
        parts += (',"to":', escape(msg.to))
    if msg.network_name is not None:
        parts += (',"networkName":', escape(msg.network_name))
    if msg.timestamp is not None:
        parts += (',"timestamp":', _number(msg.timestamp))
    if ttl is not None:
        parts += (',"ttl":', _number(ttl))
    if path is not None:
        parts += (',"path":[', ",".join(map(escape, path)), "]")
    parts.append("}")
    return "".join(parts)


def encode_binary_header(size: int) -> str:
    """The ``__BINARY__`` header for a payload of `size` bytes (JS's exact text)."""
    return f'{{"type":"{BINARY_HEADER_TYPE}","size":{int(size)}}}'


def encode_binary_gossip_header(header: BinaryGossipHeader) -> str:
    """Encode a ``__PP_BINARY__`` header (absent fields left out, ``extra`` last)."""
    out: JsonObject = {
        "type": BINARY_GOSSIP_TYPE,
        "id": header.id,
        "from": header.from_peer,
        "size": header.size,
    }
    if header.network_name is not None:
        out["networkName"] = header.network_name
    if header.timestamp is not None:
        out["timestamp"] = header.timestamp
    if header.ttl is not None:
        out["ttl"] = header.ttl
    if header.path is not None:
        out["path"] = list(header.path)
    out.update(header.extra)
    return _dumps(out)


def encode_hello(hello: Hello) -> str:
    """Encode a ``__PP_HELLO__`` frame."""
    out: JsonObject = {
        "type": HELLO_TYPE,
        "v": hello.version,
        "from": hello.from_peer,
        "maxTtl": hello.max_ttl,
        "features": list(hello.features),
        "neighbours": list(hello.neighbours),
    }
    if hello.min_peers is not None:
        out["minPeers"] = hello.min_peers
    return _dumps(out)


def encode_eviction(notice: EvictionNotice) -> str:
    """Encode an eviction notice (``reason`` and ``from`` left out when ``None``)."""
    out: JsonObject = {"type": "eviction"}
    if notice.reason is not None:
        out["reason"] = notice.reason
    if notice.from_peer is not None:
        out["from"] = notice.from_peer
    return _dumps(out)


def encode_eviction_ask(ask: EvictionAsk) -> str:
    """Encode a ``__PP_EVICT_ASK__`` frame."""
    return _dumps({"type": EVICT_ASK_TYPE, "from": ask.from_peer, "requestId": ask.request_id})


def encode_eviction_answer(answer: EvictionAnswer) -> str:
    """Encode a ``__PP_EVICT_ANSWER__`` frame."""
    return _dumps(
        {
            "type": EVICT_ANSWER_TYPE,
            "from": answer.from_peer,
            "requestId": answer.request_id,
            "accept": answer.accept,
        }
    )


def encode_eviction_cancel(cancel: EvictionCancel) -> str:
    """Encode a ``__PP_EVICT_CANCEL__`` frame."""
    return _dumps(
        {"type": EVICT_CANCEL_TYPE, "from": cancel.from_peer, "requestId": cancel.request_id}
    )


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
        case BinaryHeader():
            return encode_binary_header(frame.size)
        case BinaryGossipHeader():
            return encode_binary_gossip_header(frame)
        case BadBinaryHeader():
            raise UsageError("frame", "a bad binary header cannot be encoded")
        case Hello():
            return encode_hello(frame)
        case EvictionAsk():
            return encode_eviction_ask(frame)
        case EvictionAnswer():
            return encode_eviction_answer(frame)
        case EvictionCancel():
            return encode_eviction_cancel(frame)
        case OtherFrame():
            return _dumps(frame.body)
