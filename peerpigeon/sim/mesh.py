"""`MeshSim`: N `Mesh` machines and one `SignalingServer` on a virtual clock, from one seed.

The simulator plays the I/O adapters: WebSocket connections to the hub (ordered, with
latency and jitter) and a fake WebRTC transport. A `CreateOffer` yields a fake SDP naming a
link; once the offerer has applied the answer, both sides' channels open one round trip
later; `SendData` arrives after the link's latency, in order; `CloseLink` closes the far
side (it hears `link_closed`); a crashed peer's neighbours hear `link_failed` after
``crash_detect_s``. ``loss`` drops text frames on the data channels (datagram loss; binary
frames are kept, since losing half of a header/payload pair is not something a reliable
channel does). For 10,000 peers, see `peerpigeon.sim.gossip` (the gossip layer on an
overlay built by `peerpigeon.sim.overlay` from the same topology rules). The simulator
checks the machine's side of the adapter contract (no second link to a peer while one is
live) and raises `SimulationError` if it is broken.

It uses only the machines' public surface, so the same numbers come out for one seed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Final, TypeVar

from peerpigeon.protocol import client as pc
from peerpigeon.protocol import mesh as pm
from peerpigeon.protocol import server as ps
from peerpigeon.protocol.ids import PeerId, generate_peer_id
from peerpigeon.protocol.rand import SeededEntropy
from peerpigeon.protocol.server import ConnectionId
from peerpigeon.protocol.wire import GLOBAL_NETWORK

from .clock import DEFAULT_WALL_OFFSET_S
from .loop import MachineSim

__all__ = ["EvictedRecord", "EvictionRecord", "MeshSim", "MeshSimError", "SimPeer"]

T = TypeVar("T")

HUB_URL: Final = "ws://hub:3000"
CLOSE_ABNORMAL: Final = 1006
_SDP_TAG: Final = "a=x-sim-link:"
_MAX_MESSAGE_SIZE: Final = 262_144
_MAX_LOSSES_KEPT: Final = 64  # per peer: far more than it can lose while an agreement holds


class MeshSimError(RuntimeError):
    """The simulation cannot go on: a machine broke the adapter contract or a deadline rule."""


@dataclass(frozen=True, slots=True)
class EvictionRecord:
    """One eviction, as the simulator saw it when the evictor decided it.

    ``evictor_links`` counts the evictor's links that take a slot right after; ``victim_open``
    and ``victim_links`` are the open links and the links taking a slot (dials and answers
    in flight included) the victim keeps once this one is gone (None: victim gone);
    ``link_age`` how long the evicted link had been open (None: it was not open).
    """

    at: float
    evictor: PeerId
    victim: PeerId
    evictor_links: int
    victim_open: int | None
    victim_links: int | None
    link_age: float | None = None


@dataclass(frozen=True, slots=True)
class EvictedRecord:
    """One eviction, as the simulator saw it when the victim processed the notice.

    ``open_after`` counts the victim's open links right after the evicted one closed,
    ``slots_after`` its links that take a slot (dials and answers in flight included);
    ``agreed_at`` when the victim last agreed to be evicted by this evictor (its
    `EvictionRequested` with ``accepted``; None: it never did); ``other_losses`` how many
    open links it lost since then for reasons other than an eviction (a neighbour left,
    crashed, closed, failed; 0 without an agreement).
    """

    at: float
    victim: PeerId
    evictor: PeerId
    open_after: int
    slots_after: int
    agreed_at: float | None = None
    other_losses: int = 0


class _Socket:
    __slots__ = ("c2s_last", "client_attached", "closing", "conn", "node", "path", "s2c_last")

    def __init__(self, node: _Node, path: str) -> None:
        self.node = node
        self.path = path
        self.conn: ConnectionId | None = None
        self.client_attached = True
        self.closing = False  # the server sent Close; it waits for the echo
        self.c2s_last = 0.0
        self.s2c_last = 0.0


class _Link:
    __slots__ = ("ends", "id", "last", "nodes", "open")

    def __init__(self, link_id: int, offerer: _Node) -> None:
        self.id = link_id
        self.nodes: list[_Node | None] = [offerer, None]
        self.ends = [True, False]  # attached: the side's adapter still holds the link
        self.open = False
        self.last = [0.0, 0.0]  # FIFO: last delivery time towards side 0 / side 1


class _Node:
    __slots__ = ("alive", "events", "links", "mesh", "name", "peer_id", "socket", "wake_at")

    def __init__(self, name: str, mesh: pm.Mesh, keep_events: bool) -> None:
        self.name = name
        self.mesh = mesh
        self.peer_id = mesh.peer_id
        self.alive = True
        self.socket: _Socket | None = None
        self.links: dict[PeerId, tuple[_Link, int]] = {}
        self.wake_at: float | None = None
        self.events: list[pm.MeshEvent] | None = [] if keep_events else None


class SimPeer:
    """A handle on one simulated peer (read-only)."""

    __slots__ = ("_node",)

    def __init__(self, node: _Node) -> None:
        self._node = node

    @property
    def name(self) -> str:
        """The node name."""
        return self._node.name

    @property
    def peer_id(self) -> PeerId:
        """The peer's ID."""
        return self._node.peer_id

    @property
    def mesh(self) -> pm.Mesh:
        """The machine (for read-only queries: `connected_peers`, `status`, ...)."""
        return self._node.mesh

    @property
    def alive(self) -> bool:
        """False once removed."""
        return self._node.alive

    @property
    def events(self) -> tuple[pm.MeshEvent, ...]:
        """The machine's events so far (empty unless the sim keeps events)."""
        return tuple(self._node.events or ())

    def __repr__(self) -> str:
        return f"<SimPeer {self.name} {self.peer_id[:8]}>"


class MeshSim(MachineSim[_Node, pm.MeshAction, pm.MeshEvent]):
    """A deterministic mesh: one hub, N peers, fake WebRTC links, a virtual clock.

    Args:
        seed: the one seed (peer IDs, machine RNGs and entropy, link latencies).
        config: template for every peer's `MeshConfig` (``peer_id`` and ``network_name``
            are replaced per peer); defaults otherwise.
        server_config: the hub's configuration.
        latency_s, jitter_s: one-way delay of every message is ``latency + U[0, jitter)``.
        setup_s: how long creating an offer or an answer takes.
        crash_detect_s: how long a crashed peer's neighbours take to notice.
        loss: probability that a text frame on a data channel is lost (0..1).
        max_message_size: the data channels' negotiated maximum message size.
        keep_events: keep each peer's events (`SimPeer.events`).
        digest: hash every event into `trace_digest` (costs a ``repr`` per event).
        wall_offset_s: wall-clock seconds at virtual time 0.
    """

    _error = MeshSimError

    def __init__(
        self,
        seed: int | str = 0,
        *,
        config: pm.MeshConfig | None = None,
        server_config: ps.ServerConfig | None = None,
        latency_s: float = 0.02,
        jitter_s: float = 0.01,
        setup_s: float = 0.005,
        crash_detect_s: float = 5.0,
        loss: float = 0.0,
        max_message_size: int = _MAX_MESSAGE_SIZE,
        keep_events: bool = False,
        digest: bool = True,
        wall_offset_s: float = DEFAULT_WALL_OFFSET_S,
    ) -> None:
        for name, value in (
            ("latency_s", latency_s),
            ("jitter_s", jitter_s),
            ("setup_s", setup_s),
            ("crash_detect_s", crash_detect_s),
        ):
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be finite and >= 0")
        if not 0.0 <= loss < 1.0:
            raise ValueError("loss must be in [0, 1)")
        super().__init__(
            seed,
            latency_s=latency_s,
            jitter_s=jitter_s,
            wall_offset_s=wall_offset_s,
            digest=digest,
        )
        self._template = config
        self._setup_s = setup_s
        self._crash_detect_s = crash_detect_s
        self._loss = loss
        self._max_message_size = max_message_size
        self._loss_rngs: dict[int, random.Random] = {}
        self._keep_events = keep_events
        self._ids = SeededEntropy(f"{seed}:peer-ids")
        self._nodes: dict[str, _Node] = {}
        self._by_id: dict[PeerId, _Node] = {}
        self._links: dict[int, _Link] = {}
        self._next_link = 0
        self._conns: dict[ConnectionId, _Socket] = {}
        self._hub_wake_at: float | None = None
        self.event_counts: dict[str, int] = {}
        self.evictions: list[EvictionRecord] = []
        self.evicted: list[EvictedRecord] = []
        self._agreed_at: dict[tuple[PeerId, PeerId], float] = {}  # (victim, evictor) -> when
        self._other_losses: dict[PeerId, list[float]] = {}  # losses not by eviction, by time
        self._opened_at: dict[tuple[PeerId, PeerId], float] = {}
        self.data_messages = 0
        self.data_lost = 0
        self.server = ps.SignalingServer(
            server_config,
            rng=random.Random(f"{seed}:rng:hub"),
            entropy=SeededEntropy(f"{seed}:entropy:hub"),
            now=0.0,
            wall_offset_s=wall_offset_s,
        )
        self._arm_hub()

    # --- peers ---------------------------------------------------------------------------

    def add_peer(
        self,
        network_name: str = GLOBAL_NETWORK,
        *,
        name: str | None = None,
        peer_id: str | None = None,
        connect: bool = True,
    ) -> SimPeer:
        """Add a peer (ID from the seed unless given) and, by default, connect it now."""
        name = name or f"p{len(self._nodes) + 1}"
        if name in self._nodes:
            raise ValueError(f"peer name {name!r} is taken")
        pid = PeerId(peer_id) if peer_id is not None else generate_peer_id(self._ids)
        if pid in self._by_id and self._by_id[pid].alive:
            raise ValueError(f"peer ID {pid} is in use")
        if self._template is None:
            cfg = pm.MeshConfig(peer_id=pid, network_name=network_name)
        else:
            cfg = replace(self._template, peer_id=pid, network_name=network_name)
        mesh = pm.Mesh(
            cfg,
            rng=random.Random(f"{self.seed}:rng:{name}"),
            entropy=SeededEntropy(f"{self.seed}:entropy:{name}"),
            wall_offset_s=self.clock.wall_offset_s,
        )
        node = _Node(name, mesh, self._keep_events)
        self._nodes[name] = node
        self._by_id[pid] = node
        if connect:
            mesh.connect((HUB_URL,), self.now)
        self._pump(node)
        return SimPeer(node)

    def act(self, peer: SimPeer, call: Callable[[pm.Mesh, float], T]) -> T:
        """Make an application call on `peer`'s machine now, then carry out what it queued.

        ``sim.act(a, lambda mesh, now: mesh.send_direct_message(b.peer_id, "hi", now))``
        """
        node = peer._node
        if not node.alive:
            raise MeshSimError(f"{node.name} was removed")
        result = call(node.mesh, self.now)
        self._pump(node)
        return result

    def connect_peer(self, peer: SimPeer) -> None:
        """Connect an idle (or disconnected) peer now."""
        node = peer._node
        node.mesh.connect((HUB_URL,), self.now)
        self._pump(node)

    def remove_peer(self, peer: SimPeer, *, graceful: bool = True) -> None:
        """Take a peer away: ``graceful`` leaves (goodbye, links closed); else it crashes."""
        node = peer._node
        if not node.alive:
            return
        if graceful:
            node.mesh.disconnect(self.now)
            self._pump(node)
        node.alive = False
        node.wake_at = None
        sock, node.socket = node.socket, None
        if sock is not None and sock.client_attached:
            sock.client_attached = False
            self._c2s(sock, lambda: self._server_closed(sock, CLOSE_ABNORMAL, "peer crashed"))
        for other_id, (link, side) in list(node.links.items()):
            link.ends[side] = False
            other = link.nodes[1 - side]
            if link.open and other is not None and link.ends[1 - side]:
                self._at(
                    self.now + self._crash_detect_s,
                    partial(
                        self._remote_end, link, other, node.peer_id, "peer crashed", failed=True
                    ),
                )
            del node.links[other_id]

    @property
    def peers(self) -> tuple[SimPeer, ...]:
        """Every peer ever added, in order (removed ones included)."""
        return tuple(SimPeer(n) for n in self._nodes.values())

    def live_peers(self) -> tuple[SimPeer, ...]:
        """The peers not removed, in order."""
        return tuple(SimPeer(n) for n in self._nodes.values() if n.alive)

    def peer(self, name: str) -> SimPeer:
        """The peer with this node name."""
        return SimPeer(self._nodes[name])

    # --- views ---------------------------------------------------------------------------

    def graph(self) -> dict[PeerId, tuple[PeerId, ...]]:
        """Live peers and their neighbours: the union of both sides' open links."""
        adj: dict[PeerId, dict[PeerId, None]] = {}
        for node in self._nodes.values():
            if node.alive:
                adj.setdefault(node.peer_id, {})
        for node in self._nodes.values():
            if not node.alive:
                continue
            for other in node.mesh.connected_peers():
                if other in adj:
                    adj[node.peer_id][other] = None
                    adj[other][node.peer_id] = None
        return {p: tuple(n) for p, n in adj.items()}

    # --- internals: scheduling -------------------------------------------------------------

    def _at(self, at: float, fn: Callable[[], None]) -> None:
        self._queue.push(at, fn)

    def _c2s(self, sock: _Socket, fn: Callable[[], None]) -> None:
        at = max(self.now + self._delay(sock.node.name, "hub"), sock.c2s_last)
        sock.c2s_last = at
        self._at(at, fn)

    def _s2c(self, sock: _Socket, fn: Callable[[], None]) -> None:
        at = max(self.now + self._delay(sock.node.name, "hub"), sock.s2c_last)
        sock.s2c_last = at
        self._at(at, fn)

    def _to_side(self, link: _Link, side: int, fn: Callable[[], None]) -> None:
        a, b = link.nodes
        if a is None or b is None:
            raise MeshSimError(f"link {link.id} has only one side")
        at = max(self.now + self._delay(a.name, b.name), link.last[side])
        link.last[side] = at
        self._at(at, fn)

    # --- internals: nodes --------------------------------------------------------------------

    def _machine(self, node: _Node) -> pm.Mesh:
        return node.mesh

    def _label(self, node: _Node) -> str:
        return node.name

    def _record(self, node: _Node, event: pm.MeshEvent) -> None:
        key = type(event).__name__
        self.event_counts[key] = self.event_counts.get(key, 0) + 1
        if node.events is not None:
            node.events.append(event)
        self._trace(node.name, event)
        if isinstance(event, pm.EvictionRequested) and event.accepted:
            self._agreed_at[(node.peer_id, event.peer_id)] = self.now
        if isinstance(event, pm.PeerEvicted) and event.initiated_by_peer:
            agreed = self._agreed_at.pop((node.peer_id, event.peer_id), None)
            losses = self._other_losses.get(node.peer_id, [])
            self.evicted.append(
                EvictedRecord(
                    self.now,
                    node.peer_id,
                    event.peer_id,
                    len(node.mesh.connected_peers()),
                    node.mesh.link_count(),
                    agreed,
                    0 if agreed is None else sum(1 for t in losses if t >= agreed),
                )
            )
        if isinstance(event, pm.PeerConnected):
            self._opened_at[(node.peer_id, event.peer_id)] = self.now
        if isinstance(event, pm.PeerDisconnected):
            if not event.reason.startswith(pm.REASON_EVICTED_PREFIX):
                losses = self._other_losses.setdefault(node.peer_id, [])
                losses.append(self.now)
                del losses[: max(0, len(losses) - _MAX_LOSSES_KEPT)]
            self._opened_at.pop((node.peer_id, event.peer_id), None)
        if isinstance(event, pm.PeerEvicted) and not event.initiated_by_peer:
            opened = self._opened_at.get((node.peer_id, event.peer_id))
            victim = self._by_id.get(event.peer_id)
            victim_open: int | None = None
            victim_links: int | None = None
            if victim is not None and victim.alive:
                still = victim.mesh.connected_peers()
                victim_open = len(still) - int(node.peer_id in still)
                victim_links = victim.mesh.link_count() - int(node.peer_id in still)
            self.evictions.append(
                EvictionRecord(
                    self.now,
                    node.peer_id,
                    event.peer_id,
                    node.mesh.link_count(),
                    victim_open,
                    victim_links,
                    None if opened is None else self.now - opened,
                )
            )

    def _perform(self, node: _Node, action: pm.MeshAction) -> None:
        match action:
            case pc.OpenSocket(url=url):
                self._open_socket(node, url)
            case pc.SendText(text=text):
                sock = node.socket
                if sock is not None:
                    self._c2s(sock, partial(self._server_frame, sock, text))
            case pc.CloseSocket(code=code, reason=reason):
                sock, node.socket = node.socket, None
                if sock is not None and sock.client_attached:
                    sock.client_attached = False
                    self._c2s(sock, lambda: self._server_closed(sock, code, reason))
            case pm.CreateOffer(peer=peer):
                self._create_offer(node, peer)
            case pm.AcceptOffer(peer=peer, sdp=sdp):
                self._accept_offer(node, peer, sdp)
            case pm.AcceptAnswer(peer=peer, sdp=sdp):
                self._accept_answer(node, peer, sdp)
            case pm.AddRemoteCandidate():
                pass  # fake links need no ICE
            case pm.SendData(peer=peer, data=data):
                self._send_data(node, peer, data)
            case pm.CloseLink(peer=peer, reason=reason):
                self._close_link(node, peer, reason)

    # --- internals: signaling ----------------------------------------------------------------

    def _open_socket(self, node: _Node, url: str) -> None:
        if node.socket is not None:
            raise MeshSimError(f"{node.name}: OpenSocket while a socket is open")
        rest = url.split("://", 1)[-1]
        cut = rest.find("/")
        path = rest[cut:] if cut >= 0 else "/"
        sock = _Socket(node, path)
        node.socket = sock
        self._c2s(sock, lambda: self._server_accept(sock))

    def _server_accept(self, sock: _Socket) -> None:
        if not sock.client_attached:
            return  # given up before the handshake got through
        now = self.now
        conn = self.server.open_connection(sock.path, now)
        sock.conn = conn
        self._conns[conn] = sock
        self._s2c(sock, lambda: self._client_opened(sock))
        self._flush_server()

    def _client_opened(self, sock: _Socket) -> None:
        node = sock.node
        if sock.client_attached and node.socket is sock and node.alive:
            node.mesh.socket_opened(self.now)
            self._pump(node)

    def _server_frame(self, sock: _Socket, text: str) -> None:
        if sock.conn is not None and sock.conn in self._conns:
            self.server.receive_frame(sock.conn, text, self.now)
            self._flush_server()

    def _client_frame(self, sock: _Socket, text: str) -> None:
        node = sock.node
        if sock.client_attached and node.socket is sock and node.alive:
            node.mesh.socket_frame(text, self.now)
            self._pump(node)

    def _client_closed(self, sock: _Socket, code: int, reason: str) -> None:
        node = sock.node
        if sock.client_attached and node.socket is sock and node.alive:
            sock.client_attached = False
            node.socket = None
            node.mesh.socket_closed(self.now, code=code, reason=reason)
            self._pump(node)
        self._c2s(sock, lambda: self._server_closed(sock, code, reason))

    def _server_closed(self, sock: _Socket, code: int, reason: str) -> None:
        conn = sock.conn
        if conn is None or self._conns.get(conn) is not sock:
            return
        del self._conns[conn]
        self.server.connection_closed(conn, self.now, code=code, reason=reason)
        self._flush_server()

    def _flush_server(self) -> None:
        server = self.server
        for action in server.drain_actions():
            sock = self._conns.get(action.connection)
            if sock is None:
                continue
            match action:
                case ps.SendText(text=text):
                    if not sock.closing:
                        self._s2c(sock, partial(self._client_frame, sock, text))
                case ps.SendPing():
                    self._s2c(sock, partial(self._pinged, sock))
                case ps.Close(code=code, reason=reason):
                    if not sock.closing:
                        sock.closing = True
                        self._s2c(sock, partial(self._client_closed, sock, code, reason))
                case _:
                    pass  # OpenHubLink: this hub has no federation configured
        server.drain_events()
        self._arm_hub()

    def _pinged(self, sock: _Socket) -> None:
        if sock.client_attached and sock.node.alive:
            self._c2s(sock, lambda: self._ponged(sock))

    def _ponged(self, sock: _Socket) -> None:
        if sock.conn is not None and self._conns.get(sock.conn) is sock:
            self.server.receive_pong(sock.conn, self.now)
            self._flush_server()

    def _arm_hub(self) -> None:
        deadline = self.server.next_deadline()
        if deadline is None:
            return
        if self._hub_wake_at is None or deadline < self._hub_wake_at:
            at = max(deadline, self.now)
            self._hub_wake_at = at
            self._at(at, self._wake_hub)

    def _wake_hub(self) -> None:
        now = self.now
        if self._hub_wake_at == now:
            self._hub_wake_at = None
        deadline = self.server.next_deadline()
        if deadline is None:
            return
        if deadline > now:
            self._arm_hub()
            return
        self.server.handle_timer(now)
        self._flush_server()

    # --- internals: fake WebRTC --------------------------------------------------------------

    def _new_link(self, offerer: _Node) -> _Link:
        self._next_link += 1
        link = _Link(self._next_link, offerer)
        self._links[link.id] = link
        return link

    def _check_free(self, node: _Node, peer: PeerId, what: str) -> None:
        if peer in node.links:
            raise MeshSimError(f"{node.name}: {what} for {peer[:8]} while a link to it is live")

    def _create_offer(self, node: _Node, peer: PeerId) -> None:
        self._check_free(node, peer, "CreateOffer")
        link = self._new_link(node)
        node.links[peer] = (link, 0)
        sdp = f"v=0\r\n{_SDP_TAG}{link.id}\r\n"

        def ready() -> None:
            if node.alive and node.links.get(peer) == (link, 0):
                node.mesh.link_offer_created(peer, sdp, self.now)
                self._pump(node)

        self._at(self.now + self._setup_s, ready)

    def _accept_offer(self, node: _Node, peer: PeerId, sdp: str) -> None:
        self._check_free(node, peer, "AcceptOffer")
        link = self._links.get(_link_id(sdp))
        offerer = self._by_id.get(peer)
        valid = (
            link is not None
            and offerer is not None
            and link.nodes[0] is offerer
            and link.nodes[1] is None
            and link.ends[0]
        )
        if link is None or not valid:
            dead = self._new_link(node)  # the real adapter's link, failing to apply the SDP
            dead.ends = [False, True]
            dead.nodes = [None, node]
            node.links[peer] = (dead, 1)
            self._at(self.now + self._setup_s, lambda: self._local_fail(node, peer, dead))
            return
        link.nodes[1] = node
        link.ends[1] = True
        node.links[peer] = (link, 1)
        answer = f"v=0\r\n{_SDP_TAG}{link.id}\r\n"

        def ready() -> None:
            if node.alive and node.links.get(peer) == (link, 1):
                node.mesh.link_answer_created(peer, answer, self.now)
                self._pump(node)

        self._at(self.now + self._setup_s, ready)

    def _accept_answer(self, node: _Node, peer: PeerId, sdp: str) -> None:
        entry = node.links.get(peer)
        if entry is None:
            raise MeshSimError(f"{node.name}: AcceptAnswer for {peer[:8]} without a link")
        link, side = entry
        answerer = link.nodes[1]
        if (
            side != 0
            or _link_id(sdp) != link.id
            or answerer is None
            or answerer.peer_id != peer
            or not link.ends[1]
        ):
            self._at(self.now, lambda: self._local_fail(node, peer, link))
            return
        # DTLS and SCTP take about one round trip once the answer is applied.
        rtt = 2 * self._delay(node.name, answerer.name)
        self._at(self.now + rtt, lambda: self._open(link))

    def _local_fail(self, node: _Node, peer: PeerId, link: _Link) -> None:
        entry = node.links.get(peer)
        if not node.alive or entry is None or entry[0] is not link:
            return
        del node.links[peer]
        link.ends[entry[1]] = False
        node.mesh.link_failed(peer, "session description refused", self.now)
        self._pump(node)

    def _open(self, link: _Link) -> None:
        a, b = link.nodes
        if link.open or a is None or b is None or not (link.ends[0] and link.ends[1]):
            return
        link.open = True
        for here, there in ((a, b), (b, a)):
            if here.alive:
                here.mesh.link_open(there.peer_id, self._max_message_size, self.now)
                self._pump(here)

    def _send_data(self, node: _Node, peer: PeerId, data: str | bytes) -> None:
        entry = node.links.get(peer)
        if entry is None:
            raise MeshSimError(f"{node.name}: SendData to {peer[:8]} without a link")
        link, side = entry
        if not link.open:
            return  # a real channel that is not open refuses to send
        self.data_messages += 1
        if self._loss and isinstance(data, str):
            rng = self._loss_rngs.get(link.id)
            if rng is None:
                rng = self._loss_rngs[link.id] = random.Random(f"{self.seed}:loss:{link.id}")
            if rng.random() < self._loss:
                self.data_lost += 1
                return
        to = 1 - side
        self._to_side(link, to, lambda: self._deliver(link, to, node.peer_id, data))

    def _deliver(self, link: _Link, to: int, sender: PeerId, data: str | bytes) -> None:
        node = link.nodes[to]
        if node is None or not node.alive or not link.ends[to]:
            return
        if isinstance(data, str):
            node.mesh.link_text(sender, data, self.now)
        else:
            node.mesh.link_binary(sender, data, self.now)
        self._pump(node)

    def _close_link(self, node: _Node, peer: PeerId, reason: str) -> None:
        entry = node.links.pop(peer, None)
        if entry is None:
            raise MeshSimError(f"{node.name}: CloseLink for {peer[:8]} without a link")
        link, side = entry
        link.ends[side] = False
        other = link.nodes[1 - side]
        if link.open and other is not None and link.ends[1 - side]:
            self._to_side(
                link,
                1 - side,
                lambda: self._remote_end(link, other, node.peer_id, "closed by peer", failed=False),
            )

    def _remote_end(
        self, link: _Link, node: _Node, gone: PeerId, reason: str, *, failed: bool
    ) -> None:
        entry = node.links.get(gone)
        if not node.alive or entry is None or entry[0] is not link:
            return
        del node.links[gone]
        link.ends[entry[1]] = False
        if failed:
            node.mesh.link_failed(gone, reason, self.now)
        else:
            node.mesh.link_closed(gone, reason, self.now)
        self._pump(node)


def _link_id(sdp: str) -> int:
    start = sdp.find(_SDP_TAG)
    if start < 0:
        return -1
    digits = sdp[start + len(_SDP_TAG) :].split("\r\n", 1)[0]
    return int(digits) if digits.isdigit() else -1
