"""StreamMux: chunking, reassembly, credit, integrity, aborts, timeouts, bounds (pure)."""

from __future__ import annotations

import hashlib
import itertools
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from peerpigeon.protocol.errors import ConfigError, UsageError
from peerpigeon.protocol.ids import PeerId
from peerpigeon.protocol.rand import SeededEntropy
from peerpigeon.protocol.streams import (
    StreamAborted,
    StreamConfig,
    StreamCredit,
    StreamData,
    StreamDelivered,
    StreamEnded,
    StreamEvent,
    StreamMux,
    StreamOpened,
    StreamRejected,
    StreamSend,
    clamp_chunk_size,
)
from peerpigeon.protocol.wire import JsonObject

A = PeerId("a" * 40)
B = PeerId("b" * 40)
SMALL = StreamConfig(
    chunk_size=4096, window_bytes=16384, credit_threshold_bytes=8192, max_unread_bytes=16384
)


def mux(config: StreamConfig = SMALL, seed: int = 1) -> StreamMux:
    return StreamMux(config, entropy=SeededEntropy(seed))


def transfer(src: StreamMux, src_id: PeerId, dst: StreamMux) -> list[StreamEvent]:
    """Carry `src`'s queued frames to `dst`, pairing chunk headers with their payloads."""
    header: JsonObject | None = None
    for action in src.drain_actions():
        assert isinstance(action, StreamSend)
        if isinstance(action.data, bytes):
            assert header is not None
            dst.receive_frame(src_id, header, action.data, 0.0)
            header = None
            continue
        obj = json.loads(action.data)
        if obj["type"] == "__STREAM_CHUNK__":
            header = obj
        else:
            dst.receive_frame(src_id, obj, None, 0.0)
    return dst.drain_events()


def frames(m: StreamMux) -> list[str | bytes]:
    return [a.data for a in m.drain_actions()]


def test_wire_format_matches_reference() -> None:
    m = mux(StreamConfig())
    sid = m.open_stream(B, 1.0, flow_control=False, type="file", filename="n.txt", total_size=5)
    assert sid.startswith("stream-1000-")
    assert len(sid.split("-")[2]) == 7
    m.send(B, sid, b"hello", 1.0)
    m.end_stream(B, sid, 1.0)
    out = frames(m)
    init = json.loads(out[0])
    assert init == {
        "type": "__STREAM_INIT__",
        "streamId": sid,
        "metadata": {
            "streamId": sid,
            "type": "file",
            "filename": "n.txt",
            "totalSize": 5,
            "chunkSize": 16384,
            "timestamp": 1000,
        },
    }
    assert json.loads(out[1]) == {
        "type": "__STREAM_CHUNK__",
        "streamId": sid,
        "chunkIndex": 0,
        "size": 5,
        "encoding": "binary",
    }
    assert out[2] == b"hello"
    end = json.loads(out[3])
    assert end["type"] == "__STREAM_END__"
    assert end["totalChunks"] == 1
    assert end["ppSha256"] == hashlib.sha256(b"hello").hexdigest()
    assert end["ppSize"] == 5


@given(
    data=st.binary(max_size=40_000),
    cuts=st.lists(st.integers(min_value=0, max_value=40_000), max_size=5),
)
def test_roundtrip_reassembles_in_order(data: bytes, cuts: list[int]) -> None:
    cfg = StreamConfig(chunk_size=4096, window_bytes=65536, credit_threshold_bytes=4096)
    tx, rx = mux(cfg), mux(cfg)
    sid = tx.open_stream(B, 0.0, flow_control=True, total_size=len(data))
    bounds = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    for lo, hi in itertools.pairwise(bounds):
        tx.send(B, sid, data[lo:hi], 0.0)
    tx.end_stream(B, sid, 0.0)
    events = transfer(tx, A, rx)
    got = b"".join(e.data for e in events if isinstance(e, StreamData))
    assert got == data
    assert isinstance(events[0], StreamOpened)
    assert events[0].flow_controlled
    end = events[-1]
    assert isinstance(end, StreamEnded)
    assert end.verified
    assert end.total_bytes == len(data)
    assert all(len(e.data) <= 4096 for e in events if isinstance(e, StreamData))
    assert rx.open_count() == (0, 0)
    assert tx.open_count() == (0, 0)


def test_credit_bounds_bytes_in_flight_and_is_returned_on_read() -> None:
    tx, rx = mux(), mux()
    sid = tx.open_stream(B, 0.0, flow_control=True)
    assert tx.available(B, sid) == 16384
    with pytest.raises(UsageError):
        tx.send(B, sid, b"x" * 16385, 0.0)
    tx.send(B, sid, b"x" * 16384, 0.0)
    assert tx.available(B, sid) == 0
    with pytest.raises(UsageError):
        tx.send(B, sid, b"y", 0.0)
    transfer(tx, A, rx)
    assert rx.buffered_bytes() == 16384
    rx.acknowledge(A, sid, 4096, 0.0)
    assert rx.drain_actions() == []  # below the threshold: no credit frame yet
    rx.acknowledge(A, sid, 4096, 0.0)
    events = transfer(rx, B, tx)
    assert events == [StreamCredit(peer=B, stream_id=sid, available=8192)]
    assert tx.available(B, sid) == 8192


def test_sender_beyond_credit_is_aborted() -> None:
    rx = mux()
    rx.receive_frame(A, {"type": "__STREAM_INIT__", "streamId": "s", "ppWindow": 4096}, None, 0.0)
    rx.drain_events()
    header: JsonObject = {
        "type": "__STREAM_CHUNK__",
        "streamId": "s",
        "chunkIndex": 0,
        "size": 5000,
        "encoding": "binary",
    }
    rx.receive_frame(A, header, b"z" * 5000, 0.0)
    events = rx.drain_events()
    assert isinstance(events[-1], StreamAborted)
    assert "credit" in events[-1].reason
    assert json.loads(frames(rx)[-1])["type"] == "__STREAM_ABORT__"
    assert rx.open_count() == (0, 0)


def test_js_stream_without_credit_is_bounded_by_unread_bytes() -> None:
    rx = mux()
    rx.receive_frame(A, {"type": "__STREAM_INIT__", "streamId": "s"}, None, 0.0)
    (opened,) = rx.drain_events()
    assert isinstance(opened, StreamOpened)
    assert not opened.flow_controlled
    for i in range(5):
        h: JsonObject = {
            "type": "__STREAM_CHUNK__",
            "streamId": "s",
            "chunkIndex": i,
            "size": 4096,
            "encoding": "binary",
        }
        rx.receive_frame(A, h, b"q" * 4096, 0.0)
    events = rx.drain_events()
    assert sum(isinstance(e, StreamData) for e in events) == 4
    assert isinstance(events[-1], StreamAborted)
    assert "unread" in events[-1].reason
    assert rx.buffered_bytes() == 0


@pytest.mark.parametrize(
    ("index", "size", "payload", "field"),
    [(1, 3, b"abc", "chunkIndex"), (0, 4, b"abc", "size")],
)
def test_bad_chunks_abort_the_stream(index: int, size: int, payload: bytes, field: str) -> None:
    rx = mux()
    rx.receive_frame(A, {"type": "__STREAM_INIT__", "streamId": "s"}, None, 0.0)
    rx.drain_events()
    h: JsonObject = {
        "type": "__STREAM_CHUNK__",
        "streamId": "s",
        "chunkIndex": index,
        "size": size,
        "encoding": "binary",
    }
    rx.receive_frame(A, h, payload, 0.0)
    rejected, aborted = rx.drain_events()
    assert isinstance(rejected, StreamRejected)
    assert rejected.field == field
    assert isinstance(aborted, StreamAborted)
    assert not aborted.by_peer
    assert rx.stats().rejected == 1
    assert rx.open_count() == (0, 0)


def test_duplicate_chunk_and_lying_sizes() -> None:
    rx = mux()
    init: JsonObject = {"type": "__STREAM_INIT__", "streamId": "s", "metadata": {"totalSize": 2}}
    rx.receive_frame(A, init, None, 0.0)
    h: JsonObject = {"type": "__STREAM_CHUNK__", "streamId": "s", "chunkIndex": 0, "size": 3}
    h["encoding"] = "binary"
    rx.receive_frame(A, h, b"abc", 0.0)  # more than totalSize
    assert isinstance(rx.drain_events()[-1], StreamAborted)
    # an end that lies about the digest
    rx.receive_frame(A, {"type": "__STREAM_INIT__", "streamId": "t"}, None, 0.0)
    h2: JsonObject = {**h, "streamId": "t", "size": 1}
    rx.receive_frame(A, h2, b"a", 0.0)
    rx.receive_frame(A, h2, b"a", 0.0)  # duplicate index 0
    ev = rx.drain_events()
    assert isinstance(ev[-1], StreamAborted)
    assert "chunkIndex" in ev[-1].reason
    rx.receive_frame(A, {"type": "__STREAM_INIT__", "streamId": "u"}, None, 0.0)
    rx.receive_frame(A, {**h2, "streamId": "u"}, b"a", 0.0)
    end: JsonObject = {"type": "__STREAM_END__", "streamId": "u", "totalChunks": 1}
    rx.receive_frame(A, {**end, "ppSize": 1, "ppSha256": "00"}, None, 0.0)
    ev = rx.drain_events()
    assert isinstance(ev[-1], StreamAborted)
    assert "ppSha256" in ev[-1].reason


def test_legacy_array_chunks_and_unverified_end() -> None:
    rx = mux()
    rx.receive_frame(A, {"type": "__STREAM_INIT__", "streamId": "s"}, None, 0.0)
    rx.receive_frame(
        A,
        {"type": "__STREAM_CHUNK__", "streamId": "s", "chunkIndex": 0, "data": [104, 105]},
        None,
        0.0,
    )
    rx.receive_frame(A, {"type": "__STREAM_END__", "streamId": "s", "totalChunks": 1}, None, 0.0)
    ev = rx.drain_events()
    assert isinstance(ev[1], StreamData)
    assert ev[1].data == b"hi"
    assert isinstance(ev[2], StreamEnded)
    assert not ev[2].verified


def test_unknown_streams_and_garbage_are_rejected_without_state() -> None:
    rx = mux()
    for body in (
        {"type": "__STREAM_CHUNK__", "streamId": "nope", "chunkIndex": 0, "size": 1},
        {"type": "__STREAM_END__", "streamId": "nope"},
        {"type": "__STREAM_ABORT__", "streamId": "nope"},
        {"type": "__PP_STREAM_CREDIT__", "streamId": "nope", "credit": 5},
        {"type": "__STREAM_INIT__"},
        {"type": "__STREAM_INIT__", "streamId": 7},
    ):
        rx.receive_frame(A, body, b"x", 0.0)  # type: ignore[arg-type]  # garbage on purpose
    events = rx.drain_events()
    assert len(events) == 6
    assert all(isinstance(e, StreamRejected) for e in events)
    assert rx.open_count() == (0, 0)
    assert rx.stats().rejected == 6


def test_abort_from_either_side() -> None:
    tx, rx = mux(), mux()
    sid = tx.open_stream(B, 0.0, flow_control=True)
    transfer(tx, A, rx)
    tx.abort_stream(B, sid, "changed my mind", 0.0)
    (local,) = tx.drain_events()
    assert isinstance(local, StreamAborted)
    assert local.outgoing
    assert not local.by_peer
    (remote,) = transfer(tx, A, rx)
    assert isinstance(remote, StreamAborted)
    assert remote.by_peer
    assert remote.reason == "changed my mind"
    sid2 = tx.open_stream(B, 0.0, flow_control=True)
    transfer(tx, A, rx)
    rx.abort_stream(A, sid2, "no thanks", 0.0, outgoing=False)
    rx.drain_events()
    (remote2,) = transfer(rx, B, tx)
    assert isinstance(remote2, StreamAborted)
    assert remote2.outgoing
    assert remote2.by_peer
    with pytest.raises(UsageError):
        tx.send(B, sid2, b"late", 0.0)
    assert tx.open_count() == (0, 0)
    assert rx.open_count() == (0, 0)


def test_abort_after_end_reaches_a_sender_waiting_for_delivery() -> None:
    """The receiver gives up before our end frame arrives: the sender, waiting for
    `StreamDelivered`, learns it (found by the stateful test; it used to be refused)."""
    tx, rx = mux(), mux()
    sid = tx.open_stream(B, 0.0, flow_control=True)
    transfer(tx, A, rx)
    tx.send(B, sid, b"hello", 0.0)
    tx.end_stream(B, sid, 0.0)
    rx.abort_stream(A, sid, "no thanks", 0.0, outgoing=False)
    rx.drain_events()
    assert transfer(rx, B, tx) == [
        StreamAborted(peer=B, stream_id=sid, reason="no thanks", outgoing=True, by_peer=True)
    ]
    assert [type(e) for e in transfer(tx, A, rx)] == [StreamRejected, StreamRejected]
    assert tx.stats().rejected == 0
    assert tx.stats().ended_out == 1
    assert tx.stats().aborted_out == 0  # counted once, as ended
    tx.receive_frame(B, {"type": "__STREAM_ABORT__", "streamId": sid}, None, 0.0)
    assert [type(e) for e in tx.drain_events()] == [StreamRejected]  # forgotten: once only


def test_credit_returned_after_our_end_is_expected() -> None:
    """The receiver returns credit before our end frame reaches it: not a bad frame (found by
    the stateful test; every such transfer used to count a rejected frame at the sender)."""
    tx, rx = mux(), mux()
    sid = tx.open_stream(B, 0.0, flow_control=True)
    tx.send(B, sid, b"x" * 8192, 0.0)
    transfer(tx, A, rx)
    tx.end_stream(B, sid, 0.0)  # the end frame is still on its way
    rx.acknowledge(A, sid, 8192, 0.0)  # the threshold: credit goes back
    assert transfer(rx, B, tx) == []
    assert tx.stats().rejected == 0
    ended = transfer(tx, A, rx)
    assert isinstance(ended[-1], StreamEnded)
    assert transfer(rx, B, tx) == [StreamDelivered(peer=B, stream_id=sid)]


def test_idle_streams_time_out_and_deadlines_step() -> None:
    cfg = StreamConfig(idle_timeout_s=5.0)
    tx, rx = mux(cfg), mux(cfg)
    assert tx.next_deadline() is None
    sid = tx.open_stream(B, 10.0, flow_control=True)
    transfer(tx, A, rx)
    rx.receive_frame(A, {"type": "__STREAM_INIT__", "streamId": "other"}, None, 12.0)
    rx.drain_events()
    assert tx.next_deadline() == 15.0
    tx.handle_timer(14.9)
    assert tx.drain_events() == []
    tx.send(B, sid, b"x", 14.9)  # progress moves the deadline
    assert tx.next_deadline() == pytest.approx(19.9)
    tx.handle_timer(19.9)
    tx.handle_timer(19.9)  # twice: harmless
    (ev,) = tx.drain_events()
    assert isinstance(ev, StreamAborted)
    assert ev.reason == "timeout"
    assert tx.next_deadline() is None
    assert tx.stats().timeouts == 1
    while (now := rx.next_deadline()) is not None:
        rx.handle_timer(now)
        assert rx.next_deadline() is None or rx.next_deadline() > now  # type: ignore[operator]
    assert rx.open_count() == (0, 0)


def test_bounds_on_streams_per_peer_and_peer_lost() -> None:
    cfg = StreamConfig(max_streams_per_peer=2)
    tx, rx = mux(cfg), mux(cfg)
    for i in range(3):
        rx.receive_frame(A, {"type": "__STREAM_INIT__", "streamId": f"s{i}"}, None, 0.0)
    events = rx.drain_events()
    assert isinstance(events[-1], StreamRejected)
    assert rx.open_count() == (0, 2)
    assert json.loads(frames(rx)[-1])["type"] == "__STREAM_ABORT__"
    tx.open_stream(B, 0.0, flow_control=False)
    tx.open_stream(B, 0.0, flow_control=False)
    with pytest.raises(UsageError):
        tx.open_stream(B, 0.0, flow_control=False)
    tx.peer_lost(B, 1.0)
    rx.peer_lost(A, 1.0)
    assert len(tx.drain_events()) == 2
    assert len(rx.drain_events()) == 2
    assert tx.open_count() == (0, 0)
    assert rx.open_count() == (0, 0)


def test_config_and_chunk_clamp() -> None:
    with pytest.raises(ConfigError):
        StreamConfig(chunk_size=100)
    with pytest.raises(ConfigError):
        StreamConfig(window_bytes=10)
    assert clamp_chunk_size(1) == 4096
    assert clamp_chunk_size(1e9) == 65536
    assert clamp_chunk_size("x") == 16384
    assert clamp_chunk_size(float("nan")) == 16384


@given(
    body=st.dictionaries(
        st.sampled_from(["type", "streamId", "chunkIndex", "size", "encoding", "credit", "data"]),
        st.one_of(
            st.none(),
            st.integers(-5, 70000),
            st.sampled_from(["__STREAM_INIT__", "__STREAM_CHUNK__", "__STREAM_END__", "s"]),
            st.lists(st.integers(-1, 300), max_size=4),
        ),
    ),
    payload=st.one_of(st.none(), st.binary(max_size=8)),
)
def test_arbitrary_frames_never_raise(body: JsonObject, payload: bytes | None) -> None:
    rx = mux()
    rx.receive_frame(A, {"type": "__STREAM_INIT__", "streamId": "s"}, None, 0.0)
    rx.receive_frame(A, body, payload, 0.0)
    rx.drain_events()
    assert rx.buffered_bytes() <= SMALL.max_unread_bytes


def test_mesh_refuses_streams_to_non_neighbours() -> None:
    import random

    from peerpigeon.protocol.mesh import Mesh, MeshConfig

    m = Mesh(MeshConfig(peer_id=A), rng=random.Random(1), entropy=SeededEntropy(1))
    with pytest.raises(UsageError):
        m.open_stream(B, 0.0)
    assert m.open_stream_count() == (0, 0)


def test_chunk_size_depends_on_the_receiver() -> None:
    """Our peers get 64 KiB chunks (one header packet per 55 data packets in aiortc); JS
    peers get the reference's 16 KiB; a window below 64 KiB caps the chunk."""
    m = mux(StreamConfig())
    for flow_control, chunk in ((True, 65536), (False, 16384)):
        sid = m.open_stream(B, 0.0, flow_control=flow_control)
        m.send(B, sid, bytes(100_000), 0.0)
        out = frames(m)
        assert json.loads(out[0])["metadata"]["chunkSize"] == chunk
        sizes = [len(f) for f in out if isinstance(f, bytes)]
        assert sizes == [chunk] * (100_000 // chunk) + [100_000 % chunk]
    capped = StreamConfig(chunk_size=4096, window_bytes=8192, credit_threshold_bytes=4096)
    assert capped.chunk_for(True) == 8192
    assert capped.chunk_for(False) == 4096
    with pytest.raises(ConfigError):
        StreamConfig(credit_chunk_size=70_000)
