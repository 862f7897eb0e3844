"""`GossipSim`: the gossip layer of N peers on a fixed overlay, on a virtual clock, at scale.

It drives one `Gossip` machine per peer (the machine the `Mesh` composes) over fake data
channels: ordered, with a per-pair latency and jitter, optional datagram loss, and churn
(peers that crash or leave; their neighbours hear of it after ``detect_s``, as a real
channel's close or ICE timeout would tell them). The overlay comes from
`overlay.build_overlay` (the topology rules without the hub), so 10,000 peers run in
seconds. It uses only the machines' public surface; one seed gives one trace.

Loss applies to text frames only: a binary header and its payload are one unit for a real,
reliable data channel, and losing one half would break the pairing no real channel breaks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

from peerpigeon.protocol.gossip import (
    BinaryMessageReceived,
    Gossip,
    GossipAction,
    GossipConfig,
    GossipEvent,
    GossipRejected,
    GossipStats,
    MessageReceived,
)
from peerpigeon.protocol.ids import PeerId
from peerpigeon.protocol.rand import SeededEntropy

from .clock import DEFAULT_WALL_OFFSET_S
from .loop import MachineSim

__all__ = ["Delivery", "GossipSim", "GossipSimError"]

T = TypeVar("T")

_MAX_MESSAGE_SIZE = 262_144


class GossipSimError(RuntimeError):
    """A machine broke a rule the simulator checks (a deadline left in the past)."""


@dataclass(slots=True)
class Delivery:
    """What became of one message: who delivered it, how often, after how many hops."""

    origin: PeerId
    sent_at: float
    target: PeerId | None = None  # direct messages
    counts: dict[PeerId, int] = field(default_factory=dict)
    hops: dict[PeerId, int] = field(default_factory=dict)  # first delivery's hop count
    at: dict[PeerId, float] = field(default_factory=dict)  # first delivery's time

    @property
    def duplicates(self) -> int:
        """Deliveries beyond the first, over all peers (must be 0)."""
        return sum(n - 1 for n in self.counts.values() if n > 1)


class _Node:
    __slots__ = ("alive", "gossip", "links", "peer", "wake_at")

    def __init__(self, peer: PeerId, gossip: Gossip) -> None:
        self.peer = peer
        self.gossip = gossip
        self.alive = True
        self.links: dict[PeerId, float] = {}  # neighbour -> last delivery time towards it
        self.wake_at: float | None = None


class GossipSim(MachineSim[_Node, GossipAction, GossipEvent]):
    """Gossip machines on a fixed overlay; see the module docstring.

    Args:
        graph: every peer and its neighbours (links are made symmetric).
        seed: the one seed (entropy, latencies, loss).
        config: every peer's `GossipConfig`.
        latency_s, jitter_s: one-way delay of a frame is ``latency + U[0, jitter)``.
        loss: probability that a text frame is lost on the way (0..1).
        detect_s: how long the neighbours of a crashed peer take to notice.
        max_message_size: the data channels' negotiated maximum.
        wall_offset_s: wall-clock seconds at virtual time 0.
        digest: hash every delivery into `trace_digest`.
    """

    _error = GossipSimError

    def __init__(
        self,
        graph: Mapping[PeerId, Sequence[PeerId]],
        *,
        seed: int | str = 0,
        config: GossipConfig | None = None,
        latency_s: float = 0.02,
        jitter_s: float = 0.01,
        loss: float = 0.0,
        detect_s: float = 1.0,
        max_message_size: int = _MAX_MESSAGE_SIZE,
        wall_offset_s: float = DEFAULT_WALL_OFFSET_S,
        digest: bool = True,
    ) -> None:
        if not 0.0 <= loss < 1.0:
            raise ValueError("loss must be in [0, 1)")
        super().__init__(
            seed,
            latency_s=latency_s,
            jitter_s=jitter_s,
            wall_offset_s=wall_offset_s,
            digest=digest,
        )
        self.config = config or GossipConfig()
        self._loss = loss
        self._detect_s = detect_s
        self._max_message_size = max_message_size
        self._nodes: dict[PeerId, _Node] = {}
        self.deliveries: dict[str, Delivery] = {}
        self.rejections: list[tuple[PeerId, GossipRejected]] = []
        self.frames_sent = 0
        self.frames_lost = 0
        for peer in graph:
            self._add(peer)
        for peer, neighbours in graph.items():
            for other in neighbours:
                if other != peer and other in self._nodes:
                    self._connect(peer, other)
        for node in self._nodes.values():
            self._pump(node)

    # --- peers ---------------------------------------------------------------------------

    @property
    def peers(self) -> tuple[PeerId, ...]:
        """Every peer, in the order of the graph."""
        return tuple(self._nodes)

    def live_peers(self) -> tuple[PeerId, ...]:
        """The peers that have not crashed or left."""
        return tuple(p for p, n in self._nodes.items() if n.alive)

    def gossip(self, peer: PeerId) -> Gossip:
        """One peer's machine (for read-only queries: `stats`, `neighbours`, ...)."""
        return self._nodes[peer].gossip

    def stats(self, peer: PeerId) -> GossipStats:
        """One peer's counters."""
        return self._nodes[peer].gossip.stats()

    def graph(self) -> dict[PeerId, tuple[PeerId, ...]]:
        """The live peers and their live links."""
        return {
            p: tuple(o for o in n.links if self._nodes[o].alive)
            for p, n in self._nodes.items()
            if n.alive
        }

    def act(self, peer: PeerId, call: Callable[[Gossip, float], T]) -> T:
        """Make an application call on `peer`'s machine now, then carry out what it queued."""
        node = self._nodes[peer]
        if not node.alive:
            raise GossipSimError(f"{peer[:8]} is gone")
        result = call(node.gossip, self.now)
        self._pump(node)
        return result

    def broadcast(self, peer: PeerId, content: str = "hello mesh") -> str:
        """`peer` floods a chat message; returns its id (tracked in `deliveries`)."""
        msg_id = self.act(peer, lambda g, now: g.broadcast(content, now))
        self.deliveries[msg_id] = Delivery(origin=peer, sent_at=self.now)
        return msg_id

    def send_direct(self, peer: PeerId, to: PeerId, content: str = "hi") -> str:
        """`peer` sends a routed direct message to `to`; returns its id."""
        msg_id = self.act(peer, lambda g, now: g.send_direct(to, content, now))
        self.deliveries[msg_id] = Delivery(origin=peer, sent_at=self.now, target=to)
        return msg_id

    def broadcast_binary(self, peer: PeerId, data: bytes) -> str:
        """`peer` floods binary data to the Python peers; returns its id."""
        msg_id = self.act(peer, lambda g, now: g.broadcast_binary(data, now))
        self.deliveries[msg_id] = Delivery(origin=peer, sent_at=self.now)
        return msg_id

    def crash(self, peer: PeerId) -> None:
        """`peer` stops now; its neighbours notice after ``detect_s``."""
        self._remove(peer, self._detect_s)

    def leave(self, peer: PeerId) -> None:
        """`peer` closes its channels now; its neighbours notice one latency later."""
        self._remove(peer, self._latency_s)

    # --- internals -------------------------------------------------------------------------

    def _add(self, peer: PeerId) -> None:
        gossip = Gossip(
            peer,
            self.config,
            entropy=SeededEntropy(f"{self.seed}:entropy:{peer}"),
            wall_offset_s=self.clock.wall_offset_s,
        )
        self._nodes[peer] = _Node(peer, gossip)

    def _connect(self, a: PeerId, b: PeerId) -> None:
        na, nb = self._nodes[a], self._nodes[b]
        if b in na.links:
            return
        na.links[b] = 0.0
        nb.links[a] = 0.0
        na.gossip.peer_connected(b, self._max_message_size, self.now)
        nb.gossip.peer_connected(a, self._max_message_size, self.now)

    def _remove(self, peer: PeerId, notice_s: float) -> None:
        node = self._nodes[peer]
        if not node.alive:
            return
        node.alive = False
        node.wake_at = None
        for other in node.links:
            self._queue.push(self.now + notice_s, partial(self._lost, other, peer))

    def _lost(self, peer: PeerId, gone: PeerId) -> None:
        node = self._nodes[peer]
        if node.alive and gone in node.links:
            del node.links[gone]
            node.gossip.peer_lost(gone, self.now)
            self._pump(node)

    def _machine(self, node: _Node) -> Gossip:
        return node.gossip

    def _label(self, node: _Node) -> str:
        return node.peer[:8]

    def _perform(self, node: _Node, action: GossipAction) -> None:
        to, data = action.peer, action.data
        if to not in node.links:
            return  # the channel is gone: a real one refuses to send
        self.frames_sent += 1
        lossy = self._loss and isinstance(data, str)
        if lossy and self._pair_rng(node.peer, to).random() < self._loss:
            self.frames_lost += 1
            return
        at = max(self.now + self._delay(node.peer, to), node.links[to])
        node.links[to] = at
        self._queue.push(at, partial(self._deliver, node.peer, to, data))

    def _deliver(self, sender: PeerId, to: PeerId, data: str | bytes) -> None:
        node = self._nodes[to]
        if not node.alive or sender not in node.links:
            return
        if isinstance(data, str):
            node.gossip.receive_text(sender, data, self.now)
        else:
            node.gossip.receive_binary(sender, data, self.now)
        self._pump(node)

    def _record(self, node: _Node, event: GossipEvent) -> None:
        match event:
            case MessageReceived(message_id=msg_id, hops=hops):
                self._count(node.peer, msg_id, int(hops))
            case BinaryMessageReceived(message_id=msg_id, hops=hops):
                if msg_id is not None:
                    self._count(node.peer, msg_id, hops)
            case GossipRejected():
                self.rejections.append((node.peer, event))
        self._trace(node.peer, event)

    def _count(self, peer: PeerId, msg_id: str, hops: int) -> None:
        record = self.deliveries.get(msg_id)
        if record is None:
            return
        n = record.counts.get(peer, 0)
        record.counts[peer] = n + 1
        if n == 0:
            record.hops[peer] = hops
            record.at[peer] = self.now
