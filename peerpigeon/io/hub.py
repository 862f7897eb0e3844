"""`PeerPigeonServer`: the signaling server machine on real sockets (asyncio or trio).

The adapter accepts TCP connections, answers plain HTTP (``/health``, ``/hubs``, CORS
preflight) from the machine's data, upgrades WebSocket requests with websockets'
sans-I/O protocol, and feeds every frame, pong and close into
`peerpigeon.protocol.server.SignalingServer`. It owns sockets, tasks and the clock and
nothing else: every decision is the machine's.

On asyncio, accepted connections are served by a plain `asyncio.BufferedProtocol`
(`_AsyncioConnection`): each read is parsed, fed to the machine and answered within one
callback, and everything one read produces for a connection goes out in one write. On trio
(and for the hub links this server dials) they run as anyio tasks (`WebSocketLink`). Both
share the request-head handling and the machine loop (`_respond_to_head`, `_feed`,
`_perform`); only the transport plumbing differs.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import random
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Protocol, Self, cast

import anyio
from anyio.abc import ByteStream, SocketAttribute, SocketListener, SocketStream, TaskGroup
from anyio.streams.stapled import MultiListener
from websockets.frames import Frame
from websockets.http11 import Request
from websockets.server import ServerProtocol

from peerpigeon.io.client import SystemEntropy
from peerpigeon.io.websocket import (
    READ_CHUNK,
    Incoming,
    LinkClosed,
    PongReceived,
    TextOrBinary,
    WebSocketCodec,
    WebSocketLink,
    open_websocket,
)
from peerpigeon.protocol.rand import Entropy
from peerpigeon.protocol.server import (
    Close,
    ConnectionId,
    OpenHubLink,
    SendPing,
    SendText,
    ServerConfig,
    ServerEvent,
    SignalingServer,
)

__all__ = ["PeerPigeonServer", "SystemEntropy"]

log = logging.getLogger("peerpigeon.hub")

MAX_REQUEST_HEAD_BYTES = 16_384
LISTEN_BACKLOG = 65_536  # what anyio's create_tcp_listener asks for (the kernel caps it)


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


def _on_asyncio() -> bool:
    """Whether the running anyio backend is asyncio (anyio's own detection)."""
    try:
        import sniffio
    except ImportError:  # anyio then assumes asyncio whenever a loop is running
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return False
        return True
    try:
        return sniffio.current_async_library() == "asyncio"
    except sniffio.AsyncLibraryNotFoundError:
        return False


def _plain_response(status: int, body: bytes, headers: Iterable[tuple[str, str]]) -> bytes:
    reason = {200: "OK", 400: "Bad Request"}.get(status, "OK")
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{k}: {v}" for k, v in headers]
    lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1") + body


@dataclass(slots=True)
class _Upgrade:
    """An accepted WebSocket handshake: the protocol, the request, frames that came with it."""

    protocol: ServerProtocol
    request: Request
    early: list[Frame]


class _Link(Protocol):
    """What `_perform` needs of a connection: a `WebSocketLink` or an `_AsyncioConnection`."""

    def send_text(self, text: str) -> bool: ...
    def send_ping(self) -> bool: ...
    def close(self, code: int, reason: str) -> None: ...


class PeerPigeonServer:
    """A WebSocket signaling server (optionally a hub) on one TCP port.

    Use as ``async with PeerPigeonServer(port=0) as server: ...`` or call `start()` and
    `stop()` from the same task. ``port=0`` picks a free port; otherwise, like the
    reference, a busy port is retried upward ``max_port_retries`` times.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 3000,
        max_connections: int = 1000,
        max_port_retries: int = 10,
        config: ServerConfig | None = None,
        close_timeout_s: float = 5.0,
        handshake_timeout_s: float = 10.0,
        on_event: Callable[[ServerEvent], None] | None = None,
        entropy: Entropy | None = None,
        is_hub: bool | None = None,
        hub_mesh_namespace: str | None = None,
        bootstrap_hubs: Sequence[str] | None = None,
        auto_connect: bool | None = None,
        reconnect_interval_s: float | None = None,
        max_reconnect_attempts: int | None = None,
        hub_peer_id: str | None = None,
        hub_secret: str | None = None,
    ) -> None:
        base = config or ServerConfig(max_connections=max_connections, host=host, port=port)
        overrides: dict[str, object] = {
            "is_hub": is_hub,
            "hub_mesh_namespace": hub_mesh_namespace,
            "bootstrap_hubs": tuple(bootstrap_hubs) if bootstrap_hubs is not None else None,
            "auto_connect": auto_connect,
            "reconnect_interval_s": reconnect_interval_s,
            "max_reconnect_attempts": max_reconnect_attempts,
            "hub_peer_id": hub_peer_id,
            "hub_secret": hub_secret,
        }
        base = replace(base, **{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]  # validated by ServerConfig
        self._config = base
        self.host = host
        self._requested_port = port
        self.port: int | None = None
        self._max_port_retries = max_port_retries
        self._close_timeout_s = close_timeout_s
        self._handshake_timeout_s = handshake_timeout_s
        self._on_event = on_event
        self._entropy = entropy or SystemEntropy()
        self._machine: SignalingServer | None = None
        self._links: dict[ConnectionId, _Link] = {}
        self._clock: Callable[[], float] = anyio.current_time
        # asyncio fast path: accepted connections, links with bytes to write, one read buffer
        self._accepted: set[_AsyncioConnection] = set()
        self._dirty: list[_AsyncioConnection] = []
        self._batching = False
        self._read_buffer = memoryview(bytearray(READ_CHUNK))
        self._tg: TaskGroup | None = None  # set while serving
        self._open_tg: TaskGroup | None = None  # entered and not yet exited
        self._in_context = False
        self._task_scopes: set[anyio.CancelScope] = set()
        self._serve_scope = anyio.CancelScope()
        self._serve_done = anyio.Event()
        self._wake = anyio.Event()
        self._timer_deadline: float | None = None
        self.started_at: float | None = None

    # --- lifecycle ------------------------------------------------------------------------

    @property
    def machine(self) -> SignalingServer:
        """The server machine (read its `stats()`, `health()` …); only while running."""
        if self._machine is None:
            raise RuntimeError("server is not running")
        return self._machine

    @property
    def url(self) -> str:
        """``ws://host:port`` of the running server."""
        if self.port is None:
            raise RuntimeError("server is not running")
        return f"ws://{self.host}:{self.port}"

    @property
    def is_running(self) -> bool:
        """Whether the server is listening."""
        return self._tg is not None

    async def __aenter__(self) -> Self:
        await self._start(in_context=True)
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
        await self._finish()

    async def start(self) -> None:
        """Bind the port (with the reference's port retry) and start serving.

        Without ``async with``, call `stop()` later from the same task.
        """
        await self._start(in_context=False)

    async def _start(self, *, in_context: bool) -> None:
        if self._tg is not None or self._open_tg is not None:
            raise RuntimeError("Server is already running")
        listener = await self._bind()
        fast = _on_asyncio()
        self._clock = asyncio.get_running_loop().time if fast else anyio.current_time
        now = self._clock()
        self.port = listener.extra(SocketAttribute.local_port)
        config = replace(self._config, host=self.host, port=self.port)
        self._machine = SignalingServer(
            config,
            rng=random.Random(),
            entropy=self._entropy,
            now=now,
            wall_offset_s=time.time() - now,
        )
        self.started_at = now
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = self._open_tg = tg
        self._in_context = in_context
        self._serve_scope = anyio.CancelScope()
        self._serve_done = anyio.Event()
        if fast:
            # Hand the bound sockets (port retry and all) over to asyncio's own server.
            socks = [
                sub.extra(SocketAttribute.raw_socket).dup()
                for sub in listener.listeners
                if isinstance(sub, SocketListener)
            ]
            await listener.aclose()
            tg.start_soon(self._serve_asyncio, socks)
        else:
            tg.start_soon(self._serve, listener)
        tg.start_soon(self._scoped, self._timer_loop)
        self._perform()  # what the machine queued when built: dial the bootstrap hubs now

    async def stop(self) -> None:
        """Close every connection with 1000 'Server shutting down' and stop listening.

        Safe to call inside ``async with`` (the context's exit finishes the clean-up).
        """
        tg, self._tg = self._tg, None
        if tg is None:
            return
        machine = self.machine
        machine.stop(self._clock())
        self._perform()
        with anyio.CancelScope(shield=True):
            with anyio.move_on_after(self._close_timeout_s):
                while self._links:
                    await anyio.sleep(0.01)
            self._serve_scope.cancel()
            await self._serve_done.wait()
            # Cancel our own tasks only: the task group's scope may enclose the caller.
            for scope in list(self._task_scopes):
                scope.cancel()
        self._links.clear()
        self.port = None
        if not self._in_context:
            await self._finish()

    async def _serve(self, listener: MultiListener[SocketStream]) -> None:
        try:
            with self._serve_scope:
                await listener.serve(self._handle_stream)
        finally:
            with anyio.CancelScope(shield=True):
                await listener.aclose()
                self._serve_done.set()

    async def _serve_asyncio(self, socks: list[socket.socket]) -> None:
        loop = asyncio.get_running_loop()
        servers: list[asyncio.Server] = []
        try:
            with self._serve_scope:
                for sock in socks:
                    server = await loop.create_server(
                        lambda: _AsyncioConnection(self), sock=sock, backlog=LISTEN_BACKLOG
                    )
                    servers.append(server)
                await anyio.sleep_forever()
        finally:
            for server in servers:
                server.close()
            for sock in socks:
                sock.close()
            for connection in list(self._accepted):
                connection.shutdown()
            self._serve_done.set()

    async def _finish(self) -> None:
        tg, self._open_tg = self._open_tg, None
        if tg is not None:
            await tg.__aexit__(None, None, None)

    async def _bind(self) -> MultiListener[SocketStream]:
        port = self._requested_port
        attempts = 0 if port == 0 else self._max_port_retries
        for offset in range(attempts + 1):
            try:
                listener = await anyio.create_tcp_listener(
                    local_host=self.host, local_port=port + offset if port else 0
                )
            except OSError as err:
                if err.errno != errno.EADDRINUSE or offset == attempts:
                    if err.errno == errno.EADDRINUSE:
                        raise OSError(
                            err.errno,
                            f"Failed to find available port after {attempts} attempts "
                            f"(tried {port}-{port + attempts})",
                        ) from err
                    raise
                continue
            return listener
        raise AssertionError("unreachable")

    # --- the machine's loop ---------------------------------------------------------------

    def _perform(self) -> None:
        """Carry out the machine's actions and hand on its events (after every input)."""
        machine = self.machine
        links = self._links
        while True:
            actions = machine.drain_actions()
            if not actions:
                break
            for action in actions:
                match action:
                    case SendText(connection=conn, text=text):
                        link = links.get(conn)
                        if link is not None and not link.send_text(text):
                            machine.connection_overflowed(conn, self._clock())
                    case SendPing(connection=conn):
                        link = links.get(conn)
                        if link is not None:
                            link.send_ping()
                    case Close(connection=conn, code=code, reason=reason):
                        link = links.get(conn)
                        if link is not None:
                            link.close(code, reason)
                            self._abort_later(link)
                    case OpenHubLink(connection=conn, url=url):
                        if self._tg is not None:
                            self._tg.start_soon(self._scoped, self._run_hub_link, conn, url)
        for event in machine.drain_events():
            log.debug("%s", event)
            if self._on_event is not None:
                self._on_event(event)
        if not self._batching:
            self._settle()

    def _settle(self) -> None:
        """Write what the inputs of a batch produced; wake the timer if the deadline moved."""
        while self._dirty:
            dirty, self._dirty = self._dirty, []
            for connection in dirty:
                connection.flush()
        if self.machine.next_deadline() != self._timer_deadline:
            self._wake.set()

    def _feed(self, conn: ConnectionId, item: Incoming, now: float) -> bool:
        """One message, pong or end of a link into the machine; True once the link ended."""
        machine = self.machine
        match item:
            case TextOrBinary(data=data):
                machine.receive_frame(conn, data, now)
            case PongReceived():
                machine.receive_pong(conn, now)
            case LinkClosed(code=code, reason=reason):
                machine.connection_closed(conn, now, code=code, reason=reason)
                self._perform()
                return True
        self._perform()
        return False

    def _attach(self, conn: ConnectionId, link: _Link, early: Iterable[Incoming]) -> None:
        """A connection's link is up: carry out what is queued for it, then its early frames."""
        self._links[conn] = link
        self._perform()
        for item in early:
            if isinstance(item, TextOrBinary):
                self.machine.receive_frame(conn, item.data, self._clock())
        self._perform()

    def _detach(self, conn: ConnectionId) -> None:
        """A connection's link is gone (whatever the reason): forget it, tell the machine."""
        self._links.pop(conn, None)
        self.machine.connection_closed(conn, self._clock())
        self._perform()

    def _abort_later(self, link: _Link) -> None:
        if isinstance(link, _AsyncioConnection):
            link.abort_after(self._close_timeout_s)
        elif isinstance(link, WebSocketLink) and self._tg is not None:
            self._tg.start_soon(self._scoped, self._abort_link_later, link)

    def _respond_to_head(self, head: bytes) -> tuple[bytes, _Upgrade | None]:
        """The answer to a complete request head, and the upgrade when it opens a WebSocket."""
        request_line, _, rest = head.partition(b"\r\n")
        parts = request_line.decode("latin-1").split(" ")
        if len(parts) != 3:
            return _plain_response(400, b"Bad Request", ()), None
        method, path = parts[0], parts[1]
        header_block = rest.partition(b"\r\n\r\n")[0].decode("latin-1").lower()
        if not (method == "GET" and "upgrade: websocket" in header_block):
            mem = _rss_bytes()
            answer = self.machine.http_response(
                method, path, self._clock(), memory={"rss": mem} if mem is not None else None
            )
            return _plain_response(answer.status, answer.body, answer.headers), None
        protocol = ServerProtocol(max_size=self.machine.config.max_message_bytes)
        protocol.receive_data(head)
        request: Request | None = None
        early: list[Frame] = []
        for event in protocol.events_received():
            if isinstance(event, Request):
                request = event
            elif isinstance(event, Frame):
                early.append(event)
        if request is None:
            response = protocol.reject(400, "Bad Request")
        else:
            response = protocol.accept(request)
        protocol.send_response(response)
        reply = b"".join(protocol.data_to_send())
        if request is None or response.status_code != 101:
            return reply, None
        return reply, _Upgrade(protocol, request, early)

    async def _scoped(self, func: Callable[..., Awaitable[None]], *args: object) -> None:
        with anyio.CancelScope() as scope:
            self._task_scopes.add(scope)
            try:
                await func(*args)
            finally:
                self._task_scopes.discard(scope)

    async def _abort_link_later(self, link: WebSocketLink) -> None:
        await anyio.sleep(self._close_timeout_s)
        link.abort()

    async def _timer_loop(self) -> None:
        while True:
            deadline = self.machine.next_deadline()
            self._timer_deadline = deadline
            with anyio.CancelScope(deadline=float("inf") if deadline is None else deadline):
                await self._wake.wait()
            self._wake = anyio.Event()
            now = anyio.current_time()
            if deadline is not None and now >= deadline:
                self.machine.handle_timer(now)
                self._perform()

    # --- one TCP connection ---------------------------------------------------------------

    async def _handle_stream(self, stream: ByteStream) -> None:
        try:
            await self._handle_stream_inner(stream)
        except Exception:  # one broken connection must never stop the server
            log.exception("connection handler failed")

    async def _handle_stream_inner(self, stream: ByteStream) -> None:
        async with stream:
            head = b""
            with anyio.move_on_after(self._handshake_timeout_s):
                while b"\r\n\r\n" not in head and len(head) <= MAX_REQUEST_HEAD_BYTES:
                    try:
                        chunk = await stream.receive()
                    except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                        return
                    head += chunk
            if b"\r\n\r\n" not in head:
                return
            reply, upgrade = self._respond_to_head(head)
            try:
                await stream.send(reply)
            except (anyio.BrokenResourceError, OSError):
                return
            if upgrade is None:
                return
            config = self.machine.config
            link = WebSocketLink(
                stream,
                upgrade.protocol,
                max_queue=config.max_outbound_frames,
                close_timeout_s=self._close_timeout_s,
            )
            if not self.is_running:
                return
            conn = self.machine.open_connection(upgrade.request.path, self._clock())
            await self._pump(conn, link, early=link.take_frames(upgrade.early))

    async def _run_hub_link(self, conn: ConnectionId, url: str) -> None:
        """Dial another hub for the machine (`OpenHubLink`) and pump the link."""
        try:
            with anyio.fail_after(self._handshake_timeout_s):
                stream, protocol, early = await open_websocket(
                    url, self.machine.config.max_message_bytes
                )
        except Exception as err:  # any failure to dial is a fact for the machine
            self.machine.hub_link_failed(conn, self._clock(), f"{type(err).__name__}: {err}")
            self._perform()
            return
        link = WebSocketLink(
            stream,
            protocol,
            max_queue=self.machine.config.max_outbound_frames,
            close_timeout_s=self._close_timeout_s,
        )
        self.machine.hub_link_opened(conn, self._clock())
        await self._pump(conn, link, early=link.take_frames(early))

    async def _pump(
        self, conn: ConnectionId, link: WebSocketLink, early: list[Incoming] | None = None
    ) -> None:
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(link.run_writer)
                self._attach(conn, link, early or ())
                while self._tg is not None:  # until stop() begins
                    item = await link.receive()
                    if self._feed(conn, item, self._clock()):
                        break
                link.abort()
        finally:
            link.aclose_nowait()
            self._detach(conn)


def _set_nodelay(transport: asyncio.BaseTransport) -> None:
    """Turn Nagle's algorithm off on an accepted TCP connection.

    asyncio does it only for sockets whose ``proto`` is ``IPPROTO_TCP``; the listening sockets
    anyio binds (and we hand to ``create_server``) have ``proto`` 0, and so do their
    connections (uvloop sets it on every TCP transport). With Nagle on, a frame relayed to a
    client waits for the ACK of the one before, which a client with nothing to send delays by
    up to 40 ms: an offer relayed 20 ms after the discovery would arrive 20 ms late.
    """
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    with contextlib.suppress(OSError):  # already reset: the first read or write will say so
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _AsyncioConnection(asyncio.BufferedProtocol):
    """One accepted TCP connection on the asyncio fast path: request head, then WebSocket.

    Every read is handled in its callback: parsed by the link's `WebSocketCodec`, fed to the
    machine frame by frame, and what it produced for each connection is written once, at the
    end (`PeerPigeonServer._settle`). The outbound bound is the machine's
    `max_outbound_frames`: frames written but still in the transport's buffer (not yet taken
    by the kernel) plus frames of the batch being built; past it `send_text` says no and the
    machine closes the connection as overflowed.
    """

    def __init__(self, server: PeerPigeonServer) -> None:
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._head = b""
        self._codec: WebSocketCodec | None = None
        self._conn: ConnectionId | None = None  # registered with the machine and `_links`
        self._max_queue = server.machine.config.max_outbound_frames
        self._timer: asyncio.TimerHandle | None = None
        self._abort_timer: asyncio.TimerHandle | None = None
        self._dirty = False
        self._batch = 0  # frames queued in the codec since the last flush
        self._written = 0  # bytes handed to the transport so far
        self._ends: deque[int] = deque()  # where frames still in the transport's buffer end
        self._eof_received = False
        self._eof_sent = False
        self._close_after_flush = False
        self._lost = False
        self._held = False  # the handshake reply went out this turn: the frames wait one

    # --- transport callbacks ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        _set_nodelay(transport)
        server = self._server
        server._accepted.add(self)
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(server._handshake_timeout_s, self._head_timed_out)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._server._read_buffer  # consumed in buffer_updated before the next read

    def buffer_updated(self, nbytes: int) -> None:
        data = bytes(self._server._read_buffer[:nbytes])
        self._batched(self._on_ws_data if self._codec is not None else self._on_head_data, data)

    def eof_received(self) -> bool:
        if self._codec is not None:
            self._batched(self._on_ws_eof, b"")
        return False  # asyncio closes the transport once our writes are out

    def connection_lost(self, exc: Exception | None) -> None:
        self._gone()

    # --- plumbing -----------------------------------------------------------------------

    def _batched(self, handler: Callable[[bytes], None], data: bytes) -> None:
        server = self._server
        server._batching = True
        try:
            handler(data)
        except Exception:  # one broken connection must never stop the server
            log.exception("connection handler failed")
            self.shutdown()
        finally:
            server._batching = False
            server._settle()

    def _on_head_data(self, data: bytes) -> None:
        transport = self._transport
        assert transport is not None
        head = self._head + data
        if b"\r\n\r\n" not in head:
            if len(head) > MAX_REQUEST_HEAD_BYTES:
                self._head = b""
                transport.close()
            else:
                self._head = head
            return
        self._head = b""
        self._cancel_timer()
        server = self._server
        reply, upgrade = server._respond_to_head(head)
        transport.write(reply)
        if upgrade is None or not server.is_running:
            transport.close()
            return
        codec = self._codec = WebSocketCodec(upgrade.protocol)
        # As on the anyio path, the first frames follow the handshake reply in a later write
        # (a timer runs after the I/O of its turn), so a client reads the reply on its own.
        self._held = True
        asyncio.get_running_loop().call_later(0, self._release)
        conn = self._conn = server.machine.open_connection(upgrade.request.path, server._clock())
        server._attach(conn, self, [m for m in map(codec.on_frame, upgrade.early) if m])

    def _on_ws_data(self, data: bytes) -> None:
        codec = self._codec
        assert codec is not None
        if self._lost or self._eof_received:
            return
        items = codec.feed(data)
        self._mark_dirty()  # the protocol may have queued pongs or a close of its own
        conn = self._conn
        if conn is None:
            return
        server = self._server
        now = server._clock()
        for item in items:
            if server._feed(conn, item, now):
                self._ended()
                return
        ended = codec.ended()
        if ended is not None:
            server._feed(conn, ended, now)
            self._ended()

    def _on_ws_eof(self, _: bytes) -> None:
        codec = self._codec
        assert codec is not None
        self._eof_received = True
        codec.protocol.receive_eof()
        self._mark_dirty()
        conn = self._conn
        if conn is not None:
            self._server._feed(conn, codec.lost(), self._server._clock())
            self._ended()

    def _ended(self) -> None:
        """The link ended (close received, or EOF): unregister; close once written out."""
        conn, self._conn = self._conn, None
        self._close_after_flush = True
        self._mark_dirty()
        if conn is not None:
            self._server._detach(conn)

    def _gone(self) -> None:
        if self._lost:
            return
        self._lost = True
        self._cancel_timer()
        if self._abort_timer is not None:
            self._abort_timer.cancel()
            self._abort_timer = None
        server = self._server
        server._accepted.discard(self)
        conn, self._conn = self._conn, None
        if conn is not None:
            server._detach(conn)

    def _release(self) -> None:
        self._held = False
        if not self._lost:
            self._mark_dirty()
            self._server._settle()

    def _head_timed_out(self) -> None:
        self._timer = None
        if self._codec is None and self._transport is not None:
            self._transport.close()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def shutdown(self) -> None:
        """Drop the connection now (server stop, or a handler error)."""
        if self._transport is not None:
            self._transport.abort()
        self._gone()

    def abort_after(self, delay: float) -> None:
        """Drop the connection if it is still open `delay` seconds from now."""
        if self._abort_timer is None and not self._lost:
            loop = asyncio.get_running_loop()
            self._abort_timer = loop.call_later(delay, self.shutdown)

    # --- the link the machine writes to ---------------------------------------------------

    def _queued(self) -> int:
        """Frames not yet taken by the kernel: the transport's backlog plus this batch."""
        ends = self._ends
        if ends and self._transport is not None:
            sent = self._written - self._transport.get_write_buffer_size()
            while ends and ends[0] <= sent:
                ends.popleft()
        return len(ends) + self._batch

    def send_text(self, text: str) -> bool:
        """Queue a text frame for the end of the batch; False when full or closing."""
        codec = self._codec
        if codec is None:
            return False
        if (self._ends or self._batch) and self._queued() >= self._max_queue:
            return False
        if not codec.send_text(text):
            return False
        self._batch += 1
        if not self._dirty:
            self._dirty = True
            self._server._dirty.append(self)
        return True

    def send_ping(self) -> bool:
        """Queue a ping; False when full or closing."""
        codec = self._codec
        if codec is None or self._queued() >= self._max_queue or not codec.send_ping():
            return False
        self._batch += 1
        self._mark_dirty()
        return True

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake (idempotent); never refused by the bound."""
        if self._codec is not None:
            self._codec.send_close(code, reason)
            self._mark_dirty()

    def _mark_dirty(self) -> None:
        if not self._dirty:
            self._dirty = True
            self._server._dirty.append(self)

    def flush(self) -> None:
        """Write everything queued since the last flush in one write."""
        self._dirty = False
        if self._held:
            return
        self._batch = 0
        transport = self._transport
        codec = self._codec
        if transport is None or codec is None:
            return
        chunks = codec.protocol.data_to_send()
        if chunks and not self._eof_sent and not transport.is_closing():
            if not chunks[-1]:  # websockets' EOF: the connection ends after these bytes
                self._eof_sent = self._close_after_flush = True
            data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            if data:
                start = self._written
                self._written = start + len(data)
                transport.write(data)
                if transport.get_write_buffer_size():
                    for chunk in chunks:
                        if chunk:
                            start += len(chunk)
                            self._ends.append(start)
                else:
                    self._ends.clear()
        if self._close_after_flush and not transport.is_closing():
            transport.close()
