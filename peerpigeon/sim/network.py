"""`SimNetwork`: one signaling hub and many signaling clients on a virtual clock, from one seed.

The network carries out the machines' actions over in-memory links (see `links`), wakes
every node at its `next_deadline`, and records a trace of what happened. One seed gives one
trace, byte for byte (`trace_digest`). Nodes are `SimNode`s, so other machine types (the
mesh) plug in through `add_node`.

The trace is a list of ``(time, node, text)``. ``text`` is the ``repr`` of a machine event
(``PeerDiscovered(peer_id='…', …)``) or a fact about the network, written by the network:
``add c1 <peer id> <namespace>``, ``remove c1 graceful|crash|silent``, ``open #7 <url>``,
``accept #7 <path>``, ``opened #7``, ``closed #7 <code> '<reason>'``, ``failed #7
'<reason>'``, ``break #7 <reason>``, ``partition #1 hold [..] | [..]``, ``heal #1``,
a `call_at` label, and with ``trace_frames`` also ``recv #7 '<frame>'`` (``#7`` is a
stream number). The digest is the SHA-256 of one line per entry,
``f"{time!r} {node} {text}"`` and a newline.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields, replace
from typing import Final, TypeAlias

from peerpigeon.protocol import client as pc
from peerpigeon.protocol import server as ps
from peerpigeon.protocol.ids import PeerId, generate_peer_id
from peerpigeon.protocol.rand import SeededEntropy
from peerpigeon.protocol.wire import GLOBAL_NETWORK

from .clock import DEFAULT_WALL_OFFSET_S, Scheduler, VirtualClock
from .links import (
    Datagram,
    Link,
    LinkConfig,
    Partition,
    PartitionMode,
    PartitionTable,
    Stream,
    StreamEnd,
    StreamItem,
    StreamItemKind,
)
from .nodes import SignalingClientNode, SignalingServerNode, SimNode

__all__ = [
    "ClientHandle",
    "HubHandle",
    "NetworkCounters",
    "SimNetwork",
    "SimulationError",
    "TraceEntry",
]

TraceEntry: TypeAlias = tuple[float, str, str]
"""One trace line: ``(time, node name, text)``; the text is an event's ``repr`` or a fact."""

NET: Final = "net"  # the trace's name for facts about the network itself
DEFAULT_HUB_PORT: Final = 3000
_OPEN: Final = StreamItemKind.OPEN
_OPENED: Final = StreamItemKind.OPENED
_FRAME: Final = StreamItemKind.FRAME
_PING: Final = StreamItemKind.PING
_PONG: Final = StreamItemKind.PONG
_CLOSE: Final = StreamItemKind.CLOSE
_RESET: Final = StreamItemKind.RESET


class SimulationError(RuntimeError):
    """The simulation cannot go on (for example, a machine left a deadline in the past)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkCounters:
    """A snapshot of the network's counters."""

    steps: int
    timer_wakes: int
    frames_sent: int
    frames_delivered: int
    frames_dropped: int
    bytes_delivered: int
    pings_delivered: int
    pongs_delivered: int
    streams_opened: int
    streams_accepted: int
    streams_closed: int
    streams_aborted: int
    streams_broken: int
    items_held: int
    items_released: int
    datagrams_sent: int
    datagrams_delivered: int
    datagrams_dropped: int


@dataclass(slots=True)
class _Counters:
    steps: int = 0
    timer_wakes: int = 0
    frames_sent: int = 0
    frames_delivered: int = 0
    frames_dropped: int = 0
    bytes_delivered: int = 0
    pings_delivered: int = 0
    pongs_delivered: int = 0
    streams_opened: int = 0
    streams_accepted: int = 0
    streams_closed: int = 0
    streams_aborted: int = 0
    streams_broken: int = 0
    items_held: int = 0
    items_released: int = 0
    datagrams_sent: int = 0
    datagrams_delivered: int = 0
    datagrams_dropped: int = 0


class _Wake:
    __slots__ = ("node",)

    def __init__(self, node: SimNode) -> None:
        self.node = node


class _CloseTimeout:
    __slots__ = ("end",)

    def __init__(self, end: StreamEnd) -> None:
        self.end = end


class _Call:
    __slots__ = ("fn", "label")

    def __init__(self, fn: Callable[[], None], label: str) -> None:
        self.fn = fn
        self.label = label


_Item: TypeAlias = StreamItem | Datagram | _Wake | _CloseTimeout | _Call


class HubHandle:
    """Read-only view of the simulated hub."""

    def __init__(self, node: SignalingServerNode, url: str) -> None:
        self._node = node
        self.url = url

    @property
    def name(self) -> str:
        """The hub's node name."""
        return self._node.name

    @property
    def machine(self) -> ps.SignalingServer:
        """The server machine, for read-only queries."""
        return self._node.machine

    def stats(self) -> ps.ServerStats:
        """The server's counters."""
        return self._node.machine.stats()

    def network_members(self, network: str = GLOBAL_NETWORK) -> list[PeerId]:
        """Announced members of a namespace."""
        return self._node.machine.network_members(network)

    def peer_ids(self) -> list[PeerId]:
        """IDs of the registered connections."""
        return self._node.machine.peer_ids()

    def __repr__(self) -> str:
        return f"<HubHandle {self.name} {self.url}>"


class ClientHandle:
    """Read-only view of one simulated signaling client."""

    def __init__(self, node: SignalingClientNode) -> None:
        self._node = node

    @property
    def name(self) -> str:
        """The node name (``c1``, ``c2``, …), used in the trace and link seeds."""
        return self._node.name

    @property
    def node(self) -> SignalingClientNode:
        """The node (for `SimNetwork` calls that take nodes)."""
        return self._node

    @property
    def machine(self) -> pc.SignalingClient:
        """The client machine, for read-only queries."""
        return self._node.machine

    @property
    def peer_id(self) -> PeerId:
        """The client's peer ID."""
        return self._node.machine.peer_id

    @property
    def network_name(self) -> str:
        """The client's namespace."""
        return self._node.machine.config.network_name

    @property
    def state(self) -> pc.ClientState:
        """The client machine's state."""
        return self._node.machine.state

    @property
    def discovered_peers(self) -> tuple[PeerId, ...]:
        """Peers discovered in the current session, oldest first."""
        return self._node.machine.discovered_peers

    @property
    def events(self) -> tuple[pc.ClientEvent, ...]:
        """Every event the client emitted (empty when the network keeps no events)."""
        return tuple(self._node.events or ())

    @property
    def removed(self) -> bool:
        """Whether the client was removed from the network."""
        return self._node.removed

    def stats(self) -> pc.ClientStats:
        """The client's counters."""
        return self._node.machine.stats()

    def __repr__(self) -> str:
        return f"<ClientHandle {self.name} {self.peer_id[:8]} {self.state.value}>"


NodeRef: TypeAlias = "str | SimNode | ClientHandle | HubHandle"


class SimNetwork:
    """A deterministic network: one `SignalingServer`, N `SignalingClient`s, links, a clock.

    Everything random comes from `seed`: peer IDs (`SeededEntropy`), every machine's RNG,
    every link's RNG. Drive it with `step`, `run_until` or `run_until_idle`; change it with
    `add_client`, `remove_client`, `partition`, `heal`, `set_link`, `call_at`.

    Args:
        seed: the one seed.
        server_config: the hub's configuration.
        client_config: a template for every client (``peer_id``, ``urls`` and
            ``network_name`` are replaced per client).
        link: the default `LinkConfig` of every link; override per pair with `set_link`.
        wall_offset_s: wall-clock seconds at virtual time 0, handed to every machine.
        close_timeout_s: how long a node waits for the peer's close frame before it
            aborts the stream (as io/hub.py does).
        keep_trace: keep the trace entries (the digest is computed either way).
        trace_frames: also trace every delivered frame (large).
        keep_events: keep each client's events for `ClientHandle.events`.
        hub_name: the hub's node name; it is reached at ``ws://{hub_name}:3000``.
    """

    def __init__(
        self,
        seed: int | str = 0,
        *,
        server_config: ps.ServerConfig | None = None,
        client_config: pc.ClientConfig | None = None,
        link: LinkConfig | None = None,
        wall_offset_s: float = DEFAULT_WALL_OFFSET_S,
        close_timeout_s: float = 5.0,
        keep_trace: bool = True,
        trace_frames: bool = False,
        keep_events: bool = True,
        hub_name: str = "hub",
    ) -> None:
        if not math.isfinite(close_timeout_s) or close_timeout_s <= 0:
            raise ValueError("close_timeout_s must be a positive number")
        self.seed = seed
        self.clock = VirtualClock(wall_offset_s=wall_offset_s)
        self._queue: Scheduler[_Item] = Scheduler()
        self._default_link = link or LinkConfig()
        self._link_configs: dict[tuple[str, str], LinkConfig] = {}
        self._links: dict[tuple[str, str], Link] = {}
        self._partitions = PartitionTable()
        self._held: list[StreamItem | Datagram] = []
        self._close_timeout_s = close_timeout_s
        self._nodes: dict[str, SimNode] = {}
        self._hosts: dict[str, SimNode] = {}
        self._node_ends: dict[str, dict[StreamEnd, None]] = {}
        self._clients: list[ClientHandle] = []
        self._client_template = client_config
        self._keep_events = keep_events
        self._id_entropy = SeededEntropy(f"{seed}:peer-ids")
        self._next_stream = 0
        self._in_flight = 0
        self._count = _Counters()
        self._event_counts: dict[str, int] = {}
        self._frame_types: dict[str, int] = {}
        self._event_keys: dict[type, str] = {}
        self._trace: list[TraceEntry] | None = [] if keep_trace else None
        self._trace_frames = trace_frames
        self._digest = hashlib.sha256()
        self._trace_len = 0
        self._subscribers: list[Callable[[TraceEntry], None]] = []

        server = ps.SignalingServer(
            server_config,
            rng=random.Random(f"{seed}:rng:{hub_name}"),
            entropy=SeededEntropy(f"{seed}:entropy:{hub_name}"),
            now=self.clock.now,
            wall_offset_s=wall_offset_s,
        )
        hub_node = SignalingServerNode(hub_name, server)
        host = f"{hub_name}:{DEFAULT_HUB_PORT}"
        self.add_node(hub_node, host=host)
        self.hub = HubHandle(hub_node, f"ws://{host}")

    # --- clock --------------------------------------------------------------------------------

    @property
    def now(self) -> float:
        """Virtual time in seconds."""
        return self.clock.now

    # --- building the network -----------------------------------------------------------------

    def add_node(self, node: SimNode, *, host: str | None = None) -> SimNode:
        """Add any node; with `host` (``"name:port"``) it accepts streams opened to that host."""
        if node.name in self._nodes or node.name == NET:
            raise ValueError(f"node name {node.name!r} is taken")
        if host is not None and host in self._hosts:
            raise ValueError(f"host {host!r} is taken")
        node.attach(self)
        self._nodes[node.name] = node
        self._node_ends[node.name] = {}
        if host is not None:
            self._hosts[host] = node
        self._arm(node)
        return node

    def add_client(
        self,
        peer_id: str | None = None,
        network_name: str = GLOBAL_NETWORK,
        *,
        name: str | None = None,
        config: pc.ClientConfig | None = None,
        connect: bool = True,
        hub_url: str | None = None,
    ) -> ClientHandle:
        """Add a signaling client and (by default) start connecting it now.

        The peer ID comes from the seeded entropy unless given. `config` overrides the
        network's client template for this client. `hub_url` is the hub it connects to (the
        network's own by default; `peerpigeon.sim.federation` adds other hubs).
        """
        if name is None:
            index = len(self._clients) + 1
            while f"c{index}" in self._nodes:
                index += 1
            name = f"c{index}"
        elif name in self._nodes or name == NET:
            raise ValueError(f"node name {name!r} is taken")
        pid = PeerId(peer_id) if peer_id is not None else generate_peer_id(self._id_entropy)
        template = config or self._client_template
        urls = (hub_url or self.hub.url,)
        if template is None:
            cfg = pc.ClientConfig(peer_id=pid, urls=urls, network_name=network_name)
        else:
            cfg = replace(template, peer_id=pid, urls=urls, network_name=network_name)
        machine = pc.SignalingClient(
            cfg,
            rng=random.Random(f"{self.seed}:rng:{name}"),
            wall_offset_s=self.clock.wall_offset_s,
        )
        node = SignalingClientNode(name, machine, keep_events=self._keep_events)
        self.add_node(node)
        handle = ClientHandle(node)
        self._clients.append(handle)
        self._note(NET, f"add {name} {pid} {network_name}")
        if connect:
            machine.connect(self.now)
            self._poke(node)
        return handle

    def connect_client(self, handle: ClientHandle) -> None:
        """Ask an idle or closed client to connect now."""
        handle.node.machine.connect(self.now)
        self._poke(handle.node)

    def remove_client(
        self, handle: ClientHandle, graceful: bool = True, *, silent: bool = False
    ) -> None:
        """Take a client away.

        ``graceful``: the client says goodbye and closes its socket (`disconnect`).
        Otherwise it crashes: its socket is reset, so the hub sees a 1006 close after one
        link delay, or, with ``silent``, the host just vanishes and the hub only notices
        through its own ping timeout.
        """
        node = handle.node
        if node.removed:
            return
        if graceful:
            self._note(NET, f"remove {node.name} graceful")
            node.machine.disconnect(self.now)
            self._poke(node)
        else:
            self._note(NET, f"remove {node.name} {'silent' if silent else 'crash'}")
            node.crashed(self.now)
        self._remove_node(node, silent=silent)

    def set_link(self, a: NodeRef, b: NodeRef, config: LinkConfig) -> None:
        """Give the link between `a` and `b` its own config (its RNG is unchanged)."""
        key = _pair(_name(a), _name(b))
        self._link_configs[key] = config
        existing = self._links.get(key)
        if existing is not None:
            existing.config = config

    def link(self, a: NodeRef, b: NodeRef) -> Link:
        """The link between two nodes (created on first use)."""
        key = _pair(_name(a), _name(b))
        found = self._links.get(key)
        if found is None:
            config = self._link_configs.get(key, self._default_link)
            found = self._links[key] = Link(key[0], key[1], config, self.seed)
        return found

    # --- partitions ---------------------------------------------------------------------------

    def partition(
        self,
        group_a: Iterable[NodeRef],
        group_b: Iterable[NodeRef],
        mode: PartitionMode | str = PartitionMode.HOLD,
    ) -> Partition:
        """Cut every link between the two groups until `heal` (see `PartitionMode`)."""
        mode = PartitionMode(mode)
        part = self._partitions.add([_name(x) for x in group_a], [_name(x) for x in group_b], mode)
        self._note(
            NET,
            f"partition #{part.id} {mode.value} {sorted(part.group_a)} | {sorted(part.group_b)}",
        )
        return part

    def heal(self, partition: Partition | None = None) -> None:
        """End one partition (or all) and release the traffic they held."""
        if partition is None:
            for part in self._partitions.clear():
                self._note(NET, f"heal #{part.id}")
        elif self._partitions.remove(partition.id):
            self._note(NET, f"heal #{partition.id}")
        self._release_held()

    @property
    def partitions(self) -> tuple[Partition, ...]:
        """The active partitions."""
        return self._partitions.active

    # --- running ------------------------------------------------------------------------------

    def call_at(self, at: float, fn: Callable[[], None], label: str = "call") -> None:
        """Run `fn()` at virtual time `at` (for scripted scenarios); traced as `label`."""
        if at < self.now:
            raise ValueError("cannot schedule in the past")
        self._queue.push(at, _Call(fn, label))

    def step(self) -> bool:
        """Process the next scheduled item; returns ``False`` when nothing is scheduled."""
        if not self._queue:
            return False
        at, item = self._queue.pop()
        self.clock.advance_to(at)
        self._count.steps += 1
        self._fire(item, at)
        return True

    def run_until(self, t: float) -> None:
        """Process everything scheduled up to and including `t`, then set the clock to `t`."""
        if t < self.now:
            raise ValueError(f"time moves forward only: {t!r} < {self.now!r}")
        queue = self._queue
        while queue:
            nxt = queue.peek_time()
            if nxt is None or nxt > t:
                break
            self.step()
        self.clock.advance_to(t)

    def run_for(self, dt: float) -> None:
        """`run_until` ``now + dt``."""
        self.run_until(self.now + dt)

    def run_until_idle(self, max_time: float) -> bool:
        """Run until no traffic is in flight (timers may still be pending) or `max_time`.

        Returns whether the network went idle; on ``False`` the clock stands at `max_time`.
        Traffic held by a partition does not count as in flight.
        """
        queue = self._queue
        while self._in_flight:
            nxt = queue.peek_time()
            if nxt is None or nxt > max_time:
                self.clock.advance_to(max(max_time, self.now))
                return False
            self.step()
        return True

    @property
    def in_flight(self) -> int:
        """Messages on the wire (and pending close timeouts)."""
        return self._in_flight

    @property
    def pending(self) -> int:
        """Items scheduled, timers included (some may be stale)."""
        return len(self._queue)

    # --- views --------------------------------------------------------------------------------

    @property
    def clients(self) -> tuple[ClientHandle, ...]:
        """Every client ever added, in order (removed ones included)."""
        return tuple(self._clients)

    def client(self, name: str) -> ClientHandle:
        """The client with this node name."""
        for handle in self._clients:
            if handle.name == name:
                return handle
        raise KeyError(name)

    @property
    def nodes(self) -> tuple[SimNode, ...]:
        """Every node, hub first."""
        return tuple(self._nodes.values())

    def deadlines(self) -> dict[str, float | None]:
        """Each live node's next deadline, by name."""
        return {n.name: n.next_deadline() for n in self._nodes.values() if not n.removed}

    def counters(self) -> NetworkCounters:
        """A snapshot of the counters."""
        c = self._count
        return NetworkCounters(**{f.name: getattr(c, f.name) for f in fields(c)})

    def event_counts(self) -> dict[str, int]:
        """Machine events by ``module.Type`` (e.g. ``client.PeerDiscovered``), first seen first."""
        return dict(self._event_counts)

    def frame_counts(self) -> dict[str, int]:
        """Frames sent, by wire ``type`` (``"?"`` when the frame does not start with one)."""
        return dict(self._frame_types)

    def subscribe(self, callback: Callable[[TraceEntry], None]) -> None:
        """Call `callback` with every new trace entry (for live views such as widgets)."""
        self._subscribers.append(callback)

    @property
    def trace(self) -> list[TraceEntry]:
        """The trace entries (empty when the network was built with ``keep_trace=False``)."""
        return list(self._trace or ())

    @property
    def trace_length(self) -> int:
        """How many entries the trace has (kept or not)."""
        return self._trace_len

    def trace_digest(self) -> str:
        """SHA-256 (hex) of the trace: one ``f"{time!r} {node} {text}"`` line per entry."""
        return self._digest.hexdigest()

    # --- Transport: what nodes ask for --------------------------------------------------------

    def open_stream(self, node: SimNode, url: str) -> StreamEnd:
        """Start a WebSocket from `node` to the host in `url` (``ws://host:port/path``)."""
        host, path = _split_url(url)
        target = self._hosts.get(host)
        target_name = target.name if target is not None else host
        self._next_stream += 1
        stream = Stream(
            self._next_stream, self.link(node.name, target_name), node, target_name, path
        )
        end = stream.ends[0]
        self._node_ends[node.name][end] = None
        self._count.streams_opened += 1
        self._note(node.name, f"open #{stream.id} {url}")
        self._send(stream, 0, _OPEN)
        return end

    def send_text(self, end: StreamEnd, data: str | bytes) -> None:
        """Send one frame from `end`."""
        stream = end.stream
        if stream.dead or stream.close_sent[end.side] or not end.attached:
            self._count.frames_dropped += 1
            return
        self._count.frames_sent += 1
        key = _frame_type(data)
        self._frame_types[key] = self._frame_types.get(key, 0) + 1
        self._send(stream, end.side, _FRAME, data=data)

    def send_ping(self, end: StreamEnd) -> None:
        """Send a WebSocket ping from `end`."""
        stream = end.stream
        if not stream.dead and not stream.close_sent[end.side] and end.attached:
            self._send(stream, end.side, _PING)

    def close_stream(self, end: StreamEnd, code: int, reason: str, *, detach: bool) -> None:
        """Send a close frame from `end` (abort if the stream never opened at this end)."""
        stream = end.stream
        if stream.dead or stream.close_sent[end.side] or not end.attached:
            if detach:
                self._detach(end)
            return
        if end.side == 0 and not end.opened:
            self.abort_stream(end, reason)
            return
        stream.close_sent[end.side] = True
        self._count.streams_closed += 1
        self._send(stream, end.side, _CLOSE, code=code, reason=reason)
        if detach:
            self._detach(end)
        else:
            self._in_flight += 1
            self._queue.push(self.now + self._close_timeout_s, _CloseTimeout(end))

    def abort_stream(self, end: StreamEnd, reason: str) -> None:
        """Drop the connection at `end`; the other end sees 1006 when the reset arrives."""
        self._detach(end)
        stream = end.stream
        if not stream.dead and not stream.close_sent[end.side]:
            stream.close_sent[end.side] = True
            self._count.streams_aborted += 1
            self._send(stream, end.side, _RESET, reason=reason)

    def send_datagram(self, src: SimNode, dst: str, payload: bytes) -> None:
        """Send one unordered, unreliable datagram from `src` to node `dst`."""
        link = self.link(src.name, dst)
        self._count.datagrams_sent += 1
        self._in_flight += 1
        self._queue.push(
            self.now + link.delay(), Datagram(link, src.name, dst, payload, link.lost())
        )

    def emit(self, node: SimNode, event: object) -> None:
        """Trace and count one machine event."""
        cls = type(event)
        key = self._event_keys.get(cls)
        if key is None:
            key = self._event_keys[cls] = f"{cls.__module__.rsplit('.', 1)[-1]}.{cls.__qualname__}"
        self._event_counts[key] = self._event_counts.get(key, 0) + 1
        self._note(node.name, repr(event))

    # --- internals: scheduling ----------------------------------------------------------------

    def _send(
        self,
        stream: Stream,
        from_side: int,
        kind: StreamItemKind,
        *,
        data: str | bytes = "",
        code: int = 0,
        reason: str = "",
    ) -> None:
        at, item = stream.schedule(from_side, kind, self.now, data=data, code=code, reason=reason)
        self._in_flight += 1
        self._queue.push(at, item)

    def _poke(self, node: SimNode) -> None:
        """After an input: drain the node, then make sure its deadline is scheduled."""
        node.flush(self.now)
        self._arm(node)

    def _arm(self, node: SimNode) -> None:
        # Invariant: a live node with a deadline d has a wake-up queued at or before d.
        deadline = node.next_deadline()
        if deadline is None or node.removed:
            return
        if node.wake_at is None or deadline < node.wake_at:
            at = max(deadline, self.now)
            node.wake_at = at
            self._queue.push(at, _Wake(node))

    def _fire(self, item: _Item, now: float) -> None:
        if isinstance(item, StreamItem):  # by far the most frequent
            self._in_flight -= 1
            self._fire_stream(item, now)
        elif isinstance(item, _Wake):
            self._fire_wake(item.node, now)
        elif isinstance(item, Datagram):
            self._in_flight -= 1
            self._fire_datagram(item, now)
        elif isinstance(item, _CloseTimeout):
            self._in_flight -= 1
            end = item.end
            if end.attached:  # the peer's close never came: abort, as io/hub.py does
                node = end.node
                self.abort_stream(end, "close timeout")
                if node is not None:
                    self._note(node.name, f"failed #{end.stream.id} 'close timeout'")
                    node.stream_failed(end, "close timeout", now)
                    self._poke(node)
        else:
            self._note(NET, item.label)
            item.fn()

    def _fire_wake(self, node: SimNode, now: float) -> None:
        if node.removed:
            return
        if node.wake_at == now:
            node.wake_at = None
        deadline = node.next_deadline()
        if deadline is None:
            return
        if deadline > now:
            self._arm(node)  # the deadline moved later: a stale wake-up
            return
        self._count.timer_wakes += 1
        node.handle_timer(now)
        node.flush(now)
        after = node.next_deadline()
        if after is not None and after <= now:
            raise SimulationError(
                f"{node.name}: deadline {after!r} not after now={now!r} after handle_timer"
            )
        self._arm(node)

    def _fire_stream(self, item: StreamItem, now: float) -> None:
        stream = item.stream
        if stream.dead:
            if item.kind is _FRAME:
                self._count.frames_dropped += 1
            return
        if self._partitions:
            link = stream.link
            mode = self._partitions.mode_between(link.a, link.b)
            if mode is PartitionMode.HOLD:
                self._count.items_held += 1
                self._held.append(item)
                return
            if mode is PartitionMode.DROP:
                self._break(stream, "partitioned", now)
                return
        if item.lost:
            self._break(stream, "connection lost", now)
            return
        side = item.to_side
        if item.seq != stream.expect[side]:
            stream.buffers[side][item.seq] = item  # early: wait for the ones before it
            return
        self._deliver(item, now)
        stream.expect[side] = item.seq + 1
        buffered = stream.buffers[side]
        while buffered and not stream.dead:
            nxt = buffered.pop(stream.expect[side], None)
            if nxt is None:
                break
            self._deliver(nxt, now)
            stream.expect[side] = nxt.seq + 1

    def _deliver(self, item: StreamItem, now: float) -> None:
        stream = item.stream
        side = item.to_side
        end = stream.ends[side]
        kind = item.kind
        if kind is _OPEN:
            self._accept(stream, now)
            return
        node = end.node
        if not end.attached or node is None:
            if kind is _FRAME:
                self._count.frames_dropped += 1
            return
        if kind is _FRAME:
            self._count.frames_delivered += 1
            self._count.bytes_delivered += len(item.data)
            if self._trace_frames:
                self._note(node.name, f"recv #{stream.id} {item.data!r}")
            node.stream_frame(end, item.data, now)
        elif kind is _OPENED:
            end.opened = True
            self._note(node.name, f"opened #{stream.id}")
            node.stream_opened(end, now)
        elif kind is _PING:
            self._count.pings_delivered += 1
            if not stream.close_sent[side]:
                self._send(stream, side, _PONG)  # the WebSocket layer answers, not the machine
            return
        elif kind is _PONG:
            self._count.pongs_delivered += 1
            node.stream_pong(end, now)
        elif kind is _CLOSE:
            if not stream.close_sent[side]:  # echo the close, as RFC 6455 asks
                stream.close_sent[side] = True
                self._send(stream, side, _CLOSE, code=item.code, reason=item.reason)
            self._detach(end)
            self._note(node.name, f"closed #{stream.id} {item.code} {item.reason!r}")
            node.stream_closed(end, item.code, item.reason, now)
        else:
            self._detach(end)
            self._note(node.name, f"failed #{stream.id} {item.reason!r}")
            node.stream_failed(end, item.reason, now)
        self._poke(node)

    def _accept(self, stream: Stream, now: float) -> None:
        opener = stream.ends[0]
        if not opener.attached:
            stream.dead = True  # aborted before the handshake got through
            return
        target = self._nodes.get(stream.target)
        if target is None or target.removed:
            stream.close_sent[1] = True
            self._send(stream, 1, _RESET, reason="connection refused")
            return
        end = stream.ends[1]
        end.node = target
        end.attached = True
        end.opened = True
        self._node_ends[target.name][end] = None
        self._count.streams_accepted += 1
        self._send(stream, 1, _OPENED)  # the handshake answer travels before any frame
        self._note(target.name, f"accept #{stream.id} {stream.path}")
        target.stream_incoming(end, stream.path, now)
        self._poke(target)

    def _fire_datagram(self, item: Datagram, now: float) -> None:
        if self._partitions:
            mode = self._partitions.mode_between(item.link.a, item.link.b)
            if mode is PartitionMode.HOLD:
                self._count.items_held += 1
                self._held.append(item)
                return
            if mode is PartitionMode.DROP:
                self._count.datagrams_dropped += 1
                return
        node = self._nodes.get(item.dst)
        if item.lost or node is None or node.removed:
            self._count.datagrams_dropped += 1
            return
        self._count.datagrams_delivered += 1
        node.datagram_received(item.src, item.payload, now)
        self._poke(node)

    def _break(self, stream: Stream, reason: str, now: float) -> None:
        """The connection died: every end still attached hears 1006 now."""
        stream.dead = True
        self._count.streams_broken += 1
        self._note(NET, f"break #{stream.id} {reason}")
        for end in stream.ends:
            node = end.node
            if end.attached and node is not None:
                self._detach(end)
                self._note(node.name, f"failed #{stream.id} {reason!r}")
                node.stream_failed(end, reason, now)
                self._poke(node)

    def _release_held(self) -> None:
        held, self._held = self._held, []
        now = self.now
        for item in held:
            link = item.stream.link if isinstance(item, StreamItem) else item.link
            if self._partitions.mode_between(link.a, link.b) is not None:
                self._held.append(item)
                continue
            self._count.items_released += 1
            self._in_flight += 1
            if isinstance(item, StreamItem):
                self._queue.push(item.stream.reschedule(item, now), item)
            else:
                self._queue.push(now + link.delay(), item)

    def _detach(self, end: StreamEnd) -> None:
        end.attached = False
        if end.node is not None:
            self._node_ends[end.node.name].pop(end, None)

    def _remove_node(self, node: SimNode, *, silent: bool) -> None:
        for end in list(self._node_ends[node.name]):
            if silent:
                self._detach(end)
            else:
                self.abort_stream(end, "peer crashed")
        node.removed = True
        node.wake_at = None
        for host, owner in list(self._hosts.items()):
            if owner is node:
                del self._hosts[host]

    def _note(self, node: str, text: str) -> None:
        now = self.clock.now
        if self._trace is not None:
            self._trace.append((now, node, text))
        self._trace_len += 1
        self._digest.update(f"{now!r} {node} {text}\n".encode())
        for callback in self._subscribers:
            callback((now, node, text))


# --- helpers ----------------------------------------------------------------------------------


def _name(ref: NodeRef) -> str:
    if isinstance(ref, str):
        return ref
    return ref.name


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


def _split_url(url: str) -> tuple[str, str]:
    """``ws://host:port/path?q`` -> ``("host:port", "/path?q")``."""
    rest = url.split("://", 1)[-1]
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    host, path = rest[:cut], rest[cut:]
    if not path.startswith("/"):
        path = "/" + path
    return host, path


def _frame_type(data: str | bytes) -> str:
    # Observability only: encode_message writes "type" first, as JS JSON.stringify does.
    if isinstance(data, str) and data.startswith('{"type":"'):
        end = data.find('"', 9)
        if end > 9:
            return data[9:end]
    return "?"
