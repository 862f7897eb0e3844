"""The widget's renderer in a real headless Chromium: the right nodes and links are drawn.

The offline page of a known simulated mesh is served on 127.0.0.1 and opened in Chromium
(driven by Playwright); the test counts the SVG elements the renderer made, checks they
match the simulation, updates the drawing live, and drives the anywidget front end with a
stand-in model. A screenshot is kept (its path is printed). Without Chromium this fails.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from peerpigeon.sim.mesh import MeshSim
from peerpigeon.widgets import GraphSnapshot, MeshSimSource, encode_snapshot, write_html

from .browser import browser_context, keep_screenshot, serve

if TYPE_CHECKING:
    from playwright.sync_api import Page

PEERS = 24
SEED = 7


@pytest.fixture(scope="module")
def mesh() -> MeshSim:
    sim = MeshSim(SEED)
    for _ in range(PEERS):
        sim.add_peer()
    sim.run_for(20.0)
    return sim


@pytest.fixture(scope="module")
def snapshot(mesh: MeshSim) -> GraphSnapshot:
    return MeshSimSource(mesh, focus="p1").snapshot()


@pytest.fixture(scope="module")
def page(
    snapshot: GraphSnapshot, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Page, list[str], list[str]]]:
    site = tmp_path_factory.mktemp("site")
    write_html(snapshot, site / "mesh.html", options={"height": 480})
    with serve(site) as base, browser_context() as context:
        errors: list[str] = []
        requests: list[str] = []
        pg = context.new_page()
        pg.on("pageerror", lambda err: errors.append(str(err)))
        pg.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        pg.on("request", lambda req: requests.append(req.url))
        pg.goto(f"{base}/mesh.html")
        pg.wait_for_selector('body[data-ready="1"]')
        pg.wait_for_selector('svg[data-settled="1"]')
        yield pg, errors, requests


def _count(page: Page, selector: str) -> int:
    return page.locator(selector).count()


def test_draws_the_simulated_mesh(
    page: tuple[Page, list[str], list[str]],
    snapshot: GraphSnapshot,
    mesh: MeshSim,
    tmp_path: Path,
) -> None:
    pg, errors, requests = page
    graph = mesh.graph()
    mesh_links = {tuple(sorted((a, b))) for a, ns in graph.items() for b in ns}
    assert _count(pg, "circle[data-node]") == len(snapshot.nodes) == PEERS + 1
    assert _count(pg, "line[data-edge]") == len(snapshot.edges)
    assert _count(pg, 'line[data-kind="mesh"][data-status="up"]') == len(mesh_links)
    assert _count(pg, 'line[data-kind="signaling"]') == PEERS
    assert _count(pg, 'circle[data-kind="hub"]') == 1
    assert pg.get_attribute('circle[data-self="1"]', "data-node") == mesh.peer("p1").peer_id
    svg = pg.locator("svg.pp-mesh-svg")
    assert svg.get_attribute("data-nodes") == str(PEERS + 1)
    assert svg.get_attribute("data-edges") == str(len(snapshot.edges))
    drawn = {
        tuple(sorted(key.split("|")[:2]))
        for key in pg.eval_on_selector_all(
            'line[data-kind="mesh"]', "els => els.map(e => e.dataset.edge)"
        )
    }
    assert drawn == mesh_links  # exactly the simulation's links, end to end
    # Every node was placed inside the picture.
    box = pg.eval_on_selector("svg.pp-mesh-svg", "s => s.getAttribute('viewBox')")
    x, y, w, h = (float(v) for v in box.split())
    for cx, cy in pg.eval_on_selector_all(
        "circle[data-node]", "els => els.map(e => [+e.getAttribute('cx'), +e.getAttribute('cy')])"
    ):
        assert x <= cx <= x + w
        assert y <= cy <= y + h
    assert errors == []
    assert all(u.startswith(("http://127.0.0.1:", "blob:", "data:")) for u in requests), requests
    assert keep_screenshot(pg.screenshot(full_page=True), "mesh-view.png", tmp_path)


def test_live_update_in_the_browser(
    page: tuple[Page, list[str], list[str]], mesh: MeshSim, tmp_path: Path
) -> None:
    pg, errors, _ = page
    gone = [p for p in mesh.live_peers()[-4:]]
    for peer in gone:
        mesh.remove_peer(peer, graceful=True)
    mesh.run_for(15.0)
    after = MeshSimSource(mesh, focus="p1").snapshot()
    payload: Any = json.loads(json.dumps(encode_snapshot(after)))
    for node in payload["nodes"]:
        node["msgs"] += 5  # messages flowed: pulses must appear
    pg.evaluate("g => window.peerpigeonMeshView.update(g)", payload)
    assert _count(pg, "circle[data-node]") == len(after.nodes) == PEERS + 1 - 4
    assert _count(pg, "line[data-edge]") == len(after.edges)
    assert _count(pg, "circle.pp-pulse") > 0
    stats = pg.evaluate("window.peerpigeonMeshView.stats()")
    assert stats["updates"] == 2
    pg.wait_for_selector('svg[data-settled="1"]')
    keep_screenshot(pg.screenshot(full_page=True), "mesh-view-updated.png", tmp_path)
    assert errors == []


def test_anywidget_front_end_follows_its_model(
    page: tuple[Page, list[str], list[str]], snapshot: GraphSnapshot
) -> None:
    pg, errors, _ = page
    first: Any = json.loads(json.dumps(encode_snapshot(snapshot)))
    smaller = dict(first)
    smaller["nodes"] = first["nodes"][:5]
    ids = {n["id"] for n in smaller["nodes"]}
    smaller["edges"] = [e for e in first["edges"] if e["a"] in ids and e["b"] in ids]
    result = pg.evaluate(
        """([first, second]) => {
          // A stand-in for anywidget's model: get / on / off / set / save_changes.
          const state = { graph: first, options: { height: 300 }, frontend: {} };
          const handlers = {};
          const model = {
            get: (k) => state[k],
            set: (k, v) => { state[k] = v; },
            save_changes: () => {},
            on: (ev, fn) => { (handlers[ev] = handlers[ev] || []).push(fn); },
            off: (ev, fn) => { handlers[ev] = (handlers[ev] || []).filter((f) => f !== fn); },
          };
          const el = document.createElement("div");
          el.id = "widget-under-test";
          document.body.appendChild(el);
          const cleanup = window.peerpigeonMeshModule.default.render({ model, el });
          const count = () => [el.querySelectorAll("circle[data-node]").length,
                               el.querySelectorAll("line[data-edge]").length];
          const before = count();
          state.graph = second;
          for (const fn of handlers["change:graph"] || []) fn();
          const after = count();
          cleanup();
          return { before, after, left: el.children.length,
                   listeners: (handlers["change:graph"] || []).length };
        }""",
        [first, smaller],
    )
    assert result["before"] == [len(snapshot.nodes), len(snapshot.edges)]
    assert result["after"] == [5, len(smaller["edges"])]
    assert result["left"] == 0  # the cleanup removed the drawing
    assert result["listeners"] == 0
    assert errors == []


def test_missing_chromium_fails_not_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    from . import browser

    monkeypatch.setenv("PEERPIGEON_CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setattr(browser.shutil, "which", lambda name: None)
    monkeypatch.setattr(browser.os, "access", lambda path, mode: False)
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y chromium"):
        browser.chromium_path()
