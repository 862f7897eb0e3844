"""Tests of the data-channel codecs: reference examples, field errors, property round trips."""

from __future__ import annotations

import contextlib
import json
from typing import Final

import pytest
from hypothesis import given
from hypothesis import strategies as st

from peerpigeon.protocol.errors import DecodeError, UsageError
from peerpigeon.protocol.frames import (
    DEFAULT_MAX_DATA_FRAME_BYTES,
    MAX_PATH_LENGTH,
    DataFrame,
    EvictionAnswer,
    EvictionAsk,
    EvictionCancel,
    EvictionNotice,
    GossipMessage,
    OtherFrame,
    SignalingEnvelope,
    decode_data_frame,
    decode_gossip,
    encode_data_frame,
    encode_eviction,
    encode_gossip,
    encode_relayed_gossip,
    encode_signaling,
)
from peerpigeon.protocol.ids import PeerId
from peerpigeon.protocol.wire import JsonObject, JsonValue

A: Final = PeerId("a1b2c3d4e5f60718293a4b5c6d7e8f9012345678")
B: Final = PeerId("0f1e2d3c4b5a69788796a5b4c3d2e1f00a1b2c3d")
C: Final = PeerId("77c0ffee00000000000000000000000000000042")

# data-plane.md 3.1 and 3.6.3, verbatim.
CHAT: Final = (
    '{"id":"5d41402abc4b2a76b9719d911017c592","type":"gossip","subtype":"chat",'
    '"content":"hello mesh","from":"a1b2c3d4e5f60718293a4b5c6d7e8f9012345678",'
    '"networkName":"global","timestamp":1730000000000,"ttl":10,'
    '"path":["a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"]}'
)
CHAT_RELAYED: Final = (
    '{"id":"5d41402abc4b2a76b9719d911017c592","type":"gossip","subtype":"chat",'
    '"content":"hello mesh","from":"a1b2c3d4e5f60718293a4b5c6d7e8f9012345678",'
    '"networkName":"global","timestamp":1730000000000,"ttl":9,'
    '"path":["a1b2c3d4e5f60718293a4b5c6d7e8f9012345678",'
    '"0f1e2d3c4b5a69788796a5b4c3d2e1f00a1b2c3d"]}'
)
DM: Final = (
    '{"id":"9e107d9d372bb6826bd81d3542a419d6","type":"gossip","subtype":"dm",'
    '"content":{"kind":"note","text":"hi"},"from":"a1b2c3d4e5f60718293a4b5c6d7e8f9012345678",'
    '"to":"77c0ffee00000000000000000000000000000042","networkName":"global",'
    '"timestamp":1730000000000,"ttl":10,"path":["a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"]}'
)
EVICTION: Final = (
    '{"type":"eviction","reason":"topology optimization",'
    '"from":"a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"}'
)
SIGNALING: Final = (
    '{"type":"signaling","data":{"type":"renegotiation-answer","data":{"type":"answer",'
    '"sdp":"v=0\\r\\n..."},"timestamp":1730000000150},'
    '"fromPeerId":"0f1e2d3c4b5a69788796a5b4c3d2e1f00a1b2c3d","timestamp":1730000000151}'
)


def gossip_obj(**changes: JsonValue) -> JsonObject:
    obj: JsonObject = json.loads(DM)
    for key, value in changes.items():
        if value is _DELETE:
            del obj[key]
        else:
            obj[key] = value
    return obj


_DELETE: Final = "__delete__"


# --- reference examples ----------------------------------------------------------------------


def test_chat_example_decodes_and_reencodes_verbatim() -> None:
    msg = decode_data_frame(CHAT)
    assert isinstance(msg, GossipMessage)
    assert msg.subtype == "chat"
    assert msg.content == "hello mesh"
    assert msg.from_peer == A
    assert msg.to is None
    assert msg.network == "global"
    assert msg.ttl == 10
    assert msg.path == (A,)
    assert encode_gossip(msg) == CHAT


def test_relay_copy_matches_the_reference() -> None:
    msg = decode_data_frame(CHAT)
    assert isinstance(msg, GossipMessage)
    assert encode_gossip(msg.relayed_by(B)) == CHAT_RELAYED


def test_dm_example() -> None:
    msg = decode_data_frame(DM)
    assert isinstance(msg, GossipMessage)
    assert msg.subtype == "dm"
    assert msg.to == C
    assert msg.content == {"kind": "note", "text": "hi"}
    assert encode_gossip(msg) == DM


def test_unknown_fields_survive_a_relay() -> None:
    obj = gossip_obj(zeta={"x": [1, 2]}, alpha=None)
    msg = decode_gossip(obj)
    assert msg.extra == {"zeta": {"x": [1, 2]}, "alpha": None}
    again = decode_data_frame(encode_gossip(msg.relayed_by(B)))
    assert isinstance(again, GossipMessage)
    assert again.extra == msg.extra
    assert again.ttl == 9
    assert again.path == (A, B)


def test_relay_without_ttl_or_path() -> None:
    msg = decode_gossip(gossip_obj(ttl=_DELETE, path=_DELETE))
    relayed = msg.relayed_by(B)
    assert relayed.ttl is None
    assert relayed.path == (B,)


def test_eviction_example() -> None:
    frame = decode_data_frame(EVICTION)
    assert frame == EvictionNotice("topology optimization", A)
    assert encode_eviction(frame) == EVICTION


def test_eviction_without_reason() -> None:
    assert decode_data_frame('{"type":"eviction"}') == EvictionNotice(None, None)
    assert encode_eviction(EvictionNotice(None)) == '{"type":"eviction"}'


def test_signaling_wrapper_example() -> None:
    frame = decode_data_frame(SIGNALING)
    assert isinstance(frame, SignalingEnvelope)
    assert frame.inner_type == "renegotiation-answer"
    assert frame.from_peer_id == B
    assert frame.timestamp == 1730000000151
    assert encode_signaling(frame) == SIGNALING


@pytest.mark.parametrize(
    "frame_type",
    ["__STREAM_INIT__", "dht", "signaling-relay", "renegotiation-offer", "weird"],
)
def test_other_types_are_kept_whole(frame_type: str) -> None:
    text = json.dumps({"type": frame_type, "size": 3})
    frame = decode_data_frame(text)
    assert frame == OtherFrame(frame_type, {"type": frame_type, "size": 3})
    assert json.loads(encode_data_frame(frame)) == {"type": frame_type, "size": 3}


def test_content_null_is_accepted() -> None:
    assert decode_gossip(gossip_obj(content=None)).content is None


def test_to_is_kept_as_sent() -> None:
    spelled = " 77C0FFEE00000000000000000000000000000042 "
    assert decode_gossip(gossip_obj(to=spelled)).to == spelled


# --- errors name the field -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"id": _DELETE}, "id"),
        ({"id": ""}, "id"),
        ({"id": 5}, "id"),
        ({"id": "x" * 129}, "id"),
        ({"subtype": _DELETE}, "subtype"),
        ({"subtype": ["dm"]}, "subtype"),
        ({"content": _DELETE}, "content"),
        ({"from": _DELETE}, "from"),
        ({"from": "not-an-id"}, "from"),
        ({"to": 7}, "to"),
        ({"to": "zz"}, "to"),
        ({"networkName": 1}, "networkName"),
        ({"timestamp": "now"}, "timestamp"),
        ({"ttl": "10"}, "ttl"),
        ({"ttl": True}, "ttl"),
        ({"path": "abc"}, "path"),
        ({"path": [1]}, "path"),
        ({"path": [A] * (MAX_PATH_LENGTH + 1)}, "path"),
    ],
)
def test_gossip_errors_name_the_field(changes: dict[str, JsonValue], field: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_data_frame(json.dumps(gossip_obj(**changes)))
    assert info.value.field == field


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("", "frame"),
        ("[]", "frame"),
        ("null", "frame"),
        ("{", "frame"),
        ("{}", "type"),
        ('{"type":7}', "type"),
        ('{"type":"eviction","reason":5}', "reason"),
        ('{"type":"signaling"}', "data"),
        ('{"type":"signaling","data":{"type":""}}', "data.type"),
        ('{"type":"signaling","data":{"type":"x"},"timestamp":"y"}', "timestamp"),
        ("[" * 100 + "]" * 100, "frame"),
    ],
)
def test_frame_errors_name_the_field(text: str, field: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_data_frame(text)
    assert info.value.field == field


def test_size_bound() -> None:
    text = json.dumps({"type": "x", "pad": "a" * 100})
    with pytest.raises(DecodeError) as info:
        decode_data_frame(text, max_bytes=50)
    assert info.value.field == "frame"
    assert decode_data_frame(text, max_bytes=len(text)) == OtherFrame("x", json.loads(text))
    assert DEFAULT_MAX_DATA_FRAME_BYTES == 262_144


def test_decode_gossip_requires_the_gossip_type() -> None:
    with pytest.raises(DecodeError) as info:
        decode_gossip(gossip_obj(type="chat"))
    assert info.value.field == "type"


def test_extra_may_not_shadow_envelope_fields() -> None:
    with pytest.raises(UsageError):
        GossipMessage(id="x", subtype="chat", content=1, from_peer=A, extra={"ttl": 3})


def test_unencodable_content_is_a_usage_error() -> None:
    msg = GossipMessage(id="x", subtype="chat", content=float("nan"), from_peer=A)
    with pytest.raises(UsageError):
        encode_gossip(msg)


def test_signaling_encode_needs_an_inner_type() -> None:
    with pytest.raises(UsageError):
        encode_signaling(SignalingEnvelope({"data": 1}))


def test_eviction_agreement_frames() -> None:
    ask = f'{{"type":"__PP_EVICT_ASK__","from":"{A}","requestId":"0123456789abcdef"}}'
    assert decode_data_frame(ask) == EvictionAsk(A, "0123456789abcdef")
    assert encode_data_frame(EvictionAsk(A, "0123456789abcdef")) == ask
    yes = {"type": "__PP_EVICT_ANSWER__", "from": A, "requestId": "r", "accept": True}
    assert decode_data_frame(json.dumps(yes)) == EvictionAnswer(A, "r", True)
    cancel = {"type": "__PP_EVICT_CANCEL__", "from": A, "requestId": "r"}
    assert decode_data_frame(json.dumps(cancel)) == EvictionCancel(A, "r")


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        ({"type": "__PP_EVICT_ASK__", "from": A}, "requestId"),
        ({"type": "__PP_EVICT_ASK__", "from": A, "requestId": ""}, "requestId"),
        ({"type": "__PP_EVICT_ASK__", "from": A, "requestId": "x" * 65}, "requestId"),
        ({"type": "__PP_EVICT_CANCEL__", "from": A, "requestId": 7}, "requestId"),
        ({"type": "__PP_EVICT_ASK__", "from": "nope", "requestId": "r"}, "from"),
        ({"type": "__PP_EVICT_ANSWER__", "from": A, "requestId": "r"}, "accept"),
        ({"type": "__PP_EVICT_ANSWER__", "from": A, "requestId": "r", "accept": 1}, "accept"),
    ],
)
def test_eviction_agreement_frame_errors(frame: JsonObject, field: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_data_frame(json.dumps(frame))
    assert info.value.field == field


# --- properties ------------------------------------------------------------------------------

peer_ids = st.text(alphabet="0123456789abcdefABCDEF", min_size=40, max_size=40).map(PeerId)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
numbers = st.integers(min_value=-(2**53), max_value=2**53) | st.floats(
    allow_nan=False, allow_infinity=False
)
extra_keys = st.text(min_size=1, max_size=10).filter(
    lambda k: (
        k not in ("id", "type", "subtype", "content", "from", "to", "networkName")
        and k not in ("timestamp", "ttl", "path")
    )
)

gossip_messages = st.builds(
    GossipMessage,
    id=st.text(min_size=1, max_size=40),
    subtype=st.text(min_size=1, max_size=20),
    content=json_values,
    from_peer=peer_ids,
    to=st.none() | peer_ids,
    network_name=st.none() | st.text(max_size=20),
    timestamp=st.none() | numbers,
    ttl=st.none() | numbers,
    path=st.none() | st.lists(peer_ids, max_size=5).map(tuple),
    extra=st.dictionaries(extra_keys, json_values, max_size=3),
)
frames: st.SearchStrategy[DataFrame] = (
    gossip_messages
    | st.builds(EvictionNotice, st.none() | st.text(max_size=30), st.none() | peer_ids)
    | st.builds(EvictionAsk, peer_ids, st.text(min_size=1, max_size=64))
    | st.builds(EvictionAnswer, peer_ids, st.text(min_size=1, max_size=64), st.booleans())
    | st.builds(EvictionCancel, peer_ids, st.text(min_size=1, max_size=64))
    | st.builds(
        SignalingEnvelope,
        st.dictionaries(st.text(max_size=5), json_values, max_size=3).map(
            lambda d: {**d, "type": "renegotiation-offer"}
        ),
        st.none() | peer_ids,
        st.none() | numbers,
    )
)


@given(frames)
def test_round_trip(frame: DataFrame) -> None:
    assert decode_data_frame(encode_data_frame(frame)) == frame


@given(gossip_messages, peer_ids)
def test_relay_round_trip(msg: GossipMessage, relay: PeerId) -> None:
    again = decode_data_frame(encode_gossip(msg.relayed_by(relay)))
    assert isinstance(again, GossipMessage)
    assert again.extra == msg.extra
    assert again.path == (*(msg.path or ()), relay)


@given(st.text(max_size=200) | st.binary(max_size=200))
def test_garbage_only_raises_decode_error(data: str | bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode_data_frame(data)


@given(
    st.dictionaries(
        st.sampled_from(["id", "type", "subtype", "content", "from", "to", "ttl", "path", "x"]),
        json_values | st.sampled_from(["gossip", "eviction", "signaling", A]),
        max_size=9,
    )
)
def test_arbitrary_objects_only_raise_decode_error(obj: JsonObject) -> None:
    try:
        frame = decode_data_frame(json.dumps(obj))
    except DecodeError:
        return
    assert isinstance(frame, GossipMessage | EvictionNotice | SignalingEnvelope | OtherFrame)


@given(gossip_messages, peer_ids, st.none() | st.integers(min_value=0, max_value=32))
def test_relay_encoding_is_the_relayed_copys(
    msg: GossipMessage, relay: PeerId, ttl: int | None
) -> None:
    """The relay's fast path writes exactly what encoding the relayed copy writes."""
    copy = msg.relayed_by(relay)
    if ttl is not None:
        copy = GossipMessage(**{**{f: getattr(copy, f) for f in copy.__slots__}, "ttl": ttl})
    assert encode_relayed_gossip(msg, relay, ttl=ttl) == encode_gossip(copy)
