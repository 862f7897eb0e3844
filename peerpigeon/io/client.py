"""`SignalingSession`: the signaling client machine on real WebSockets (asyncio or trio).

The adapter opens the sockets the machine asks for, feeds frames and socket facts into
`peerpigeon.protocol.client.SignalingClient`, sleeps until its next deadline, and hands
its events to the application as an async iterator. Reconnects, keepalive, failover and
timeouts are the machine's.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from types import TracebackType
from typing import Self

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from peerpigeon.io.websocket import (
    LinkClosed,
    PongReceived,
    TextOrBinary,
    WebSocketLink,
    open_websocket,
)
from peerpigeon.protocol.client import (
    ClientConfig,
    ClientEvent,
    CloseSocket,
    OpenSocket,
    SendText,
    SignalingClient,
)
from peerpigeon.protocol.ids import PeerId, generate_peer_id
from peerpigeon.protocol.rand import Rng

__all__ = ["SignalingSession"]

log = logging.getLogger("peerpigeon.client")


class _Entropy:
    def token_bytes(self, n: int, /) -> bytes:
        import secrets

        return secrets.token_bytes(n)


def new_peer_id() -> PeerId:
    """A fresh random lowercase peer ID."""
    return generate_peer_id(_Entropy())


class SignalingSession:
    """A signaling client connected to one of `urls` (with failover), on any anyio backend.

    ``async with SignalingSession(["ws://127.0.0.1:3000"]) as s:`` connects (the machine
    retries with backoff until it succeeds) and ``async for event in s.events(): ...``
    reads `ClientEvent`s. Application calls (`send_offer` …) act at once.
    """

    def __init__(
        self,
        urls: Sequence[str] | str,
        *,
        peer_id: str | None = None,
        network_name: str = "global",
        config: ClientConfig | None = None,
        rng: Rng | None = None,
        max_queued_events: int = 10_000,
        on_event: Callable[[ClientEvent], None] | None = None,
    ) -> None:
        if config is None:
            url_tuple = (urls,) if isinstance(urls, str) else tuple(urls)
            config = ClientConfig(
                peer_id=PeerId(peer_id) if peer_id else new_peer_id(),
                urls=url_tuple,
                network_name=network_name,
            )
        self.config = config
        self._rng = rng or random.Random()
        self._machine: SignalingClient | None = None
        send, receive = anyio.create_memory_object_stream[ClientEvent](max_queued_events)
        self._events_in: MemoryObjectSendStream[ClientEvent] = send
        self._events_out: MemoryObjectReceiveStream[ClientEvent] = receive
        self._on_event = on_event
        self.dropped_events = 0
        self._tg: TaskGroup | None = None
        self._link: WebSocketLink | None = None
        self._socket_scope: anyio.CancelScope | None = None
        self._generation = 0
        self._wake = anyio.Event()
        self._timer_deadline: float | None = None

    @property
    def machine(self) -> SignalingClient:
        """The client machine (its state, stats, discovered peers); once entered."""
        if self._machine is None:
            raise RuntimeError("session not started: use 'async with'")
        return self._machine

    @property
    def peer_id(self) -> PeerId:
        """This client's peer ID."""
        return self.config.peer_id

    # --- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        now = anyio.current_time()
        self._machine = SignalingClient(self.config, rng=self._rng, wall_offset_s=time.time() - now)
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        tg.start_soon(self._timer_loop)
        self.machine.connect(anyio.current_time())
        self._perform()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.disconnect()
        tg, self._tg = self._tg, None
        if tg is not None:
            tg.cancel_scope.cancel()
            await tg.__aexit__(et, e, tb)
        self._events_in.close()
        self._events_out.close()

    async def disconnect(self) -> None:
        """Say goodbye and close for good (no reconnect); waits briefly for the close."""
        self.machine.disconnect(anyio.current_time())
        self._perform()
        link = self._link
        if link is not None:
            with anyio.move_on_after(2.0):
                while self._link is link:
                    await anyio.sleep(0.01)

    def events(self) -> AsyncIterator[ClientEvent]:
        """The machine's events, in order (a bounded queue: the oldest overflow is dropped)."""
        return self._events_out.__aiter__()

    async def wait_for(
        self, kind: type[ClientEvent] | tuple[type[ClientEvent], ...], timeout: float = 10.0
    ) -> ClientEvent:
        """The next event of the given type(s), skipping others; raises TimeoutError."""
        with anyio.fail_after(timeout):
            async for event in self.events():
                if isinstance(event, kind):
                    return event
        raise EOFError("session closed")

    # --- application calls ------------------------------------------------------------------

    def send_offer(self, target: str, sdp: str) -> None:
        """Send an offer to `target` through the hub."""
        self.machine.send_offer(PeerId(target), sdp, anyio.current_time())
        self._perform()

    def send_answer(self, target: str, sdp: str) -> None:
        """Send an answer to `target` through the hub."""
        self.machine.send_answer(PeerId(target), sdp, anyio.current_time())
        self._perform()

    def send_ice_candidate(
        self,
        target: str,
        candidate: str,
        sdp_mid: str | None,
        sdp_mline_index: int | None,
        username_fragment: str | None = None,
    ) -> None:
        """Send one trickled ICE candidate to `target` through the hub."""
        self.machine.send_ice_candidate(
            PeerId(target),
            candidate,
            sdp_mid,
            sdp_mline_index,
            anyio.current_time(),
            username_fragment=username_fragment,
        )
        self._perform()

    # --- driving the machine -----------------------------------------------------------------

    def _perform(self) -> None:
        for action in self.machine.drain_actions():
            match action:
                case OpenSocket(url=url):
                    self._generation += 1
                    if self._tg is not None:
                        self._tg.start_soon(self._run_socket, url, self._generation)
                case SendText(text=text):
                    link = self._link
                    if link is not None and link.is_open and not link.send_text(text):
                        log.warning("signaling send queue full; frame dropped")
                case CloseSocket(code=code, reason=reason):
                    self._generation += 1  # the machine wants no more reports of it
                    closing, self._link = self._link, None
                    if closing is not None:
                        closing.close(code, reason)
                    elif self._socket_scope is not None:
                        self._socket_scope.cancel()
        for event in self.machine.drain_events():
            if self._on_event is not None:
                self._on_event(event)
            try:
                self._events_in.send_nowait(event)
            except anyio.WouldBlock:
                self.dropped_events += 1
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                pass
        if self.machine.next_deadline() != self._timer_deadline:
            self._wake.set()

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

    async def _run_socket(self, url: str, generation: int) -> None:
        def current() -> bool:
            return generation == self._generation

        with anyio.CancelScope() as scope:
            self._socket_scope = scope
            try:
                stream, protocol, early = await open_websocket(url, self.config.max_frame_bytes)
            except Exception as err:  # any failure to open is a fact for the machine
                if current():
                    self.machine.socket_failed(anyio.current_time(), f"{type(err).__name__}: {err}")
                    self._perform()
                return
        if not current():
            await stream.aclose()
            return
        if scope.cancelled_caught:
            return
        link = WebSocketLink(stream, protocol, max_queue=1024, close_timeout_s=5.0)
        self._link = link
        self.machine.socket_opened(anyio.current_time())
        for item in link.take_frames(early):
            if isinstance(item, TextOrBinary):
                self.machine.receive_frame(item.data, anyio.current_time())
        self._perform()
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(link.run_writer)
                while True:
                    item = await link.receive()
                    now = anyio.current_time()
                    if not current():
                        if isinstance(item, LinkClosed):
                            break
                        continue  # closing at the machine's request: drain quietly
                    match item:
                        case TextOrBinary(data=data):
                            self.machine.receive_frame(data, now)
                        case PongReceived():
                            pass
                        case LinkClosed(code=code, reason=reason):
                            if self._link is link:
                                self._link = None
                            self.machine.socket_closed(now, code=code, reason=reason)
                            self._perform()
                            break
                    self._perform()
                link.abort()
        finally:
            link.aclose_nowait()
            if self._link is link:
                self._link = None
