"""Graph sources: the simulator, local signaling peers and a hub, as `GraphSource`s.

Each source reads only public, read-only views (`SimNetwork.clients`, `ClientHandle.state`,
`SignalingClient.discovered_peers`, `SignalingServer.peer_ids`, ...) and never drives what
it watches.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Protocol
from urllib.parse import urlsplit

from peerpigeon.protocol.client import ClientState, SignalingClient
from peerpigeon.protocol.server import SignalingServer

from .graph import (
    EdgeStatus,
    GraphEdge,
    GraphNode,
    GraphSnapshot,
    NodeStatus,
    Unsubscribe,
)

if TYPE_CHECKING:
    from peerpigeon.protocol.mesh import Mesh
    from peerpigeon.sim import SimNetwork
    from peerpigeon.sim.mesh import MeshSim
    from peerpigeon.sim.network import TraceEntry

__all__ = [
    "HubSource",
    "Listeners",
    "MeshPeer",
    "MeshPeerSource",
    "MeshSimSource",
    "PeerSource",
    "SignalingHub",
    "SignalingPeer",
    "SimNetworkSource",
    "StaticSource",
    "client_status",
]

_CLIENT_STATUS: Final[dict[ClientState, NodeStatus]] = {
    ClientState.IDLE: "offline",
    ClientState.CONNECTING: "connecting",
    ClientState.OPEN: "online",
    ClientState.WAITING_RECONNECT: "connecting",
    ClientState.CLOSED: "offline",
}
_LINK_STATUS: Final[dict[ClientState, EdgeStatus]] = {
    ClientState.CONNECTING: "connecting",
    ClientState.OPEN: "up",
}


def client_status(state: ClientState) -> NodeStatus:
    """The drawing's status for a signaling client state."""
    return _CLIENT_STATUS[state]


class Listeners:
    """A list of change callbacks with unsubscribe (sources that push share it)."""

    def __init__(self) -> None:
        self._callbacks: dict[int, Callable[[], None]] = {}
        self._next = 0

    def add(self, callback: Callable[[], None]) -> Unsubscribe:
        """Register `callback`; returns its unsubscribe (idempotent)."""
        key = self._next
        self._next += 1
        self._callbacks[key] = callback

        def unsubscribe() -> None:
            self._callbacks.pop(key, None)

        return unsubscribe

    def notify(self) -> None:
        """Call every callback."""
        for callback in tuple(self._callbacks.values()):
            callback()

    def __len__(self) -> int:
        return len(self._callbacks)


class StaticSource:
    """A fixed snapshot (replace it with `set`); for embeds, tests and custom feeds."""

    def __init__(self, snapshot: GraphSnapshot | None = None) -> None:
        self._snapshot = snapshot or GraphSnapshot()
        self._listeners = Listeners()

    def snapshot(self) -> GraphSnapshot:
        """The current snapshot."""
        return self._snapshot

    def set(self, snapshot: GraphSnapshot) -> None:
        """Replace the snapshot and tell the subscribers."""
        self._snapshot = snapshot
        self._listeners.notify()

    def subscribe(self, callback: Callable[[], None]) -> Unsubscribe:
        """Hear every `set`."""
        return self._listeners.add(callback)


# --- the simulator -------------------------------------------------------------------------------


class SimNetworkSource:
    """A `SimNetwork`: its hub and every live client, their links and counters.

    Nodes are the hub (id: its node name) and the clients (id: the peer ID, label: the
    node name). A client has an edge to the hub while its socket is open or opening; a
    partition between the two marks the edge ``cut``. Changes are reported for every
    trace entry (the view coalesces them).

    Args:
        net: the network to watch.
        focus: node name or peer ID of the client to highlight as "self".
        include_removed: keep removed clients (as ``offline``) instead of dropping them.
        title: caption (default: the seed).
    """

    def __init__(
        self,
        net: SimNetwork,
        *,
        focus: str | None = None,
        include_removed: bool = False,
        title: str | None = None,
    ) -> None:
        self.net = net
        self.focus = focus
        self.include_removed = include_removed
        self.title = f"simulation (seed {net.seed!r})" if title is None else title
        self._listeners = Listeners()
        self._hooked = False

    def subscribe(self, callback: Callable[[], None]) -> Unsubscribe:
        """Hear every trace entry of the network."""
        if not self._hooked:
            self.net.subscribe(self._on_trace)  # the network has no unsubscribe: hook once
            self._hooked = True
        return self._listeners.add(callback)

    def _on_trace(self, entry: TraceEntry) -> None:
        if len(self._listeners):
            self._listeners.notify()

    def snapshot(self) -> GraphSnapshot:
        """The hub, the clients and their signaling links now."""
        net = self.net
        hub = net.hub
        hub_stats = hub.stats()
        partitions = net.partitions
        nodes = [
            GraphNode(
                id=hub.name,
                label=hub.name,
                kind="hub",
                status="online",
                detail=f"{hub_stats.peers} peers, {hub_stats.relayed} relayed",
                messages=hub_stats.frames_received + hub_stats.frames_sent,
                discovered=hub_stats.peers,
            )
        ]
        edges: list[GraphEdge] = []
        online = 0
        for c in net.clients:
            removed = c.removed
            if removed and not self.include_removed:
                continue
            machine = c.machine
            state = machine.state
            stats = machine.stats()
            messages = stats.frames_sent + stats.frames_received
            status: NodeStatus = "offline" if removed else _CLIENT_STATUS[state]
            online += status == "online"
            pid = machine.peer_id
            group = "" if c.network_name == "global" else c.network_name
            cut = any(p.separates(c.name, hub.name) for p in partitions)
            if cut:
                group = f"{group}/cut" if group else "cut"
            discovered = len(machine.discovered_peers)
            nodes.append(
                GraphNode(
                    id=pid,
                    label=c.name,
                    status=status,
                    is_self=self.focus in (c.name, pid),
                    detail=f"{pid[:8]} {'removed' if removed else state.value}, "
                    f"{discovered} discovered",
                    messages=messages,
                    discovered=discovered,
                    group=group,
                )
            )
            link = None if removed else _LINK_STATUS.get(state)
            if link is not None:
                edges.append(
                    GraphEdge(
                        a=pid,
                        b=hub.name,
                        kind="signaling",
                        status="cut" if cut else link,
                        messages=messages,
                    )
                )
        counters = net.counters()
        return GraphSnapshot(
            time_s=net.now,
            nodes=tuple(nodes),
            edges=tuple(edges),
            counters={
                "online": online,
                "frames": counters.frames_delivered,
                "dropped": counters.frames_dropped,
                "held": counters.items_held - counters.items_released,
                "partitions": len(partitions),
            },
            title=self.title,
        )


class MeshSimSource:
    """A `MeshSim`: its hub, every live peer, the WebRTC links between them.

    Nodes are the hub (``hub``) and the peers (id: the peer ID, label: the node name); a
    link is ``up`` once either side reports its channel open and ``connecting`` while it is
    being set up. A peer's messages are its mesh messages sent plus data frames received
    (the machine keeps no per-link counts, so links carry none). The simulator has no
    change hook: a view of it is told by whoever advances it (`play`, or ``view.changed()``).

    Args:
        sim: the simulation to watch.
        focus: node name or peer ID of the peer to highlight as "self".
        signaling: also draw each peer's signaling link to the hub.
        include_removed: keep removed peers (as ``offline``) instead of dropping them.
        title: caption (default: the seed).
    """

    def __init__(
        self,
        sim: MeshSim,
        *,
        focus: str | None = None,
        signaling: bool = True,
        include_removed: bool = False,
        title: str | None = None,
    ) -> None:
        self.sim = sim
        self.focus = focus
        self.signaling = signaling
        self.include_removed = include_removed
        self.title = f"mesh simulation (seed {sim.seed!r})" if title is None else title
        self._listeners = Listeners()

    def subscribe(self, callback: Callable[[], None]) -> Unsubscribe:
        """Hear `notify` calls."""
        return self._listeners.add(callback)

    def notify(self) -> None:
        """Tell subscribers the simulation moved."""
        self._listeners.notify()

    def snapshot(self) -> GraphSnapshot:
        """The hub, the peers, their signaling and mesh links now."""
        sim = self.sim
        hub_stats = sim.server.stats()
        hub = "hub"
        nodes = [
            GraphNode(
                id=hub,
                label=hub,
                kind="hub",
                detail=f"{hub_stats.peers} peers, {hub_stats.relayed} relayed",
                messages=hub_stats.frames_received + hub_stats.frames_sent,
                discovered=hub_stats.peers,
            )
        ]
        ids: set[str] = {hub}
        machines: list[Mesh] = []
        online = 0
        for peer in sim.peers if self.include_removed else sim.live_peers():
            mesh = peer.mesh
            pid = peer.peer_id
            alive = peer.alive
            sig = mesh.signaling_state
            connected = len(mesh.connected_peers())
            status: NodeStatus
            if not alive:
                status = "offline"
            elif sig is ClientState.OPEN or connected:
                status = "online"
            else:
                status = _CLIENT_STATUS[sig]
            online += status == "online"
            stats = mesh.stats()
            discovered = len(mesh.discovered_peers())
            nodes.append(
                GraphNode(
                    id=pid,
                    label=peer.name,
                    status=status,
                    is_self=self.focus in (peer.name, pid),
                    detail=f"{pid[:8]} {'removed' if not alive else sig.value}, "
                    f"{connected} links, {discovered} known",
                    messages=stats.messages_sent + stats.data_frames_received,
                    discovered=discovered,
                    group="" if mesh.network_name == "global" else mesh.network_name,
                )
            )
            ids.add(pid)
            if alive:
                machines.append(mesh)
        edges: dict[tuple[str, str, str], GraphEdge] = {}
        for mesh in machines:
            me = mesh.peer_id
            if self.signaling:
                link = _LINK_STATUS.get(mesh.signaling_state)
                if link is not None:
                    edge = GraphEdge(a=me, b=hub, kind="signaling", status=link)
                    edges[edge.key] = edge
            for info in mesh.peers():
                if info.peer_id not in ids:
                    continue
                up = info.status == "connected"
                edge = GraphEdge(
                    a=me, b=info.peer_id, kind="mesh", status="up" if up else "connecting"
                )
                known = edges.get(edge.key)
                if known is None or (up and known.status != "up"):
                    edges[edge.key] = edge
        links = sum(1 for e in edges.values() if e.kind == "mesh" and e.status == "up")
        return GraphSnapshot(
            time_s=sim.now,
            nodes=tuple(nodes),
            edges=tuple(edges.values()),
            counters={
                "online": online,
                "links": links,
                "data": sim.data_messages,
                "evictions": len(sim.evictions),
            },
            title=self.title,
        )


# --- real peers and hubs ------------------------------------------------------------------------


class _PolledSource:
    """What the live-object sources share: a title, a clock, and listeners fed by `notify`."""

    def __init__(self, title: str, clock: Callable[[], float]) -> None:
        self.title = title
        self._clock = clock
        self._started = clock()
        self._listeners = Listeners()

    def subscribe(self, callback: Callable[[], None]) -> Unsubscribe:
        """Hear `notify` calls."""
        return self._listeners.add(callback)

    def notify(self) -> None:
        """Tell subscribers that something changed (e.g. from an ``on_event`` callback)."""
        self._listeners.notify()


class SignalingPeer(Protocol):
    """Anything with a signaling client machine: a `SignalingSession` or a `ClientHandle`."""

    @property
    def machine(self) -> SignalingClient:
        """The client machine (read-only use)."""
        ...


class PeerSource(_PolledSource):
    """What local peers know: themselves, their hubs, and the peers they discovered.

    Every given peer is drawn as "self" with an edge to its hub (by URL); every peer they
    discovered is drawn as ``known`` with a ``discovered`` edge to the hub that told of it.
    Sessions cannot push changes: a view of this source polls (``MeshView(poll_s=...)``),
    or the application calls `notify`.
    """

    def __init__(
        self,
        *peers: SignalingPeer,
        title: str = "local peers",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(title, clock)
        self.peers = peers

    def snapshot(self) -> GraphSnapshot:
        """The local peers' combined knowledge now."""
        nodes: dict[str, GraphNode] = {}
        edges: dict[tuple[str, str, str], GraphEdge] = {}
        locals_: list[SignalingClient] = []
        for peer in self.peers:
            try:
                locals_.append(peer.machine)
            except RuntimeError:  # a session not started yet
                continue
        local_ids = {m.peer_id for m in locals_}
        for m in locals_:
            stats = m.stats()
            messages = stats.frames_sent + stats.frames_received
            hub_id = _hub_key(m.url)
            if hub_id not in nodes:
                label = hub_id.split("://", 1)[-1]
                nodes[hub_id] = GraphNode(id=hub_id, label=label, kind="hub", detail=hub_id)
            state = m.state
            nodes[m.peer_id] = GraphNode(
                id=m.peer_id,
                label=m.peer_id[:8],
                status=_CLIENT_STATUS[state],
                is_self=True,
                detail=f"{m.peer_id} {state.value}",
                messages=messages,
                discovered=len(m.discovered_peers),
            )
            link = _LINK_STATUS.get(state)
            if link is not None:
                edge = GraphEdge(
                    a=m.peer_id, b=hub_id, kind="signaling", status=link, messages=messages
                )
                edges[edge.key] = edge
        for m in locals_:
            for pid in m.discovered_peers:
                if pid not in nodes:
                    nodes[pid] = GraphNode(
                        id=pid, label=pid[:8], status="known", detail=f"{pid} (discovered)"
                    )
                if pid not in local_ids:
                    edge = GraphEdge(a=pid, b=_hub_key(m.url), kind="discovered")
                    edges.setdefault(edge.key, edge)
        online = sum(1 for m in locals_ if m.state is ClientState.OPEN)
        return GraphSnapshot(
            time_s=self._clock() - self._started,
            nodes=tuple(nodes.values()),
            edges=tuple(edges.values()),
            counters={"local": len(locals_), "online": online, "known": len(nodes) - len(locals_)},
            title=self.title,
        )


class MeshPeer(Protocol):
    """Anything with a mesh machine: a `PeerPigeonMesh` (its ``machine``)."""

    @property
    def machine(self) -> Mesh:
        """The mesh machine (read-only use)."""
        ...


class MeshPeerSource(_PolledSource):
    """What local mesh peers know: themselves, their links, their hub, the peers they know.

    Each given peer (a `Mesh` machine, e.g. a simulated peer's ``mesh``, or anything with a
    ``machine``, e.g. a `PeerPigeonMesh`) is drawn as "self" with its signaling edge to its
    hub and its WebRTC links (``up`` once the channel is open, ``connecting`` before);
    peers it knows but has no link to are ``known``, with a ``discovered`` edge to the hub.
    Polled like `PeerSource` (or call `notify` from the mesh's event callbacks).
    """

    def __init__(
        self,
        *peers: Mesh | MeshPeer,
        title: str = "local mesh peers",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(title, clock)
        self.peers = peers

    def _machines(self) -> list[Mesh]:
        from peerpigeon.protocol.mesh import Mesh

        out: list[Mesh] = []
        for peer in self.peers:
            if isinstance(peer, Mesh):
                out.append(peer)
                continue
            try:
                out.append(peer.machine)
            except RuntimeError:  # not started yet
                continue
        return out

    def snapshot(self) -> GraphSnapshot:
        """The local peers' combined view now."""
        machines = self._machines()
        nodes: dict[str, GraphNode] = {}
        edges: dict[tuple[str, str, str], GraphEdge] = {}
        hubs: dict[str, str] = {}
        for m in machines:
            status = m.status()
            sig = m.signaling_state
            stats = m.stats()
            online = status.connected or status.connected_count > 0
            nodes[m.peer_id] = GraphNode(
                id=m.peer_id,
                label=m.peer_id[:8],
                status="online" if online else _CLIENT_STATUS[sig],
                is_self=True,
                detail=f"{m.peer_id} {sig.value}, {status.connected_count} links, "
                f"{status.discovered_count} known",
                messages=stats.messages_sent + stats.data_frames_received,
                discovered=status.discovered_count,
                group="" if m.network_name == "global" else m.network_name,
            )
            hub_id = _hub_key(status.signaling_url) if status.signaling_url else ""
            hubs[m.peer_id] = hub_id
            link = _LINK_STATUS.get(sig)
            if hub_id and link is not None:
                edge = GraphEdge(a=m.peer_id, b=hub_id, kind="signaling", status=link)
                edges[edge.key] = edge
        for hub_id in hubs.values():
            if hub_id and hub_id not in nodes:
                label = hub_id.split("://", 1)[-1]
                nodes[hub_id] = GraphNode(id=hub_id, label=label, kind="hub", detail=hub_id)
        for m in machines:  # links first: a linked peer is never drawn as merely known
            for info in m.peers():
                pid = info.peer_id
                nodes.setdefault(pid, GraphNode(id=pid, label=pid[:8], detail=f"{pid} (linked)"))
                up = info.status == "connected"
                edge = GraphEdge(
                    a=m.peer_id, b=pid, kind="mesh", status="up" if up else "connecting"
                )
                seen = edges.get(edge.key)
                if seen is None or (up and seen.status != "up"):
                    edges[edge.key] = edge
        for m in machines:
            hub_id = hubs[m.peer_id]
            for known in m.discovered_peers():
                pid = known.peer_id
                if pid in nodes:
                    continue
                nodes[pid] = GraphNode(
                    id=pid, label=pid[:8], status="known", detail=f"{pid} (discovered)"
                )
                if hub_id:
                    edge = GraphEdge(a=pid, b=hub_id, kind="discovered")
                    edges.setdefault(edge.key, edge)
        linked = sum(1 for e in edges.values() if e.kind == "mesh" and e.status == "up")
        return GraphSnapshot(
            time_s=self._clock() - self._started,
            nodes=tuple(nodes.values()),
            edges=tuple(edges.values()),
            counters={"local": len(machines), "links": linked, "known": len(nodes) - len(machines)},
            title=self.title,
        )


class SignalingHub(Protocol):
    """Anything with a signaling server machine: a running `PeerPigeonServer`, a `HubHandle`."""

    @property
    def machine(self) -> SignalingServer:
        """The server machine (read-only use)."""
        ...


class HubSource(_PolledSource):
    """A hub (a running `PeerPigeonServer`, or anything with its machine): its peers.

    The hub is the centre; every registered peer has a signaling edge to it; peers known
    through federated hubs are drawn as ``known``. Polled like `PeerSource`.
    """

    def __init__(
        self,
        server: SignalingHub,
        *,
        name: str = "hub",
        title: str = "hub",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(title, clock)
        self.server = server
        self.name = name

    def snapshot(self) -> GraphSnapshot:
        """The hub and its peers now."""
        try:
            machine = self.server.machine
        except RuntimeError:  # not running
            return GraphSnapshot(
                time_s=self._clock() - self._started,
                nodes=(GraphNode(id=self.name, label=self.name, kind="hub", status="offline"),),
                title=self.title,
            )
        stats = machine.stats()
        nodes = [
            GraphNode(
                id=self.name,
                label=self.name,
                kind="hub",
                detail=f"{stats.peers} peers, {stats.relayed} relayed",
                messages=stats.frames_received + stats.frames_sent,
                discovered=stats.peers,
            )
        ]
        edges: list[GraphEdge] = []
        seen: set[str] = {self.name}
        for pid in machine.peer_ids():
            if pid in seen:
                continue
            seen.add(pid)
            nodes.append(GraphNode(id=pid, label=pid[:8], detail=pid))
            edges.append(GraphEdge(a=pid, b=self.name, kind="signaling"))
        for pid in machine.remote_peers():
            if pid in seen:
                continue
            seen.add(pid)
            nodes.append(GraphNode(id=pid, label=pid[:8], status="known", detail=f"{pid} remote"))
        return GraphSnapshot(
            time_s=self._clock() - self._started,
            nodes=tuple(nodes),
            edges=tuple(edges),
            counters={"peers": stats.peers, "relayed": stats.relayed, "hubs": stats.hubs},
            title=self.title,
        )


def _hub_key(url: str) -> str:
    """``ws://host:port/?peerId=…`` -> ``ws://host:port`` (one node per hub, not per peer)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else url
