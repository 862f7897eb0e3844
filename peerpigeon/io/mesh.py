"""`PeerPigeonMesh`: a mesh peer on real sockets — signaling over WebSockets, links over WebRTC.

It runs `peerpigeon.protocol.mesh.Mesh` (which decides everything: whom to dial, when to
evict, what to send) and carries out its actions: the signaling socket, and one WebRTC
link per neighbour through a `PeerLink` backend (aiortc by default). WebRTC through aiortc
is asyncio-only, so this adapter is too.

Events come both as callbacks (``mesh.on("peer_connected", fn)``) and as an async iterator
(``async for event in mesh.events()``); their names and fields are the reference's in
snake_case (docs/events.md).
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from os import PathLike
from types import TracebackType
from typing import Any, Self

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from peerpigeon.io.client import SystemEntropy, new_peer_id
from peerpigeon.io.driver import DeadlineTimer, EventQueue, SignalingSocket
from peerpigeon.io.streams import IncomingStream, StreamWriter
from peerpigeon.io.transport import (
    BinaryReceived,
    ChannelOpen,
    Closed,
    Failed,
    IceCandidateInit,
    LinkEvent,
    LocalCandidate,
    PeerLink,
    TextReceived,
)
from peerpigeon.protocol import client as pc
from peerpigeon.protocol.errors import PeerPigeonError, UsageError
from peerpigeon.protocol.ids import PeerId
from peerpigeon.protocol.mesh import (
    AcceptAnswer,
    AcceptOffer,
    AddRemoteCandidate,
    CloseLink,
    CloseSocket,
    CreateOffer,
    DiscoveredPeer,
    Mesh,
    MeshAction,
    MeshConfig,
    MeshEvent,
    MeshStats,
    MeshStatus,
    OpenSocket,
    PeerDisconnected,
    PeerInfo,
    SendData,
    SendText,
    StreamAborted,
    StreamCredit,
    StreamData,
    StreamDelivered,
    StreamEnded,
    StreamOpened,
)
from peerpigeon.protocol.rand import Rng
from peerpigeon.protocol.wire import JsonValue

__all__ = ["LOOPBACK_ICE_HOSTS", "LinkFactory", "PeerPigeonMesh", "event_name"]

log = logging.getLogger("peerpigeon.mesh")

LOOPBACK_ICE_HOSTS: tuple[str, ...] = ("127.0.0.1",)

LinkFactory = Callable[[Callable[[LinkEvent], None]], PeerLink]
"""Makes one WebRTC link; it reports its events to the callback it is given."""

_LINK_QUEUE = 256  # actions queued per link; the machine sends few control frames per link
_FLUSH_BEFORE_CLOSE_S = 1.0  # how long a closing link may take to flush (eviction notice)
_MAX_PENDING_STREAMS = 64  # incoming streams not yet accepted; more are aborted


def event_name(event: MeshEvent) -> str:
    """The snake_case name of an event (``PeerConnected`` -> ``"peer_connected"``)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(event).__name__).lower()


def aiortc_links(ice_hosts: Sequence[str] | None = None) -> LinkFactory:
    """The default link backend: aiortc, gathering only `ice_hosts` when given."""
    from peerpigeon.io.webrtc import AiortcTransport

    def make(on_event: Callable[[LinkEvent], None]) -> PeerLink:
        return AiortcTransport(on_event, ice_hosts=ice_hosts)

    return make


@dataclass(eq=False)
class _Worker:
    """One neighbour's link and the queue of actions for it, carried out in order."""

    peer: PeerId
    send: MemoryObjectSendStream[MeshAction]
    receive: MemoryObjectReceiveStream[MeshAction]
    link: PeerLink | None = None
    closed: bool = False
    pending: list[MeshAction] = field(default_factory=list)


class PeerPigeonMesh:
    """A mesh peer (asyncio only: WebRTC runs on aiortc).

    ``async with PeerPigeonMesh(network_name="room") as mesh: await mesh.connect(url)``;
    then `send_direct_message`, `connected_peers()`, `status()`, and the events.
    """

    def __init__(
        self,
        *,
        peer_id: str | None = None,
        network_name: str = "global",
        allow_global_fallback: bool = True,
        max_peers: int = 3,
        min_peers: int = 2,
        auto_connect: bool = True,
        auto_discovery: bool = True,
        eviction_strategy: bool = True,
        xor_routing: bool = True,
        ice_hosts: Sequence[str] | None = None,
        link_factory: LinkFactory | None = None,
        config: MeshConfig | None = None,
        rng: Rng | None = None,
        max_queued_events: int = 10_000,
    ) -> None:
        if config is None:
            config = MeshConfig(
                peer_id=PeerId(peer_id) if peer_id else new_peer_id(),
                network_name=network_name,
                allow_global_fallback=allow_global_fallback,
                max_peers=max_peers,
                min_peers=min_peers,
                auto_connect=auto_connect,
                auto_discovery=auto_discovery,
                eviction_strategy=eviction_strategy,
                xor_routing=xor_routing,
            )
        self.config = config
        self._rng = rng or random.Random()
        self._link_factory = link_factory or aiortc_links(ice_hosts)
        self._events: EventQueue[MeshEvent] = EventQueue(max_queued_events)
        self._listeners: dict[str, list[Callable[[Any], None]]] = {}
        self._events.add_callback(self._dispatch_listeners)
        self._machine: Mesh | None = None
        self._tg: TaskGroup | None = None
        self._socket: SignalingSocket | None = None
        self._timer: DeadlineTimer | None = None
        self._workers: dict[PeerId, _Worker] = {}
        self._signaling_up = anyio.Event()
        # --- streams (peerpigeon.io.streams) ---
        self._writers: dict[tuple[PeerId, str], StreamWriter] = {}
        self._incoming: dict[tuple[PeerId, str], IncomingStream] = {}
        self._accept_send, self._accept_recv = anyio.create_memory_object_stream[IncomingStream](
            _MAX_PENDING_STREAMS
        )

    # --- views ----------------------------------------------------------------------------

    @property
    def machine(self) -> Mesh:
        """The mesh machine (read-only use: views and stats); once entered."""
        if self._machine is None:
            raise RuntimeError("mesh not started: use 'async with PeerPigeonMesh(...)'")
        return self._machine

    @property
    def peer_id(self) -> PeerId:
        """This peer's ID."""
        return self.config.peer_id

    def status(self) -> MeshStatus:
        """The reference's ``getStatus()``, in snake_case."""
        return self.machine.status()

    def connected_peers(self) -> tuple[PeerId, ...]:
        """Neighbours with an open data channel."""
        return self.machine.connected_peers()

    def discovered_peers(self) -> tuple[DiscoveredPeer, ...]:
        """Peers the mesh knows of, with their XOR distance."""
        return self.machine.discovered_peers()

    def peers(self) -> tuple[PeerInfo, ...]:
        """Every link, with its status (the reference's ``getPeers()``)."""
        return self.machine.peers()

    def stats(self) -> MeshStats:
        """Counters of the machine."""
        return self.machine.stats()

    @property
    def dropped_events(self) -> int:
        """Events dropped because nobody iterated `events()` (the queue is bounded)."""
        return self._events.dropped

    # --- events ---------------------------------------------------------------------------

    def on(self, name: str, callback: Callable[[Any], None]) -> None:
        """Call `callback(event)` for every event called `name` (e.g. ``"peer_connected"``)."""
        self._listeners.setdefault(name, []).append(callback)

    def off(self, name: str, callback: Callable[[Any], None]) -> None:
        """Stop calling `callback` for `name`."""
        if callback in self._listeners.get(name, []):
            self._listeners[name].remove(callback)

    def events(self) -> AsyncIterator[MeshEvent]:
        """Every event, in order."""
        return self._events.__aiter__()

    async def wait_for(
        self,
        kind: type[MeshEvent] | tuple[type[MeshEvent], ...],
        predicate: Callable[[Any], bool] | None = None,
        timeout: float = 30.0,
    ) -> MeshEvent:
        """The next queued event of `kind` (matching `predicate`); raises TimeoutError.

        It reads the same queue as `events()`: events it skips are consumed. Use either
        this or `events()` in one task, or callbacks (`on`) to watch without consuming.
        """
        with anyio.fail_after(timeout):
            async for event in self.events():
                if isinstance(event, kind) and (predicate is None or predicate(event)):
                    return event
        raise EOFError("mesh closed")

    def _dispatch_listeners(self, event: MeshEvent) -> None:
        for callback in list(self._listeners.get(event_name(event), ())):
            callback(event)

    # --- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        now = anyio.current_time()
        machine = Mesh(
            self.config, rng=self._rng, entropy=SystemEntropy(), wall_offset_s=time.time() - now
        )
        self._machine = machine
        self._socket = SignalingSocket(machine, self._perform, max_frame_bytes=1_048_576)
        self._timer = DeadlineTimer(machine.next_deadline, self._on_due)
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        tg.start_soon(self._timer.run)
        self._perform()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            with anyio.CancelScope(shield=True):
                await self.disconnect()
        finally:
            tg, self._tg = self._tg, None
            if tg is not None:
                tg.cancel_scope.cancel()
                await tg.__aexit__(et, e, tb)
            self._events.close()
            self._close_streams()

    async def connect(self, url: str | Sequence[str], *, timeout: float = 10.0) -> None:
        """Connect to the hub at `url` (several: failover) and join the mesh.

        Returns once the signaling socket is open; raises TimeoutError (and stops trying)
        when no hub answered within `timeout` seconds.
        """
        urls = (url,) if isinstance(url, str) else tuple(url)
        self._signaling_up = anyio.Event()
        self.machine.connect(urls, anyio.current_time())
        self._perform()
        with anyio.move_on_after(timeout):
            await self._signaling_up.wait()
        if not self._signaling_up.is_set():
            await self.disconnect()
            raise TimeoutError(f"no signaling server answered at {', '.join(urls)}")

    async def disconnect(self) -> None:
        """Leave the mesh: close every link, say goodbye to the hub (idempotent)."""
        if self._machine is None:
            return
        self.machine.disconnect(anyio.current_time())
        self._perform()
        if self._socket is not None:
            await self._socket.wait_closed(2.0)
        with anyio.move_on_after(_FLUSH_BEFORE_CLOSE_S + 1.0):
            while any(not w.closed for w in self._workers.values()):
                await anyio.sleep(0.01)

    # --- application calls ------------------------------------------------------------------

    def send_direct_message(self, peer: str, content: JsonValue) -> str:
        """Send `content` to any peer (the reference's ``dm`` gossip, routed); returns its id.

        Raises `UsageError` (bad ID, not JSON, too large, no neighbour to route through).
        """
        message_id = self.machine.send_direct_message(PeerId(peer), content, anyio.current_time())
        self._perform()
        return message_id

    def send_message(self, content: str) -> str:
        """Broadcast chat `content` to the whole mesh (``sendMessage``); returns its id.

        Raises `UsageError` unless `content` is a non-empty string, as JS requires.
        """
        message_id = self.machine.send_message(content, anyio.current_time())
        self._perform()
        return message_id

    def send_binary_data(self, peer: str, data: bytes | bytearray | memoryview) -> None:
        """Send `data` to the neighbour `peer` (``sendBinaryData``): exactly these bytes.

        Raises `UsageError` when `peer` is not a neighbour or `data` is larger than the
        channel allows (JS would drop it silently).
        """
        self.machine.send_binary_data(PeerId(peer), bytes(data), anyio.current_time())
        self._perform()

    def broadcast_binary_data(self, data: bytes | bytearray | memoryview) -> str:
        """Flood `data` to the Python peers of the mesh; returns its id.

        JS peers never receive it (JS's own ``broadcastBinaryData`` throws). Raises
        `UsageError` when no neighbour is a Python peer or `data` is too large.
        """
        message_id = self.machine.broadcast_binary_data(bytes(data), anyio.current_time())
        self._perform()
        return message_id

    def connect_to_peer(self, peer: str) -> bool:
        """Ask the mesh to dial `peer` now (the topology rules still apply)."""
        started = self.machine.connect_to_peer(PeerId(peer), anyio.current_time())
        self._perform()
        return started

    # --- driving the machine -----------------------------------------------------------------

    # --- streams ------------------------------------------------------------------------

    async def open_stream(
        self,
        peer: str,
        *,
        stream_id: str | None = None,
        type: str = "binary",  # the reference's metadata field
        filename: str | None = None,
        mime_type: str | None = None,
        total_size: int | None = None,
    ) -> StreamWriter:
        """Open a byte stream to the neighbour `peer`; ``await w.send(b)``, ``await w.aclose()``.

        Raises `UsageError` when `peer` is not a connected neighbour.
        """
        pid = PeerId(peer)
        sid = self.machine.open_stream(
            pid,
            anyio.current_time(),
            stream_id=stream_id,
            type=type,
            filename=filename,
            mime_type=mime_type,
            total_size=total_size,
        )
        writer = StreamWriter(self, pid, sid, self.machine.config.streams)
        self._writers[(pid, sid)] = writer
        self._perform()
        return writer

    async def send_file(self, peer: str, path: str | PathLike[str], *, block: int = 262_144) -> int:
        """Stream the file at `path` to the neighbour `peer` (metadata type ``"file"``).

        Returns the bytes sent; raises `StreamAbortedError` if the stream was aborted.
        """
        apath = anyio.Path(path)
        size = (await apath.stat()).st_size
        writer = await self.open_stream(
            peer, type="file", filename=apath.name, mime_type="", total_size=size
        )
        try:
            async with await anyio.open_file(apath, "rb") as f:
                while chunk := await f.read(block):
                    await writer.send(chunk)
        except BaseException:
            writer.abort("sender failed")
            raise
        await writer.aclose()
        return writer.bytes_sent

    async def accept_stream(self) -> IncomingStream:
        """The next stream a neighbour opened to us (waits)."""
        return await self._accept_recv.receive()

    def _close_streams(self) -> None:
        for incoming in self._incoming.values():
            incoming.close()
        self._incoming.clear()
        self._accept_send.close()
        while True:
            try:
                self._accept_recv.receive_nowait().close()
            except (anyio.WouldBlock, anyio.EndOfStream):
                break
        self._accept_recv.close()

    def _link_for(self, peer: PeerId) -> PeerLink | None:
        worker = self._workers.get(peer)
        return None if worker is None or worker.closed else worker.link

    def _forget_writer(self, writer: StreamWriter) -> None:
        self._writers.pop((writer.peer, writer.stream_id), None)

    def _stream_event(self, event: MeshEvent) -> bool:
        """Route stream events to writers and readers; False: not for the event queue."""
        match event:
            case StreamData(peer=peer, stream_id=sid, data=data):
                incoming = self._incoming.get((peer, sid))
                if incoming is not None:
                    incoming._feed(data)
                return False
            case StreamCredit(peer=peer, stream_id=sid):
                writer = self._writers.get((peer, sid))
                if writer is not None:
                    writer._woken()
                return False
            case StreamDelivered(peer=peer, stream_id=sid):
                writer = self._writers.pop((peer, sid), None)
                if writer is not None:
                    writer.delivered.set()
                    writer._settled()
            case PeerDisconnected(peer_id=gone):
                for key in [k for k in self._writers if k[0] == gone]:
                    self._writers.pop(key)._settled()  # ended, unconfirmed: nobody will now
            case StreamOpened(peer=peer, stream_id=sid, meta=meta):
                incoming = IncomingStream(self, peer, sid, meta)
                try:
                    self._accept_send.send_nowait(incoming)
                except anyio.WouldBlock:
                    self.machine.stream_abort(
                        peer, sid, "too many pending streams", anyio.current_time(), outgoing=False
                    )
                    return True
                self._incoming[(peer, sid)] = incoming
            case StreamEnded(peer=peer, stream_id=sid, verified=verified):
                incoming = self._incoming.pop((peer, sid), None)
                if incoming is not None:
                    incoming._end(verified)
            case StreamAborted(peer=peer, stream_id=sid, reason=reason, outgoing=outgoing):
                if outgoing:
                    writer = self._writers.pop((peer, sid), None)
                    if writer is not None:
                        writer._aborted(reason)
                else:
                    incoming = self._incoming.pop((peer, sid), None)
                    if incoming is not None:
                        incoming._abort(reason)
            case _:
                pass
        return True

    def _on_due(self, now: float) -> None:
        self.machine.handle_timer(now)
        self._perform()

    def _perform(self) -> None:
        machine = self.machine
        socket = self._socket
        assert socket is not None  # set in __aenter__, before any input
        for action in machine.drain_actions():
            match action:
                case OpenSocket(url=url):
                    if self._tg is not None:
                        socket.open(self._tg, url)
                case SendText(text=text):
                    socket.send(text)
                case CloseSocket(code=code, reason=reason):
                    socket.close(code, reason)
                case _:
                    self._to_worker(action)
        for event in machine.drain_events():
            if self._stream_event(event):
                self._events.put(event)
        if machine.signaling_state is pc.ClientState.OPEN:
            self._signaling_up.set()
        if self._timer is not None:
            self._timer.poke()

    def _to_worker(self, action: MeshAction) -> None:
        peer: PeerId = action.peer  # type: ignore[union-attr]  # every link action names a peer
        worker = self._workers.get(peer)
        if worker is None or worker.closed:
            if isinstance(action, CloseLink | SendData | AddRemoteCandidate | AcceptAnswer):
                return  # nothing to act on: the link is already gone
            send, receive = anyio.create_memory_object_stream[MeshAction](_LINK_QUEUE)
            worker = _Worker(peer=peer, send=send, receive=receive)
            self._workers[peer] = worker
            if self._tg is not None:
                self._tg.start_soon(self._run_worker, worker)
        if isinstance(action, SendData) and worker.link is not None and worker.pending == []:
            self._send_now(worker, action)  # the common case: no round trip through the queue
            return
        try:
            worker.send.send_nowait(action)
            worker.pending.append(action)
        except anyio.WouldBlock:
            self._fail(worker, "link action queue overflow")
        if isinstance(action, CloseLink):
            worker.closed = True  # later actions for this peer start a new link

    def _send_now(self, worker: _Worker, action: SendData) -> None:
        link = worker.link
        assert link is not None
        try:
            ok = (
                link.send_text(action.data)
                if isinstance(action.data, str)
                else (link.send_bytes(action.data))
            )
        except PeerPigeonError as err:  # e.g. over the remote's max message size
            log.warning("send to %s refused: %s", worker.peer[:8], err)
            return
        if not ok:
            log.debug("send to %s dropped: channel not open", worker.peer[:8])

    def _fail(self, worker: _Worker, reason: str) -> None:
        if self._workers.get(worker.peer) is worker and not worker.closed:
            worker.closed = True
            worker.send.close()
            self.machine.link_failed(worker.peer, reason, anyio.current_time())
            self._perform()

    def _link_event(self, worker: _Worker, event: LinkEvent) -> None:
        if self._workers.get(worker.peer) is not worker or worker.closed or self._machine is None:
            return  # a replaced link, or one the machine closed: report nothing more of it
        now = anyio.current_time()
        peer = worker.peer
        match event:
            case ChannelOpen(max_message_size=size):
                self.machine.link_open(peer, size, now)
            case TextReceived(text=text):
                self.machine.link_text(peer, text, now)
            case BinaryReceived(data=data):
                self.machine.link_binary(peer, data, now)
            case LocalCandidate(candidate=c):
                self.machine.link_candidate(
                    peer, c.candidate, c.sdp_mid, c.sdp_mline_index, c.username_fragment, now
                )
            case Closed(reason=reason):
                worker.closed = True
                worker.send.close()  # its task ends (and forgets the link) once drained
                self.machine.link_closed(peer, reason, now)
            case Failed(reason=reason):
                worker.closed = True
                worker.send.close()
                self.machine.link_failed(peer, reason, now)
            case _:
                return
        self._perform()

    async def _run_worker(self, worker: _Worker) -> None:
        peer = worker.peer
        try:
            async with worker.receive:
                async for action in worker.receive:
                    worker.pending.remove(action)
                    try:
                        if await self._carry_out(worker, action):
                            break
                    except PeerPigeonError as err:
                        self._fail(worker, f"{err.field}: {err.reason}")
                        break
                    except Exception as err:  # a backend failure is a fact, not a crash
                        log.debug("link %s failed", peer[:8], exc_info=True)
                        self._fail(worker, f"{type(err).__name__}: {err}")
                        break
        finally:
            worker.send.close()
            link = worker.link
            if link is not None and not link.is_closed:
                with anyio.CancelScope(shield=True), anyio.move_on_after(_FLUSH_BEFORE_CLOSE_S):
                    await link.close()
            if self._workers.get(peer) is worker:
                del self._workers[peer]
            worker.closed = True

    async def _carry_out(self, worker: _Worker, action: MeshAction) -> bool:
        """Do one link action; True when the link is finished."""
        peer = worker.peer
        match action:
            case CreateOffer():
                worker.link = self._new_link(worker)
                sdp = await worker.link.create_offer()
                if not self._current(worker):
                    return True  # closed while the offer was made: report nothing
                self.machine.link_offer_created(peer, sdp, anyio.current_time())
            case AcceptOffer(sdp=sdp):
                if worker.link is None:
                    worker.link = self._new_link(worker)
                answer = await worker.link.accept_offer(sdp)
                if not self._current(worker):
                    return True
                self.machine.link_answer_created(peer, answer, anyio.current_time())
            case AcceptAnswer(sdp=sdp):
                if worker.link is not None:
                    await worker.link.accept_answer(sdp)
            case AddRemoteCandidate():
                if worker.link is not None:
                    await worker.link.add_remote_candidate(
                        IceCandidateInit(
                            candidate=action.candidate,
                            sdp_mid=action.sdp_mid,
                            sdp_mline_index=action.sdp_mline_index,
                            username_fragment=action.username_fragment,
                        )
                    )
            case SendData():
                if worker.link is not None:
                    self._send_now(worker, action)
            case CloseLink():
                link = worker.link
                if link is not None and link.is_open:
                    with anyio.move_on_after(_FLUSH_BEFORE_CLOSE_S):
                        await link.wait_buffered_amount_low(0)  # let a notice go out first
                return True
            case _:
                raise UsageError("action", f"not a link action: {type(action).__name__}")
        self._perform()
        return False

    def _current(self, worker: _Worker) -> bool:
        return self._workers.get(worker.peer) is worker and not worker.closed

    def _new_link(self, worker: _Worker) -> PeerLink:
        return self._link_factory(lambda event: self._link_event(worker, event))
