"""Hub federation on the simulator: many hub machines that dial each other, and their clients.

`SimFederation` builds on `SimNetwork`: every hub is a `FederatedHubNode` (a
`SignalingServer` with ``is_hub`` that also opens the hub links its machine asks for with
`OpenHubLink`), placed at ``ws://h03:3000``; clients connect to the hub of your choice.
`topology` draws the hub graphs the tests use (chain, star, tree, ring, random graphs with
cycles). The network's own hub (``lobby``) takes no part and stays idle.

The federation watches, without touching any machine's private state: every frame that
crosses a hub-to-hub connection (`HubFrameStats`), when each hub registered each
announcement, and when each client learnt of or lost each peer. See docs/federation.md.
"""

from __future__ import annotations

import json
import random
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Final, Literal, TypeAlias

from peerpigeon.protocol import client as pc
from peerpigeon.protocol import server as ps
from peerpigeon.protocol.ids import PeerId
from peerpigeon.protocol.rand import SeededEntropy
from peerpigeon.protocol.server import ConnectionId

from .links import CLOSE_ABNORMAL, LinkConfig, StreamEnd
from .network import ClientHandle, SimNetwork, TraceEntry
from .nodes import SignalingServerNode, Transport

__all__ = [
    "TOPOLOGIES",
    "Edge",
    "FederatedHubNode",
    "HubFrameStats",
    "SimFederation",
    "TopologyKind",
    "diameter",
    "hop_distances",
    "topology",
]

Edge: TypeAlias = tuple[int, int]
"""One hub link: ``(dialler, acceptor)`` by hub index; the dialler lists the acceptor as its
bootstrap hub."""

TopologyKind: TypeAlias = Literal["chain", "star", "tree", "ring", "random"]
TOPOLOGIES: Final[tuple[TopologyKind, ...]] = ("chain", "star", "tree", "ring", "random")

HUB_PORT: Final = 3000
_EVENT_PEER: Final = re.compile(  # client events, as the trace writes them
    r"^(PeerDiscovered|PeerLeft)\(peer_id='([0-9a-f]{40})'"
    r"|^OfferReceived\(from_peer_id='([0-9a-f]{40})'"
)


# --- hub graphs -------------------------------------------------------------------------------


def topology(kind: TopologyKind, hubs: int, rng: random.Random) -> list[Edge]:
    """The links of a federation of `hubs` hubs; a hub always dials a lower-numbered one.

    ``chain``: 1->0, 2->1, ...; ``star``: every hub dials hub 0; ``tree``: each hub dials a
    random earlier one; ``ring``: the chain closed by (n-1)->0 (a cycle); ``random``: a
    random tree plus about n/2 extra links (cycles).
    """
    if hubs < 1:
        raise ValueError("hubs must be at least 1")
    edges: list[Edge] = []
    if kind == "chain":
        edges = [(i, i - 1) for i in range(1, hubs)]
    elif kind == "star":
        edges = [(i, 0) for i in range(1, hubs)]
    elif kind == "tree":
        edges = [(i, rng.randrange(i)) for i in range(1, hubs)]
    elif kind == "ring":
        edges = [(i, i - 1) for i in range(1, hubs)]
        if hubs > 2:
            edges.append((hubs - 1, 0))
    elif kind == "random":
        edges = [(i, rng.randrange(i)) for i in range(1, hubs)]
        have = set(edges)
        for _ in range(hubs // 2 if hubs > 2 else 0):
            a, b = sorted(rng.sample(range(hubs), 2))
            if (b, a) not in have:
                have.add((b, a))
                edges.append((b, a))
    else:
        raise ValueError(f"unknown topology {kind!r}")
    return edges


def hop_distances(hubs: int, edges: Iterable[Edge], start: int) -> dict[int, int]:
    """Hops from hub `start` to every hub it can reach."""
    adj: dict[int, list[int]] = {i: [] for i in range(hubs)}
    for a, b in edges:
        adj[a].append(b)
        adj[b].append(a)
    dist = {start: 0}
    todo = deque([start])
    while todo:
        here = todo.popleft()
        for nxt in adj[here]:
            if nxt not in dist:
                dist[nxt] = dist[here] + 1
                todo.append(nxt)
    return dist


def diameter(hubs: int, edges: Sequence[Edge]) -> int:
    """The largest hop distance between two hubs (the graph must be connected)."""
    worst = 0
    for start in range(hubs):
        dist = hop_distances(hubs, edges, start)
        if len(dist) != hubs:
            raise ValueError("the hub graph is not connected")
        worst = max(worst, *dist.values())
    return worst


# --- the hub node -----------------------------------------------------------------------------


class FederatedHubNode(SignalingServerNode):
    """Drives one hub machine: a `SignalingServerNode` (accepted connections) plus the
    hub links it dials (`OpenHubLink` -> a stream; ``hub_link_opened`` / ``hub_link_failed``).

    `on_frame(node, end, text)` sees every frame this hub sends; `on_event(node, event, now)`
    every machine event. The first wake-up (at attach time) flushes the dials the machine
    queued when it was built.
    """

    def __init__(
        self,
        name: str,
        machine: ps.SignalingServer,
        *,
        on_frame: Callable[[FederatedHubNode, StreamEnd, str], None] | None = None,
        on_event: Callable[[FederatedHubNode, ps.ServerEvent, float], None] | None = None,
    ) -> None:
        super().__init__(name, machine)
        self._dialled: dict[ConnectionId, bool] = {}  # our hub links -> opened yet
        self._kick_at: float | None = None
        self._on_frame = on_frame
        self._on_event = on_event

    def is_hub_stream(self, end: StreamEnd) -> bool:
        """Whether `end` is a hub-to-hub connection (a link we dialled, or one from a hub)."""
        conn = self._conns.get(end)
        return (conn is not None and conn in self._dialled) or isinstance(
            end.peer.node, FederatedHubNode
        )

    def attach(self, transport: Transport) -> None:
        """Attach to the network; schedule a first wake-up to flush the queued dials."""
        super().attach(transport)
        self._kick_at = transport.now

    def next_deadline(self) -> float | None:
        """The machine's deadline (or the first wake-up after attach)."""
        deadline = self._machine.next_deadline()
        if self._kick_at is None:
            return deadline
        return self._kick_at if deadline is None else min(deadline, self._kick_at)

    def handle_timer(self, now: float) -> None:
        """Run the machine's timers (reconnects, ping sweep)."""
        self._kick_at = None
        self._machine.handle_timer(now)

    def stream_opened(self, end: StreamEnd, now: float) -> None:
        """A hub link we dialled is open."""
        conn = self._conns.get(end)
        if conn is not None and conn in self._dialled:
            self._dialled[conn] = True
            self._machine.hub_link_opened(conn, now)

    def stream_failed(self, end: StreamEnd, reason: str, now: float) -> None:
        """Report a failed dial, or a broken connection as a 1006 close."""
        conn = self._forget(end)
        if conn is None:
            return
        if self._dialled.pop(conn, True) is False:
            self._machine.hub_link_failed(conn, now, reason)
        else:
            self._machine.connection_closed(conn, now, code=CLOSE_ABNORMAL, reason=reason)

    def flush(self, now: float) -> None:
        """Perform `OpenHubLink`, `SendText`, `SendPing` and `Close`; report the events."""
        transport = self.transport
        for action in self._machine.drain_actions():
            if isinstance(action, ps.OpenHubLink):
                end = transport.open_stream(self, action.url)
                self._ends[action.connection] = end
                self._conns[end] = action.connection
                self._dialled[action.connection] = False
                continue
            end_or_none = self._ends.get(action.connection)
            if end_or_none is None:
                continue
            match action:
                case ps.SendText(text=text):
                    if self._on_frame is not None:
                        self._on_frame(self, end_or_none, text)
                    transport.send_text(end_or_none, text)
                case ps.SendPing():
                    transport.send_ping(end_or_none)
                case ps.Close(code=code, reason=reason):
                    transport.close_stream(end_or_none, code, reason, detach=False)
        for event in self._machine.drain_events():
            if self._on_event is not None:
                self._on_event(self, event, now)
            transport.emit(self, event)


# --- what crosses hub links -------------------------------------------------------------------


@dataclass(slots=True)
class HubFrameStats:
    """Frames sent over hub-to-hub connections.

    ``by_type``: frames per wire type. ``per_subject``: frames per ``(type, subject, link)``,
    where the subject is ``data.peerId`` for peer-discovered / peer-disconnected (hub
    self-descriptions excluded) and ``"from>target"`` for signaling relays, and the link is
    the sorted pair of hub names.
    """

    by_type: dict[str, int] = field(default_factory=dict)
    per_subject: dict[tuple[str, str, tuple[str, str]], int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """All hub-to-hub frames."""
        return sum(self.by_type.values())

    def add(self, src: str, dst: str, text: str) -> None:
        """Count one frame from hub `src` to hub `dst`."""
        try:
            msg = json.loads(text)
        except ValueError:
            msg = None
        kind = str(msg.get("type")) if isinstance(msg, dict) else "?"
        self.by_type[kind] = self.by_type.get(kind, 0) + 1
        subject = _subject(kind, msg) if isinstance(msg, dict) else None
        if subject is not None:
            pair = (src, dst) if src <= dst else (dst, src)
            key = (kind, subject, pair)
            self.per_subject[key] = self.per_subject.get(key, 0) + 1

    def crossings(self, kind: str, subject: str) -> dict[tuple[str, str], int]:
        """How often frames of `kind` about `subject` crossed each link."""
        return {
            link: n for (k, s, link), n in self.per_subject.items() if k == kind and s == subject
        }

    def subjects(self, kind: str) -> dict[str, int]:
        """Frames of `kind` per subject, over all links."""
        out: dict[str, int] = {}
        for (k, s, _), n in self.per_subject.items():
            if k == kind:
                out[s] = out.get(s, 0) + n
        return out

    def max_per_link(self, kind: str) -> int:
        """The most frames of `kind` about one subject that crossed one link."""
        return max((n for (k, _, _), n in self.per_subject.items() if k == kind), default=0)


def _subject(kind: str, msg: dict[str, object]) -> str | None:
    data = msg.get("data")
    if kind in ("peer-discovered", "peer-disconnected"):
        if isinstance(data, dict) and data.get("isHub") is not True:
            peer = data.get("peerId")
            return peer if isinstance(peer, str) else None
        return None
    if kind in ("offer", "answer", "ice-candidate", "connection-rejected"):
        return f"{msg.get('fromPeerId')}>{msg.get('targetPeerId')}"
    return None


# --- the federation ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FederatedHub:
    """Read-only view of one federated hub."""

    index: int
    name: str
    url: str
    node: FederatedHubNode

    @property
    def machine(self) -> ps.SignalingServer:
        """The hub machine, for read-only queries."""
        return self.node.machine

    @property
    def hub_id(self) -> PeerId:
        """The hub's own ID on other hubs."""
        hub_id = self.node.machine.hub_peer_id
        assert hub_id is not None  # every federated hub is a hub
        return hub_id

    def stats(self) -> ps.ServerStats:
        """The hub's counters."""
        return self.node.machine.stats()


class SimFederation:
    """`hubs` federated hubs linked by `edges`, and their clients, on one `SimNetwork`.

    Everything random comes from `seed`. Hub ``i`` is node ``h{i:02d}`` at
    ``ws://h{i:02d}:3000``; `hub_config` is the template of every hub (``is_hub``, name,
    port and bootstrap URLs are filled in) and `hub_configs` overrides it per hub index.
    The network is `net`: run it with ``net.run_until_idle``, ``net.run_for`` ...
    """

    def __init__(
        self,
        seed: int | str,
        hubs: int,
        edges: Sequence[Edge],
        *,
        hub_config: ps.ServerConfig | None = None,
        hub_configs: Mapping[int, ps.ServerConfig] | None = None,
        client_config: pc.ClientConfig | None = None,
        link: LinkConfig | None = None,
        keep_trace: bool = False,
        keep_events: bool = False,
    ) -> None:
        for a, b in edges:
            if not (0 <= b < hubs and 0 <= a < hubs and a != b):
                raise ValueError(f"bad edge {(a, b)} for {hubs} hubs")
        self.seed = seed
        self.edges = list(edges)
        self.net = SimNetwork(
            seed,
            client_config=client_config,
            link=link,
            keep_trace=keep_trace,
            keep_events=keep_events,
            hub_name="lobby",
        )
        self.frames = HubFrameStats()
        self.events: dict[str, dict[str, int]] = {}  # hub name -> event type -> count
        self.bootstrap_downs: list[tuple[str, ps.BootstrapDisconnected]] = []
        self.announced_at: dict[PeerId, float] = {}  # latest announcement, at its hub
        self.learnt_at: dict[tuple[str, PeerId], float] = {}  # (client, peer) -> first time
        self.lost_at: dict[tuple[str, PeerId], float] = {}  # (client, peer) -> latest PeerLeft
        self.offers_at: dict[tuple[str, PeerId], float] = {}  # (client, sender) -> latest offer
        self.hubs: list[FederatedHub] = []
        self._template = hub_config or ps.ServerConfig()
        self._overrides = dict(hub_configs or {})
        self._clients_by_name: dict[str, ClientHandle] = {}
        for i in range(hubs):
            self.add_hub(i)
        self.net.subscribe(self._on_trace)

    # --- building ---------------------------------------------------------------------------

    def hub_name(self, index: int) -> str:
        """The node name of hub `index`."""
        return f"h{index:02d}"

    def hub_url(self, index: int) -> str:
        """The URL of hub `index`."""
        return f"ws://{self.hub_name(index)}:{HUB_PORT}"

    def add_hub(self, index: int, config: ps.ServerConfig | None = None) -> FederatedHub:
        """Add hub `index` (it dials the acceptors of its `edges` at once)."""
        name = self.hub_name(index)
        base = config or self._overrides.get(index, self._template)
        cfg = replace(
            base,
            is_hub=True,
            host=name,
            port=HUB_PORT,
            bootstrap_hubs=tuple(self.hub_url(b) for a, b in self.edges if a == index),
        )
        machine = ps.SignalingServer(
            cfg,
            rng=random.Random(f"{self.seed}:rng:{name}"),
            entropy=SeededEntropy(f"{self.seed}:entropy:{name}"),
            now=self.net.now,
            wall_offset_s=self.net.clock.wall_offset_s,
        )
        node = FederatedHubNode(name, machine, on_frame=self._on_frame, on_event=self._on_event)
        self.net.add_node(node, host=f"{name}:{HUB_PORT}")
        hub = FederatedHub(index=index, name=name, url=self.hub_url(index), node=node)
        if index < len(self.hubs):
            raise ValueError(f"hub {index} exists")
        self.hubs.append(hub)
        self.events[name] = {}
        return hub

    def add_client(
        self,
        hub: int,
        network: str = "global",
        *,
        peer_id: str | None = None,
        config: pc.ClientConfig | None = None,
    ) -> ClientHandle:
        """Add a signaling client of hub `hub` in namespace `network` (it connects now)."""
        handle = self.net.add_client(peer_id, network, config=config, hub_url=self.hubs[hub].url)
        self._clients_by_name[handle.name] = handle
        return handle

    def send_offer(self, client: ClientHandle, target: PeerId, sdp: str) -> None:
        """The client sends a WebRTC offer to `target` through its hub, now."""
        now = self.net.now
        client.node.machine.send_offer(target, sdp, now)
        client.node.flush(now)

    # --- views ------------------------------------------------------------------------------

    def diameter(self) -> int:
        """The hub graph's diameter in hops."""
        return diameter(len(self.hubs), self.edges)

    def hub_of(self, client: ClientHandle) -> int:
        """The index of the hub a client connects to."""
        url = client.machine.config.urls[0]
        return next(h.index for h in self.hubs if h.url == url)

    def expected_peers(self, client: ClientHandle) -> set[PeerId]:
        """Every other live, open client of the same namespace (all hubs linked)."""
        return {
            c.peer_id
            for c in self.net.clients
            if c is not client
            and not c.removed
            and c.state is pc.ClientState.OPEN
            and c.network_name == client.network_name
        }

    def hub_link_count(self) -> int:
        """Links in the hub graph."""
        return len(self.edges)

    # --- observers --------------------------------------------------------------------------

    def _on_frame(self, node: FederatedHubNode, end: StreamEnd, text: str) -> None:
        if node.is_hub_stream(end):
            other = end.peer.node
            self.frames.add(node.name, other.name if other is not None else "?", text)

    def _on_event(self, node: FederatedHubNode, event: ps.ServerEvent, now: float) -> None:
        counts = self.events[node.name]
        key = type(event).__name__
        counts[key] = counts.get(key, 0) + 1
        if isinstance(event, ps.PeerAnnounced) and not event.is_hub:
            self.announced_at[event.peer_id] = now
        elif isinstance(event, ps.BootstrapDisconnected):
            self.bootstrap_downs.append((node.name, event))

    def _on_trace(self, entry: TraceEntry) -> None:
        at, node, text = entry
        found = _EVENT_PEER.match(text)
        if found is None or node not in self._clients_by_name:
            return
        if found.group(3) is not None:
            self.offers_at[(node, PeerId(found.group(3)))] = at
        elif found.group(1) == "PeerDiscovered":
            self.learnt_at.setdefault((node, PeerId(found.group(2))), at)
        else:
            self.lost_at[(node, PeerId(found.group(2)))] = at
