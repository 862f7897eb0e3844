"""Pieces every client-side adapter shares: the deadline timer, the signaling socket, and
the bounded event queue. They carry out what a machine asks and report facts back; they
decide nothing.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Generic, Protocol, TypeVar

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from peerpigeon.io.websocket import LinkClosed, TextOrBinary, WebSocketLink, open_websocket

__all__ = ["DeadlineTimer", "EventQueue", "SignalingFacts", "SignalingSocket"]

log = logging.getLogger("peerpigeon.io")

E = TypeVar("E")


class SignalingFacts(Protocol):
    """What a machine with a signaling socket must accept (`Mesh`, wrapped `SignalingClient`)."""

    def socket_opened(self, now: float) -> None: ...
    def socket_frame(self, data: str | bytes, now: float) -> None: ...
    def socket_closed(self, now: float, *, code: int, reason: str) -> None: ...
    def socket_failed(self, now: float, reason: str) -> None: ...


class DeadlineTimer:
    """Wakes a machine at its `next_deadline()`; `poke()` after every input."""

    def __init__(self, next_deadline: Callable[[], float | None], on_due: Callable[[float], None]):
        self._next_deadline = next_deadline
        self._on_due = on_due
        self._wake = anyio.Event()
        self._armed: float | None = None

    def poke(self) -> None:
        """Re-arm if the machine's deadline moved."""
        if self._next_deadline() != self._armed:
            self._wake.set()

    async def run(self) -> None:
        """Sleep until each deadline and call `on_due(now)`; runs until cancelled."""
        while True:
            deadline = self._next_deadline()
            self._armed = deadline
            with anyio.CancelScope(deadline=float("inf") if deadline is None else deadline):
                await self._wake.wait()
            self._wake = anyio.Event()
            now = anyio.current_time()
            if deadline is not None and now >= deadline:
                self._on_due(now)


class EventQueue(Generic[E]):
    """A bounded queue of events for `async for`, plus an optional callback per event."""

    def __init__(self, max_events: int, callback: Callable[[E], None] | None = None) -> None:
        send, receive = anyio.create_memory_object_stream[E](max_events)
        self._send: MemoryObjectSendStream[E] = send
        self._receive: MemoryObjectReceiveStream[E] = receive
        self._callbacks: list[Callable[[E], None]] = [callback] if callback else []
        self.dropped = 0

    def add_callback(self, callback: Callable[[E], None]) -> None:
        """Call `callback(event)` for every later event."""
        self._callbacks.append(callback)

    def put(self, event: E) -> None:
        """Deliver one event (the queue drops it, counted, when nobody reads)."""
        for callback in self._callbacks:
            try:
                callback(event)
            except Exception:  # a listener's bug must not stop the machine
                log.exception("event callback failed")
        try:
            self._send.send_nowait(event)
        except anyio.WouldBlock:
            self.dropped += 1
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass

    def __aiter__(self) -> AsyncIterator[E]:
        return self._receive.__aiter__()

    async def receive(self) -> E:
        """The next event."""
        return await self._receive.receive()

    def close(self) -> None:
        """End iteration and release both ends."""
        self._send.close()
        self._receive.close()


class SignalingSocket:
    """Carries out `OpenSocket` / `SendText` / `CloseSocket` for one machine."""

    def __init__(
        self,
        facts: SignalingFacts,
        perform: Callable[[], None],
        *,
        max_frame_bytes: int,
        max_queue: int = 1024,
        close_timeout_s: float = 5.0,
    ) -> None:
        self._facts = facts
        self._perform = perform
        self._max_frame_bytes = max_frame_bytes
        self._max_queue = max_queue
        self._close_timeout_s = close_timeout_s
        self._link: WebSocketLink | None = None
        self._scope: anyio.CancelScope | None = None
        self._generation = 0

    @property
    def is_open(self) -> bool:
        """Whether a socket is open."""
        return self._link is not None

    def open(self, tg: TaskGroup, url: str) -> None:
        """`OpenSocket`: dial `url`; report `socket_opened` or `socket_failed`."""
        self._generation += 1
        tg.start_soon(self._run, url, self._generation)

    def send(self, text: str) -> None:
        """`SendText` on the open socket (dropped with a warning if the queue is full)."""
        link = self._link
        if link is not None and link.is_open and not link.send_text(text):
            log.warning("signaling send queue full; frame dropped")

    def close(self, code: int, reason: str) -> None:
        """`CloseSocket`: close or abort; nothing more is reported about that socket."""
        self._generation += 1
        closing, self._link = self._link, None
        if closing is not None:
            closing.close(code, reason)
        elif self._scope is not None:
            self._scope.cancel()

    async def wait_closed(self, timeout_s: float) -> None:
        """Wait (bounded) until no socket is open."""
        with anyio.move_on_after(timeout_s):
            while self._link is not None:
                await anyio.sleep(0.01)

    async def _run(self, url: str, generation: int) -> None:
        def current() -> bool:
            return generation == self._generation

        with anyio.CancelScope() as scope:
            self._scope = scope
            try:
                stream, protocol, early = await open_websocket(url, self._max_frame_bytes)
            except Exception as err:  # any failure to open is a fact for the machine
                if current():
                    self._facts.socket_failed(anyio.current_time(), f"{type(err).__name__}: {err}")
                    self._perform()
                return
        if scope.cancelled_caught:
            return
        if not current():
            await stream.aclose()
            return
        link = WebSocketLink(
            stream, protocol, max_queue=self._max_queue, close_timeout_s=self._close_timeout_s
        )
        self._link = link
        self._facts.socket_opened(anyio.current_time())
        for item in link.take_frames(early):
            if isinstance(item, TextOrBinary):
                self._facts.socket_frame(item.data, anyio.current_time())
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
                    if isinstance(item, TextOrBinary):
                        self._facts.socket_frame(item.data, now)
                    elif isinstance(item, LinkClosed):
                        if self._link is link:
                            self._link = None
                        self._facts.socket_closed(now, code=item.code, reason=item.reason)
                        self._perform()
                        break
                    self._perform()
                link.abort()
        finally:
            link.aclose_nowait()
            if self._link is link:
                self._link = None
