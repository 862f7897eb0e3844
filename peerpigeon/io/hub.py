"""`PeerPigeonServer`: the signaling server machine on real sockets (asyncio or trio).

The adapter accepts TCP connections, answers plain HTTP (``/health``, ``/hubs``, CORS
preflight) from the machine's data, upgrades WebSocket requests with websockets'
sans-I/O protocol, and feeds every frame, pong and close into
`peerpigeon.protocol.server.SignalingServer`. It owns sockets, tasks and the clock and
nothing else: every decision is the machine's.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from types import TracebackType
from typing import Self

import anyio
from anyio.abc import ByteStream, SocketAttribute, SocketStream, TaskGroup
from anyio.streams.stapled import MultiListener
from websockets.http11 import Request
from websockets.server import ServerProtocol

from peerpigeon.io.client import SystemEntropy
from peerpigeon.io.websocket import (
    Incoming,
    LinkClosed,
    PongReceived,
    TextOrBinary,
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


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


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
        self._links: dict[ConnectionId, WebSocketLink] = {}
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
        now = anyio.current_time()
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
        tg.start_soon(self._serve, listener)
        tg.start_soon(self._scoped, self._timer_loop)

    async def stop(self) -> None:
        """Close every connection with 1000 'Server shutting down' and stop listening.

        Safe to call inside ``async with`` (the context's exit finishes the clean-up).
        """
        tg, self._tg = self._tg, None
        if tg is None:
            return
        machine = self.machine
        machine.stop(anyio.current_time())
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
        machine = self.machine
        now = anyio.current_time()
        while True:
            actions = machine.drain_actions()
            if not actions:
                break
            for action in actions:
                if isinstance(action, OpenHubLink):
                    if self._tg is not None:
                        self._tg.start_soon(
                            self._scoped, self._run_hub_link, action.connection, action.url
                        )
                    continue
                link = self._links.get(action.connection)
                if link is None:
                    continue
                match action:
                    case SendText(text=text):
                        if not link.send_text(text):
                            machine.connection_overflowed(action.connection, now)
                    case SendPing():
                        link.send_ping()
                    case Close(code=code, reason=reason):
                        link.close(code, reason)
                        if self._tg is not None:
                            self._tg.start_soon(self._scoped, self._abort_later, link)
        for event in machine.drain_events():
            log.debug("%s", event)
            if self._on_event is not None:
                self._on_event(event)
        deadline = machine.next_deadline()
        if deadline != self._timer_deadline:
            self._wake.set()

    async def _scoped(self, func: Callable[..., Awaitable[None]], *args: object) -> None:
        with anyio.CancelScope() as scope:
            self._task_scopes.add(scope)
            try:
                await func(*args)
            finally:
                self._task_scopes.discard(scope)

    async def _abort_later(self, link: WebSocketLink) -> None:
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
            request_line, _, rest = head.partition(b"\r\n")
            parts = request_line.decode("latin-1").split(" ")
            if len(parts) != 3:
                await self._send_plain(stream, 400, b"Bad Request", ())
                return
            method, path = parts[0], parts[1]
            header_block = rest.partition(b"\r\n\r\n")[0].decode("latin-1").lower()
            wants_upgrade = method == "GET" and "upgrade: websocket" in header_block
            if not wants_upgrade:
                mem = _rss_bytes()
                answer = self.machine.http_response(
                    method,
                    path,
                    anyio.current_time(),
                    memory={"rss": mem} if mem is not None else None,
                )
                await self._send_plain(stream, answer.status, answer.body, answer.headers)
                return
            await self._serve_websocket(stream, head)

    async def _send_plain(
        self, stream: ByteStream, status: int, body: bytes, headers: tuple[tuple[str, str], ...]
    ) -> None:
        reason = {200: "OK", 400: "Bad Request"}.get(status, "OK")
        lines = [f"HTTP/1.1 {status} {reason}"]
        lines += [f"{k}: {v}" for k, v in headers]
        lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
        with contextlib.suppress(anyio.BrokenResourceError, OSError):
            await stream.send("\r\n".join(lines).encode("latin-1") + body)

    async def _serve_websocket(self, stream: ByteStream, head: bytes) -> None:
        config = self.machine.config
        protocol = ServerProtocol(max_size=config.max_message_bytes)
        protocol.receive_data(head)
        request: Request | None = None
        for event in protocol.events_received():
            if isinstance(event, Request):
                request = event
        if request is None:
            response = protocol.reject(400, "Bad Request")
        else:
            response = protocol.accept(request)
        protocol.send_response(response)
        for chunk in protocol.data_to_send():
            if chunk:
                try:
                    await stream.send(chunk)
                except (anyio.BrokenResourceError, OSError):
                    return
        if request is None or response.status_code != 101:
            return
        link = WebSocketLink(
            stream,
            protocol,
            max_queue=config.max_outbound_frames,
            close_timeout_s=self._close_timeout_s,
        )
        if not self.is_running:
            return
        conn = self.machine.open_connection(request.path, anyio.current_time())
        await self._pump(conn, link)

    async def _run_hub_link(self, conn: ConnectionId, url: str) -> None:
        """Dial another hub for the machine (`OpenHubLink`) and pump the link."""
        try:
            with anyio.fail_after(self._handshake_timeout_s):
                stream, protocol, early = await open_websocket(
                    url, self.machine.config.max_message_bytes
                )
        except Exception as err:  # any failure to dial is a fact for the machine
            self.machine.hub_link_failed(conn, anyio.current_time(), f"{type(err).__name__}: {err}")
            self._perform()
            return
        link = WebSocketLink(
            stream,
            protocol,
            max_queue=self.machine.config.max_outbound_frames,
            close_timeout_s=self._close_timeout_s,
        )
        self.machine.hub_link_opened(conn, anyio.current_time())
        await self._pump(conn, link, early=link.take_frames(early))

    async def _pump(
        self, conn: ConnectionId, link: WebSocketLink, early: list[Incoming] | None = None
    ) -> None:
        self._links[conn] = link
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(link.run_writer)
                self._perform()
                for item in early or ():
                    if isinstance(item, TextOrBinary):
                        self.machine.receive_frame(conn, item.data, anyio.current_time())
                self._perform()
                while self._tg is not None:  # until stop() begins
                    item = await link.receive()
                    now = anyio.current_time()
                    match item:
                        case TextOrBinary(data=data):
                            self.machine.receive_frame(conn, data, now)
                        case PongReceived():
                            self.machine.receive_pong(conn, now)
                        case LinkClosed(code=code, reason=reason):
                            self.machine.connection_closed(conn, now, code=code, reason=reason)
                            self._perform()
                            break
                    self._perform()
                link.abort()
        finally:
            link.aclose_nowait()
            self._links.pop(conn, None)
            with anyio.CancelScope(shield=True):
                self.machine.connection_closed(conn, anyio.current_time())
                self._perform()
