"""Mesh widget responsiveness: how fast the view follows a busy 200-peer simulation.

Three measurements, on one simulated network (N signaling clients on one hub; every
``--interval-ms`` of virtual time one client sends an offer to another, relayed by the hub):

1. live: the network is played in real time (`play`, speed 1) with a `MeshView` attached
   (``--rate`` syncs/s at most); reports the sync rate it sustains, the changes coalesced
   per sync, and the share of wall time the view and the simulation took.
2. capacity: the same network, one sync after every message (no rate limit); reports the
   Python cost of one update (snapshot + encode + trait assignment), the JSON the kernel
   would send, and so the updates per second one core could sustain.
3. browser: the offline page of the same graph in headless Chromium (``/usr/bin/chromium``
   via Playwright); a JS loop calls ``update()`` with changed counters on every animation
   frame; reports frames per second and the renderer's time per update. Skipped with
   ``--no-browser`` (or when Chromium or Playwright is missing: then the figures are null).

Usage: ``python benchmarks/widget.py [--quick]``. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from peerpigeon.protocol.ids import PeerId
from peerpigeon.protocol.server import ServerConfig
from peerpigeon.sim import ClientHandle, SimNetwork
from peerpigeon.widgets import MeshView, SimNetworkSource, encode_snapshot, play, write_html

CHROMIUM = os.environ.get("PEERPIGEON_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def build_network(nodes: int, seed: int) -> tuple[SimNetwork, list[ClientHandle]]:
    """N clients on one hub, all connected and discovered."""
    net = SimNetwork(
        seed,
        server_config=ServerConfig(max_connections=nodes + 10),
        keep_trace=False,
        keep_events=False,
    )
    clients = [net.add_client() for _ in range(nodes)]
    if not net.run_until_idle(max_time=60.0):
        raise SystemExit("the network did not settle")
    return net, clients


def schedule_messages(
    net: SimNetwork, clients: list[ClientHandle], interval_s: float, duration_s: float, seed: int
) -> int:
    """Every `interval_s` from now for `duration_s`: one client sends an offer to another."""
    rng = random.Random(f"{seed}:bench")
    start = net.now
    count = max(1, int(duration_s / interval_s))
    sdp = "v=0\r\n" + "a=x-bench\r\n" * 20

    def send(src: ClientHandle, dst: PeerId) -> None:
        if not src.removed:
            src.machine.send_offer(dst, sdp, net.now)
            src.node.flush(net.now)  # the network carries what the machine queued

    for i in range(count):
        a, b = rng.sample(clients, 2)
        net.call_at(
            start + (i + 1) * interval_s,
            lambda a=a, b=b: send(a, b.peer_id),  # type: ignore[misc]
            "bench-offer",
        )
    return count


def measure_live(args: argparse.Namespace) -> dict[str, Any]:
    """Play the network in real time with a rate-limited view attached."""
    net, clients = build_network(args.nodes, args.seed)
    messages = schedule_messages(net, clients, args.interval_ms / 1000, args.live_s, args.seed)

    async def run() -> tuple[MeshView, Any, float]:
        view = MeshView.from_simulation(net, max_rate_hz=args.rate)
        base = view.stats()
        start = time.perf_counter()
        stats = await play(net, args.live_s, speed=1.0, slice_s=1 / 60)
        wall = time.perf_counter() - start
        end = view.stats()
        view.close()
        return view, (base, end, stats), wall

    _, (base, end, pstats), wall = asyncio.run(run())
    syncs = end.syncs - base.syncs
    changes = end.changes - base.changes
    return {
        "messages": messages,
        "wall_s": wall,
        "changes": changes,
        "syncs": syncs,
        "syncs_per_s": syncs / wall,
        "changes_per_sync": changes / max(1, syncs),
        "view_share": (end.total_sync_s - base.total_sync_s) / wall,
        "sim_share": pstats.busy_s / wall,
        "max_slice_ms": pstats.max_slice_ms,
        "mean_sync_ms": end.mean_sync_ms,
    }


def measure_capacity(args: argparse.Namespace) -> dict[str, Any]:
    """One unthrottled sync per message: the Python cost of an update."""
    net, clients = build_network(args.nodes, args.seed + 1)
    interval = args.interval_ms / 1000
    schedule_messages(net, clients, interval, args.updates * interval, args.seed)
    source = SimNetworkSource(net)
    # A rate limit that never grants: the only syncs are the timed flushes, one per message.
    view = MeshView(source, max_rate_hz=1e-9)
    times: list[float] = []
    json_times: list[float] = []
    sizes: list[int] = []
    for _ in range(args.updates):
        net.run_for(interval)
        t0 = time.perf_counter()
        view.flush()
        t1 = time.perf_counter()
        text = json.dumps(view.graph, separators=(",", ":"))  # what the kernel serializes
        t2 = time.perf_counter()
        times.append(t1 - t0)
        json_times.append(t2 - t1)
        sizes.append(len(text))
    view.close()
    snap = source.snapshot()
    per_update = statistics.fmean(times) + statistics.fmean(json_times)
    return {
        "updates": args.updates,
        "nodes": len(snap.nodes),
        "edges": len(snap.edges),
        "python_ms_per_update": 1000 * statistics.fmean(times),
        "python_ms_p95": 1000 * sorted(times)[int(0.95 * (len(times) - 1))],
        "json_ms_per_update": 1000 * statistics.fmean(json_times),
        "payload_bytes": int(statistics.fmean(sizes)),
        "updates_per_s": 1.0 / per_update,
        "snapshot": snap,
    }


_BROWSER_LOOP = """async ([graph, seconds]) => {
  const view = window.peerpigeonMeshView;
  const g = JSON.parse(JSON.stringify(graph));
  const before = view.stats();
  let frames = 0, updates = 0, updateMs = 0, maxMs = 0;
  const start = performance.now();
  await new Promise((resolve) => {
    const step = () => {
      // Messages every 10 ms, a few per frame: bump some links' and nodes' counters.
      for (let i = 0; i < 3; i++) {
        const e = g.edges[(frames * 7 + i * 13) % g.edges.length];
        e.msgs += 1;
        for (const n of g.nodes) if (n.id === e.a || n.id === e.b) n.msgs += 1;
      }
      g.t += 1 / 60;
      const t0 = performance.now();
      view.update(g);
      const ms = performance.now() - t0;
      updateMs += ms; maxMs = Math.max(maxMs, ms); updates += 1; frames += 1;
      if (performance.now() - start < seconds * 1000) requestAnimationFrame(step);
      else resolve();
    };
    requestAnimationFrame(step);
  });
  const elapsed = (performance.now() - start) / 1000;
  const after = view.stats();
  return { fps: frames / elapsed, updates, update_ms: updateMs / updates, max_update_ms: maxMs,
           render_frames: after.frames - before.frames, pulses: after.pulsesSpawned };
}"""


def measure_browser(args: argparse.Namespace, snapshot: Any) -> dict[str, Any] | None:
    """The renderer's frame rate under an update on every animation frame."""
    if not Path(CHROMIUM).is_file():
        print(f"browser: {CHROMIUM} not found (apt-get install -y chromium); skipped")
        return None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("browser: the 'playwright' package is missing; skipped")
        return None
    with tempfile.TemporaryDirectory(prefix="pp-widget-bench-") as tmp:
        page_path = write_html(snapshot, Path(tmp) / "bench.html", options={"height": 600})
        profile = Path(tmp) / "profile"
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                str(profile),
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_ARGS,
                timeout=30_000,
                viewport={"width": 1000, "height": 760},
            )
            try:
                page = context.new_page()
                page.set_default_timeout(30_000)
                page.goto(page_path.as_uri())
                page.wait_for_selector('body[data-ready="1"]')
                page.wait_for_selector('svg[data-settled="1"]')
                graph = encode_snapshot(snapshot)
                result: dict[str, Any] = page.evaluate(_BROWSER_LOOP, [graph, args.browser_s])
            finally:
                context.close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (~10 s)")
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--interval-ms", type=float, default=10.0, help="virtual ms per message")
    parser.add_argument("--rate", type=float, default=10.0, help="the view's max syncs per s")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args(argv)
    args.live_s = 2.0 if args.quick else 10.0
    args.updates = 100 if args.quick else 1000
    args.browser_s = 1.5 if args.quick else 5.0

    print(
        f"widget benchmark: {args.nodes} peers, a message every {args.interval_ms:g} ms "
        f"(virtual), view rate limit {args.rate:g}/s{' (quick)' if args.quick else ''}"
    )
    live = measure_live(args)
    print(
        f"live ({args.live_s:g} s real time): {live['messages']} messages, "
        f"{live['changes']} changes -> {live['syncs']} syncs = {live['syncs_per_s']:.1f} syncs/s, "
        f"{live['changes_per_sync']:.0f} changes per sync; view {100 * live['view_share']:.1f}% "
        f"and simulation {100 * live['sim_share']:.1f}% of wall time; longest slice "
        f"{live['max_slice_ms']:.1f} ms"
    )
    cap = measure_capacity(args)
    print(
        f"capacity ({cap['nodes']} nodes, {cap['edges']} links): "
        f"{cap['python_ms_per_update']:.3f} ms per update in Python "
        f"(p95 {cap['python_ms_p95']:.3f}) + {cap['json_ms_per_update']:.3f} ms JSON "
        f"({cap['payload_bytes']} bytes) -> {cap['updates_per_s']:.0f} updates/s on one core"
    )
    browser = None if args.no_browser else measure_browser(args, cap["snapshot"])
    if browser is not None:
        print(
            f"browser ({args.browser_s:g} s, an update every frame): {browser['fps']:.1f} fps, "
            f"{browser['update_ms']:.2f} ms per update (max {browser['max_update_ms']:.2f}), "
            f"{browser['pulses']} message pulses drawn"
        )
    figures = {
        "nodes": cap["nodes"],
        "edges": cap["edges"],
        "message_interval_ms": args.interval_ms,
        "max_rate_hz": args.rate,
        "live_syncs_per_s": round(live["syncs_per_s"], 2),
        "live_changes_per_sync": round(live["changes_per_sync"], 1),
        "live_view_share": round(live["view_share"], 4),
        "updates_per_s": round(cap["updates_per_s"], 1),
        "python_ms_per_update": round(cap["python_ms_per_update"], 4),
        "json_ms_per_update": round(cap["json_ms_per_update"], 4),
        "payload_bytes": cap["payload_bytes"],
        "browser_fps": None if browser is None else round(browser["fps"], 1),
        "browser_ms_per_update": None if browser is None else round(browser["update_ms"], 3),
        "quick": args.quick,
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
