"""Simulated nodes: a machine plus the few lines that turn its actions into link traffic.

A `SimNode` is the simulator's counterpart of an io/ adapter. The network calls its
``stream_*`` / ``datagram_received`` hooks and `handle_timer` (at `next_deadline`), then
`flush`, which drains the machine and performs its actions through the `Transport`.
`SignalingServerNode` and `SignalingClientNode` drive the signaling machines; a later
mesh node plugs in the same way (streams to hubs, datagrams to peers).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol

from peerpigeon.protocol import client as pc
from peerpigeon.protocol import server as ps
from peerpigeon.protocol.server import ConnectionId

from .links import CLOSE_ABNORMAL, StreamEnd

__all__ = ["SignalingClientNode", "SignalingServerNode", "SimNode", "Transport"]


class Transport(Protocol):
    """What a node may ask of the network (implemented by `SimNetwork`)."""

    @property
    def now(self) -> float:
        """Virtual time."""
        ...

    def open_stream(self, node: SimNode, url: str) -> StreamEnd:
        """Start opening a WebSocket to `url`; the node hears ``stream_opened`` or a failure."""
        ...

    def send_text(self, end: StreamEnd, data: str | bytes) -> None:
        """Send one frame on an open stream."""
        ...

    def send_ping(self, end: StreamEnd) -> None:
        """Send a WebSocket ping; the node hears ``stream_pong`` after a round trip."""
        ...

    def close_stream(self, end: StreamEnd, code: int, reason: str, *, detach: bool) -> None:
        """Start the closing handshake (or abort, if not open yet).

        With ``detach`` the node hears nothing more about this stream; without it, it hears
        ``stream_closed`` once the peer's close arrives (or ``stream_failed`` on timeout).
        """
        ...

    def abort_stream(self, end: StreamEnd, reason: str) -> None:
        """Drop the connection without a close handshake; the peer sees 1006."""
        ...

    def send_datagram(self, src: SimNode, dst: str, payload: bytes) -> None:
        """Send one unordered, unreliable message to node `dst`."""
        ...

    def emit(self, node: SimNode, event: object) -> None:
        """Record one machine event in the trace and the counters."""
        ...


class SimNode(ABC):
    """One participant of a simulated network.

    Subclasses implement the machine-facing part: `next_deadline`, `handle_timer` and
    `flush`, plus whichever hooks their role needs (the defaults ignore the input).
    ``wake_at`` and ``removed`` are the network's bookkeeping.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.wake_at: float | None = None
        self.removed = False
        self._transport: Transport | None = None

    def attach(self, transport: Transport) -> None:
        """Called once by the network that drives this node."""
        self._transport = transport

    @property
    def transport(self) -> Transport:
        """The network this node is attached to."""
        if self._transport is None:
            raise RuntimeError(f"node {self.name!r} is not attached to a network")
        return self._transport

    # --- timer and output ---------------------------------------------------------------------

    @abstractmethod
    def next_deadline(self) -> float | None:
        """The machine's next deadline (a pure query)."""

    @abstractmethod
    def handle_timer(self, now: float) -> None:
        """Wake the machine at `now`."""

    @abstractmethod
    def flush(self, now: float) -> None:
        """Drain the machine: perform its actions, emit its events."""

    # --- inputs from the network (defaults: ignored) ------------------------------------------

    def stream_incoming(self, end: StreamEnd, path: str, now: float) -> None:
        """A WebSocket to this node was accepted with request target `path`."""
        self.transport.abort_stream(end, "not listening")

    def stream_opened(self, end: StreamEnd, now: float) -> None:  # noqa: B027
        """A stream this node opened is open."""

    def stream_frame(self, end: StreamEnd, data: str | bytes, now: float) -> None:  # noqa: B027
        """One frame arrived on a stream."""

    def stream_pong(self, end: StreamEnd, now: float) -> None:  # noqa: B027
        """The pong for a ping this node sent arrived."""

    def stream_closed(self, end: StreamEnd, code: int, reason: str, now: float) -> None:  # noqa: B027
        """The stream closed with a close handshake."""

    def stream_failed(self, end: StreamEnd, reason: str, now: float) -> None:  # noqa: B027
        """The stream broke without a close handshake (1006), or could not be opened."""

    def datagram_received(self, src: str, payload: bytes, now: float) -> None:  # noqa: B027
        """One datagram from node `src` arrived."""

    def crashed(self, now: float) -> None:  # noqa: B027
        """The node was removed without warning; forget transport handles."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class SignalingServerNode(SimNode):
    """Drives one `SignalingServer`: one stream per connection, like io/hub.py."""

    def __init__(self, name: str, machine: ps.SignalingServer) -> None:
        super().__init__(name)
        self._machine = machine
        self._ends: dict[ConnectionId, StreamEnd] = {}
        self._conns: dict[StreamEnd, ConnectionId] = {}

    @property
    def machine(self) -> ps.SignalingServer:
        """The server machine (for read-only queries such as `stats()`)."""
        return self._machine

    def next_deadline(self) -> float | None:
        """The server's sweep deadline."""
        return self._machine.next_deadline()

    def handle_timer(self, now: float) -> None:
        """Run the ping / timeout sweep."""
        self._machine.handle_timer(now)

    def stream_incoming(self, end: StreamEnd, path: str, now: float) -> None:
        """Register the connection with the machine."""
        conn = self._machine.open_connection(path, now)
        self._ends[conn] = end
        self._conns[end] = conn

    def stream_frame(self, end: StreamEnd, data: str | bytes, now: float) -> None:
        """Feed one frame."""
        conn = self._conns.get(end)
        if conn is not None:
            self._machine.receive_frame(conn, data, now)

    def stream_pong(self, end: StreamEnd, now: float) -> None:
        """Feed a pong."""
        conn = self._conns.get(end)
        if conn is not None:
            self._machine.receive_pong(conn, now)

    def stream_closed(self, end: StreamEnd, code: int, reason: str, now: float) -> None:
        """Report the close."""
        conn = self._forget(end)
        if conn is not None:
            self._machine.connection_closed(conn, now, code=code, reason=reason)

    def stream_failed(self, end: StreamEnd, reason: str, now: float) -> None:
        """Report the failure as a 1006 close."""
        conn = self._forget(end)
        if conn is not None:
            self._machine.connection_closed(conn, now, code=CLOSE_ABNORMAL, reason=reason)

    def flush(self, now: float) -> None:
        """Perform `SendText`, `SendPing` and `Close`; emit the server's events."""
        transport = self.transport
        for action in self._machine.drain_actions():
            end = self._ends.get(action.connection)
            if end is None:
                continue
            match action:
                case ps.SendText(text=text):
                    transport.send_text(end, text)
                case ps.SendPing():
                    transport.send_ping(end)
                case ps.Close(code=code, reason=reason):
                    transport.close_stream(end, code, reason, detach=False)
        for event in self._machine.drain_events():
            transport.emit(self, event)

    def _forget(self, end: StreamEnd) -> ConnectionId | None:
        conn = self._conns.pop(end, None)
        if conn is not None:
            del self._ends[conn]
        return conn


class SignalingClientNode(SimNode):
    """Drives one `SignalingClient`: at most one stream at a time, like io/client.py."""

    def __init__(self, name: str, machine: pc.SignalingClient, *, keep_events: bool = True) -> None:
        super().__init__(name)
        self._machine = machine
        self._end: StreamEnd | None = None
        self.events: list[pc.ClientEvent] | None = [] if keep_events else None

    @property
    def machine(self) -> pc.SignalingClient:
        """The client machine (for read-only queries such as `discovered_peers`)."""
        return self._machine

    @property
    def end(self) -> StreamEnd | None:
        """The current socket, if any."""
        return self._end

    def next_deadline(self) -> float | None:
        """The client's next deadline."""
        return self._machine.next_deadline()

    def handle_timer(self, now: float) -> None:
        """Wake the client."""
        self._machine.handle_timer(now)

    def stream_opened(self, end: StreamEnd, now: float) -> None:
        """Report the open socket."""
        if end is self._end:
            self._machine.socket_opened(now)

    def stream_frame(self, end: StreamEnd, data: str | bytes, now: float) -> None:
        """Feed one frame."""
        if end is self._end:
            self._machine.receive_frame(data, now)

    def stream_closed(self, end: StreamEnd, code: int, reason: str, now: float) -> None:
        """Report the close."""
        if end is self._end:
            self._end = None
            self._machine.socket_closed(now, code=code, reason=reason)

    def stream_failed(self, end: StreamEnd, reason: str, now: float) -> None:
        """Report the failure."""
        if end is self._end:
            self._end = None
            self._machine.socket_failed(now, reason)

    def crashed(self, now: float) -> None:
        """Forget the socket (the network aborts or abandons it)."""
        self._end = None

    def flush(self, now: float) -> None:
        """Perform `OpenSocket`, `SendText` and `CloseSocket`; emit the client's events."""
        transport = self.transport
        for action in self._machine.drain_actions():
            match action:
                case pc.OpenSocket(url=url):
                    if self._end is not None:  # the machine has only one socket at a time
                        transport.abort_stream(self._end, "replaced")
                    self._end = transport.open_stream(self, url)
                case pc.SendText(text=text):
                    if self._end is not None:
                        transport.send_text(self._end, text)
                case pc.CloseSocket(code=code, reason=reason):
                    end, self._end = self._end, None
                    if end is not None:
                        transport.close_stream(end, code, reason, detach=True)
        for event in self._machine.drain_events():
            if self.events is not None:
                self.events.append(event)
            transport.emit(self, event)
