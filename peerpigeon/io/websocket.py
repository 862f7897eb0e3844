"""websockets' own sans-I/O protocol over anyio byte streams (asyncio or trio).

`WebSocketCodec` is the byte-level part with no I/O: it feeds a `websockets` protocol
object (server or client side, after the opening handshake) and turns its frames into
whole messages (`Incoming`). One `WebSocketLink` puts a codec on a connected anyio byte
stream: it answers pings and closes as the protocol says, and writes through one bounded
queue per link so a slow peer never blocks the caller.
"""

from __future__ import annotations

import contextlib
import ssl
from collections import deque
from dataclasses import dataclass
from typing import Final, TypeAlias

import anyio
from anyio.abc import ByteStream
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import Protocol, Side, State
from websockets.uri import parse_uri

try:
    from websockets.speedups import apply_mask
except ImportError:  # websockets without its C extension
    from websockets.utils import apply_mask

__all__ = [
    "Incoming",
    "LinkClosed",
    "PongReceived",
    "TextOrBinary",
    "WebSocketCodec",
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


# What the shortcuts of `WebSocketCodec` read of a websockets protocol (websockets >= 14.2).
_SHORTCUT_ATTRS: Final = (
    "debug",
    "extensions",
    "current_size",
    "max_message_size",
    "max_fragment_size",
    "expect_continuation_frame",
    "writes",
    "reader",
)
_TEXT_FIN: Final = 0x81  # FIN, no reserved bits, opcode text


class WebSocketCodec:
    """A `websockets` protocol plus message reassembly: bytes in, whole messages out.

    It does no I/O: the owner writes `protocol.data_to_send()` (an empty chunk means
    "close the connection") after every call.

    Two shortcuts take the common case off websockets' generator-based parser and frame
    objects, with the same outcome: while the connection is open, nothing is half-parsed,
    no fragmented message is in progress, no extension was negotiated and websockets is not
    logging frames, whole unfragmented text frames at the start of a chunk are unmasked and
    decoded here (a frame websockets would refuse, e.g. over `max_size`, goes to it as
    usual, with everything after it); and the server side frames outgoing texts itself.
    """

    __slots__ = ("_fragment_text", "_fragments", "_send_shortcut", "_shortcuts", "protocol")

    def __init__(self, protocol: Protocol) -> None:
        self.protocol = protocol
        self._fragments: list[bytes] = []
        self._fragment_text = False
        # Side, logging and extensions are settled once the handshake is done.
        self._shortcuts = (
            all(hasattr(protocol, a) for a in _SHORTCUT_ATTRS)
            and hasattr(protocol.reader, "buffer")
            and not protocol.debug
            and not protocol.extensions
        )
        self._send_shortcut = self._shortcuts and protocol.side is Side.SERVER

    def feed(self, chunk: bytes) -> list[Incoming]:
        """Parse received bytes; the whole messages and pongs they complete."""
        protocol = self.protocol
        out: list[Incoming] = []
        if self._shortcuts and self._parser_idle():
            taken = self._take_texts(chunk, out)
            if taken == len(chunk):
                return out
            chunk = chunk[taken:]
        protocol.receive_data(chunk)
        for event in protocol.events_received():
            if not isinstance(event, Frame):
                continue
            item = self.on_frame(event)
            if item is not None:
                out.append(item)
        return out

    def _parser_idle(self) -> bool:
        protocol = self.protocol
        reader = protocol.reader
        return (
            protocol.state is State.OPEN
            and protocol.current_size is None
            and not reader.buffer
            and not reader.eof
            and not self._fragments
        )

    def _take_texts(self, chunk: bytes, out: list[Incoming]) -> int:
        """Decode the whole, final, text frames at the start of `chunk`; bytes consumed."""
        protocol = self.protocol
        masked = protocol.side is Side.SERVER  # clients mask, servers do not
        limit = protocol.max_message_size
        fragment_limit = protocol.max_fragment_size
        if fragment_limit is not None and (limit is None or fragment_limit < limit):
            limit = fragment_limit
        view = memoryview(chunk)
        size = len(chunk)
        pos = 0
        while size - pos >= 2:
            second = chunk[pos + 1]
            if chunk[pos] != _TEXT_FIN or (second >= 0x80) != masked:
                break
            length = second & 0x7F
            at = pos + 2
            if length == 126:
                if size - at < 2:
                    break
                length = int.from_bytes(chunk[at : at + 2], "big")
                at += 2
            elif length == 127:
                if size - at < 8:
                    break
                length = int.from_bytes(chunk[at : at + 8], "big")
                at += 8
            if limit is not None and length > limit:
                break
            if masked:
                end = at + 4 + length
                if end > size:
                    break
                data = apply_mask(view[at + 4 : end], chunk[at : at + 4])
            else:
                end = at + length
                if end > size:
                    break
                data = chunk[at:end]
            try:
                out.append(TextOrBinary(data.decode("utf-8")))
            except UnicodeDecodeError:
                out.append(TextOrBinary(data))
            pos = end
        return pos

    def ended(self) -> LinkClosed | None:
        """How the link ended once the close frame arrived or the protocol sent EOF, else None."""
        rcvd = self.protocol.close_rcvd
        if rcvd is not None:
            return LinkClosed(code=rcvd.code, reason=rcvd.reason)
        if self.protocol.eof_sent:
            return LinkClosed(code=1006, reason="")
        return None

    def lost(self) -> LinkClosed:
        """How the link ended when the connection itself ended (1006 unless a close came)."""
        rcvd = self.protocol.close_rcvd
        if rcvd is None:
            return LinkClosed(code=1006, reason="")
        return LinkClosed(code=rcvd.code, reason=rcvd.reason)

    def send_text(self, text: str) -> bool:
        """Queue a text frame in the protocol; False once the link is closing."""
        data = text.encode("utf-8", "surrogatepass")
        protocol = self.protocol
        if (
            self._send_shortcut
            and protocol.state is State.OPEN
            and not protocol.expect_continuation_frame
        ):
            size = len(data)
            if size < 126:
                head = bytes((_TEXT_FIN, size))
            elif size < 65536:
                head = b"\x81\x7e" + size.to_bytes(2, "big")
            else:
                head = b"\x81\x7f" + size.to_bytes(8, "big")
            protocol.writes.append(head + data)  # what send_text would queue, unmasked
            return True
        try:
            protocol.send_text(data)
        except Exception:  # websockets raises InvalidState once closing
            return False
        return True

    def send_ping(self) -> bool:
        """Queue a ping in the protocol; False once the link is closed."""
        try:
            self.protocol.send_ping(b"")
        except Exception:
            return False
        return True

    def send_close(self, code: int, reason: str) -> None:
        """Start the closing handshake (idempotent)."""
        with contextlib.suppress(Exception):
            self.protocol.send_close(code, reason)

    def on_frame(self, frame: Frame) -> Incoming | None:
        """One parsed frame; a message once its last fragment arrives."""
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


class WebSocketLink:
    """A WebSocket connection after its handshake, on any anyio backend."""

    def __init__(
        self, stream: ByteStream, protocol: Protocol, *, max_queue: int, close_timeout_s: float
    ) -> None:
        self._stream = stream
        self._protocol = protocol
        self._codec = WebSocketCodec(protocol)
        send, receive = anyio.create_memory_object_stream[bytes](max_buffer_size=max_queue)
        self._out: MemoryObjectSendStream[bytes] = send
        self._out_receive: MemoryObjectReceiveStream[bytes] = receive
        self._close_timeout_s = close_timeout_s
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
        return self._codec.send_text(text) and self._flush()

    def send_ping(self) -> bool:
        """Queue a ping; False when the queue is full or the link is closing."""
        return self._codec.send_ping() and self._flush()

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake (idempotent)."""
        self._codec.send_close(code, reason)
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
                self._finish(self._codec.lost())
                continue
            self._pending.extend(self._codec.feed(chunk))
            self._flush()
            ended = self._codec.ended()
            if ended is not None:
                self._finish(ended)
        return self._pending.popleft()

    def _finish(self, closed: LinkClosed) -> None:
        self._closed = closed
        self._out.close()

    def aclose_nowait(self) -> None:
        """Release both halves of the write queue (the writer then closes the stream)."""
        self._out.close()
        self._out_receive.close()

    def take_frames(self, frames: list[Frame]) -> list[Incoming]:
        """Turn frames parsed before this link existed (with the handshake) into messages."""
        return [item for item in map(self._codec.on_frame, frames) if item is not None]

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
