"""StreamMux as a stateful system: two muxes joined by an in-order wire each way (pure).

Honest traffic runs in both directions: credit streams (a Python peer) and streams without
credit (a JS peer). Hypothesis interleaves partial delivery, reads, ends, aborts from either
side, idle timeouts, link loss and hostile frames. Some hostile frames come from the honest peer
into live streams, and a third peer opens streams and never finishes them. A model of every
stream checks after each step: the credit window, the receive buffer, the stream bounds,
deadlines and counters, and that each receiver got exactly a prefix of what was sent.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Final

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from peerpigeon.protocol.errors import UsageError
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
)
from peerpigeon.protocol.wire import JsonObject, JsonValue

A: Final = PeerId("a" * 40)
B: Final = PeerId("b" * 40)
C: Final = PeerId("c" * 40)  # a third neighbour: only bad or abandoned frames
OTHER: Final = {A: B, B: A}
SIDES: Final = st.sampled_from([A, B])
IDLE: Final = 10.0
WINDOW: Final = 16384
INIT: Final = "__STREAM_INIT__"
CHUNK: Final = "__STREAM_CHUNK__"
END: Final = "__STREAM_END__"
ABORT: Final = "__STREAM_ABORT__"
CREDIT: Final = "__PP_STREAM_CREDIT__"
_BASE: Final = bytes(range(251)) * 300  # any slice of up to 75000 bytes


def _obj(data: str | bytes) -> Any:
    assert isinstance(data, str), "a binary frame where a text frame belongs"
    return json.loads(data)


@dataclass(eq=False, repr=False)
class Flow:
    """One stream as both ends should see it."""

    sid: str
    sender: PeerId
    credit: bool
    total: int | None
    tx_deadline: float
    table: bytes  # per-stream byte pattern: a chunk of another stream never matches
    eager: bool  # the receiving application reads everything as it arrives
    # sender
    sent: bytearray = field(default_factory=bytearray)
    chunks: int = 0
    granted: int = 0  # credit that reached the sender
    tx_open: bool = True
    ended: bool = False
    closing: bool = False  # ended, credit: waiting for the receiver's "done"
    evicted: bool = False  # pushed out of the sender's bounded wait table
    delivered: bool = False
    tx_aborted: bool = False  # the sender was told (StreamAborted)
    # receiver
    received: bytearray = field(default_factory=bytearray)
    rx_chunks: int = 0
    unread: int = 0
    consumed: int = 0  # acknowledged, not yet returned
    returned: int = 0  # credit the receiver sent back
    rx_open: bool = False
    rx_seen: bool = False
    rx_ended: bool = False
    rx_deadline: float = 0.0
    lost: bool = False  # the link went away while it lived

    def __repr__(self) -> str:
        kind = "credit" if self.credit else "js"
        return f"Flow({self.sid!r} from {self.sender[:1]}, {kind}, total={self.total})"

    @property
    def receiver(self) -> PeerId:
        return OTHER[self.sender]

    def payload(self, n: int) -> bytes:
        start = len(self.sent) % 251
        return _BASE[start : start + n].translate(self.table)


class StreamRules(RuleBasedStateMachine):
    """Two muxes, a wire each way, a stranger, a clock; the model must agree at every step."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 100.0
        self.cfg = StreamConfig()
        self.mux: dict[PeerId, StreamMux] = {}
        self.flows: dict[str, Flow] = {}
        self.wire: dict[PeerId, list[str | bytes]] = {A: [], B: []}  # frames sent by the key
        self.to_c: dict[PeerId, list[str | bytes]] = {A: [], B: []}
        self.c_open: dict[PeerId, dict[str, float]] = {A: {}, B: {}}  # C's streams: deadline
        self.closing: dict[PeerId, list[str]] = {A: [], B: []}  # ended credit streams, oldest first
        self.rejected: dict[PeerId, int] = {A: 0, B: 0}
        self.serial = 0

    @initialize(
        credit_chunk=st.sampled_from([4096, 65536]),
        threshold=st.sampled_from([4096, 8192, WINDOW]),
        unread=st.sampled_from([WINDOW, 2 * WINDOW]),
        streams=st.integers(min_value=1, max_value=3),
    )
    def configure(self, credit_chunk: int, threshold: int, unread: int, streams: int) -> None:
        self.cfg = StreamConfig(
            chunk_size=4096,
            credit_chunk_size=credit_chunk,
            window_bytes=WINDOW,
            credit_threshold_bytes=threshold,
            max_unread_bytes=unread,
            max_streams_per_peer=streams,
            idle_timeout_s=IDLE,
        )
        self.mux = {p: StreamMux(self.cfg, entropy=SeededEntropy(p)) for p in (A, B)}

    # --- plumbing ---------------------------------------------------------------------------

    def _tx(self) -> list[Flow]:
        return [f for f in self.flows.values() if f.tx_open]

    def _rx(self) -> list[Flow]:
        return [f for f in self.flows.values() if f.rx_open]

    def _pick(self, data: st.DataObject, flows: list[Flow]) -> Flow:
        return self.flows[data.draw(st.sampled_from([f.sid for f in flows]), label="stream")]

    def _actions(self, me: PeerId) -> list[tuple[PeerId, str | bytes]]:
        """Put `me`'s queued frames on their wires; return them for the caller's checks."""
        out: list[tuple[PeerId, str | bytes]] = []
        for action in self.mux[me].drain_actions():
            assert isinstance(action, StreamSend)
            if action.peer == C:
                self.to_c[me].append(action.data)
            else:
                assert action.peer == OTHER[me]
                self.wire[me].append(action.data)
            out.append((action.peer, action.data))
        return out

    def _unclose(self, f: Flow) -> None:
        if f.closing:
            self.closing[f.sender].remove(f.sid)
            f.closing = False

    def _apply(self, me: PeerId, events: list[StreamEvent], grant: int = 0) -> None:
        """Check `me`'s events against the model and move the model on."""
        cfg = self.cfg
        for ev in events:
            if isinstance(ev, StreamRejected):
                assert ev.peer in (OTHER[me], C)
                self.rejected[me] += 1
            elif isinstance(ev, StreamOpened):
                if ev.peer == C:
                    self.c_open[me][ev.stream_id] = self.now + IDLE
                    continue
                f = self.flows[ev.stream_id]
                assert (f.receiver, f.sender) == (me, ev.peer)
                assert not f.rx_seen, "a second init accepted"
                assert ev.flow_controlled == f.credit
                assert ev.meta.total_size == f.total
                assert ev.meta.chunk_size == cfg.chunk_for(f.credit)
                f.rx_seen = f.rx_open = True
                f.rx_deadline = self.now + IDLE
            elif isinstance(ev, StreamData):
                f = self.flows[ev.stream_id]
                assert (f.receiver, f.sender) == (me, ev.peer)
                assert f.rx_open
                assert ev.size == len(ev.data) > 0
                start = len(f.received)
                assert f.sent[start : start + ev.size] == ev.data, "not the next bytes sent"
                f.received += ev.data
                f.rx_chunks += 1
                f.unread += ev.size
                f.rx_deadline = self.now + IDLE
            elif isinstance(ev, StreamEnded):
                f = self.flows[ev.stream_id]
                assert (f.receiver, f.sender) == (me, ev.peer)
                assert f.rx_open
                assert f.ended
                assert f.received == f.sent
                assert (ev.total_bytes, ev.total_chunks) == (len(f.sent), f.chunks)
                assert ev.verified  # our sender always sends ppSize + ppSha256
                f.rx_open, f.rx_ended, f.unread = False, True, 0
            elif isinstance(ev, StreamAborted):
                if ev.peer == C:
                    assert not ev.outgoing
                    del self.c_open[me][ev.stream_id]
                    continue
                f = self.flows[ev.stream_id]
                if ev.outgoing:
                    assert (f.sender, f.receiver) == (me, ev.peer)
                    assert f.tx_open or (ev.by_peer and f.closing)
                    f.tx_open, f.tx_aborted = False, True
                    self._unclose(f)
                else:
                    assert (f.receiver, f.sender) == (me, ev.peer)
                    assert f.rx_open
                    f.rx_open, f.unread = False, 0
            elif isinstance(ev, StreamCredit):
                f = self.flows[ev.stream_id]
                assert (f.sender, f.receiver) == (me, ev.peer)
                assert f.tx_open
                assert f.credit
                assert grant > 0
                f.granted += grant
                assert ev.available == cfg.window_bytes - len(f.sent) + f.granted
                f.tx_deadline = self.now + IDLE
            else:
                assert isinstance(ev, StreamDelivered)
                f = self.flows[ev.stream_id]
                assert (f.sender, f.receiver) == (me, ev.peer)
                assert f.closing
                assert f.rx_ended
                f.delivered = True
                self._unclose(f)

    def _deliver_one(self, src: PeerId) -> None:
        """Carry one frame (a chunk header with its payload) from `src` to the other mux."""
        wire = self.wire[src]
        body = _obj(wire.pop(0))
        payload: bytes | None = None
        if body["type"] == CHUNK:
            raw = wire.pop(0)
            assert isinstance(raw, bytes), "a chunk header without its payload"
            payload = raw
        dst = OTHER[src]
        f = self.flows.get(body["streamId"])
        grant = body.get("credit", 0) if body["type"] == CREDIT else 0
        mux = self.mux[dst]
        mux.receive_frame(src, body, payload, self.now)
        events = mux.drain_events()
        for ev in events:
            if isinstance(ev, StreamRejected):
                # Honest frames are refused only for streams the far side already dropped
                # (ended, aborted, timed out), or for a JS-style sender overrunning the buffer.
                assert f is not None
                if (ev.field, ev.reason) == ("streamId", "unknown stream"):
                    assert not (f.receiver == dst and f.rx_open)
                    assert not (f.sender == dst and (f.tx_open or f.closing)), "a live stream"
                else:
                    assert ev.field == "unread"
                    assert not f.credit
            elif isinstance(ev, StreamAborted) and body["type"] == ABORT:
                assert ev.by_peer
                assert ev.reason == body["reason"]
        self._apply(dst, events, grant)
        self._actions(dst)
        if f is not None and f.receiver == dst and f.eager and f.rx_open and f.unread:
            self._ack(f, f.unread)  # a reader that keeps up

    def _ack(self, f: Flow, n: int) -> None:
        """The application acknowledges `n` bytes; credit goes back past the threshold."""
        mux = self.mux[f.receiver]
        mux.acknowledge(f.sender, f.sid, n, self.now)
        frames = [_obj(d) for _, d in self._actions(f.receiver)]
        assert mux.drain_events() == []
        expected: list[JsonObject] = []
        if f.rx_open:
            take = max(0, min(n, f.unread))
            f.unread -= take
            if f.credit:
                f.consumed += take
                if f.consumed >= self.cfg.credit_threshold_bytes:
                    expected = [{"type": CREDIT, "streamId": f.sid, "credit": f.consumed}]
                    f.returned += f.consumed
                    f.consumed = 0
        assert frames == expected

    def _maybe_flush(self, data: st.DataObject, src: PeerId) -> None:
        """Mostly carry what `src` just queued right away, often the replies too; the rest
        waits for `deliver`."""
        how = data.draw(st.integers(min_value=0, max_value=3), label="flush")
        while how and self.wire[src]:
            self._deliver_one(src)
            if how > 1:  # and the other way, until both are quiet
                while self.wire[OTHER[src]]:
                    self._deliver_one(OTHER[src])

    def _expect_rejected(
        self, me: PeerId, peer: PeerId, body: JsonObject, payload: bytes | None, field: str
    ) -> None:
        """A bad frame is refused and counted, and nothing else happens."""
        mux = self.mux[me]
        mux.receive_frame(peer, body, payload, self.now)
        events = mux.drain_events()
        assert len(events) == 1
        assert isinstance(events[0], StreamRejected)
        assert events[0].field == field
        assert mux.drain_actions() == []
        self._apply(me, events)

    def _fire(self, me: PeerId) -> None:
        now, mux = self.now, self.mux[me]
        out = {f.sid for f in self._tx() if f.sender == me and f.tx_deadline <= now}
        inc = {f.sid for f in self._rx() if f.receiver == me and f.rx_deadline <= now}
        inc |= {sid for sid, d in self.c_open[me].items() if d <= now}
        before = mux.stats().timeouts
        mux.handle_timer(now)
        events = mux.drain_events()
        assert all(
            isinstance(e, StreamAborted) and e.reason == "timeout" and not e.by_peer for e in events
        )
        aborted = [e for e in events if isinstance(e, StreamAborted)]
        assert len(aborted) == len(out) + len(inc)
        assert {e.stream_id for e in aborted if e.outgoing} == out
        assert {e.stream_id for e in aborted if not e.outgoing} == inc
        self._apply(me, events)
        frames = self._actions(me)
        assert sorted(_obj(d)["streamId"] for _, d in frames) == sorted(out | inc)
        for peer, data in frames:
            assert _obj(data)["type"] == ABORT
            assert (peer == C) == _obj(data)["streamId"].startswith("c-")
        assert mux.stats().timeouts == before + len(aborted)
        deadline = mux.next_deadline()
        assert deadline is None or deadline > now

    # --- the application --------------------------------------------------------------------

    @rule(
        data=st.data(),
        sender=SIDES,
        credit=st.booleans(),
        total=st.none() | st.integers(min_value=0, max_value=40_000),
        named=st.booleans(),
        eager=st.booleans(),
    )
    def open_stream(
        self,
        data: st.DataObject,
        sender: PeerId,
        credit: bool,
        total: int | None,
        named: bool,
        eager: bool,
    ) -> None:
        mux, peer = self.mux[sender], OTHER[sender]
        self.serial += 1
        wanted = f"{sender[0]}{self.serial}" if named else None
        if sum(f.sender == sender for f in self._tx()) >= self.cfg.max_streams_per_peer:
            with pytest.raises(UsageError):
                mux.open_stream(peer, self.now, flow_control=credit, stream_id=wanted)
            assert mux.drain_actions() == []
            return
        sid = mux.open_stream(
            peer, self.now, flow_control=credit, stream_id=wanted, total_size=total
        )
        assert wanted is None or sid == wanted
        assert sid not in self.flows
        ((_, frame),) = self._actions(sender)
        init = _obj(frame)
        assert (init["type"], init["streamId"]) == (INIT, sid)
        assert init.get("ppWindow") == (WINDOW if credit else None)
        k = 1 + self.serial * 97 % 250  # a permutation of 0..250 per stream
        table = bytes(i * k % 251 for i in range(251)) + bytes(5)
        self.flows[sid] = Flow(sid, sender, credit, total, self.now + IDLE, table, eager)
        assert mux.drain_events() == []
        self._maybe_flush(data, sender)

    @precondition(lambda self: self._tx())
    @rule(data=st.data())
    def send(self, data: st.DataObject) -> None:
        f = self._pick(data, self._tx())
        mux = self.mux[f.sender]
        available = mux.available(f.receiver, f.sid)
        limit = 3 * self.cfg.chunk_size if available is None else available
        if f.total is not None:
            limit = min(limit, f.total - len(f.sent))
        n = data.draw(st.just(limit) | st.integers(min_value=0, max_value=limit), label="n")
        chunk = f.payload(n)
        mux.send(f.receiver, f.sid, chunk, self.now)
        frames = [d for _, d in self._actions(f.sender)]
        size = self.cfg.chunk_for(f.credit)
        assert len(frames) == 2 * -(-n // size)
        headers, payloads = frames[::2], frames[1::2]
        for i, (header, piece) in enumerate(zip(headers, payloads, strict=True)):
            h = _obj(header)
            assert (h["type"], h["streamId"], h["chunkIndex"]) == (CHUNK, f.sid, f.chunks + i)
            assert isinstance(piece, bytes)
            assert h["size"] == len(piece) <= size
        assert b"".join(p for p in payloads if isinstance(p, bytes)) == chunk
        f.sent += chunk
        f.chunks += len(headers)
        if n:
            f.tx_deadline = self.now + IDLE
        assert mux.drain_events() == []
        self._maybe_flush(data, f.sender)

    @precondition(lambda self: self.flows)
    @rule(data=st.data(), extra=st.integers(min_value=1, max_value=5000))
    def misuse(self, data: st.DataObject, extra: int) -> None:
        """A duplicate id, more than the credit, a stream that is gone: refused, no change."""
        f = self._pick(data, list(self.flows.values()))
        mux = self.mux[f.sender]
        if f.tx_open and not f.credit:
            with pytest.raises(UsageError):
                mux.open_stream(f.receiver, self.now, flow_control=False, stream_id=f.sid)
        elif f.tx_open:
            available = mux.available(f.receiver, f.sid)
            assert available is not None
            with pytest.raises(UsageError):
                mux.send(f.receiver, f.sid, bytes(available + extra), self.now)
        else:
            with pytest.raises(UsageError):
                mux.send(f.receiver, f.sid, b"late", self.now)
            with pytest.raises(UsageError):
                mux.end_stream(f.receiver, f.sid, self.now)
        assert mux.drain_actions() == []
        assert mux.drain_events() == []

    @precondition(lambda self: self.flows)
    @rule(data=st.data())
    def read(self, data: st.DataObject) -> None:
        """The application consumes (acknowledges) bytes; credit returns past the threshold."""
        unread = [f for f in self._rx() if f.unread]
        f = self._pick(data, unread or list(self.flows.values()))
        n = data.draw(st.just(f.unread) | st.integers(min_value=-1, max_value=f.unread + 4096))
        self._ack(f, n)
        self._maybe_flush(data, f.receiver)

    @precondition(lambda self: any(f.total is None or len(f.sent) == f.total for f in self._tx()))
    @rule(data=st.data())
    def end(self, data: st.DataObject) -> None:
        ready = [f for f in self._tx() if f.total is None or len(f.sent) == f.total]
        f = self._pick(data, ready)
        mux = self.mux[f.sender]
        mux.end_stream(f.receiver, f.sid, self.now)
        ((_, frame),) = self._actions(f.sender)
        assert _obj(frame) == {
            "type": END,
            "streamId": f.sid,
            "totalChunks": f.chunks,
            "ppSize": len(f.sent),
            "ppSha256": hashlib.sha256(f.sent).hexdigest(),
        }
        f.tx_open, f.ended = False, True
        if f.credit:
            closing = self.closing[f.sender]
            if len(closing) >= 4 * self.cfg.max_streams_per_peer:
                oldest = self.flows[closing.pop(0)]
                oldest.closing, oldest.evicted = False, True
            closing.append(f.sid)
            f.closing = True
        assert mux.drain_events() == []
        self._maybe_flush(data, f.sender)

    @precondition(lambda self: self.flows)
    @rule(data=st.data(), reason=st.sampled_from(["", "changed my mind", "long"]))
    def abort(self, data: st.DataObject, reason: str) -> None:
        """Either end aborts; on a stream it no longer has, nothing happens."""
        f = self._pick(data, list(self.flows.values()))
        me = data.draw(st.sampled_from([f.sender, f.receiver]))
        outgoing = me == f.sender
        live = f.tx_open if outgoing else f.rx_open
        mux = self.mux[me]
        if reason == "long":
            reason = "x" * 2000  # cut to 1024 characters
        mux.abort_stream(OTHER[me], f.sid, reason, self.now, outgoing=outgoing)
        events = mux.drain_events()
        frames = self._actions(me)
        if not live:
            assert events == []
            assert frames == []
            return
        want = reason[:1024] or "Stream aborted"
        assert events == [
            StreamAborted(
                peer=OTHER[me], stream_id=f.sid, reason=want, outgoing=outgoing, by_peer=False
            )
        ]
        assert [_obj(d) for _, d in frames] == [{"type": ABORT, "streamId": f.sid, "reason": want}]
        self._apply(me, events)

    # --- the network and the clock ----------------------------------------------------------

    @rule(src=SIDES, k=st.integers(min_value=1, max_value=30))
    def deliver(self, src: PeerId, k: int) -> None:
        for _ in range(k):
            if not self.wire[src]:
                break
            self._deliver_one(src)

    @rule()
    def settle(self) -> None:
        """Deliver everything; then both ends agree on every stream."""
        for _ in range(1000):
            if not self.wire[A] and not self.wire[B]:
                break
            for src in (A, B):
                while self.wire[src]:
                    self._deliver_one(src)
        assert not self.wire[A]
        assert not self.wire[B]
        for f in self.flows.values():
            assert f.tx_open == f.rx_open, f"{f.sid}: one end still holds it"
            if f.tx_open:
                assert f.received == f.sent
            if f.ended and f.credit and not (f.lost or f.evicted):
                assert f.delivered or f.tx_aborted, f"{f.sid}: the sender never learnt its fate"

    @rule(data=st.data(), what=st.sampled_from(["advance", "advance", "timer", "deadline"]))
    def clock(self, data: st.DataObject, what: str) -> None:
        """Time passes (mostly less than the idle timeout), or a side's timer fires."""
        if what == "advance":
            self.now += data.draw(st.sampled_from([0.25, 0.5, 1.0, 2.0, IDLE + 1]), label="dt")
            return
        me = data.draw(SIDES, label="side")
        deadline = self.mux[me].next_deadline()
        if what == "deadline" and deadline is not None:
            self.now = max(self.now, deadline)
        self._fire(me)

    @rule(who=st.sampled_from(["stranger", "stranger", "stranger", "link"]), me=SIDES)
    def lose(self, who: str, me: PeerId) -> None:
        """A link goes: mostly the stranger's (A and B losing theirs wipes everything)."""
        if who == "link":
            self._link_lost()
        else:
            self._stranger_lost(me)

    def _link_lost(self) -> None:
        """The link between A and B goes: both drop its streams, frames in flight are lost."""
        for me in (A, B):
            mux = self.mux[me]
            mux.peer_lost(OTHER[me], self.now)
            events = mux.drain_events()
            assert all(
                isinstance(e, StreamAborted) and e.reason == "link lost" and not e.by_peer
                for e in events
            )
            got = sorted((e.stream_id, e.outgoing) for e in events if isinstance(e, StreamAborted))
            want = [(f.sid, True) for f in self._tx() if f.sender == me]
            want += [(f.sid, False) for f in self._rx() if f.receiver == me]
            assert got == sorted(want)
            self._apply(me, events)
            assert self._actions(me) == []
        for f in self.flows.values():
            f.lost = True
            f.closing = False
        for me in (A, B):
            self.wire[me].clear()
            self.closing[me].clear()

    def _stranger_lost(self, me: PeerId) -> None:
        mux = self.mux[me]
        mux.peer_lost(C, self.now)
        events = mux.drain_events()
        assert sorted(e.stream_id for e in events if isinstance(e, StreamAborted)) == sorted(
            self.c_open[me]
        )
        assert len(events) == len(self.c_open[me])
        self._apply(me, events)
        assert self._actions(me) == []

    # --- hostile input ----------------------------------------------------------------------

    @rule(
        data=st.data(),
        kind=st.sampled_from(["unknown", "malformed", "harmless", "fault", "fault", "stranger"]),
    )
    def hostile(self, data: st.DataObject, kind: str) -> None:
        """One bad frame: from the honest peer (into live streams too) or from a stranger."""
        if kind == "fault" and self._rx():
            self._fault_in_live_stream(data)
        elif kind == "harmless" and (self._tx() or self._rx()):
            self._refused_without_harm(data)
        elif kind == "stranger":
            self._stranger_opens(data)
        elif kind == "malformed":
            self._malformed(data)
        else:
            self._unknown_stream(data)

    def _unknown_stream(self, data: st.DataObject) -> None:
        """Frames from the honest peer for a stream nobody opened."""
        me = data.draw(SIDES, label="side")
        kind = data.draw(st.sampled_from([CHUNK, END, ABORT, CREDIT]), label="type")
        body: JsonObject = {"type": kind, "streamId": "ghost", "chunkIndex": 0, "size": 1}
        body |= {"encoding": "binary", "credit": 1, "totalChunks": 0}
        self._expect_rejected(me, OTHER[me], body, b"x" if kind == CHUNK else None, "streamId")

    def _malformed(self, data: st.DataObject) -> None:
        me = data.draw(SIDES, label="side")
        peer = data.draw(st.sampled_from([OTHER[me], C]), label="from")
        body, field = data.draw(
            st.sampled_from(
                [
                    ({"type": "__STREAM_NOPE__", "streamId": "s"}, "type"),
                    ({"type": CHUNK, "chunkIndex": 0, "size": 1}, "streamId"),
                    ({"type": INIT, "streamId": 7}, "streamId"),
                    ({"type": END, "streamId": ""}, "streamId"),
                    ({"type": ABORT, "streamId": "x" * 257}, "streamId"),
                    ({"type": INIT, "streamId": "w", "ppWindow": True}, "ppWindow"),
                    ({"type": INIT, "streamId": "w", "ppWindow": "big"}, "ppWindow"),
                    ({}, "streamId"),
                ]
            ),
            label="body",
        )
        self._expect_rejected(me, peer, body, b"?", field)

    def _refused_without_harm(self, data: st.DataObject) -> None:
        """Bad frames aimed at live streams that are refused before they touch the stream."""
        f = self._pick(data, self._tx() + self._rx())
        if f.rx_open and (not f.tx_open or data.draw(st.booleans(), label="init")):
            # a second init for a stream that is open: we keep the live one
            body: JsonObject = {"type": INIT, "streamId": f.sid, "ppWindow": WINDOW}
            self._expect_rejected(f.receiver, f.sender, body, None, "streamId")
            return
        credit: JsonValue = data.draw(st.sampled_from([-1, "x", True, None, "over"]))
        if credit == "over":
            available = self.mux[f.sender].available(f.receiver, f.sid)
            credit = 1 if available is None else WINDOW - available + 1
        body = {"type": CREDIT, "streamId": f.sid, "credit": credit}
        self._expect_rejected(f.sender, f.receiver, body, None, "credit")

    def _fault_in_live_stream(self, data: st.DataObject) -> None:
        """From the honest peer into a live stream: that stream alone is aborted."""
        f = self._pick(data, self._rx())
        kind = data.draw(
            st.sampled_from(
                [
                    "duplicate",
                    "ahead",
                    "index-type",
                    "lying-size",
                    "over-total",
                    "over-credit",
                    "over-buffer",
                    "legacy",
                    "end-chunks",
                    "end-size",
                    "end-digest",
                ]
            ),
            label="fault",
        )
        have, index = len(f.received), f.rx_chunks
        body: JsonObject = {"type": CHUNK, "streamId": f.sid, "chunkIndex": index}
        body["encoding"] = "binary"
        n = 1
        fields = {"size"}
        if kind == "duplicate" and index > 0:
            body["chunkIndex"] = data.draw(st.integers(min_value=0, max_value=index - 1))
            fields = {"chunkIndex"}
        elif kind in ("ahead", "duplicate"):
            body["chunkIndex"] = index + data.draw(st.integers(min_value=1, max_value=3))
            fields = {"chunkIndex"}
        elif kind == "index-type":
            body["chunkIndex"] = str(index)
            fields = {"chunkIndex"}
        elif kind == "over-total" and f.total is not None:
            n = f.total - have + 1
        elif kind in ("over-credit", "over-buffer", "over-total"):
            if f.credit:
                n = WINDOW - have + f.returned + 1
                fields = {"credit", "size"}
            else:
                n = self.cfg.max_unread_bytes - f.unread + 1
                fields = {"unread", "size"}
        elif kind == "legacy":
            body = {"type": CHUNK, "streamId": f.sid, "chunkIndex": index}
            body["data"] = data.draw(st.sampled_from([[1, 256], [-1], ["a"], "ab", None]))
            fields = {"data"}
        elif kind.startswith("end"):
            body = {"type": END, "streamId": f.sid, "totalChunks": index}
            if kind == "end-chunks":
                body["totalChunks"] = index + 1
                fields = {"totalChunks"}
            elif kind == "end-size":
                body["ppSize"] = have + 1
                fields = {"ppSize", "totalSize"}
            else:
                body["ppSize"] = have
                body["ppSha256"] = "0" * 64
                fields = {"ppSha256", "totalSize"}
        payload: bytes | None = None
        if body["type"] == CHUNK and "data" not in body:
            payload = bytes(n)
            body["size"] = n + 1 if kind == "lying-size" else n
        mux = self.mux[f.receiver]
        before = mux.stats().rejected
        mux.receive_frame(f.sender, body, payload, self.now)
        events = mux.drain_events()
        assert len(events) == 2
        rejected, aborted = events
        assert isinstance(rejected, StreamRejected)
        assert rejected.field in fields, (kind, rejected)
        assert isinstance(aborted, StreamAborted)
        assert (aborted.stream_id, aborted.outgoing, aborted.by_peer) == (f.sid, False, False)
        assert mux.stats().rejected == before + 1
        self._apply(f.receiver, events)
        ((peer, frame),) = self._actions(f.receiver)
        assert peer == f.sender
        assert (_obj(frame)["type"], _obj(frame)["streamId"]) == (ABORT, f.sid)

    def _stranger_opens(self, data: st.DataObject) -> None:
        """A third peer opens streams (and never sends a byte or ends them)."""
        me = data.draw(SIDES, label="side")
        sid = f"c-{data.draw(st.integers(min_value=0, max_value=4), label='n')}"
        window = data.draw(st.sampled_from([None, 0, 4096, WINDOW, WINDOW + 1]), label="window")
        body: JsonObject = {"type": INIT, "streamId": sid, "metadata": {"chunkSize": 1}}
        if window is not None:
            body["ppWindow"] = window
        mux = self.mux[me]
        mux.receive_frame(C, body, None, self.now)
        events = mux.drain_events()
        frames = self._actions(me)
        assert len(events) == 1
        if sid in self.c_open[me]:
            assert isinstance(events[0], StreamRejected)
            assert events[0].reason == "already open"
            assert frames == []
        elif len(self.c_open[me]) >= self.cfg.max_streams_per_peer or window in (0, WINDOW + 1):
            assert isinstance(events[0], StreamRejected)
            ((peer, frame),) = frames
            assert peer == C
            assert (_obj(frame)["type"], _obj(frame)["streamId"]) == (ABORT, sid)
        else:
            assert isinstance(events[0], StreamOpened)
            assert events[0].meta.chunk_size == 4096  # clamped
            assert frames == []
        self._apply(me, events)

    # --- after every step -------------------------------------------------------------------

    @invariant()
    def model_agrees(self) -> None:
        cfg = self.cfg
        for me in (A, B):
            mux, peer = self.mux[me], OTHER[me]
            tx = [f for f in self._tx() if f.sender == me]
            rx = [f for f in self._rx() if f.receiver == me]
            strangers = self.c_open[me]
            assert mux.open_count() == (len(tx), len(rx) + len(strangers))
            assert max(len(tx), len(rx), len(strangers)) <= cfg.max_streams_per_peer
            assert mux.buffered_bytes() == sum(f.unread for f in rx)
            for f in rx:
                assert 0 <= f.unread <= cfg.max_unread_bytes
            for f in self.flows.values():
                if f.sender != me:
                    continue
                if not f.tx_open:
                    with pytest.raises(UsageError):
                        mux.available(peer, f.sid)
                elif f.credit:
                    assert mux.available(peer, f.sid) == WINDOW - len(f.sent) + f.granted >= 0
                else:
                    assert mux.available(peer, f.sid) is None
            deadlines = [f.tx_deadline for f in tx] + [f.rx_deadline for f in rx]
            assert mux.next_deadline() == min(deadlines + list(strangers.values()), default=None)
            s = mux.stats()
            assert s.rejected == self.rejected[me]
            assert s.opened_out == s.ended_out + s.aborted_out + len(tx)
            assert s.opened_in == s.ended_in + s.aborted_in + len(rx) + len(strangers)
            assert s.bytes_sent == sum(len(f.sent) for f in self.flows.values() if f.sender == me)
            assert s.bytes_received == sum(
                len(f.received) for f in self.flows.values() if f.receiver == me
            )
        for f in self.flows.values():
            assert f.sent.startswith(f.received), f"{f.sid}: received is not a prefix of sent"
            if f.credit:  # in flight: sent and not yet given back, from either end's view
                assert len(f.sent) - f.granted <= WINDOW
                assert len(f.received) - f.returned <= WINDOW


StreamRules.TestCase.settings = settings(max_examples=500, stateful_step_count=60, deadline=None)
test_stream_rules = StreamRules.TestCase
