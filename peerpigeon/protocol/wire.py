"""Signaling messages of the reference, both directions, as typed values; strict codec.

Wire shapes: reference/signaling-and-topology.md section 2 (client <-> server) and
section 5 (hub <-> hub, which uses the same messages). `decode_message` turns one
WebSocket frame into a `Message` or raises `DecodeError` naming the field and reason;
`encode_message` writes compact JSON the way JS `JSON.stringify` does (absent fields
are omitted).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Final, TypeAlias, TypedDict

from .errors import DecodeError, UnknownMessageType
from .fields import opt_int, opt_number, opt_str

__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "GLOBAL_NETWORK",
    "MAX_JSON_DEPTH",
    "SYSTEM_SENDER",
    "Announce",
    "Answer",
    "Cleanup",
    "CleanupAll",
    "Connected",
    "ConnectionRejected",
    "ErrorReply",
    "Goodbye",
    "HubAuth",
    "IceCandidate",
    "IceRestartAnswer",
    "IceRestartOffer",
    "JsonObject",
    "JsonValue",
    "Message",
    "Offer",
    "PeerDisconnected",
    "PeerDiscovered",
    "Ping",
    "Pong",
    "RenegotiationAnswer",
    "RenegotiationOffer",
    "SignalRelay",
    "decode_json_object",
    "decode_message",
    "encode_message",
    "encode_relay",
    "error_text_for",
    "message_from_object",
    "query_param",
    "relay_parts",
]

JsonValue: TypeAlias = "bool | int | float | str | list[JsonValue] | dict[str, JsonValue] | None"
JsonObject: TypeAlias = "dict[str, JsonValue]"

DEFAULT_MAX_FRAME_BYTES: Final = 1_048_576
MAX_JSON_DEPTH: Final = 64  # deeper values decode near the recursion limit but fail to encode
GLOBAL_NETWORK: Final = "global"
SYSTEM_SENDER: Final = "system"


@dataclass(frozen=True, slots=True, kw_only=True)
class _Envelope:
    """Envelope fields any signaling message may carry (all optional on the wire)."""

    TYPE: ClassVar[str] = ""

    network_name: str | None = None
    from_peer_id: str | None = None
    target_peer_id: str | None = None
    timestamp: int | float | None = None
    max_peers: int | None = None

    @property
    def type(self) -> str:
        """The wire ``type`` tag."""
        return self.TYPE

    @property
    def network(self) -> str:
        """The namespace, with a missing or empty ``networkName`` read as ``"global"``."""
        return self.network_name or GLOBAL_NETWORK

    def _data_json(self) -> JsonValue:
        return None

    def _has_data(self) -> bool:
        return False


@dataclass(frozen=True, slots=True, kw_only=True)
class _WithData(_Envelope):
    """A message whose ``data`` is a JSON object kept as received."""

    data: JsonObject = field(default_factory=dict)

    def _data_json(self) -> JsonValue:
        return self.data

    def _has_data(self) -> bool:
        return True


@dataclass(frozen=True, slots=True, kw_only=True)
class Announce(_WithData):
    """Join a namespace (client to server); hubs add ``isHub`` and their address."""

    TYPE: ClassVar[str] = "announce"

    @property
    def is_hub(self) -> bool:
        """Whether ``data.isHub`` is exactly ``true``."""
        return self.data.get("isHub") is True


@dataclass(frozen=True, slots=True, kw_only=True)
class Goodbye(_WithData):
    """The sender leaves its namespace (relayed by the server)."""

    TYPE: ClassVar[str] = "goodbye"


@dataclass(frozen=True, slots=True, kw_only=True)
class _SessionDescription(_Envelope):
    """``offer`` / ``answer``: ``data`` is ``{type, sdp}``."""

    sdp: str = ""

    def _data_json(self) -> JsonValue:
        return {"type": self.TYPE, "sdp": self.sdp}

    def _has_data(self) -> bool:
        return True


@dataclass(frozen=True, slots=True, kw_only=True)
class Offer(_SessionDescription):
    """A WebRTC offer, relayed by ``targetPeerId``."""

    TYPE: ClassVar[str] = "offer"


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer(_SessionDescription):
    """A WebRTC answer, relayed by ``targetPeerId``."""

    TYPE: ClassVar[str] = "answer"


@dataclass(frozen=True, slots=True, kw_only=True)
class IceCandidate(_Envelope):
    """One trickled ICE candidate, relayed by ``targetPeerId``."""

    TYPE: ClassVar[str] = "ice-candidate"

    candidate: str = ""
    sdp_mid: str | None = None
    sdp_mline_index: int | None = None
    username_fragment: str | None = None

    def _data_json(self) -> JsonValue:
        data: JsonObject = {"candidate": self.candidate}
        data["sdpMid"] = self.sdp_mid
        data["sdpMLineIndex"] = self.sdp_mline_index
        if self.username_fragment is not None:
            data["usernameFragment"] = self.username_fragment
        return data

    def _has_data(self) -> bool:
        return True


@dataclass(frozen=True, slots=True, kw_only=True)
class Ping(_Envelope):
    """Application-level ping; the server answers `Pong`."""

    TYPE: ClassVar[str] = "ping"

    data: JsonValue = None

    def _data_json(self) -> JsonValue:
        return self.data

    def _has_data(self) -> bool:
        return self.data is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class Pong(_WithData):
    """The server's answer to `Ping`: ``data.timestamp``."""

    TYPE: ClassVar[str] = "pong"


@dataclass(frozen=True, slots=True, kw_only=True)
class Cleanup(_WithData):
    """Leftover of an older server; accepted and ignored."""

    TYPE: ClassVar[str] = "cleanup"


@dataclass(frozen=True, slots=True, kw_only=True)
class CleanupAll(_WithData):
    """Sent by browsers on unload; the reference server answers `error`."""

    TYPE: ClassVar[str] = "cleanup-all"


@dataclass(frozen=True, slots=True, kw_only=True)
class Connected(_WithData):
    """First frame from the server: ``data.peerId`` is the socket's ID."""

    TYPE: ClassVar[str] = "connected"


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerDiscovered(_WithData):
    """A peer of the namespace (server to client, and hub to hub)."""

    TYPE: ClassVar[str] = "peer-discovered"

    @property
    def peer_id(self) -> str | None:
        """``data.peerId`` when it is a string."""
        value = self.data.get("peerId")
        return value if isinstance(value, str) else None

    @property
    def is_hub(self) -> bool:
        """Whether ``data.isHub`` is exactly ``true``."""
        return self.data.get("isHub") is True


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerDisconnected(_WithData):
    """A peer left the server (server to client; between our hubs too)."""

    TYPE: ClassVar[str] = "peer-disconnected"

    @property
    def peer_id(self) -> str | None:
        """``data.peerId`` when it is a string."""
        value = self.data.get("peerId")
        return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorReply(_Envelope):
    """The server's only error frame: ``{"type": "error", "error": text}``."""

    TYPE: ClassVar[str] = "error"

    error: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionRejected(_WithData):
    """A callee refuses an offer (the reference server does not route it)."""

    TYPE: ClassVar[str] = "connection-rejected"


@dataclass(frozen=True, slots=True, kw_only=True)
class RenegotiationOffer(_WithData):
    """Media renegotiation fallback (refused by the reference server)."""

    TYPE: ClassVar[str] = "renegotiation-offer"


@dataclass(frozen=True, slots=True, kw_only=True)
class RenegotiationAnswer(_WithData):
    """Media renegotiation fallback (refused by the reference server)."""

    TYPE: ClassVar[str] = "renegotiation-answer"


@dataclass(frozen=True, slots=True, kw_only=True)
class IceRestartOffer(_WithData):
    """ICE restart (dead code in the reference; refused by its server)."""

    TYPE: ClassVar[str] = "ice-restart-offer"


@dataclass(frozen=True, slots=True, kw_only=True)
class IceRestartAnswer(_WithData):
    """ICE restart (dead code in the reference; refused by its server)."""

    TYPE: ClassVar[str] = "ice-restart-answer"


@dataclass(frozen=True, slots=True, kw_only=True)
class HubAuth(_WithData):
    """Proof of the federation's shared secret (ours only; see docs/federation.md).

    ``data`` holds ``nonce`` and ``proof`` (hex); the secret itself never travels.
    """

    TYPE: ClassVar[str] = "hub-auth"


SignalRelay: TypeAlias = Offer | Answer | IceCandidate

Message: TypeAlias = (
    Announce
    | Goodbye
    | Offer
    | Answer
    | IceCandidate
    | Ping
    | Pong
    | Cleanup
    | CleanupAll
    | Connected
    | PeerDiscovered
    | PeerDisconnected
    | ErrorReply
    | ConnectionRejected
    | RenegotiationOffer
    | RenegotiationAnswer
    | IceRestartOffer
    | IceRestartAnswer
    | HubAuth
)

_DATA_OBJECT_TYPES: Final[dict[str, type[_WithData]]] = {
    cls.TYPE: cls
    for cls in (
        Announce,
        Goodbye,
        Pong,
        Cleanup,
        CleanupAll,
        Connected,
        PeerDiscovered,
        PeerDisconnected,
        ConnectionRejected,
        RenegotiationOffer,
        RenegotiationAnswer,
        IceRestartOffer,
        IceRestartAnswer,
        HubAuth,
    )
}


def error_text_for(message_type: str) -> str:
    """The reference server's exact error text for a type it does not route."""
    return (
        f"Signaling server does not route '{message_type}' messages. "
        "Use WebRTC data channels for peer-to-peer communication."
    )


# --- decoding -------------------------------------------------------------------------


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _parse_finite_float(text: str) -> float:
    # json.loads reads 1e400 as inf, which encode_message (allow_nan=False) cannot write back.
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value


# One decoder for every frame (json.loads with hooks would build a new one per call).
_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_parse_finite_float)
# JSONDecoder.__init__ sets scan_once (the C scanner when there is one); typeshed omits it.
_SCAN: Final[Callable[[str, int], tuple[JsonValue, int]]] = _DECODER.scan_once  # type: ignore[attr-defined]


def _parse_json(text: str) -> JsonValue:
    """`_DECODER.decode(text)`, scanning directly when the value spans the whole text."""
    try:
        value, end = _SCAN(text, 0)
    except StopIteration:  # leading whitespace, or not JSON: let decode() tell
        return _DECODER.decode(text)  # type: ignore[no-any-return]
    if end != len(text):  # trailing whitespace or extra data: let decode() tell
        return _DECODER.decode(text)  # type: ignore[no-any-return]
    return value


def decode_json_object(raw: str | bytes, *, max_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> JsonObject:
    """Parse one frame as a JSON object, or raise `DecodeError` (field ``frame``)."""
    if isinstance(raw, bytes) or raw.isascii():
        size = len(raw)
    elif len(raw) * 4 <= max_bytes:
        size = 0  # at most 4 UTF-8 bytes a character: within the limit, no need to count
    else:
        size = len(raw.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise DecodeError("frame", f"{size} bytes exceeds the limit of {max_bytes}")
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError("frame", "not valid UTF-8") from None
    else:
        text = raw
    try:
        value = _parse_json(text)
    except (ValueError, RecursionError):
        raise DecodeError("frame", "not valid JSON") from None
    if not isinstance(value, dict):
        raise DecodeError("frame", "must be a JSON object")
    # Each container of the value is one '{' or '[' of the text (strings only add more), so
    # a text with at most MAX_JSON_DEPTH of them cannot nest too deep: skip the walk.
    containers = text.count("{") + (text.count("[") if "[" in text else 0)
    if containers > MAX_JSON_DEPTH and _too_deep(value):
        raise DecodeError("frame", f"nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def _too_deep(item: JsonObject | list[JsonValue], depth: int = 1) -> bool:
    """Whether a container sits more than `MAX_JSON_DEPTH` containers deep (the frame is 1)."""
    # Recursion is bounded: it stops MAX_JSON_DEPTH calls down.
    for child in item.values() if isinstance(item, dict) else item:
        if isinstance(child, dict | list) and (
            depth >= MAX_JSON_DEPTH or _too_deep(child, depth + 1)
        ):
            return True
    return False


def _data_object(obj: JsonObject, *, required: bool) -> JsonObject:
    value = obj.get("data")
    if value is None:
        if required:
            raise DecodeError("data", "is required")
        return {}
    if not isinstance(value, dict):
        raise DecodeError("data", "must be a JSON object")
    return value


class _EnvelopeFields(TypedDict):
    network_name: str | None
    from_peer_id: str | None
    target_peer_id: str | None
    timestamp: int | float | None
    max_peers: int | None


def message_from_object(obj: JsonObject) -> Message:
    """Validate a parsed JSON object into a typed `Message`.

    Raises `UnknownMessageType` for a well-formed frame with a ``type`` we do not know,
    and `DecodeError` for anything missing or ill-typed.
    """
    kind = obj.get("type")
    if kind is None:
        raise DecodeError("type", "is required")
    if not isinstance(kind, str):
        raise DecodeError("type", "must be a string")
    # The common shapes (absent, a str, an int) are checked inline; the helpers decide the rest.
    get = obj.get
    network_name = get("networkName")
    if network_name is not None and not isinstance(network_name, str):
        network_name = opt_str(obj, "networkName")
    from_peer_id = get("fromPeerId")
    if from_peer_id is not None and not isinstance(from_peer_id, str):
        from_peer_id = opt_str(obj, "fromPeerId")
    target_peer_id = get("targetPeerId")
    if target_peer_id is not None and not isinstance(target_peer_id, str):
        target_peer_id = opt_str(obj, "targetPeerId")
    timestamp = get("timestamp")
    if timestamp is not None and type(timestamp) is not int:
        timestamp = opt_number(obj, "timestamp")
    max_peers = get("maxPeers")
    if max_peers is not None and type(max_peers) is not int:
        max_peers = opt_int(obj, "maxPeers")
    env: _EnvelopeFields = {
        "network_name": network_name,
        "from_peer_id": from_peer_id,
        "target_peer_id": target_peer_id,
        "timestamp": timestamp,
        "max_peers": max_peers,
    }
    if kind in _DATA_OBJECT_TYPES:
        required = kind in ("peer-discovered", "peer-disconnected", "hub-auth")
        cls = _DATA_OBJECT_TYPES[kind]
        return cls(data=_data_object(obj, required=required), **env)  # type: ignore[return-value]  # every entry is a Message
    if kind in ("offer", "answer"):
        data = _data_object(obj, required=True)
        sdp = data.get("sdp")
        if not isinstance(sdp, str):
            raise DecodeError("data.sdp", "must be a string")
        if opt_str(data, "type", path="data.type") not in (None, kind):
            raise DecodeError("data.type", f"must be {kind!r}")
        return (Offer if kind == "offer" else Answer)(sdp=sdp, **env)
    if kind == "ice-candidate":
        data = _data_object(obj, required=True)
        candidate = data.get("candidate")
        if not isinstance(candidate, str):
            raise DecodeError("data.candidate", "must be a string")
        return IceCandidate(
            candidate=candidate,
            sdp_mid=opt_str(data, "sdpMid", path="data.sdpMid"),
            sdp_mline_index=opt_int(data, "sdpMLineIndex", path="data.sdpMLineIndex"),
            username_fragment=opt_str(data, "usernameFragment", path="data.usernameFragment"),
            **env,
        )
    if kind == "ping":
        return Ping(data=obj.get("data"), **env)
    if kind == "error":
        text = obj.get("error")
        if not isinstance(text, str):
            raise DecodeError("error", "must be a string")
        return ErrorReply(error=text, **env)
    raise UnknownMessageType(kind)


def decode_message(raw: str | bytes, *, max_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> Message:
    """Decode one signaling frame; raises `DecodeError` (or `UnknownMessageType`)."""
    return message_from_object(decode_json_object(raw, max_bytes=max_bytes))


# --- encoding -------------------------------------------------------------------------


def encode_message(msg: Message) -> str:
    """Encode a message as compact JSON; fields that are ``None`` are left out."""
    out: JsonObject = {"type": msg.TYPE}
    if msg._has_data():
        out["data"] = msg._data_json()
    if isinstance(msg, ErrorReply):
        out["error"] = msg.error
    if msg.max_peers is not None:
        out["maxPeers"] = msg.max_peers
    if msg.network_name is not None:
        out["networkName"] = msg.network_name
    if msg.from_peer_id is not None:
        out["fromPeerId"] = msg.from_peer_id
    if msg.target_peer_id is not None:
        out["targetPeerId"] = msg.target_peer_id
    if msg.timestamp is not None:
        out["timestamp"] = msg.timestamp
    return _encode_json(out)


_quote: Final[Callable[[str], str]] = json.encoder.encode_basestring_ascii  # what _ENCODER uses


def relay_parts(obj: JsonObject) -> tuple[str, str | None, str | None, str] | None:
    """The relay fast path's view of a plain ``offer`` / ``answer`` / ``ice-candidate``.

    For an object `message_from_object` turns into an `Offer`, `Answer` or `IceCandidate`
    with a non-empty ``targetPeerId`` and only the usual field shapes: ``(head,
    networkName, fromPeerId, targetPeerId)``, where `head` is `encode_message` of that
    message up to its envelope (``{"type":...,"data":{...}``, no closing brace). None for
    anything else (another type, a missing or ill-typed field, an unusual but valid shape):
    the caller then takes the general path, which decides and raises as usual.
    """
    kind = obj.get("type")
    data = obj.get("data")
    if type(data) is not dict:
        return None
    if kind == "offer" or kind == "answer":
        sdp = data.get("sdp")
        if type(sdp) is not str:
            return None
        data_type = data.get("type")
        if data_type is not None and data_type != kind:
            return None
        head = f'{{"type":"{kind}","data":{{"type":"{kind}","sdp":{_quote(sdp)}}}'
    elif kind == "ice-candidate":
        candidate = data.get("candidate")
        mid = data.get("sdpMid")
        index = data.get("sdpMLineIndex")
        ufrag = data.get("usernameFragment")
        if (
            type(candidate) is not str
            or (mid is not None and type(mid) is not str)
            or (index is not None and type(index) is not int)
            or (ufrag is not None and type(ufrag) is not str)
        ):
            return None
        tail = "}" if ufrag is None else f',"usernameFragment":{_quote(ufrag)}}}'
        head = (
            f'{{"type":"ice-candidate","data":{{"candidate":{_quote(candidate)}'
            f',"sdpMid":{"null" if mid is None else _quote(mid)}'
            f',"sdpMLineIndex":{"null" if index is None else int.__repr__(index)}{tail}'
        )
    else:
        return None
    get = obj.get
    network_name = get("networkName")
    from_peer_id = get("fromPeerId")
    target = get("targetPeerId")
    timestamp = get("timestamp")
    max_peers = get("maxPeers")
    if (
        type(target) is not str
        or not target
        or (network_name is not None and type(network_name) is not str)
        or (from_peer_id is not None and type(from_peer_id) is not str)
        or (timestamp is not None and type(timestamp) is not int)
        or (max_peers is not None and type(max_peers) is not int)
    ):
        return None
    return head, network_name, from_peer_id, target


def encode_relay(head: str, network: str, from_peer_id: str, target: str, timestamp: int) -> str:
    """`encode_message` of a relay copy from its `relay_parts` head and the new envelope."""
    return (
        f'{head},"networkName":{_quote(network)},"fromPeerId":{_quote(from_peer_id)}'
        f',"targetPeerId":{_quote(target)},"timestamp":{int.__repr__(timestamp)}}}'
    )


# One encoder for every frame (json.dumps with options would build a new one per call).
_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def _make_encode_json() -> Callable[[JsonObject], str]:
    """`_ENCODER.encode`, through one reusable C encoder when the interpreter has it.

    Without a circular-reference check (wire values come from JSON or are built fresh, so
    they have no cycles); the output is the same.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return _ENCODER.encode
    try:
        c_encode = make(
            None,  # no markers: no cycle check
            _ENCODER.default,
            json.encoder.encode_basestring_ascii,
            None,  # indent
            ":",
            ",",
            False,  # sort_keys
            False,  # skipkeys
            False,  # allow_nan
        )
    except TypeError:  # another interpreter's signature: the plain encoder will do
        return _ENCODER.encode

    def encode(value: JsonObject) -> str:
        return "".join(c_encode(value, 0))

    sample: JsonObject = {"a": [1, 2.5, None, True], "b": '\u00e9\r\n"', "c": {}}
    return encode if encode(sample) == _ENCODER.encode(sample) else _ENCODER.encode


_encode_json: Final = _make_encode_json()


# --- request targets ------------------------------------------------------------------


def _percent_decode(text: str) -> str:
    """Decode ``+`` and ``%XX`` the way URLSearchParams does (bad escapes stay as they are)."""
    raw = text.replace("+", " ").encode("utf-8", "surrogatepass")
    out = bytearray()
    i = 0
    while i < len(raw):
        byte = raw[i]
        if byte == 0x25 and _is_hex_pair(raw[i + 1 : i + 3]):
            out.append(int(raw[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(byte)
            i += 1
    return out.decode("utf-8", "replace")


def _is_hex_pair(pair: bytes) -> bool:
    return len(pair) == 2 and all(c in b"0123456789abcdefABCDEF" for c in pair)


def query_param(target: str, name: str) -> str | None:
    """The first value of query parameter `name` in a request target or URL, decoded."""
    _, sep, query = target.partition("?")
    if not sep:
        return None
    query = query.partition("#")[0]
    for part in query.split("&"):
        key, _, value = part.partition("=")
        if _percent_decode(key) == name:
            return _percent_decode(value)
    return None
