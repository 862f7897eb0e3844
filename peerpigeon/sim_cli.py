"""``peerpigeon sim``: a simulated mesh on a virtual clock; broadcasts and routed messages.

It builds the overlay ``--peers`` peers settle into under the topology rules
(`peerpigeon.sim.overlay`), measures its depth, runs one `Gossip` machine per peer on it
(`peerpigeon.sim.gossip`) with optional datagram ``--loss`` and ``--churn`` (that fraction
of the peers crash or leave while the messages travel), floods ``--broadcasts`` chat
messages and routes ``--dms`` direct messages between random peers. It prints delivery
ratio, duplicates (copies dropped by dedup, per peer and message) and hops (links crossed:
1 for a neighbour); the last line is one JSON object. Deterministic for one seed.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from peerpigeon.protocol.gossip import GossipConfig
from peerpigeon.protocol.ids import generate_peer_id
from peerpigeon.protocol.rand import SeededEntropy
from peerpigeon.protocol.topology import TopologyConfig
from peerpigeon.sim.gossip import GossipSim
from peerpigeon.sim.overlay import build_overlay, graph_depth

__all__ = ["add_sim_parser", "run_sim", "simulate"]

_SETTLE_S = 2.0  # hellos and neighbour lists go round before the first message
_SPACING_S = 0.25  # between two messages a peer sends


def add_sim_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``sim`` subcommand to the ``peerpigeon`` parser."""
    sim = sub.add_parser(
        "sim",
        help="simulate a mesh: broadcast and route messages, print delivery and hops",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    sim.add_argument("--peers", type=int, default=1000, help="number of peers (default 1000)")
    sim.add_argument("--seed", type=int, default=0, help="the one seed (default 0)")
    sim.add_argument("--loss", type=float, default=0.0, help="datagram loss rate, 0..1")
    sim.add_argument(
        "--churn", type=float, default=0.0, help="fraction of peers that go during the run"
    )
    sim.add_argument("--max-peers", type=int, default=3, help="links per peer (default 3)")
    sim.add_argument(
        "--ttl", type=int, default=None, help="gossip TTL (default: 4 x the measured depth)"
    )
    sim.add_argument("--broadcasts", type=int, default=5, help="broadcasts (default 5)")
    sim.add_argument("--dms", type=int, default=200, help="routed direct messages (default 200)")


def run_sim(args: argparse.Namespace) -> int:
    """Run the ``sim`` subcommand; returns the exit code."""
    if args.peers < 2:
        print("peerpigeon sim: --peers must be at least 2")
        return 2
    if not 0.0 <= args.loss < 1.0 or not 0.0 <= args.churn < 1.0:
        print("peerpigeon sim: --loss and --churn must be in [0, 1)")
        return 2
    result = simulate(
        peers=args.peers,
        seed=args.seed,
        loss=args.loss,
        churn=args.churn,
        max_peers=args.max_peers,
        ttl=args.ttl,
        broadcasts=args.broadcasts,
        dms=args.dms,
        echo=print,
    )
    print(json.dumps(result, sort_keys=True), flush=True)
    return 0 if result["exactly_once"] else 1


def simulate(
    *,
    peers: int,
    seed: int,
    loss: float = 0.0,
    churn: float = 0.0,
    max_peers: int = 3,
    ttl: int | None = None,
    broadcasts: int = 5,
    dms: int = 200,
    echo: Callable[[str], object] | None = None,
) -> dict[str, Any]:
    """Run one simulation; returns the figures (the JSON line of ``peerpigeon sim``)."""

    def say(text: str) -> None:
        if echo is not None:
            echo(text)

    started = time.perf_counter()
    entropy = SeededEntropy(f"{seed}:ids")
    ids = [generate_peer_id(entropy) for _ in range(peers)]
    topology = TopologyConfig(max_peers=max_peers, min_peers=min(2, max_peers), xor_buckets=True)
    overlay = build_overlay(ids, topology, seed=seed)
    rng = random.Random(f"{seed}:sim")
    sources = rng.sample(ids, min(3, len(ids)))
    depth, mean_depth, unreachable = graph_depth(overlay.graph, sources)
    # A flood needs the depth; a routed message walks farther (about twice as far with
    # max_peers 3), so leave room for both.
    ttl = ttl if ttl is not None else min(max(10, 4 * depth), 1000)
    built_s = time.perf_counter() - started
    degrees = [len(n) for n in overlay.graph.values()]
    say(
        f"overlay: {peers} peers, max_peers {max_peers}, mean degree "
        f"{statistics.mean(degrees):.2f}, depth {depth} (mean eccentricity {mean_depth:.1f}), "
        f"TTL {ttl}; built in {built_s:.1f} s"
    )
    config = GossipConfig(max_ttl=ttl, max_path_length=ttl + 1)
    sim = GossipSim(overlay.graph, seed=seed, config=config, loss=loss, digest=False)
    sim.run_for(_SETTLE_S)
    start = sim.now
    window = _SPACING_S * max(broadcasts, 1) + 1.0
    leaving = rng.sample(ids, int(peers * churn))
    for peer in leaving:
        go = sim.crash if rng.random() < 0.5 else sim.leave
        sim.call_at(start + rng.uniform(0.0, window), partial(go, peer))
    bcast_ids: list[str] = []
    dm_ids: list[str] = []
    dup_before = {p: sim.stats(p).duplicates for p in ids}
    for i in range(broadcasts):
        sim.run_until(start + i * _SPACING_S)
        live = sim.live_peers()
        bcast_ids.append(sim.broadcast(rng.choice(live), f"broadcast {i}"))
    for i in range(dms):
        sim.run_until(start + window * i / max(dms, 1))
        live = sim.live_peers()
        a, b = rng.sample(live, 2)
        dm_ids.append(sim.send_direct(a, b, f"dm {i}"))
    sim.run_for(30.0)
    wall_s = time.perf_counter() - started

    alive = set(sim.live_peers())
    ratios: list[float] = []
    hops: list[int] = []
    for msg_id in bcast_ids:
        record = sim.deliveries[msg_id]
        want = alive - {record.origin}
        ratios.append(len(want & set(record.counts)) / max(len(want), 1))
        hops += [h + 1 for h in record.hops.values()]
    dups = [sim.stats(p).duplicates - dup_before[p] for p in alive]
    dm_records = [sim.deliveries[m] for m in dm_ids]
    dm_live = [r for r in dm_records if r.target in alive]
    dm_hops = [next(iter(r.hops.values())) + 1 for r in dm_live if r.counts]
    twice = sum(r.duplicates for r in sim.deliveries.values())
    stats = [sim.stats(p) for p in ids]
    result: dict[str, Any] = {
        "peers": peers,
        "seed": seed,
        "max_peers": max_peers,
        "loss": loss,
        "churn": churn,
        "ttl": ttl,
        "depth": depth,
        "unreachable": unreachable,
        "mean_degree": round(statistics.mean(degrees), 3),
        "broadcasts": broadcasts,
        "broadcast_delivery": round(statistics.mean(ratios), 6) if ratios else None,
        "broadcast_delivery_min": round(min(ratios), 6) if ratios else None,
        "duplicates_per_peer": round(statistics.mean(dups) / max(broadcasts, 1), 3)
        if dups
        else None,
        "hops_mean": round(statistics.mean(hops), 3) if hops else None,
        "hops_max": max(hops, default=None),
        "dms": dms,
        "dm_delivery": round(len(dm_hops) / len(dm_live), 6) if dm_live else None,
        "dm_hops_mean": round(statistics.mean(dm_hops), 3) if dm_hops else None,
        "dm_hops_max": max(dm_hops, default=None),
        "dm_dead_ends": sum(s.dm_dead_ends for s in stats),
        "ttl_exhausted": sum(s.ttl_exhausted for s in stats),
        "frames_sent": sim.frames_sent,
        "frames_lost": sim.frames_lost,
        "delivered_twice": twice,
        "exactly_once": twice == 0,
        "wall_s": round(wall_s, 2),
    }
    say(
        f"broadcast: delivered {result['broadcast_delivery']} of the live peers "
        f"(min {result['broadcast_delivery_min']}), hops mean {result['hops_mean']} "
        f"max {result['hops_max']}, duplicates per peer per message "
        f"{result['duplicates_per_peer']}"
    )
    say(
        f"direct: delivered {result['dm_delivery']}, hops mean {result['dm_hops_mean']} "
        f"max {result['dm_hops_max']}, dead ends {result['dm_dead_ends']}"
    )
    say(
        f"frames {sim.frames_sent} sent, {sim.frames_lost} lost; delivered twice: {twice}; "
        f"{len(leaving)} peers left; {wall_s:.1f} s"
    )
    return result
