"""Byte streams to and from neighbours on top of `PeerPigeonMesh` (file transfer).

The protocol (chunking, credit, integrity, timeouts) is `peerpigeon.protocol.streams`;
this module only waits: a `StreamWriter` waits for credit (Python peers) or for the
channel's buffered amount to drain (JS peers, as the reference does: high water 32 chunks,
low water 8), and an `IncomingStream` hands bytes to the reader and returns credit as it
reads. Reference: data-plane.md section 6.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Self

import anyio

from peerpigeon.protocol.errors import PeerPigeonError
from peerpigeon.protocol.ids import PeerId
from peerpigeon.protocol.streams import StreamConfig, StreamMeta

if TYPE_CHECKING:
    from peerpigeon.io.mesh import PeerPigeonMesh

__all__ = ["IncomingStream", "StreamAbortedError", "StreamWriter"]

_JS_HIGH_WATER_CHUNKS = 32  # the reference's pacing (data-plane 6.2)
_JS_LOW_WATER_CHUNKS = 8


class StreamAbortedError(PeerPigeonError):
    """The stream was aborted (by either side, a timeout, or the link going away)."""


@dataclass(slots=True)
class _OutState:
    wake: anyio.Event = field(default_factory=anyio.Event)
    aborted: str | None = None


class StreamWriter:
    """An outgoing stream: ``await send(data)``, then ``await aclose()`` (or `abort`)."""

    def __init__(
        self, mesh: PeerPigeonMesh, peer: PeerId, stream_id: str, config: StreamConfig
    ) -> None:
        self._mesh = mesh
        self.peer = peer
        self.stream_id = stream_id
        self._state = _OutState()
        self._done = False
        self.bytes_sent = 0
        self.delivered = anyio.Event()  # set when a Python receiver confirmed the whole stream
        self._settled_flag = False
        self.flow_controlled = mesh.machine.stream_available(peer, stream_id) is not None
        # the machine's choice for this stream (StreamMux.open_stream picks the same way)
        self._chunk = config.chunk_for(self.flow_controlled)

    def _woken(self) -> None:
        self._state.wake.set()

    def _aborted(self, reason: str) -> None:
        self._state.aborted = reason
        self._state.wake.set()

    async def send(self, data: bytes | bytearray | memoryview) -> None:
        """Send `data`; waits while the receiver's credit (or the channel buffer) is full.

        Raises `StreamAbortedError` if the stream was aborted.
        """
        view = memoryview(bytes(data))
        while view:
            self._check()
            machine = self._mesh.machine
            available = machine.stream_available(self.peer, self.stream_id)
            if available == 0:
                self._state.wake = anyio.Event()
                await self._state.wake.wait()
                continue
            n = len(view) if available is None else min(len(view), available)
            n = min(n, self._chunk * 8)
            machine.stream_send(self.peer, self.stream_id, bytes(view[:n]), anyio.current_time())
            self._mesh._perform()  # the adapter this writer belongs to
            self.bytes_sent += n
            view = view[n:]
            await self._pace()

    async def _pace(self) -> None:
        """Wait while the channel holds more than the reference's high-water mark."""
        link = self._mesh._link_for(self.peer)
        if link is not None and link.buffered_amount > _JS_HIGH_WATER_CHUNKS * self._chunk:
            await link.wait_buffered_amount_low(_JS_LOW_WATER_CHUNKS * self._chunk)
        else:
            await anyio.lowlevel.checkpoint()

    def _check(self) -> None:
        if self._state.aborted is not None:
            raise StreamAbortedError("stream", self._state.aborted, peer=self.peer)
        if self._done:
            raise StreamAbortedError("stream", "already closed", peer=self.peer)

    async def aclose(self) -> None:
        """Finish the stream (end frame with size and sha256) once the channel drained."""
        self._check()
        link = self._mesh._link_for(self.peer)
        if link is not None:
            await link.wait_buffered_amount_low(_JS_LOW_WATER_CHUNKS * self._chunk)
        self._check()
        self._done = True
        self._mesh.machine.stream_end(self.peer, self.stream_id, anyio.current_time())
        self._mesh._perform()
        if not self.flow_controlled:
            self._mesh._forget_writer(self)  # a JS receiver confirms nothing

    def _settled(self) -> None:
        """Delivered, or nobody can confirm any more (the link went away)."""
        self._settled_flag = True
        self._state.wake.set()

    async def wait_delivered(self) -> bool:
        """After `aclose`, wait for the receiver's confirmation (Python receivers).

        Returns True once the receiver confirmed the whole stream (size and sha256), False
        when nobody can confirm (a JS receiver, or the link went away); raises
        `StreamAbortedError` when the receiver aborted the stream instead.
        """
        while not self.delivered.is_set():
            if self._state.aborted is not None:
                raise StreamAbortedError("stream", self._state.aborted, peer=self.peer)
            if not self.flow_controlled or self._settled_flag:
                return False
            self._state.wake = anyio.Event()
            await self._state.wake.wait()
        return True

    def abort(self, reason: str = "Stream aborted") -> None:
        """Abort the stream (the receiver gets ``__STREAM_ABORT__``)."""
        if self._done or self._state.aborted is not None:
            return
        self._mesh.machine.stream_abort(self.peer, self.stream_id, reason, anyio.current_time())
        self._mesh._perform()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if et is None:
            await self.aclose()
        else:
            self.abort(f"{et.__name__}")


class IncomingStream:
    """A stream a neighbour opened to us: ``async for chunk in stream`` (bytes, in order).

    Reading returns credit to the sender; a reader that stops reading makes it wait.
    Iteration ends at the stream's end; raises `StreamAbortedError` on an abort.
    """

    def __init__(self, mesh: PeerPigeonMesh, peer: PeerId, stream_id: str, meta: StreamMeta):
        self._mesh = mesh
        self.peer = peer
        self.stream_id = stream_id
        self.meta = meta
        self.verified = False
        self.bytes_received = 0
        # Bytes are bounded by the machine (credit, or max_unread_bytes for JS senders).
        self._buffer: deque[bytes] = deque()
        self._ready = anyio.Event()
        self._ended = False
        self._aborted: str | None = None

    def _feed(self, data: bytes) -> None:
        if not self._ended and self._aborted is None:
            self._buffer.append(data)
            self._ready.set()

    def _end(self, verified: bool) -> None:
        self.verified = verified
        self._ended = True
        self._ready.set()

    def _abort(self, reason: str) -> None:
        self._aborted = reason
        self._buffer.clear()  # what was buffered is dropped: the memory is freed now
        self._ready.set()

    async def receive(self) -> bytes:
        """The next bytes; raises `anyio.EndOfStream` at the end, `StreamAbortedError` on abort."""
        while not self._buffer:
            if self._aborted is not None:
                raise StreamAbortedError("stream", self._aborted, peer=self.peer)
            if self._ended:
                raise anyio.EndOfStream
            self._ready = anyio.Event()
            await self._ready.wait()
        data = self._buffer.popleft()
        self.bytes_received += len(data)
        machine = self._mesh.machine
        machine.stream_acknowledge(self.peer, self.stream_id, len(data), anyio.current_time())
        self._mesh._perform()
        return data

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    def close(self) -> None:
        """Drop what is buffered (the mesh closed)."""
        self._buffer.clear()
        if not self._ended and self._aborted is None:
            self._aborted = "mesh closed"
        self._ready.set()

    def abort(self, reason: str = "Stream aborted") -> None:
        """Refuse the rest of the stream (the sender gets ``__STREAM_ABORT__``)."""
        machine = self._mesh.machine
        machine.stream_abort(
            self.peer, self.stream_id, reason, anyio.current_time(), outgoing=False
        )
        self._mesh._perform()
