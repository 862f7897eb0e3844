"""The widget's browser side, shipped inside the package (``static/meshview.js``)."""

from __future__ import annotations

from functools import cache
from importlib import resources

__all__ = ["load_esm"]


@cache
def load_esm() -> str:
    """The renderer's ES module text (anywidget front end and `createMeshView`)."""
    files = resources.files("peerpigeon.widgets")
    return files.joinpath("static", "meshview.js").read_text(encoding="utf-8")
