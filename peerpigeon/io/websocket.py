"""websockets' own sans-I/O protocol over anyio byte streams (asyncio or trio).

One `WebSocketLink` owns a connected byte stream and a `websockets` protocol object
(server or client side, after the opening handshake). It reassembles fragmented
messages, answers pings and closes as the protocol says, and writes through one
bounded queue per link so a slow peer never blocks the caller.
"""

from __future__ import annotations

import contextlib
import ssl
from collections import deque
from dataclasses import dataclass
from typing import TypeAlias

import anyio
from anyio.abc import ByteStream
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import Protocol, State
from websockets.uri import parse_uri

__all__ = [
    "Incoming",
    "LinkClosed",
    "PongReceived",
    "TextOrBinary",
    "WebSocketLink",
    "open_websocket",
]

READ_CHUNK = 65536


@dataclass(frozen=True, slots=True)
class TextOrBinary:
    """One whole WebSocket message."""

    data: str | bytes


@dataclass(frozen=True, slots=True)
class PongReceived:
    """A pong arrived (a sign of life)."""


@dataclass(frozen=True, slots=True)
class LinkClosed:
    """The link ended; code and reason of the close frame received, or 1006."""

    code: int
    reason: str


Incoming: TypeAlias = TextOrBinary | PongReceived | LinkClosed

_EOF = b""


class WebSocketLink:
    """A WebSocket connection after its handshake, on any anyio backend."""

    def __init__(
        self, stream: ByteStream, protocol: Protocol, *, max_queue: int, close_timeout_s: float
    ) -> None:
        self._stream = stream
        self._protocol = protocol
        send, receive = anyio.create_memory_object_stream[bytes](max_buffer_size=max_queue)
        self._out: MemoryObjectSendStream[bytes] = send
        self._out_receive: MemoryObjectReceiveStream[bytes] = receive
        self._close_timeout_s = close_timeout_s
        self._fragments: list[bytes] = []
        self._fragment_text = False
        self._eof_sent = False
        self._pending: deque[Incoming] = deque()
        self._closed: LinkClosed | None = None

    # --- sending (never blocks) -------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """Whether messages can still be sent (the closing handshake has not started)."""
        return self._protocol.state is State.OPEN

    def send_text(self, text: str) -> bool:
        """Queue a text message; False when the link's queue is full or it is closing."""
        try:
            self._protocol.send_text(text.encode("utf-8", "surrogatepass"))
        except Exception:  # websockets raises InvalidState once closing
            return False
        return self._flush()

    def send_ping(self) -> bool:
        """Queue a ping; False when the queue is full or the link is closing."""
        try:
            self._protocol.send_ping(b"")
        except Exception:
            return False
        return self._flush()

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake (idempotent)."""
        with contextlib.suppress(Exception):
            self._protocol.send_close(code, reason)
        self._flush(force=True)

    def abort(self) -> None:
        """Stop writing; the writer closes the stream."""
        self._out.close()

    def _flush(self, *, force: bool = False) -> bool:
        ok = True
        for chunk in self._protocol.data_to_send():
            if self._eof_sent:
                continue
            if chunk == _EOF:
                self._eof_sent = True
                self._out.close()
                break
            try:
                self._out.send_nowait(chunk)
            except anyio.WouldBlock:
                ok = False
                if force:
                    self._out.close()  # cannot even queue the close: drop the link
                break
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                ok = False
                break
        return ok

    # --- tasks ----------------------------------------------------------------------------

    async def run_writer(self) -> None:
        """Write queued bytes until the queue closes, then close the stream."""
        try:
            async with self._out_receive:
                async for chunk in self._out_receive:
                    await self._stream.send(chunk)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
        finally:
            with anyio.CancelScope(shield=True):
                with contextlib.suppress(Exception):
                    await self._stream.aclose()

    async def receive(self) -> Incoming:
        """The next whole message or pong; after the link ends, `LinkClosed` (repeatedly)."""
        while not self._pending:
            if self._closed is not None:
                return self._closed
            try:
                chunk = await self._stream.receive(READ_CHUNK)
            except (
                anyio.EndOfStream,
                anyio.BrokenResourceError,
                anyio.ClosedResourceError,
                OSError,
            ):
                self._protocol.receive_eof()
                self._flush()
                self._finish()
                continue
            self._pending.extend(self._feed(chunk))
            if self._protocol.close_rcvd is not None or self._eof_sent:
                self._finish()
        return self._pending.popleft()

    def _finish(self) -> None:
        rcvd = self._protocol.close_rcvd
        if rcvd is None:
            self._closed = LinkClosed(code=1006, reason="")
        else:
            self._closed = LinkClosed(code=rcvd.code, reason=rcvd.reason)
        self._out.close()

    def aclose_nowait(self) -> None:
        """Release both halves of the write queue (the writer then closes the stream)."""
        self._out.close()
        self._out_receive.close()

    def take_frames(self, frames: list[Frame]) -> list[Incoming]:
        """Turn frames parsed before this link existed (with the handshake) into messages."""
        return [item for item in map(self._on_frame, frames) if item is not None]

    def _feed(self, chunk: bytes) -> list[Incoming]:
        self._protocol.receive_data(chunk)
        out: list[Incoming] = []
        for event in self._protocol.events_received():
            if not isinstance(event, Frame):
                continue
            item = self._on_frame(event)
            if item is not None:
                out.append(item)
        self._flush()
        return out

    def _on_frame(self, frame: Frame) -> Incoming | None:
        if frame.opcode is Opcode.PONG:
            return PongReceived()
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
            self._fragment_text = frame.opcode is Opcode.TEXT
            self._fragments = [bytes(frame.data)]
        elif frame.opcode is Opcode.CONT:
            self._fragments.append(bytes(frame.data))
        else:
            return None
        if not frame.fin:
            return None
        data = b"".join(self._fragments)
        self._fragments = []
        if self._fragment_text:
            try:
                return TextOrBinary(data.decode("utf-8"))
            except UnicodeDecodeError:
                return TextOrBinary(data)
        return TextOrBinary(data)

    @property
    def close_timeout_s(self) -> float:
        """How long the owner waits for the peer to finish a close it started."""
        return self._close_timeout_s


async def open_websocket(url: str, max_size: int) -> tuple[ByteStream, ClientProtocol, list[Frame]]:
    """Open TCP (TLS for wss) and run the opening handshake; return frames that came with it."""
    uri = parse_uri(url)
    stream: ByteStream
    if uri.secure:
        stream = await anyio.connect_tcp(
            uri.host, uri.port, tls=True, ssl_context=ssl.create_default_context()
        )
    else:
        stream = await anyio.connect_tcp(uri.host, uri.port)
    protocol = ClientProtocol(uri, max_size=max_size)
    protocol.send_request(protocol.connect())
    try:
        for chunk in protocol.data_to_send():
            await stream.send(chunk)
        response: Response | None = None
        early: list[Frame] = []
        while response is None:
            protocol.receive_data(await stream.receive())
            for event in protocol.events_received():
                if isinstance(event, Response):
                    response = event
                elif isinstance(event, Frame):
                    early.append(event)
            if protocol.handshake_exc is not None:
                raise protocol.handshake_exc
    except BaseException:
        await stream.aclose()
        raise
    if response.status_code != 101:
        await stream.aclose()
        raise ConnectionError(f"handshake refused with HTTP {response.status_code}")
    return stream, protocol, early
