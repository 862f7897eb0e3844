"""Live mesh widgets for Jupyter: draw a simulated or real mesh as it changes.

`MeshView` (needs the ``notebook`` extra: anywidget) draws any `GraphSource`:
`SimNetworkSource` (a signaling simulation), `MeshSimSource` (a mesh simulation),
`PeerSource` (what local signaling peers know), `MeshPeerSource` (what local mesh peers
know), `HubSource` (a hub and its peers). `play` runs a simulation in step with the wall
clock; `Background` keeps servers and sessions open across notebook cells; `write_html`
saves a graph as an offline page.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .assets import load_esm
from .background import Background
from .coalesce import Coalescer, CoalesceStats
from .embed import render_html, write_html
from .graph import (
    EdgeKind,
    EdgeStatus,
    GraphDecodeError,
    GraphEdge,
    GraphNode,
    GraphSnapshot,
    GraphSource,
    NodeKind,
    NodeStatus,
    decode_snapshot,
    encode_snapshot,
)
from .player import PlayStats, play
from .sources import (
    HubSource,
    MeshPeerSource,
    MeshSimSource,
    PeerSource,
    SimNetworkSource,
    StaticSource,
)

if TYPE_CHECKING:
    from .view import MeshView, ViewStats

__all__ = [
    "Background",
    "CoalesceStats",
    "Coalescer",
    "EdgeKind",
    "EdgeStatus",
    "GraphDecodeError",
    "GraphEdge",
    "GraphNode",
    "GraphSnapshot",
    "GraphSource",
    "HubSource",
    "MeshPeerSource",
    "MeshSimSource",
    "MeshView",
    "NodeKind",
    "NodeStatus",
    "PeerSource",
    "PlayStats",
    "SimNetworkSource",
    "StaticSource",
    "ViewStats",
    "decode_snapshot",
    "encode_snapshot",
    "load_esm",
    "play",
    "render_html",
    "write_html",
]


def __getattr__(name: str) -> object:
    # The widget needs anywidget (the notebook extra); the rest of this package does not.
    if name in ("MeshView", "ViewStats"):
        from . import view

        return getattr(view, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
