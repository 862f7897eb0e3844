"""The offline page: the renderer and the graph inlined, safe against markup in labels."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from peerpigeon.widgets import (
    GraphEdge,
    GraphNode,
    GraphSnapshot,
    decode_snapshot,
    load_esm,
    render_html,
    write_html,
)

_DATA = re.compile(r'<script type="application/json" id="pp-mesh-data">(.*?)</script>', re.S)


def _page_data(text: str) -> dict[str, object]:
    found = _DATA.search(text)
    assert found is not None
    data = json.loads(found.group(1))
    assert isinstance(data, dict)
    return data


def _hostile() -> GraphSnapshot:
    evil = "</script><script>alert(1)</script><!--"
    return GraphSnapshot(
        time_s=1.5,
        nodes=(
            GraphNode(id="a", label=evil, detail="&amp; <b>"),
            GraphNode(id="h", label="hub", kind="hub"),
        ),
        edges=(GraphEdge(a="a", b="h", kind="signaling", messages=3),),
        title=evil,
    )


def test_page_inlines_renderer_and_graph() -> None:
    snap = _hostile()
    text = render_html(snap)
    urls = set(re.findall(r"https?://[^\s\"'\\]+", text))
    assert urls == {"http://www.w3.org/2000/svg"}  # an XML namespace name, never fetched
    assert text.count("</script>") == 2  # only the page's own two script elements close
    data = _page_data(text)
    assert data["esm"] == load_esm()
    frames = data["frames"]
    assert isinstance(frames, list)
    assert decode_snapshot(frames[0]) == snap
    assert "<title>&lt;/script&gt;" in text


def test_several_frames_and_options(tmp_path: Path) -> None:
    frames = [GraphSnapshot(time_s=float(i), title="t") for i in range(3)]
    out = write_html(frames, tmp_path / "x.html", options={"height": 200}, interval_ms=50)
    data = _page_data(out.read_text(encoding="utf-8"))
    assert data["interval_ms"] == 50
    assert data["options"] == {"height": 200}
    assert isinstance(data["frames"], list)
    assert len(data["frames"]) == 3


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="at least one"):
        render_html([])
    with pytest.raises(ValueError, match="interval_ms"):
        render_html(GraphSnapshot(), interval_ms=0)


def test_renderer_is_self_contained() -> None:
    esm = load_esm()
    assert "export function createMeshView" in esm
    assert "export default" in esm
    assert not re.search(r"""\bimport\s*[\s{*"'(]""", esm)  # no imports: nothing to fetch
    assert "</script" not in esm.lower()
