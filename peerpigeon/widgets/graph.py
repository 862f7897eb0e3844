"""The graph a mesh view draws: nodes, edges, statuses and message counters, as plain data.

A `GraphSource` is anything that can say what the mesh looks like *now* (`snapshot`) and
tell when that may have changed (`subscribe`). The simulator, one real peer and a hub all
feed the same widget through it. `encode_snapshot` turns a snapshot into the JSON the
browser side renders; `decode_snapshot` reads it back (strictly: it names the bad field).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol, TypeAlias, cast, get_args

__all__ = [
    "FORMAT_VERSION",
    "EdgeKind",
    "EdgeStatus",
    "GraphDecodeError",
    "GraphEdge",
    "GraphNode",
    "GraphSnapshot",
    "GraphSource",
    "NodeKind",
    "NodeStatus",
    "Unsubscribe",
    "decode_snapshot",
    "encode_snapshot",
    "snapshot_digest",
]

FORMAT_VERSION: Final = 1

NodeKind: TypeAlias = Literal["peer", "hub"]
"""A mesh peer or a signaling hub."""

NodeStatus: TypeAlias = Literal["online", "connecting", "offline", "known"]
"""``online``: connected; ``connecting``: on its way; ``offline``: lost or closed;
``known``: discovered but not connected to (what one peer knows of others)."""

EdgeKind: TypeAlias = Literal["signaling", "mesh", "hub", "discovered"]
"""``signaling``: a peer's WebSocket to a hub; ``mesh``: a WebRTC link between peers;
``hub``: a hub-to-hub federation link; ``discovered``: a peer learnt of through a hub."""

EdgeStatus: TypeAlias = Literal["up", "connecting", "cut"]
"""``cut``: the link exists but a partition holds or drops its traffic."""

Unsubscribe: TypeAlias = Callable[[], None]

_NODE_KINDS: Final = frozenset(get_args(NodeKind))
_NODE_STATUSES: Final = frozenset(get_args(NodeStatus))
_EDGE_KINDS: Final = frozenset(get_args(EdgeKind))
_EDGE_STATUSES: Final = frozenset(get_args(EdgeStatus))


@dataclass(frozen=True, slots=True, kw_only=True)
class GraphNode:
    """One node of the drawing.

    Attributes:
        id: stable key (a peer ID, or a hub's name); edges refer to it.
        label: short text drawn next to it.
        kind: peer or hub.
        status: how it is doing (colour).
        is_self: the peer whose view this is (highlighted).
        detail: free text for the tooltip (state, counts).
        messages: messages sent and received so far (monotonic while the node lives).
        discovered: how many peers it has discovered.
        group: a grouping key (namespace, partition side); empty for none.
    """

    id: str
    label: str
    kind: NodeKind = "peer"
    status: NodeStatus = "online"
    is_self: bool = False
    detail: str = ""
    messages: int = 0
    discovered: int = 0
    group: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class GraphEdge:
    """One link between two nodes (undirected: `a` and `b` in any order)."""

    a: str
    b: str
    kind: EdgeKind = "mesh"
    status: EdgeStatus = "up"
    messages: int = 0

    @property
    def key(self) -> tuple[str, str, EdgeKind]:
        """The edge's identity: sorted ends and kind."""
        lo, hi = (self.a, self.b) if self.a <= self.b else (self.b, self.a)
        return (lo, hi, self.kind)


@dataclass(frozen=True, slots=True, kw_only=True)
class GraphSnapshot:
    """What a mesh looks like at one moment.

    Attributes:
        time_s: the source's clock (virtual seconds for a simulation).
        nodes: every node, in a stable order.
        edges: every edge; both ends must be among `nodes`.
        counters: global figures shown beside the drawing (frames, drops, ...).
        title: a caption.
    """

    time_s: float = 0.0
    nodes: tuple[GraphNode, ...] = ()
    edges: tuple[GraphEdge, ...] = ()
    counters: Mapping[str, int | float] = field(default_factory=dict)
    title: str = ""

    def __post_init__(self) -> None:
        """Check that ids are unique and every edge's ends exist (raises `ValueError`)."""
        ids = {n.id for n in self.nodes}
        if len(ids) != len(self.nodes):
            raise ValueError("nodes: duplicate id")
        for edge in self.edges:
            if edge.a not in ids or edge.b not in ids:
                raise ValueError(f"edges: {edge.a!r}-{edge.b!r} refers to an unknown node")
            if edge.a == edge.b:
                raise ValueError(f"edges: {edge.a!r} links to itself")

    def node(self, node_id: str) -> GraphNode:
        """The node with this id (raises `KeyError`)."""
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)

    def edges_of_kind(self, kind: EdgeKind) -> tuple[GraphEdge, ...]:
        """The edges of one kind."""
        return tuple(e for e in self.edges if e.kind == kind)


class GraphSource(Protocol):
    """Something a mesh view can draw: a simulation, one real peer, a hub."""

    def snapshot(self) -> GraphSnapshot:
        """The graph now (a pure query; may be called at any time)."""
        ...

    def subscribe(self, callback: Callable[[], None]) -> Unsubscribe:
        """Call `callback()` whenever the graph may have changed; returns the unsubscribe.

        Callbacks may come in bursts (one per simulator event): the view coalesces them.
        A source that cannot tell returns a no-op and the view polls instead.
        """
        ...


# --- JSON ---------------------------------------------------------------------------------------


def encode_snapshot(snap: GraphSnapshot) -> dict[str, object]:
    """The snapshot as the JSON object the browser side renders (compact, stable order)."""
    return {
        "v": FORMAT_VERSION,
        "t": snap.time_s,
        "title": snap.title,
        "nodes": [
            {
                "id": n.id,
                "label": n.label,
                "kind": n.kind,
                "status": n.status,
                "self": n.is_self,
                "detail": n.detail,
                "msgs": n.messages,
                "disc": n.discovered,
                "group": n.group,
            }
            for n in snap.nodes
        ],
        "edges": [
            {"a": e.a, "b": e.b, "kind": e.kind, "status": e.status, "msgs": e.messages}
            for e in snap.edges
        ],
        "counters": dict(snap.counters),
    }


class GraphDecodeError(ValueError):
    """A graph JSON object is malformed; `field` names where."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def decode_snapshot(data: object) -> GraphSnapshot:
    """Read back what `encode_snapshot` wrote; raises `GraphDecodeError` on anything else."""
    obj = _object(data, "graph")
    if obj.get("v") != FORMAT_VERSION:
        raise GraphDecodeError("v", f"expected {FORMAT_VERSION}")
    nodes_raw = _list(obj.get("nodes"), "nodes")
    edges_raw = _list(obj.get("edges"), "edges")
    nodes: list[GraphNode] = []
    for i, raw in enumerate(nodes_raw):
        where = f"nodes[{i}]"
        n = _object(raw, where)
        kind = _choice(n.get("kind"), _NODE_KINDS, f"{where}.kind")
        status = _choice(n.get("status"), _NODE_STATUSES, f"{where}.status")
        nodes.append(
            GraphNode(
                id=_str(n.get("id"), f"{where}.id"),
                label=_str(n.get("label"), f"{where}.label"),
                kind=cast(NodeKind, kind),
                status=cast(NodeStatus, status),
                is_self=_bool(n.get("self"), f"{where}.self"),
                detail=_str(n.get("detail"), f"{where}.detail"),
                messages=_count(n.get("msgs"), f"{where}.msgs"),
                discovered=_count(n.get("disc"), f"{where}.disc"),
                group=_str(n.get("group"), f"{where}.group"),
            )
        )
    edges: list[GraphEdge] = []
    for i, raw in enumerate(edges_raw):
        where = f"edges[{i}]"
        e = _object(raw, where)
        kind = _choice(e.get("kind"), _EDGE_KINDS, f"{where}.kind")
        status = _choice(e.get("status"), _EDGE_STATUSES, f"{where}.status")
        edges.append(
            GraphEdge(
                a=_str(e.get("a"), f"{where}.a"),
                b=_str(e.get("b"), f"{where}.b"),
                kind=cast(EdgeKind, kind),
                status=cast(EdgeStatus, status),
                messages=_count(e.get("msgs"), f"{where}.msgs"),
            )
        )
    counters: dict[str, int | float] = {}
    for key, value in _object(obj.get("counters"), "counters").items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise GraphDecodeError(f"counters.{key}", "must be a number")
        counters[key] = value
    t = obj.get("t")
    if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t):
        raise GraphDecodeError("t", "must be a finite number")
    try:
        return GraphSnapshot(
            time_s=float(t),
            nodes=tuple(nodes),
            edges=tuple(edges),
            counters=counters,
            title=_str(obj.get("title"), "title"),
        )
    except ValueError as err:
        raise GraphDecodeError("graph", str(err)) from None


def snapshot_digest(snap: GraphSnapshot) -> tuple[int, int, int]:
    """``(nodes, edges, total edge messages)``: a quick fingerprint for tests and benchmarks."""
    return (len(snap.nodes), len(snap.edges), sum(e.messages for e in snap.edges))


def _object(value: object, where: str) -> dict[str, object]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise GraphDecodeError(where, "must be an object")
    return value


def _list(value: object, where: str) -> list[object]:
    if not isinstance(value, list):
        raise GraphDecodeError(where, "must be a list")
    return value


def _str(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise GraphDecodeError(where, "must be a string")
    return value


def _bool(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise GraphDecodeError(where, "must be a boolean")
    return value


def _count(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise GraphDecodeError(where, "must be a non-negative integer")
    return value


def _choice(value: object, allowed: frozenset[str], where: str) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise GraphDecodeError(where, f"must be one of {sorted(allowed)}")
    return value
