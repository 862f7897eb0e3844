"""The graph model: snapshot validation, the JSON the browser renders, strict decoding."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from peerpigeon.widgets import (
    GraphDecodeError,
    GraphEdge,
    GraphNode,
    GraphSnapshot,
    decode_snapshot,
    encode_snapshot,
)
from peerpigeon.widgets.graph import snapshot_digest

_ids = st.text(alphabet="0123456789abcdef", min_size=1, max_size=6)
_text = st.text(max_size=12)
_count = st.integers(min_value=0, max_value=10**9)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
)


@st.composite
def snapshots(draw: st.DrawFn) -> GraphSnapshot:
    ids = draw(st.lists(_ids, unique=True, max_size=12))
    nodes = tuple(
        GraphNode(
            id=i,
            label=draw(_text),
            kind=draw(st.sampled_from(["peer", "hub"])),
            status=draw(st.sampled_from(["online", "connecting", "offline", "known"])),
            is_self=draw(st.booleans()),
            detail=draw(_text),
            messages=draw(_count),
            discovered=draw(_count),
            group=draw(_text),
        )
        for i in ids
    )
    edges: list[GraphEdge] = []
    if len(ids) >= 2:
        for _ in range(draw(st.integers(0, 20))):
            a, b = draw(st.lists(st.sampled_from(ids), min_size=2, max_size=2, unique=True))
            edges.append(
                GraphEdge(
                    a=a,
                    b=b,
                    kind=draw(st.sampled_from(["signaling", "mesh", "hub", "discovered"])),
                    status=draw(st.sampled_from(["up", "connecting", "cut"])),
                    messages=draw(_count),
                )
            )
    counters = draw(st.dictionaries(_text, st.integers(-5, 5) | st.floats(-1, 1), max_size=4))
    return GraphSnapshot(
        time_s=draw(st.floats(0, 1e6)),
        nodes=nodes,
        edges=tuple(edges),
        counters=counters,
        title=draw(_text),
    )


@given(snapshots())
def test_encode_decode_round_trip(snap: GraphSnapshot) -> None:
    wire = json.loads(json.dumps(encode_snapshot(snap)))  # what really crosses to the browser
    assert decode_snapshot(wire) == snap


@given(_json)
def test_decode_arbitrary_json_raises_only_decode_error(data: object) -> None:
    with contextlib.suppress(GraphDecodeError):
        decode_snapshot(data)


def _minimal() -> dict[str, object]:
    return encode_snapshot(
        GraphSnapshot(
            nodes=(GraphNode(id="a", label="A"), GraphNode(id="h", label="hub", kind="hub")),
            edges=(GraphEdge(a="a", b="h", kind="signaling"),),
        )
    )


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("v",), 2, "v"),
        (("nodes",), {}, "nodes"),
        (("nodes", 0, "kind"), "router", "nodes[0].kind"),
        (("nodes", 1, "status"), "up", "nodes[1].status"),
        (("nodes", 0, "msgs"), -1, "nodes[0].msgs"),
        (("nodes", 0, "self"), 1, "nodes[0].self"),
        (("edges", 0, "status"), "online", "edges[0].status"),
        (("edges", 0, "b"), "nobody", "graph"),
        (("counters",), {"x": "1"}, "counters.x"),
        (("t",), float("nan"), "t"),
    ],
)
def test_decode_names_the_bad_field(path: tuple[object, ...], value: object, field: str) -> None:
    data: object = _minimal()
    target = data
    for key in path[:-1]:
        target = target[key]  # type: ignore[index]  # walking a known JSON shape
    target[path[-1]] = value  # type: ignore[index]  # walking a known JSON shape
    with pytest.raises(GraphDecodeError) as info:
        decode_snapshot(data)
    assert info.value.field == field


def test_snapshot_rejects_duplicate_ids_and_dangling_edges() -> None:
    a = GraphNode(id="a", label="a")
    with pytest.raises(ValueError, match="duplicate"):
        GraphSnapshot(nodes=(a, a))
    with pytest.raises(ValueError, match="unknown node"):
        GraphSnapshot(nodes=(a,), edges=(GraphEdge(a="a", b="b"),))
    with pytest.raises(ValueError, match="itself"):
        GraphSnapshot(nodes=(a,), edges=(GraphEdge(a="a", b="a"),))


def test_edge_key_is_undirected_and_per_kind() -> None:
    assert GraphEdge(a="x", b="y").key == GraphEdge(a="y", b="x").key
    assert GraphEdge(a="x", b="y", kind="mesh").key != GraphEdge(a="x", b="y", kind="hub").key


def test_queries_and_digest() -> None:
    snap = decode_snapshot(_minimal())
    assert snap.node("h").kind == "hub"
    with pytest.raises(KeyError):
        snap.node("zz")
    assert len(snap.edges_of_kind("signaling")) == 1
    assert snap.edges_of_kind("mesh") == ()
    assert snapshot_digest(snap) == (2, 1, 0)
