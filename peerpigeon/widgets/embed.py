"""Offline embed: a standalone HTML page that draws a graph with the widget's own renderer.

The page inlines the widget's ES module and the graph as JSON, and needs no network and no
Jupyter: open it from disk or serve it. With several snapshots it plays them in order.
The page sets ``data-ready="1"`` on ``<body>`` once drawn and exposes the renderer as
``window.peerpigeonMeshView`` (``update(graph)``, ``stats()``) for scripted use.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from .assets import load_esm
from .graph import GraphSnapshot, encode_snapshot

__all__ = ["render_html", "write_html"]

_TEMPLATE: Final = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="data:,">
<style>body {{ margin: 16px; background: #f1f3f4; }}</style>
</head>
<body data-ready="0">
<div id="pp-mesh-root"></div>
<script type="application/json" id="pp-mesh-data">{data}</script>
<script type="module">
const data = JSON.parse(document.getElementById("pp-mesh-data").textContent);
const url = URL.createObjectURL(new Blob([data.esm], {{ type: "text/javascript" }}));
const mod = await import(url);
URL.revokeObjectURL(url);
const view = mod.createMeshView(document.getElementById("pp-mesh-root"), data.options);
window.peerpigeonMeshModule = mod;
window.peerpigeonMeshView = view;
view.update(data.frames[0]);
document.body.dataset.frame = "0";
document.body.dataset.ready = "1";
let i = 0;
if (data.frames.length > 1) {{
  const timer = setInterval(() => {{
    i += 1;
    view.update(data.frames[i]);
    document.body.dataset.frame = String(i);
    if (i === data.frames.length - 1) clearInterval(timer);
  }}, data.interval_ms);
}}
</script>
</body>
</html>
"""


def _script_json(value: object) -> str:
    # Inside <script>, "<" could close the element or open a comment: escape it (and its
    # friends) the JSON way, which JSON.parse undoes.
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_html(
    graph: GraphSnapshot | Sequence[GraphSnapshot],
    *,
    title: str | None = None,
    options: Mapping[str, object] | None = None,
    interval_ms: int = 500,
) -> str:
    """The page's HTML text: one snapshot, or several played every `interval_ms`."""
    frames = [graph] if isinstance(graph, GraphSnapshot) else list(graph)
    if not frames:
        raise ValueError("graph: at least one snapshot is needed")
    if interval_ms <= 0:
        raise ValueError("interval_ms must be > 0")
    page_title = title if title is not None else (frames[0].title or "peerpigeon mesh")
    data = {
        "esm": load_esm(),
        "options": dict(options or {}),
        "frames": [encode_snapshot(f) for f in frames],
        "interval_ms": interval_ms,
    }
    return _TEMPLATE.format(title=html.escape(page_title), data=_script_json(data))


def write_html(
    graph: GraphSnapshot | Sequence[GraphSnapshot],
    path: str | Path,
    *,
    title: str | None = None,
    options: Mapping[str, object] | None = None,
    interval_ms: int = 500,
) -> Path:
    """Write `render_html`'s page to `path` (UTF-8); returns the path."""
    out = Path(path)
    out.write_text(
        render_html(graph, title=title, options=options, interval_ms=interval_ms),
        encoding="utf-8",
    )
    return out
