"""Tests of the signaling wire codec: round trips, strict decoding, the reference's shapes."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable
from typing import Final

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peerpigeon.protocol import wire
from peerpigeon.protocol.errors import DecodeError, UnknownMessageType
from peerpigeon.protocol.wire import (
    DEFAULT_MAX_FRAME_BYTES,
    MAX_JSON_DEPTH,
    Announce,
    Answer,
    Cleanup,
    CleanupAll,
    Connected,
    ConnectionRejected,
    ErrorReply,
    Goodbye,
    HubAuth,
    IceCandidate,
    IceRestartAnswer,
    IceRestartOffer,
    JsonObject,
    JsonValue,
    Message,
    Offer,
    PeerDisconnected,
    PeerDiscovered,
    Ping,
    Pong,
    RenegotiationAnswer,
    RenegotiationOffer,
    decode_json_object,
    decode_message,
    encode_message,
    error_text_for,
    message_from_object,
)

A: Final = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
B: Final = "0f1e2d3c4b5a69788796a5b4c3d2e1f00a1b2c3d"

# --- strategies -------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=16)
)
json_values: st.SearchStrategy[JsonValue] = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=16,
)
json_objects: st.SearchStrategy[JsonObject] = st.dictionaries(
    st.text(max_size=8), json_values, max_size=5
)
opt_text = st.none() | st.text(max_size=12)
envelopes = st.fixed_dictionaries(
    {
        "network_name": opt_text,
        "from_peer_id": opt_text,
        "target_peer_id": opt_text,
        "timestamp": st.none()
        | st.integers(min_value=0, max_value=2**53)
        | st.floats(allow_nan=False, allow_infinity=False),
        "max_peers": st.none() | st.integers(min_value=-5, max_value=1000),
    }
)

DATA_TYPES: Final[list[Callable[..., Message]]] = [
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
]


def _with_data(cls: Callable[..., Message]) -> st.SearchStrategy[Message]:
    return st.builds(lambda env, data: cls(data=data, **env), envelopes, json_objects)


messages: st.SearchStrategy[Message] = st.one_of(
    *[_with_data(cls) for cls in DATA_TYPES],
    st.builds(lambda env, sdp: Offer(sdp=sdp, **env), envelopes, st.text()),
    st.builds(lambda env, sdp: Answer(sdp=sdp, **env), envelopes, st.text()),
    st.builds(
        lambda env, c, mid, idx, uf: IceCandidate(
            candidate=c, sdp_mid=mid, sdp_mline_index=idx, username_fragment=uf, **env
        ),
        envelopes,
        st.text(max_size=40),
        opt_text,
        st.none() | st.integers(min_value=0, max_value=64),
        opt_text,
    ),
    st.builds(lambda env, data: Ping(data=data, **env), envelopes, json_values),
    st.builds(lambda env, text: ErrorReply(error=text, **env), envelopes, st.text()),
)

TYPE_NAMES: Final = sorted(
    [
        *(Announce.TYPE, Goodbye.TYPE, Pong.TYPE, Cleanup.TYPE, CleanupAll.TYPE, Connected.TYPE),
        *(PeerDiscovered.TYPE, PeerDisconnected.TYPE, ConnectionRejected.TYPE, HubAuth.TYPE),
        *(RenegotiationOffer.TYPE, RenegotiationAnswer.TYPE, IceRestartOffer.TYPE),
        *(IceRestartAnswer.TYPE, "offer", "answer", "ice-candidate", "ping", "error"),
    ]
)
frames_like = st.fixed_dictionaries(
    {"type": st.sampled_from([*TYPE_NAMES, "bogus"]) | json_values},
    optional={
        "data": json_values
        | st.fixed_dictionaries(
            {},
            optional={
                "type": st.sampled_from(["offer", "answer"]) | json_values,
                "sdp": st.text(max_size=8) | json_values,
                "candidate": st.text(max_size=8) | json_values,
                "sdpMid": json_values,
                "sdpMLineIndex": st.integers(min_value=0, max_value=5) | json_values,
                "usernameFragment": json_values,
                "peerId": st.just(A) | json_values,
            },
        ),
        "networkName": st.text(max_size=8) | json_values,
        "fromPeerId": st.just(A) | json_values,
        "targetPeerId": st.just(B) | json_values,
        "timestamp": st.integers() | json_values,
        "maxPeers": st.integers() | json_values,
        "error": st.text(max_size=8) | json_values,
    },
)


# --- round trips ------------------------------------------------------------------------


@settings(max_examples=300)
@given(messages)
def test_decode_inverts_encode(msg: Message) -> None:
    text = encode_message(msg)
    assert text.isascii()
    assert decode_message(text) == msg
    assert decode_message(text.encode()) == msg
    assert encode_message(decode_message(text)) == text


def test_every_message_type_is_covered() -> None:
    assert set(TYPE_NAMES) == {cls.TYPE for cls in Message.__args__}


@settings(max_examples=200)
@given(frames_like)
def test_decoded_frames_encode_back(obj: dict[str, JsonValue]) -> None:
    """Whatever decodes can be re-encoded (a hub relays it) and decodes to the same value."""
    try:
        msg = decode_message(json.dumps(obj))
    except DecodeError:
        return
    assert decode_message(encode_message(msg)) == msg


# --- arbitrary input --------------------------------------------------------------------


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode_message(data)


@settings(max_examples=200)
@given(json_values | frames_like)
def test_arbitrary_json_decodes_or_raises_decode_error(value: JsonValue) -> None:
    text = json.dumps(value)
    error: DecodeError | None = None
    try:
        msg = decode_message(text)
    except DecodeError as err:
        error = err
    if error is not None:
        assert error.field
        assert error.reason
        assert str(error) == f"{error.field}: {error.reason}"
        return
    assert isinstance(value, dict)
    assert msg.type == value["type"]


@given(st.text(max_size=60))
def test_arbitrary_text_decodes_or_raises_decode_error(text: str) -> None:
    with contextlib.suppress(DecodeError):
        decode_message(text)


# --- strictness -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "field", "reason"),
    [
        ("", "frame", "not valid JSON"),
        ("{", "frame", "not valid JSON"),
        (b"\xc3\x28", "frame", "not valid UTF-8"),
        (b'\xef\xbb\xbf{"type":"ping"}', "frame", "not valid JSON"),  # a BOM is not JSON
        ('{"type":"ping","data":NaN}', "frame", "not valid JSON"),
        ('{"type":"ping","data":Infinity}', "frame", "not valid JSON"),
        ('{"type":"ping","data":-Infinity}', "frame", "not valid JSON"),
        ('{"type":"ping","data":1e400}', "frame", "not valid JSON"),
        ('{"type":"ping","data":-1e999}', "frame", "not valid JSON"),
        ('{"type":"ping","data":' + "9" * 5000 + "}", "frame", "not valid JSON"),
        ("null", "frame", "must be a JSON object"),
        ('["type"]', "frame", "must be a JSON object"),
        ('"ping"', "frame", "must be a JSON object"),
        ("{}", "type", "is required"),
        ('{"type":null}', "type", "is required"),
        ('{"type":1}', "type", "must be a string"),
        ('{"type":"announce","data":[]}', "data", "must be a JSON object"),
        ('{"type":"announce","data":"x"}', "data", "must be a JSON object"),
        ('{"type":"peer-discovered"}', "data", "is required"),
        ('{"type":"peer-disconnected","data":null}', "data", "is required"),
        ('{"type":"hub-auth"}', "data", "is required"),
        ('{"type":"offer"}', "data", "is required"),
        ('{"type":"offer","data":{"sdp":null}}', "data.sdp", "must be a string"),
        ('{"type":"answer","data":{"type":"offer","sdp":""}}', "data.type", "must be 'answer'"),
        ('{"type":"offer","data":{"type":3,"sdp":""}}', "data.type", "must be a string"),
        ('{"type":"ice-candidate","data":{}}', "data.candidate", "must be a string"),
        (
            '{"type":"ice-candidate","data":{"candidate":"c","sdpMid":0}}',
            "data.sdpMid",
            "must be a string",
        ),
        (
            '{"type":"ice-candidate","data":{"candidate":"c","sdpMLineIndex":true}}',
            "data.sdpMLineIndex",
            "must be an integer",
        ),
        (
            '{"type":"ice-candidate","data":{"candidate":"c","sdpMLineIndex":0.5}}',
            "data.sdpMLineIndex",
            "must be an integer",
        ),
        (
            '{"type":"ice-candidate","data":{"candidate":"c","usernameFragment":[]}}',
            "data.usernameFragment",
            "must be a string",
        ),
        ('{"type":"error"}', "error", "must be a string"),
        ('{"type":"ping","networkName":1}', "networkName", "must be a string"),
        ('{"type":"ping","fromPeerId":{}}', "fromPeerId", "must be a string"),
        ('{"type":"ping","targetPeerId":false}', "targetPeerId", "must be a string"),
        ('{"type":"ping","timestamp":"1"}', "timestamp", "must be a finite number"),
        ('{"type":"ping","timestamp":true}', "timestamp", "must be a finite number"),
        ('{"type":"ping","maxPeers":3.0}', "maxPeers", "must be an integer"),
        ('{"type":"ping","maxPeers":false}', "maxPeers", "must be an integer"),
    ],
)
def test_bad_frames_name_field_and_reason(raw: str | bytes, field: str, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_message(raw)
    assert (info.value.field, info.value.reason) == (field, reason)


def test_unknown_type_keeps_the_type_for_the_reply() -> None:
    with pytest.raises(UnknownMessageType) as info:
        decode_message('{"type":"renegotiation-something","data":{}}')
    assert info.value.message_type == "renegotiation-something"
    assert str(info.value) == "type: unknown message type 'renegotiation-something'"
    assert isinstance(info.value, DecodeError)


def test_error_text_is_the_reference_text() -> None:
    assert error_text_for("connection-rejected") == (
        "Signaling server does not route 'connection-rejected' messages. "
        "Use WebRTC data channels for peer-to-peer communication."
    )
    assert error_text_for("undefined").startswith("Signaling server does not route 'undefined'")


def test_frame_size_limit_counts_utf8_bytes() -> None:
    base = '{"type":"ping","data":""}'
    fits = base.replace('""', '"' + "x" * (1024 - len(base)) + '"')
    assert len(fits) == 1024
    assert decode_message(fits, max_bytes=1024) == Ping(data="x" * (1024 - len(base)))
    with pytest.raises(DecodeError) as info:
        decode_message(fits + " ", max_bytes=1024)
    assert str(info.value) == "frame: 1025 bytes exceeds the limit of 1024"
    # 1024 characters, but more bytes: "é" is two bytes in UTF-8.
    wide = fits.replace("x", "\u00e9", 1)
    with pytest.raises(DecodeError) as info:
        decode_message(wide, max_bytes=1024)
    assert info.value.reason == "1025 bytes exceeds the limit of 1024"
    with pytest.raises(DecodeError):
        decode_message(wide.encode(), max_bytes=1024)


def test_default_frame_limit_is_the_reference_max_message_size() -> None:
    assert DEFAULT_MAX_FRAME_BYTES == 1_048_576
    big = '{"type":"ping","data":"' + "x" * DEFAULT_MAX_FRAME_BYTES + '"}'
    with pytest.raises(DecodeError):
        decode_message(big)


def test_nesting_depth_is_bounded() -> None:
    def nested(levels: int) -> str:  # the frame itself is level 1
        return '{"type":"ping","data":' + "[" * (levels - 1) + "]" * (levels - 1) + "}"

    assert decode_message(nested(MAX_JSON_DEPTH)).type == "ping"
    with pytest.raises(DecodeError) as info:
        decode_message(nested(MAX_JSON_DEPTH + 1))
    assert str(info.value) == f"frame: nested deeper than {MAX_JSON_DEPTH} levels"
    with pytest.raises(DecodeError):
        decode_message(nested(100_000))  # past the interpreter's recursion limit


def test_str_and_bytes_decode_alike() -> None:
    text = '{"type":"announce","data":{"peerId":"' + A + '","name":"\u00e9\u4e2d"}}'
    assert decode_message(text) == decode_message(text.encode())


def test_decode_json_object_returns_the_object() -> None:
    assert decode_json_object('{"a":[1,2.5,null]}') == {"a": [1, 2.5, None]}


# --- encoding ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "msg",
    [
        Ping(data=math.nan),
        Ping(data=[math.inf]),
        Announce(data={"x": -math.inf}),
        Ping(timestamp=math.nan),
        Ping(timestamp=math.inf),
    ],
)
def test_encode_refuses_nan_and_infinity(msg: Message) -> None:
    with pytest.raises(ValueError, match="not JSON compliant"):
        encode_message(msg)


def test_client_envelopes_match_js_key_order() -> None:
    # JS SignalingClient.sendSignalingMessage: type, data, maxPeers, networkName, targetPeerId.
    assert encode_message(Announce(data={"peerId": A}, max_peers=3, network_name="global")) == (
        '{"type":"announce","data":{"peerId":"' + A + '"},"maxPeers":3,"networkName":"global"}'
    )
    assert encode_message(
        Offer(sdp="v=0\r\n", max_peers=3, network_name="global", target_peer_id=B)
    ) == (
        '{"type":"offer","data":{"type":"offer","sdp":"v=0\\r\\n"},"maxPeers":3,'
        '"networkName":"global","targetPeerId":"' + B + '"}'
    )
    assert encode_message(Ping()) == '{"type":"ping"}'


def test_server_frames_encode_compactly() -> None:
    assert encode_message(
        Connected(data={"peerId": A}, from_peer_id="system", timestamp=1735689600000)
    ) == (
        '{"type":"connected","data":{"peerId":"' + A + '"},"fromPeerId":"system",'
        '"timestamp":1735689600000}'
    )
    assert encode_message(ErrorReply(error=error_text_for("x"), timestamp=5)) == (
        '{"type":"error","error":"' + error_text_for("x") + '","timestamp":5}'
    )
    assert encode_message(IceCandidate(candidate="c")) == (
        '{"type":"ice-candidate","data":{"candidate":"c","sdpMid":null,"sdpMLineIndex":null}}'
    )


def test_non_ascii_is_escaped_and_equivalent() -> None:
    msg = Announce(data={"name": "\u00e9\u4e2d\U0001f426"})
    text = encode_message(msg)
    assert text.isascii()
    assert json.loads(text) == {"type": "announce", "data": {"name": "\u00e9\u4e2d\U0001f426"}}


# --- the reference's examples (signaling-and-topology.md section 2) -----------------------


def test_reference_examples_decode() -> None:
    relayed = decode_message(
        '{"type":"offer","data":{"type":"offer","sdp":"v=0\\r\\n"},"fromPeerId":"' + A + '",'
        '"targetPeerId":"' + B + '","networkName":"global","timestamp":1735689600000}'
    )
    assert relayed == Offer(
        sdp="v=0\r\n",
        from_peer_id=A,
        target_peer_id=B,
        network_name="global",
        timestamp=1735689600000,
    )
    found = decode_message(
        '{"type":"peer-discovered","data":{"peerId":"' + B + '","isHub":false},'
        '"networkName":"global","fromPeerId":"system","targetPeerId":"' + A + '",'
        '"timestamp":1735689600000}'
    )
    assert isinstance(found, PeerDiscovered)
    assert (found.peer_id, found.is_hub, found.network) == (B, False, "global")
    gone = decode_message(
        '{"type":"peer-disconnected","data":{"peerId":"' + B + '","reason":"disconnected",'
        '"timestamp":1735689600000},"fromPeerId":"system","timestamp":1735689600000,'
        '"targetPeerId":"' + A + '"}'
    )
    assert isinstance(gone, PeerDisconnected)
    assert (gone.peer_id, gone.network_name, gone.network) == (B, None, "global")
    pong = decode_message(
        '{"type":"pong","data":{"timestamp":1735689600000},"fromPeerId":"system",'
        '"targetPeerId":"' + A + '","timestamp":1735689600000}'
    )
    assert pong == Pong(
        data={"timestamp": 1735689600000},
        from_peer_id="system",
        target_peer_id=A,
        timestamp=1735689600000,
    )
    hub = decode_message(
        '{"type":"announce","data":{"isHub":true,"port":3001},"networkName":"pigeonhub-mesh"}'
    )
    assert isinstance(hub, Announce)
    assert hub.is_hub
    candidate = decode_message(
        '{"type":"ice-candidate","data":{"candidate":"candidate:1 1 udp 2122260223 192.0.2.1 '
        '54321 typ host generation 0","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"abcd"},'
        '"maxPeers":3,"networkName":"global","targetPeerId":"' + B + '"}'
    )
    assert isinstance(candidate, IceCandidate)
    assert (candidate.sdp_mid, candidate.sdp_mline_index, candidate.username_fragment) == (
        "0",
        0,
        "abcd",
    )
    assert candidate.max_peers == 3


def test_accessors() -> None:
    assert Ping(network_name="").network == "global"
    assert Ping(network_name="room").network == "room"
    assert Ping().type == "ping"
    assert PeerDiscovered(data={"peerId": 5, "isHub": 1}).peer_id is None
    assert not PeerDiscovered(data={"peerId": 5, "isHub": 1}).is_hub
    assert PeerDisconnected(data={}).peer_id is None
    assert not Announce(data={"isHub": "true"}).is_hub
    assert message_from_object({"type": "cleanup"}) == Cleanup()
    assert wire.GLOBAL_NETWORK == "global"
    assert wire.SYSTEM_SENDER == "system"
