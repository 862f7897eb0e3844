"""`StreamMux`: neighbour-to-neighbour byte streams (file transfer) as a sans-IO machine.

Reference: data-plane.md section 6 (``__STREAM_INIT__``, ``__STREAM_CHUNK__`` + binary frame,
``__STREAM_END__``, ``__STREAM_ABORT__``) and 14 (W-STR-1..4). Keep the wire, fix the
behaviour: chunks are checked in order, sizes are checked, every buffer is bounded, a stream
without progress times out, and between two Python peers a credit window (h2 style) bounds
the bytes in flight and the end frame carries the total size and a sha256 digest.

Our extensions are optional fields JS ignores: ``ppWindow`` in the init frame (the credit the
sender assumes it starts with), ``ppSize``/``ppSha256`` in the end frame, and the frame type
``__PP_STREAM_CREDIT__`` (``{"streamId", "credit"}``; JS drops frames of unknown types).
"""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import dataclass, field
from typing import Final, TypeAlias

from peerpigeon.protocol.errors import ConfigError, UsageError
from peerpigeon.protocol.ids import PeerId
from peerpigeon.protocol.outbox import Outbox
from peerpigeon.protocol.rand import Entropy
from peerpigeon.protocol.wire import JsonObject

__all__ = [
    "STREAM_ABORT_TYPE",
    "STREAM_CREDIT_TYPE",
    "STREAM_END_TYPE",
    "STREAM_INIT_TYPE",
    "StreamAborted",
    "StreamAction",
    "StreamConfig",
    "StreamCredit",
    "StreamData",
    "StreamDelivered",
    "StreamEnded",
    "StreamEvent",
    "StreamMeta",
    "StreamMux",
    "StreamMuxStats",
    "StreamOpened",
    "StreamRejected",
    "StreamSend",
    "StreamState",
    "clamp_chunk_size",
    "is_stream_frame_type",
]

STREAM_INIT_TYPE: Final = "__STREAM_INIT__"
STREAM_CHUNK_TYPE: Final = "__STREAM_CHUNK__"
STREAM_END_TYPE: Final = "__STREAM_END__"
STREAM_ABORT_TYPE: Final = "__STREAM_ABORT__"
STREAM_CREDIT_TYPE: Final = "__PP_STREAM_CREDIT__"  # ours; JS drops unknown types
_TYPES: Final = frozenset(
    {STREAM_INIT_TYPE, STREAM_CHUNK_TYPE, STREAM_END_TYPE, STREAM_ABORT_TYPE, STREAM_CREDIT_TYPE}
)
MIN_CHUNK: Final = 4096  # JS clamps chunkSize to [4096, 65536]
MAX_CHUNK: Final = 65536
DEFAULT_CHUNK: Final = 16384
_MAX_ID: Final = 256
_MAX_TEXT: Final = 1024
_B36: Final = "0123456789abcdefghijklmnopqrstuvwxyz"


def clamp_chunk_size(value: object) -> int:
    """JS's rule: a finite number, else 16384, then clamped to [4096, 65536]."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return DEFAULT_CHUNK
    if value in (float("inf"), float("-inf")):
        return DEFAULT_CHUNK
    return int(min(max(value, MIN_CHUNK), MAX_CHUNK))


def is_stream_frame_type(frame_type: object) -> bool:
    """Whether a data-channel frame of this ``type`` belongs to the stream layer."""
    return isinstance(frame_type, str) and frame_type in _TYPES


def _dumps(obj: JsonObject) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


class StreamState(enum.Enum):
    """Where one stream is (either direction)."""

    OPEN = "open"  # sending or receiving chunks
    ENDED = "ended"  # finished cleanly (forgotten right after)
    ABORTED = "aborted"  # aborted (forgotten right after)


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamConfig:
    """Settings of a `StreamMux`.

    Attributes:
        chunk_size: bytes per chunk we send to a JS peer (the reference's default; JS
            clamps its own to [4096, 65536]).
        credit_chunk_size: bytes per chunk we send to one of our peers (credit mode). Each
            chunk costs a header frame, and aiortc puts every frame in its own SCTP packet,
            so the largest chunk the wire allows (65536) keeps that cost under 2 %. A
            window smaller than this caps it (`chunk_for`).
        window_bytes: credit a Python receiver grants per stream (and the sender assumes
            at open); a credit-mode sender never has more unacknowledged bytes in flight.
        credit_threshold_bytes: the receiver returns credit once this much was consumed.
        max_unread_bytes: bytes a receiver holds for the application per stream (JS
            senders have no credit); above it the stream is aborted (``LimitExceeded``).
        max_streams_per_peer: concurrent streams per neighbour and direction; an init
            above it is answered with an abort.
        max_total_bytes: largest stream accepted; more is aborted.
        idle_timeout_s: a stream without progress for this long is aborted.
    """

    chunk_size: int = DEFAULT_CHUNK
    credit_chunk_size: int = MAX_CHUNK
    window_bytes: int = 1 << 20
    credit_threshold_bytes: int = 1 << 18
    max_unread_bytes: int = 8 << 20
    max_streams_per_peer: int = 16
    max_total_bytes: int = 1 << 40
    idle_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        """Validate."""
        if not MIN_CHUNK <= self.chunk_size <= MAX_CHUNK:
            raise ConfigError("chunk_size", f"must be {MIN_CHUNK}..{MAX_CHUNK}")
        if not MIN_CHUNK <= self.credit_chunk_size <= MAX_CHUNK:
            raise ConfigError("credit_chunk_size", f"must be {MIN_CHUNK}..{MAX_CHUNK}")
        if self.window_bytes < self.chunk_size:
            raise ConfigError("window_bytes", "must be at least chunk_size")
        if not 0 < self.credit_threshold_bytes <= self.window_bytes:
            raise ConfigError("credit_threshold_bytes", "must be 1..window_bytes")
        if self.max_unread_bytes < self.window_bytes:
            raise ConfigError("max_unread_bytes", "must be at least window_bytes")
        if self.max_streams_per_peer < 1:
            raise ConfigError("max_streams_per_peer", "must be at least 1")
        if self.max_total_bytes < 0:
            raise ConfigError("max_total_bytes", "must be >= 0")
        if not self.idle_timeout_s > 0:
            raise ConfigError("idle_timeout_s", "must be > 0")

    def chunk_for(self, flow_control: bool) -> int:
        """The chunk size of a stream we open: to one of our peers (credit) or to JS."""
        if not flow_control:
            return self.chunk_size
        return max(self.chunk_size, min(self.credit_chunk_size, self.window_bytes))


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamMeta:
    """The reference's stream metadata (data-plane 6.1)."""

    type: str = "binary"
    filename: str | None = None
    mime_type: str | None = None
    total_size: int | None = None
    chunk_size: int = DEFAULT_CHUNK
    timestamp: int = 0


# --- actions and events ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamSend:
    """Send one frame on `peer`'s data channel (text or binary), in order."""

    peer: PeerId
    data: str | bytes = field(repr=False)


StreamAction: TypeAlias = StreamSend


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamOpened:
    """`peer` opened a stream to us (``streamReceived``); ``flow_controlled``: a Python peer."""

    peer: PeerId
    stream_id: str
    meta: StreamMeta
    flow_controlled: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamData:
    """Bytes of an incoming stream, in order; give credit back with `acknowledge`."""

    peer: PeerId
    stream_id: str
    data: bytes = field(repr=False)
    size: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamEnded:
    """An incoming stream finished (``streamCompleted``); ``verified``: size+sha256 checked."""

    peer: PeerId
    stream_id: str
    total_bytes: int
    total_chunks: int
    verified: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamAborted:
    """A stream (``outgoing`` ours, else theirs) was aborted (``streamAborted``).

    ``by_peer``: the other side aborted; otherwise we did (a local call, a timeout, a bad
    frame, the link went away). A Python receiver may also abort an ended stream of ours
    that is still waiting for its `StreamDelivered`.
    """

    peer: PeerId
    stream_id: str
    reason: str
    outgoing: bool
    by_peer: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamCredit:
    """An outgoing stream may send `available` more bytes (credit arrived)."""

    peer: PeerId
    stream_id: str
    available: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamDelivered:
    """A Python receiver confirmed our ended stream arrived whole (size and sha256 checked)."""

    peer: PeerId
    stream_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamRejected:
    """A stream frame from `peer` was dropped (`field`: `reason`); no stream state changed."""

    peer: PeerId
    field: str
    reason: str


StreamEvent: TypeAlias = (
    StreamOpened
    | StreamData
    | StreamEnded
    | StreamAborted
    | StreamCredit
    | StreamDelivered
    | StreamRejected
)


@dataclass(slots=True)
class StreamMuxStats:
    """Counters (read-only snapshot from `StreamMux.stats`)."""

    opened_out: int = 0
    opened_in: int = 0
    ended_out: int = 0
    ended_in: int = 0
    aborted_out: int = 0
    aborted_in: int = 0
    timeouts: int = 0
    rejected: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0


# --- per-stream state ------------------------------------------------------------------------


@dataclass(slots=True)
class _Out:
    peer: PeerId
    stream_id: str
    chunk_size: int
    credit: int | None  # None: no flow control (a JS peer)
    deadline: float
    chunks: int = 0
    sent: int = 0
    digest: hashlib._Hash = field(default_factory=hashlib.sha256)


@dataclass(slots=True)
class _In:
    peer: PeerId
    stream_id: str
    meta: StreamMeta
    window: int | None  # credit granted at open (None: a JS peer, no credit)
    deadline: float
    chunks: int = 0
    received: int = 0
    unread: int = 0  # delivered and not acknowledged
    consumed: int = 0  # acknowledged and not yet returned as credit
    credit_left: int = 0  # what the sender may still send
    digest: hashlib._Hash = field(default_factory=hashlib.sha256)


class _Bad(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(field, reason)
        self.field = field
        self.reason = reason


def _str(obj: JsonObject, key: str, limit: int = _MAX_ID) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise _Bad(key, f"must be a string of 1..{limit} characters")
    return value


def _int(obj: JsonObject, key: str) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Bad(key, "must be a non-negative integer")
    return value


def _opt_str(obj: JsonObject, key: str) -> str | None:
    value = obj.get(key)
    return value[:_MAX_TEXT] if isinstance(value, str) else None


class StreamMux(Outbox[StreamAction, StreamEvent]):
    """Every stream to and from our neighbours.

    Inputs: `open_stream`, `send`, `end_stream`, `abort_stream`, `acknowledge` (application);
    `receive_frame` (a stream frame, with its binary payload for a binary chunk),
    `peer_lost`; `handle_timer` at `next_deadline`. Outputs: `StreamSend` actions and
    `StreamEvent`s (drained).
    """

    def __init__(
        self, config: StreamConfig, *, entropy: Entropy, wall_offset_s: float = 0.0
    ) -> None:
        """Start with no streams."""
        super().__init__()
        self._config = config
        self._entropy = entropy
        self._wall_offset_s = wall_offset_s
        self._out: dict[tuple[PeerId, str], _Out] = {}
        self._in: dict[tuple[PeerId, str], _In] = {}
        # Ended flow-controlled streams awaiting the receiver's "done" (bounded, oldest out).
        self._closing: dict[tuple[PeerId, str], None] = {}
        self._c = StreamMuxStats()

    # --- views ---------------------------------------------------------------------------

    def stats(self) -> StreamMuxStats:
        """A snapshot of the counters."""
        c = self._c
        return StreamMuxStats(**{k: getattr(c, k) for k in StreamMuxStats.__slots__})

    def open_count(self) -> tuple[int, int]:
        """(outgoing, incoming) streams open now."""
        return len(self._out), len(self._in)

    def buffered_bytes(self) -> int:
        """Bytes delivered to the application and not acknowledged, over all streams."""
        return sum(s.unread for s in self._in.values())

    def available(self, peer: PeerId, stream_id: str) -> int | None:
        """Bytes outgoing `stream_id` may send now (``None``: unlimited, a JS peer).

        Raises `UsageError` for an unknown stream.
        """
        return self._get_out(peer, stream_id).credit

    def next_deadline(self) -> float | None:
        """The earliest idle deadline, or ``None``."""
        deadlines = [s.deadline for s in self._out.values()]
        deadlines.extend(s.deadline for s in self._in.values())
        return min(deadlines, default=None)

    # --- application calls ---------------------------------------------------------------

    def open_stream(
        self,
        peer: PeerId,
        now: float,
        *,
        flow_control: bool,
        stream_id: str | None = None,
        type: str = "binary",  # the reference's field name
        filename: str | None = None,
        mime_type: str | None = None,
        total_size: int | None = None,
    ) -> str:
        """Open a stream to `peer`; returns its id. Queues the init `StreamSend`.

        ``flow_control``: the peer is one of ours (credit window); else JS pacing applies
        and the adapter must pace on the channel's buffered amount. Raises `UsageError`
        for a duplicate id or too many streams to `peer`.
        """
        wall_ms = int((now + self._wall_offset_s) * 1000)
        if stream_id is None:
            rand = int.from_bytes(self._entropy.token_bytes(8), "big")
            tail = "".join(_B36[(rand >> (5 * i)) % 36] for i in range(7))
            stream_id = f"stream-{wall_ms}-{tail}"
        if not 0 < len(stream_id) <= _MAX_ID:
            raise UsageError("stream_id", f"must be 1..{_MAX_ID} characters")
        if (peer, stream_id) in self._out:
            raise UsageError("stream_id", "already open")
        if sum(1 for p, _ in self._out if p == peer) >= self._config.max_streams_per_peer:
            raise UsageError("peer", "too many open streams")
        cfg = self._config
        meta: JsonObject = {"streamId": stream_id, "type": type}
        if filename is not None:
            meta["filename"] = filename
        if mime_type is not None:
            meta["mimeType"] = mime_type
        if total_size is not None:
            meta["totalSize"] = total_size
        chunk = cfg.chunk_for(flow_control)
        meta["chunkSize"] = chunk
        meta["timestamp"] = wall_ms
        frame: JsonObject = {"type": STREAM_INIT_TYPE, "streamId": stream_id, "metadata": meta}
        if flow_control:
            frame["ppWindow"] = cfg.window_bytes
        self._out[(peer, stream_id)] = _Out(
            peer,
            stream_id,
            chunk,
            cfg.window_bytes if flow_control else None,
            now + cfg.idle_timeout_s,
        )
        self._c.opened_out += 1
        self._act(StreamSend(peer=peer, data=_dumps(frame)))
        return stream_id

    def send(self, peer: PeerId, stream_id: str, data: bytes, now: float) -> None:
        """Queue `data` on an outgoing stream as chunks (header text + binary frame each).

        Raises `UsageError` for an unknown stream or when `data` exceeds the credit
        (`available`).
        """
        s = self._get_out(peer, stream_id)
        if s.credit is not None and len(data) > s.credit:
            raise UsageError("data", f"{len(data)} bytes exceeds the credit of {s.credit}")
        if s.sent + len(data) > self._config.max_total_bytes:
            raise UsageError("data", "stream exceeds max_total_bytes")
        if not data:
            return
        view = memoryview(data)
        for start in range(0, len(data), s.chunk_size):
            piece = bytes(view[start : start + s.chunk_size])
            header = (
                f'{{"type":"{STREAM_CHUNK_TYPE}","streamId":{json.dumps(stream_id)},'
                f'"chunkIndex":{s.chunks},"size":{len(piece)},"encoding":"binary"}}'
            )
            self._act(StreamSend(peer=peer, data=header))
            self._act(StreamSend(peer=peer, data=piece))
            s.chunks += 1
        s.digest.update(data)
        s.sent += len(data)
        self._c.bytes_sent += len(data)
        if s.credit is not None:
            s.credit -= len(data)
        s.deadline = now + self._config.idle_timeout_s

    def end_stream(self, peer: PeerId, stream_id: str, now: float) -> None:
        """Finish an outgoing stream: queues the end frame (with size and sha256)."""
        s = self._get_out(peer, stream_id)
        del self._out[(peer, stream_id)]
        frame: JsonObject = {
            "type": STREAM_END_TYPE,
            "streamId": stream_id,
            "totalChunks": s.chunks,
            "ppSize": s.sent,
            "ppSha256": s.digest.hexdigest(),
        }
        self._c.ended_out += 1
        if s.credit is not None:
            if len(self._closing) >= 4 * self._config.max_streams_per_peer:
                del self._closing[next(iter(self._closing))]
            self._closing[(peer, stream_id)] = None
        self._act(StreamSend(peer=peer, data=_dumps(frame)))

    def abort_stream(
        self, peer: PeerId, stream_id: str, reason: str, now: float, *, outgoing: bool = True
    ) -> None:
        """Abort one of our outgoing streams, or (``outgoing=False``) an incoming one.

        Queues the abort frame and emits `StreamAborted`. Unknown streams: no-op.
        """
        table = self._out if outgoing else self._in
        if (peer, stream_id) not in table:
            return
        self._abort(peer, stream_id, reason[:_MAX_TEXT] or "Stream aborted", outgoing=outgoing)

    def acknowledge(self, peer: PeerId, stream_id: str, n: int, now: float) -> None:
        """The application consumed `n` bytes of an incoming stream: may return credit.

        Unknown (finished) streams are ignored. May queue a credit `StreamSend`.
        """
        s = self._in.get((peer, stream_id))
        if s is None or n <= 0:
            return
        n = min(n, s.unread)
        s.unread -= n
        if s.window is None:
            return
        s.consumed += n
        if s.consumed >= self._config.credit_threshold_bytes:
            grant, s.consumed = s.consumed, 0
            s.credit_left += grant
            frame: JsonObject = {"type": STREAM_CREDIT_TYPE, "streamId": stream_id, "credit": grant}
            self._act(StreamSend(peer=peer, data=_dumps(frame)))

    # --- network and facts ---------------------------------------------------------------

    def receive_frame(
        self, peer: PeerId, body: JsonObject, payload: bytes | None, now: float
    ) -> None:
        """One stream frame from neighbour `peer` (`payload`: a binary chunk's bytes).

        Never raises for bad input: emits `StreamRejected`, or aborts the stream
        concerned (abort frame + `StreamAborted`). May emit `StreamOpened`, `StreamData`,
        `StreamEnded`, `StreamAborted`, `StreamCredit`.
        """
        kind = body.get("type")
        try:
            stream_id = _str(body, "streamId")
            if kind == STREAM_INIT_TYPE:
                self._on_init(peer, stream_id, body, now)
            elif kind == STREAM_CHUNK_TYPE:
                self._on_chunk(peer, stream_id, body, payload, now)
            elif kind == STREAM_END_TYPE:
                self._on_end(peer, stream_id, body)
            elif kind == STREAM_ABORT_TYPE:
                self._on_abort(peer, stream_id, body)
            elif kind == STREAM_CREDIT_TYPE:
                self._on_credit(peer, stream_id, body, now)
            else:
                raise _Bad("type", "not a stream frame")
        except _Bad as bad:
            self._c.rejected += 1
            self._emit(StreamRejected(peer=peer, field=bad.field, reason=bad.reason))

    def peer_lost(self, peer: PeerId, now: float) -> None:
        """The link to `peer` ended: its streams are aborted locally (no frame sent)."""
        for gone in [k for k in self._closing if k[0] == peer]:
            del self._closing[gone]
        for key in [k for k in self._out if k[0] == peer]:
            del self._out[key]
            self._c.aborted_out += 1
            self._emit(
                StreamAborted(
                    peer=peer, stream_id=key[1], reason="link lost", outgoing=True, by_peer=False
                )
            )
        for key in [k for k in self._in if k[0] == peer]:
            del self._in[key]
            self._c.aborted_in += 1
            self._emit(
                StreamAborted(
                    peer=peer, stream_id=key[1], reason="link lost", outgoing=False, by_peer=False
                )
            )

    def handle_timer(self, now: float) -> None:
        """Abort streams idle past ``idle_timeout_s`` (abort frame + `StreamAborted`)."""
        for out_key, so in list(self._out.items()):
            if so.deadline <= now:
                self._c.timeouts += 1
                self._abort(out_key[0], out_key[1], "timeout", outgoing=True)
        for in_key, si in list(self._in.items()):
            if si.deadline <= now:
                self._c.timeouts += 1
                self._abort(in_key[0], in_key[1], "timeout", outgoing=False)

    # --- internals -----------------------------------------------------------------------

    def _get_out(self, peer: PeerId, stream_id: str) -> _Out:
        s = self._out.get((peer, stream_id))
        if s is None:
            raise UsageError("stream_id", "no such open stream")
        return s

    def _abort(
        self, peer: PeerId, stream_id: str, reason: str, *, outgoing: bool, send: bool = True
    ) -> None:
        if outgoing:
            self._out.pop((peer, stream_id), None)
            self._c.aborted_out += 1
        else:
            self._in.pop((peer, stream_id), None)
            self._c.aborted_in += 1
        if send:
            frame: JsonObject = {"type": STREAM_ABORT_TYPE, "streamId": stream_id, "reason": reason}
            self._act(StreamSend(peer=peer, data=_dumps(frame)))
        self._emit(
            StreamAborted(
                peer=peer, stream_id=stream_id, reason=reason, outgoing=outgoing, by_peer=False
            )
        )

    def _fault(self, s: _In, field: str, reason: str) -> None:
        self._c.rejected += 1
        self._emit(StreamRejected(peer=s.peer, field=field, reason=reason))
        self._abort(s.peer, s.stream_id, f"{field}: {reason}", outgoing=False)

    def _on_init(self, peer: PeerId, stream_id: str, body: JsonObject, now: float) -> None:
        cfg = self._config
        raw = body.get("metadata")
        meta_obj: JsonObject = raw if isinstance(raw, dict) else {}
        total = meta_obj.get("totalSize")
        total_size = (
            total if isinstance(total, int) and not isinstance(total, bool) and total >= 0 else None
        )
        ts = meta_obj.get("timestamp")
        meta = StreamMeta(
            type=_opt_str(meta_obj, "type") or "binary",
            filename=_opt_str(meta_obj, "filename"),
            mime_type=_opt_str(meta_obj, "mimeType"),
            total_size=total_size,
            chunk_size=clamp_chunk_size(meta_obj.get("chunkSize")),
            timestamp=ts if isinstance(ts, int) and not isinstance(ts, bool) else 0,
        )
        window_raw = body.get("ppWindow")
        window: int | None = None
        if window_raw is not None:
            if isinstance(window_raw, bool) or not isinstance(window_raw, int):
                raise _Bad("ppWindow", "must be an integer")
            window = window_raw
        if (peer, stream_id) in self._in:
            raise _Bad("streamId", "already open")  # JS replaces it; we keep the live one
        too_many = sum(1 for p, _ in self._in if p == peer) >= cfg.max_streams_per_peer
        problem: str | None = None
        if too_many:
            problem = "too many open streams"
        elif window is not None and not 0 < window <= cfg.window_bytes:
            problem = f"ppWindow: must be 1..{cfg.window_bytes}"
        elif total_size is not None and total_size > cfg.max_total_bytes:
            problem = f"totalSize: exceeds {cfg.max_total_bytes}"
        if problem is not None:
            self._c.rejected += 1
            self._emit(StreamRejected(peer=peer, field="streamId", reason=problem))
            frame: JsonObject = {
                "type": STREAM_ABORT_TYPE,
                "streamId": stream_id,
                "reason": problem,
            }
            self._act(StreamSend(peer=peer, data=_dumps(frame)))
            return
        self._in[(peer, stream_id)] = _In(
            peer, stream_id, meta, window, now + cfg.idle_timeout_s, credit_left=window or 0
        )
        self._c.opened_in += 1
        self._emit(
            StreamOpened(
                peer=peer, stream_id=stream_id, meta=meta, flow_controlled=window is not None
            )
        )

    def _on_chunk(
        self, peer: PeerId, stream_id: str, body: JsonObject, payload: bytes | None, now: float
    ) -> None:
        s = self._in.get((peer, stream_id))
        if s is None:
            raise _Bad("streamId", "unknown stream")
        if payload is None:  # legacy form: an array of byte values
            raw = body.get("data")
            if not isinstance(raw, list) or len(raw) > MAX_CHUNK:
                return self._fault(s, "data", "must be a list of at most 65536 bytes")
            try:
                payload = bytes(v for v in raw if isinstance(v, int) and not isinstance(v, bool))
            except ValueError:
                return self._fault(s, "data", "values must be 0..255")
            if len(payload) != len(raw):
                return self._fault(s, "data", "values must be 0..255")
        else:
            size = body.get("size")
            if size != len(payload):
                return self._fault(s, "size", f"header said {size}, payload has {len(payload)}")
        index = body.get("chunkIndex")
        if index != s.chunks:
            return self._fault(s, "chunkIndex", f"expected {s.chunks}, got {index}")
        if len(payload) > MAX_CHUNK:
            return self._fault(s, "size", f"chunk above {MAX_CHUNK} bytes")
        n = len(payload)
        if s.received + n > self._config.max_total_bytes:
            return self._fault(s, "size", "stream exceeds max_total_bytes")
        total = s.meta.total_size
        if total is not None and s.received + n > total:
            return self._fault(s, "size", f"more than totalSize {total}")
        if s.window is not None:
            if n > s.credit_left:
                return self._fault(s, "credit", "sent beyond the credit window")
            s.credit_left -= n
        if s.unread + n > self._config.max_unread_bytes:
            return self._fault(s, "unread", "receiver buffer full")
        s.chunks += 1
        s.received += n
        s.unread += n
        s.digest.update(payload)
        s.deadline = now + self._config.idle_timeout_s
        self._c.bytes_received += n
        self._emit(StreamData(peer=peer, stream_id=stream_id, data=payload, size=n))
        return None

    def _on_end(self, peer: PeerId, stream_id: str, body: JsonObject) -> None:
        s = self._in.get((peer, stream_id))
        if s is None:
            raise _Bad("streamId", "unknown stream")
        total_chunks = body.get("totalChunks")
        if total_chunks is not None and total_chunks != s.chunks:
            return self._fault(s, "totalChunks", f"expected {s.chunks}, got {total_chunks}")
        total = s.meta.total_size
        if total is not None and s.received != total:
            return self._fault(s, "totalSize", f"announced {total}, received {s.received}")
        size, digest = body.get("ppSize"), body.get("ppSha256")
        verified = False
        if size is not None or digest is not None:
            if size != s.received:
                return self._fault(s, "ppSize", f"announced {size}, received {s.received}")
            if digest != s.digest.hexdigest():
                return self._fault(s, "ppSha256", "digest mismatch")
            verified = True
        del self._in[(peer, stream_id)]
        self._c.ended_in += 1
        if verified and s.window is not None:  # ours: confirm, the sender may leave now
            done: JsonObject = {
                "type": STREAM_CREDIT_TYPE,
                "streamId": stream_id,
                "credit": 0,
                "done": True,
            }
            self._act(StreamSend(peer=peer, data=_dumps(done)))
        self._emit(
            StreamEnded(
                peer=peer,
                stream_id=stream_id,
                total_bytes=s.received,
                total_chunks=s.chunks,
                verified=verified,
            )
        )
        return None

    def _on_abort(self, peer: PeerId, stream_id: str, body: JsonObject) -> None:
        reason = _opt_str(body, "reason") or "Stream aborted"
        key = (peer, stream_id)
        if self._in.pop(key, None) is not None:
            outgoing = False
            self._c.aborted_in += 1
        elif self._out.pop(key, None) is not None:
            outgoing = True
            self._c.aborted_out += 1
        elif key in self._closing:  # ended (counted so), unconfirmed: the receiver gave up
            del self._closing[key]
            outgoing = True
        else:
            raise _Bad("streamId", "unknown stream")
        self._emit(
            StreamAborted(
                peer=peer, stream_id=stream_id, reason=reason, outgoing=outgoing, by_peer=True
            )
        )

    def _on_credit(self, peer: PeerId, stream_id: str, body: JsonObject, now: float) -> None:
        if body.get("done") is True and (peer, stream_id) in self._closing:
            del self._closing[(peer, stream_id)]
            self._emit(StreamDelivered(peer=peer, stream_id=stream_id))
            return
        s = self._out.get((peer, stream_id))
        if s is None:
            if (peer, stream_id) in self._closing:
                return  # returned before the receiver saw our end: expected, not an error
            raise _Bad("streamId", "unknown stream")  # late credit after an abort: harmless
        grant = _int(body, "credit")
        if s.credit is None:
            raise _Bad("credit", "stream is not flow controlled")
        if s.credit + grant > self._config.window_bytes:
            raise _Bad("credit", "grant exceeds the window")
        s.credit += grant
        s.deadline = now + self._config.idle_timeout_s
        self._emit(StreamCredit(peer=peer, stream_id=stream_id, available=s.credit))
