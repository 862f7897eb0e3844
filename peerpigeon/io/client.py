"""`SignalingSession`: the signaling client machine on real WebSockets (asyncio or trio).

The adapter opens the sockets the machine asks for, feeds frames and socket facts into
`peerpigeon.protocol.client.SignalingClient`, sleeps until its next deadline, and hands
its events to the application as an async iterator. Reconnects, keepalive, failover and
timeouts are the machine's.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from types import TracebackType
from typing import Self

import anyio
from anyio.abc import TaskGroup

from peerpigeon.io.driver import DeadlineTimer, EventQueue, SignalingSocket
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

__all__ = ["SignalingSession", "SystemEntropy", "new_peer_id"]


class SystemEntropy:
    """`Entropy` from the operating system's CSPRNG."""

    def token_bytes(self, n: int, /) -> bytes:
        """Return n random bytes."""
        return secrets.token_bytes(n)


def new_peer_id() -> PeerId:
    """A fresh random lowercase peer ID."""
    return generate_peer_id(SystemEntropy())


class _ClientFacts:
    """Presents a `SignalingClient` as `SignalingFacts` (its frame input has another name)."""

    def __init__(self, machine: SignalingClient) -> None:
        self._m = machine

    def socket_opened(self, now: float) -> None:
        self._m.socket_opened(now)

    def socket_frame(self, data: str | bytes, now: float) -> None:
        self._m.receive_frame(data, now)

    def socket_closed(self, now: float, *, code: int, reason: str) -> None:
        self._m.socket_closed(now, code=code, reason=reason)

    def socket_failed(self, now: float, reason: str) -> None:
        self._m.socket_failed(now, reason)


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
        self._events: EventQueue[ClientEvent] = EventQueue(max_queued_events, on_event)
        self._tg: TaskGroup | None = None
        self._socket: SignalingSocket | None = None
        self._timer: DeadlineTimer | None = None

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

    @property
    def dropped_events(self) -> int:
        """Events dropped because nobody read them (the queue is bounded)."""
        return self._events.dropped

    # --- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        now = anyio.current_time()
        machine = SignalingClient(self.config, rng=self._rng, wall_offset_s=time.time() - now)
        self._machine = machine
        self._socket = SignalingSocket(
            _ClientFacts(machine), self._perform, max_frame_bytes=self.config.max_frame_bytes
        )
        self._timer = DeadlineTimer(machine.next_deadline, self._on_due)
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        tg.start_soon(self._timer.run)
        machine.connect(now)
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
        self._events.close()

    async def disconnect(self) -> None:
        """Say goodbye and close for good (no reconnect); waits briefly for the close."""
        self.machine.disconnect(anyio.current_time())
        self._perform()
        if self._socket is not None:
            await self._socket.wait_closed(2.0)

    def events(self) -> AsyncIterator[ClientEvent]:
        """The machine's events, in order (a bounded queue: overflow is dropped, counted)."""
        return self._events.__aiter__()

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

    def _on_due(self, now: float) -> None:
        self.machine.handle_timer(now)
        self._perform()

    def _perform(self) -> None:
        socket = self._socket
        assert socket is not None  # set in __aenter__, before any input
        for action in self.machine.drain_actions():
            match action:
                case OpenSocket(url=url):
                    if self._tg is not None:
                        socket.open(self._tg, url)
                case SendText(text=text):
                    socket.send(text)
                case CloseSocket(code=code, reason=reason):
                    socket.close(code, reason)
        for event in self.machine.drain_events():
            self._events.put(event)
        if self._timer is not None:
            self._timer.poke()
