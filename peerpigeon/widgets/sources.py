"""Graph sources: the simulator, local signaling peers and a hub, as `GraphSource`s.

Each source reads only public, read-only views (`SimNetwork.clients`, `ClientHandle.state`,
`SignalingClient.discovered_peers`, `SignalingServer.peer_ids`, ...) and never drives what
it watches.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Protocol

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
    from peerpigeon.sim import SimNetwork
    from peerpigeon.sim.network import TraceEntry

__all__ = [
    "HubSource",
    "Listeners",
    "PeerSource",
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


# --- real peers and hubs ------------------------------------------------------------------------


class SignalingPeer(Protocol):
    """Anything with a signaling client machine: a `SignalingSession` or a `ClientHandle`."""

    @property
    def machine(self) -> SignalingClient:
        """The client machine (read-only use)."""
        ...


class PeerSource:
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
        self.peers = peers
        self.title = title
        self._clock = clock
        self._started = clock()
        self._listeners = Listeners()

    def subscribe(self, callback: Callable[[], None]) -> Unsubscribe:
        """Hear `notify` calls."""
        return self._listeners.add(callback)

    def notify(self) -> None:
        """Tell subscribers that something changed (e.g. from a session's ``on_event``)."""
        self._listeners.notify()

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
            hub_id = m.url
            if hub_id not in nodes:
                nodes[hub_id] = GraphNode(
                    id=hub_id, label=_short_url(hub_id), kind="hub", detail=hub_id
                )
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
                    edge = GraphEdge(a=pid, b=m.url, kind="discovered")
                    edges.setdefault(edge.key, edge)
        online = sum(1 for m in locals_ if m.state is ClientState.OPEN)
        return GraphSnapshot(
            time_s=self._clock() - self._started,
            nodes=tuple(nodes.values()),
            edges=tuple(edges.values()),
            counters={"local": len(locals_), "online": online, "known": len(nodes) - len(locals_)},
            title=self.title,
        )


class _HasServerMachine(Protocol):
    @property
    def machine(self) -> SignalingServer:
        """The server machine (read-only use)."""
        ...


class HubSource:
    """A hub (a running `PeerPigeonServer`, or anything with its machine): its peers.

    The hub is the centre; every registered peer has a signaling edge to it; peers known
    through federated hubs are drawn as ``known``. Polled like `PeerSource`.
    """

    def __init__(
        self,
        server: _HasServerMachine,
        *,
        name: str = "hub",
        title: str = "hub",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.server = server
        self.name = name
        self.title = title
        self._clock = clock
        self._started = clock()
        self._listeners = Listeners()

    def subscribe(self, callback: Callable[[], None]) -> Unsubscribe:
        """Hear `notify` calls."""
        return self._listeners.add(callback)

    def notify(self) -> None:
        """Tell subscribers that something changed (e.g. from the server's ``on_event``)."""
        self._listeners.notify()

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


def _short_url(url: str) -> str:
    return url.split("://", 1)[-1]
