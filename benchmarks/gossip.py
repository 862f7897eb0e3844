#!/usr/bin/env python
"""Gossip: one peer's machine, against the JS reference's GossipManager, and 10,000 peers.

Three measurements:

* ``machine``: messages per second one `Gossip` machine handles (pure Python, no I/O). The
  peer has 8 neighbours; each message is a distinct ``chat`` envelope from one of them (a
  relay: ``path`` = origin, neighbour), so every message is decoded from its JSON text,
  checked, remembered, delivered (`MessageReceived`) and relayed to the 7 other neighbours
  (encoded once). A second pass sends the same messages again from another neighbour: the
  duplicate path (decode, checks, dedup hit). Best of 3 runs.
* ``js``: the same load on the reference's ``GossipManager`` (npm ``peerpigeon@1.0.6``, the
  ``src/GossipManager.js`` file itself, in Node): a stand-in mesh (crypto off) and 8 stand-in
  connections with open channels whose ``sendMessage`` does what the real one does with a
  JSON message (``JSON.stringify``) into a sink; each message goes in as text and is
  ``JSON.parse``d first, as the data channel handler does, then awaited through
  ``handleGossipMessage``. The reference's debug logging is off (its default), though its
  log strings are still built. ``ratio_vs_js`` is Python / JS (> 1: Python is faster).
* ``sim``: 10,000 peers (``max_peers`` 8, the topology rules: `peerpigeon.sim.overlay`),
  one `Gossip` machine each (`peerpigeon.sim.gossip`, virtual clock, 20-30 ms links):
  ``broadcast_10000_s`` is the wall time of one simulated broadcast reaching everyone (goal
  < 60 s), ``hops_10000`` the mean number of links a routed direct message crosses (goal
  <= 9), ``delivered_10000`` the fraction of them delivered (goal 1.0). Python peers use a
  TTL of 32 among themselves (the mesh is about 10 links deep).

Usage: ``python benchmarks/gossip.py [--quick]`` (``--quick``: fewer messages and direct
messages; the 10,000-peer overlay is always built). Readable lines first, then one JSON
object: ``machine_msgs_per_s``, ``machine_dups_per_s``, ``js_msgs_per_s``,
``js_dups_per_s``, ``ratio_vs_js``, ``ratio_dups_vs_js``, ``broadcast_10000_s``,
``broadcast_10000_delivered``, ``broadcast_10000_max_hops``, ``hops_10000``,
``hops_10000_max``, ``delivered_10000``, ``overlay_10000_build_s``, ``sim_setup_s``, and
``js_error`` when Node could not run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks._common import JS_DIR, ensure_js_modules  # noqa: E402
from peerpigeon.protocol.gossip import Gossip, GossipConfig  # noqa: E402
from peerpigeon.protocol.ids import PeerId, generate_peer_id  # noqa: E402
from peerpigeon.protocol.rand import SeededEntropy  # noqa: E402
from peerpigeon.protocol.topology import TopologyConfig  # noqa: E402
from peerpigeon.sim.gossip import GossipSim  # noqa: E402
from peerpigeon.sim.overlay import build_overlay  # noqa: E402

WALL = 1_700_000_000.0
NEIGHBOURS = 8
SIM_PEERS = 10_000
SIM_TTL = GossipConfig(max_ttl=32, max_path_length=40)

JS_BENCH = r"""
import { pathToFileURL } from 'node:url';
const [gossipPath, framesPath, dupsPath, runsText] = process.argv.slice(2);
const { GossipManager } = await import(pathToFileURL(gossipPath).href);
const fs = await import('node:fs');
const frames = JSON.parse(fs.readFileSync(framesPath, 'utf8'));
const dups = JSON.parse(fs.readFileSync(dupsPath, 'utf8'));
const me = frames.me;
let sink = 0;
function connection(peerId) {
  return {
    peerId,
    dataChannel: { readyState: 'open' },
    getStatus: () => 'connected',
    sendMessage: (message) => { sink += JSON.stringify(message).length; return true; },
  };
}
function fresh() {
  const mesh = { peerId: me, networkName: 'global', enableCrypto: false, cryptoManager: null,
                 emit: () => {} };
  const peers = new Map(frames.neighbours.map((p) => [p, connection(p)]));
  const gm = new GossipManager(mesh, { peers });
  let delivered = 0;
  gm.addEventListener('messageReceived', () => { delivered += 1; });
  return { gm, count: () => delivered };
}
const runs = Number(runsText);
let best = 0; let bestDup = 0; let delivered = 0;
for (let r = 0; r < runs; r++) {
  const { gm, count } = fresh();
  let t0 = process.hrtime.bigint();
  for (const text of frames.texts) {
    await gm.handleGossipMessage(JSON.parse(text), frames.from);
  }
  let dt = Number(process.hrtime.bigint() - t0) / 1e9;
  best = Math.max(best, frames.texts.length / dt);
  delivered = count();
  t0 = process.hrtime.bigint();
  for (const text of dups.texts) {
    await gm.handleGossipMessage(JSON.parse(text), dups.from);
  }
  dt = Number(process.hrtime.bigint() - t0) / 1e9;
  bestDup = Math.max(bestDup, dups.texts.length / dt);
  if (gm.cleanupTimer) clearInterval(gm.cleanupTimer);
}
console.log(JSON.stringify({ msgsPerS: best, dupsPerS: bestDup, delivered, sink }));
process.exit(0);
"""


def ids(n: int, seed: str) -> list[PeerId]:
    entropy = SeededEntropy(seed)
    return [generate_peer_id(entropy) for _ in range(n)]


def make_load(count: int) -> tuple[PeerId, list[PeerId], list[str], list[str]]:
    """Our ID, our neighbours, `count` relayed envelopes from the first neighbour, and the
    same messages relayed by the second (the duplicates)."""
    people = ids(NEIGHBOURS + 2, "bench:ids")
    me, origin, neighbours = people[0], people[1], people[2:]
    ts = int(WALL * 1000)

    def frame(i: int, via: PeerId) -> str:
        return json.dumps(
            {
                "id": f"{i:032x}",
                "type": "gossip",
                "subtype": "chat",
                "content": f"message number {i} for the whole mesh",
                "from": origin,
                "networkName": "global",
                "timestamp": ts,
                "ttl": 9,
                "path": [origin, via],
            },
            separators=(",", ":"),
        )

    first = [frame(i, neighbours[0]) for i in range(count)]
    again = [frame(i, neighbours[1]) for i in range(count)]
    return me, neighbours, first, again


def bench_machine(count: int, runs: int = 3) -> tuple[float, float]:
    me, neighbours, first, again = make_load(count)
    best = best_dup = 0.0
    for _ in range(runs):
        g = Gossip(
            me, GossipConfig(max_seen=count + 10), entropy=SeededEntropy("b"), wall_offset_s=WALL
        )
        for p in neighbours:
            g.peer_connected(p, 262_144, 0.0)
        g.drain_actions()
        via, other = neighbours[0], neighbours[1]
        started = time.perf_counter()
        for text in first:
            g.receive_text(via, text, 1.0)
            g.drain_actions()
            g.drain_events()
        best = max(best, count / (time.perf_counter() - started))
        if g.stats().delivered != count or g.stats().relayed != count * (NEIGHBOURS - 1):
            raise RuntimeError("the machine did not deliver and relay every message")
        started = time.perf_counter()
        for text in again:
            g.receive_text(other, text, 1.0)
            g.drain_actions()
            g.drain_events()
        best_dup = max(best_dup, count / (time.perf_counter() - started))
        if g.stats().duplicates != count:
            raise RuntimeError("the machine did not drop every duplicate")
    return best, best_dup


def bench_js(count: int, runs: int = 3) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        return {"error": "node is not on PATH"}
    ensure_js_modules()
    gossip_path = JS_DIR / "node_modules" / "peerpigeon" / "src" / "GossipManager.js"
    me, neighbours, first, again = make_load(count)
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "gossip_bench.mjs"
        script.write_text(JS_BENCH)
        frames = Path(tmp) / "frames.json"
        dups = Path(tmp) / "dups.json"
        frames.write_text(
            json.dumps({"me": me, "neighbours": neighbours, "from": neighbours[0], "texts": first})
        )
        dups.write_text(json.dumps({"from": neighbours[1], "texts": again}))
        done = subprocess.run(
            [node, str(script), str(gossip_path), str(frames), str(dups), str(runs)],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    if done.returncode != 0:
        return {"error": done.stderr.strip()[-500:] or f"exit {done.returncode}"}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if result.get("delivered") != count:
        result["error"] = f"JS delivered {result.get('delivered')} of {count}"
    return result


def bench_sim(dms: int) -> dict[str, Any]:
    started = time.perf_counter()
    peers = ids(SIM_PEERS, "bench:sim")
    overlay = build_overlay(peers, TopologyConfig(max_peers=8, xor_buckets=True), seed=1)
    built = time.perf_counter() - started
    started = time.perf_counter()
    sim = GossipSim(overlay.graph, seed=1, config=SIM_TTL, digest=False)
    sim.run_for(2.0)
    setup = time.perf_counter() - started
    started = time.perf_counter()
    msg_id = sim.broadcast(peers[0], "to all ten thousand")
    sim.run_for(10.0)
    broadcast_s = time.perf_counter() - started
    record = sim.deliveries[msg_id]
    sent = []
    for i in range(dms):
        a = peers[(i * 7919) % SIM_PEERS]
        b = peers[(i * 104_729 + 17) % SIM_PEERS]
        if a != b:
            sent.append(sim.send_direct(a, b, f"dm {i}"))
    sim.run_for(30.0)
    links = [
        next(iter(sim.deliveries[m].hops.values())) + 1 for m in sent if sim.deliveries[m].counts
    ]
    twice = sum(r.duplicates for r in sim.deliveries.values())
    return {
        "overlay_10000_build_s": round(built, 2),
        "sim_setup_s": round(setup, 2),
        "broadcast_10000_s": round(broadcast_s, 2),
        "broadcast_10000_delivered": round(len(record.counts) / (SIM_PEERS - 1), 6),
        "broadcast_10000_max_hops": max(record.hops.values()) + 1,
        "hops_10000": round(statistics.mean(links), 3) if links else None,
        "hops_10000_max": max(links, default=None),
        "delivered_10000": round(len(links) / len(sent), 6) if sent else None,
        "dms_10000": len(sent),
        "delivered_twice": twice,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer messages")
    args = parser.parse_args(argv)
    count = 5_000 if args.quick else 20_000
    dms = 200 if args.quick else 1_000
    out: dict[str, Any] = {"messages": count, "neighbours": NEIGHBOURS}

    msgs, dups = bench_machine(count)
    out["machine_msgs_per_s"] = round(msgs)
    out["machine_dups_per_s"] = round(dups)
    print(
        f"machine: {msgs:,.0f} messages/s (decode, check, deliver, relay to 7), "
        f"{dups:,.0f} duplicates/s",
        flush=True,
    )

    js = bench_js(count)
    if "error" in js:
        out["js_error"] = js["error"]
        print(f"js: FAILED: {js['error']}", flush=True)
        out["js_msgs_per_s"] = out["js_dups_per_s"] = None
        out["ratio_vs_js"] = out["ratio_dups_vs_js"] = None
    else:
        out["js_msgs_per_s"] = round(js["msgsPerS"])
        out["js_dups_per_s"] = round(js["dupsPerS"])
        out["ratio_vs_js"] = round(msgs / js["msgsPerS"], 3)
        out["ratio_dups_vs_js"] = round(dups / js["dupsPerS"], 3)
        print(
            f"js GossipManager: {js['msgsPerS']:,.0f} messages/s, {js['dupsPerS']:,.0f} "
            f"duplicates/s; Python / JS = {out['ratio_vs_js']} ({out['ratio_dups_vs_js']} "
            "for duplicates)",
            flush=True,
        )

    sim = bench_sim(dms)
    out.update(sim)
    print(
        f"sim: overlay of {SIM_PEERS:,} peers built in {sim['overlay_10000_build_s']} s, "
        f"channels and hellos {sim['sim_setup_s']} s",
        flush=True,
    )
    print(
        f"sim: one broadcast reached {sim['broadcast_10000_delivered']:.4%} in "
        f"{sim['broadcast_10000_s']} s wall ({sim['broadcast_10000_max_hops']} links deep)",
        flush=True,
    )
    print(
        f"sim: {sim['dms_10000']} routed direct messages, {sim['delivered_10000']:.2%} "
        f"delivered, {sim['hops_10000']} links on average (max {sim['hops_10000_max']})",
        flush=True,
    )
    print(json.dumps(out, sort_keys=True), flush=True)
    ok = "js_error" not in out and sim["delivered_twice"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
