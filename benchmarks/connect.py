#!/usr/bin/env python
"""Mesh formation time: Python `PeerPigeonMesh` peers against JavaScript PeerPigeon peers.

Two measurements, each for Python peers on our hub and for JS peers on the JS server, in one
run, alternated round by round, repeated N times (10; 3 with ``--quick``); medians reported:

* ``first_channel`` (2 peers): peer A is connected to the hub and alone; the clock starts
  when peer B's connect is issued and stops when *both* peers have seen the other's data
  channel open (the later of A's and B's first ``peerConnected`` for the other).
* ``six_min_peers`` (6 peers, max_peers=3, min_peers=2): six idle peers; the clock starts
  when the first connect is issued (all six are issued back to back) and stops at the first
  moment every peer has at least min_peers open links at once.

How the clocks are read, the same way on both sides:

* Start: ``time.time()`` in this process just before the connect is issued. Python:
  ``await mesh.connect(url)``. JS: a ``{"cmd":"connect","url":...}`` line written to the
  ``js_peer.mjs`` process (``tests/interop/js``, npm ``peerpigeon@1.0.6`` on
  ``@roamhq/wrtc``), which calls ``mesh.connect(url)`` on reading it (the pipe and readline
  add well under a millisecond). So that a JS peer is idle with its process, crypto and WebDHT
  already initialised when its clock starts, it is first started against a separate *staging*
  server, then told to ``disconnect``, and the staging server is waited on until it has
  dropped the peer (so no peer ever meets another there).
* Stop: Python: ``time.time()`` in the ``peer_connected`` / ``peer_disconnected`` /
  ``peer_evicted`` callbacks. JS: the ``ts`` field (``Date.now()``, epoch ms, the same system
  clock) of the ``peerConnected`` / ``peerDisconnected`` / ``peerEvicted`` lines the peers
  print when the reference emits those events (a duplicate ``peerConnected`` counts once; an
  eviction received, which the reference reports only as ``peerEvicted``, ends that link).

Python peers run in this process, on one asyncio loop (aiortc; ICE gathers 127.0.0.1 only);
our hub is ``python -m peerpigeon hub --port 0`` in its own process. JS peers are one Node
process each, their server another (``js_server.mjs --quiet``); the JS wrapper keeps ICE on
loopback too. Random peer IDs, a fresh network name per measurement. The machine has 2 shared
cores: compare the ratios of one run.

``py_tuned`` repeats the Python measurements with ``MeshConfig.optimize_delay_s`` =
``--tuned-delay`` (0.02 s) instead of the default (0.5 s): the mesh machine plans its dials
that long after a discovery (to batch a hub's discovery burst), where the reference dials at
once. It shows how much of the gap that delay accounts for.

Usage: ``python benchmarks/connect.py [--quick] [--runs N] [--tuned-delay S | --no-tuned]``.
Readable lines first; the last line is one JSON object: ``py_first_channel_ms``,
``js_first_channel_ms``, ``ratio_first_channel`` (Python / JS; goal <= 1.2),
``py_six_min_peers_ms``, ``js_six_min_peers_ms``, ``ratio_six``, the ``py_tuned_*`` figures
and their ratios, ``runs``, the raw ``samples``, ``not_converged`` (per variant: measurements that
did not finish within ``--timeout``, 30 s; left out of the medians) and ``failures`` (broken
measurements). Exit code 1 on a failure or when a Python measurement did not converge.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import anyio

from benchmarks._common import REPO_ROOT, BenchError, ServerProcess, start_our_hub

if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from peerpigeon.io.client import new_peer_id
from peerpigeon.io.mesh import LOOPBACK_ICE_HOSTS, PeerPigeonMesh
from peerpigeon.protocol.mesh import (
    MeshConfig,
    PeerConnected,
    PeerDisconnected,
    PeerEvicted,
)
from tests.interop.harness import (
    JsPeer,
    JsServer,
    ManagedProcess,
    ensure_node_modules,
)

MAX_PEERS = 3
MIN_PEERS = 2
SIX = 6
KINDS = ("py", "py_tuned", "js")


class BudgetExceeded(BenchError):
    """The whole run took longer than its time budget."""


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise BudgetExceeded("the benchmark exceeded its time budget")


def now_ms() -> float:
    return time.time() * 1000.0


def network_name(label: str) -> str:
    return f"bench-{label}-{uuid.uuid4().hex[:8]}"


@dataclass
class Samples:
    first_channel: list[float] = field(default_factory=list)
    six_min_peers: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    not_converged: dict[str, int] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Python peers (in this process, on asyncio)


def py_config(network: str, delay: float | None) -> MeshConfig:
    config = MeshConfig(
        peer_id=new_peer_id(),
        network_name=network,
        max_peers=MAX_PEERS,
        min_peers=MIN_PEERS,
        allow_global_fallback=False,
    )
    if delay is not None:
        config = dataclasses.replace(config, optimize_delay_s=delay)
    return config


class Degrees:
    """Open links per peer, from link events; `done_at` is the first time all reach `want`."""

    def __init__(self, peers: Sequence[str], want: int) -> None:
        self.links: dict[str, set[str]] = {p: set() for p in peers}
        self.want = want
        self.done_at: float | None = None

    def opened(self, peer: str, other: str, at: float) -> None:
        self.links[peer].add(other)
        if self.done_at is None and all(len(v) >= self.want for v in self.links.values()):
            self.done_at = at

    def closed(self, peer: str, other: str) -> None:
        self.links[peer].discard(other)


async def py_first_channel(url: str, delay: float | None, timeout: float) -> float:
    network = network_name("py2")
    a = PeerPigeonMesh(config=py_config(network, delay), ice_hosts=LOOPBACK_ICE_HOSTS)
    b = PeerPigeonMesh(config=py_config(network, delay), ice_hosts=LOOPBACK_ICE_HOSTS)
    seen: dict[str, float] = {}
    both = anyio.Event()

    def watch(me: PeerPigeonMesh, other: PeerPigeonMesh) -> Callable[[PeerConnected], None]:
        def on_connected(event: PeerConnected) -> None:
            if event.peer_id == other.peer_id and me.peer_id not in seen:
                seen[me.peer_id] = now_ms()
                if len(seen) == 2:
                    both.set()

        return on_connected

    async with a, b:
        a.on("peer_connected", watch(a, b))
        b.on("peer_connected", watch(b, a))
        with anyio.fail_after(timeout):
            await a.connect(url)
            await anyio.sleep(0.1)  # A is settled and alone
            start = now_ms()
            await b.connect(url)
            await both.wait()
    return max(seen.values()) - start


async def py_six_min_peers(url: str, delay: float | None, timeout: float) -> float:
    network = network_name("py6")
    meshes = [
        PeerPigeonMesh(config=py_config(network, delay), ice_hosts=LOOPBACK_ICE_HOSTS)
        for _ in range(SIX)
    ]
    degrees = Degrees([m.peer_id for m in meshes], MIN_PEERS)
    done = anyio.Event()

    def watch(me: str) -> Callable[[Any], None]:
        def on_event(event: Any) -> None:
            if isinstance(event, PeerConnected):
                degrees.opened(me, event.peer_id, now_ms())
                if degrees.done_at is not None:
                    done.set()
            elif isinstance(event, PeerDisconnected | PeerEvicted):
                degrees.closed(me, event.peer_id)

        return on_event

    async with contextlib.AsyncExitStack() as stack:
        for mesh in meshes:
            await stack.enter_async_context(mesh)
            for name in ("peer_connected", "peer_disconnected", "peer_evicted"):
                mesh.on(name, watch(mesh.peer_id))
        with anyio.fail_after(timeout):
            start = now_ms()
            async with anyio.create_task_group() as tg:
                for mesh in meshes:
                    tg.start_soon(mesh.connect, url)
            await done.wait()
    assert degrees.done_at is not None
    return degrees.done_at - start


# --------------------------------------------------------------------------------------------
# JS peers (one Node process each)


class JsSide:
    """The JS server peers connect to, and a staging server where they start idle."""

    def __init__(self) -> None:
        ensure_node_modules()
        self.server = JsServer(quiet=True, name="js-server")
        try:
            self.staging = JsServer(quiet=True, name="js-staging")
        except BaseException:
            self.server.close()
            raise

    def close(self) -> None:
        self.staging.close()
        self.server.close()

    def idle_peer(self, network: str) -> JsPeer:
        """A JS peer with everything initialised, disconnected from every server."""
        peer = JsPeer(
            self.staging.url,
            network=network,
            max_peers=MAX_PEERS,
            min_peers=MIN_PEERS,
            quiet=True,
        )
        try:
            peer.request({"cmd": "disconnect"})
            self.staging.wait_for("peerDisconnected", peerId=peer.peer_id)
        except BaseException:
            peer.close()
            raise
        return peer

    def connected_peer(self, network: str) -> JsPeer:
        return JsPeer(
            self.server.url,
            network=network,
            max_peers=MAX_PEERS,
            min_peers=MIN_PEERS,
            quiet=True,
        )

    def issue_connect(self, peer: JsPeer) -> None:
        peer.send({"cmd": "connect", "url": self.server.url, "id": 1})


def close_all(processes: Sequence[ManagedProcess]) -> None:
    """Close processes in parallel (each waits for its clean exit)."""
    threads = [threading.Thread(target=p.close) for p in processes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _link_events(peer: JsPeer, since_ms: float) -> list[dict[str, Any]]:
    names = ("peerConnected", "peerDisconnected", "peerEvicted")
    return peer.find(lambda e: e.get("event") in names and float(e.get("ts", 0)) >= since_ms - 1)


def js_degrees(peers: Sequence[JsPeer], want: int, since_ms: float) -> Degrees:
    """Replay the peers' link events in ``ts`` order; ``done_at`` as in `Degrees`."""
    timeline: list[tuple[float, int, str, dict[str, Any]]] = []
    for index, peer in enumerate(peers):
        for order, event in enumerate(_link_events(peer, since_ms)):
            timeline.append((float(event["ts"]), index * 100_000 + order, peer.peer_id, event))
    timeline.sort(key=lambda item: (item[0], item[1]))
    degrees = Degrees([p.peer_id for p in peers], want)
    for ts, _, me, event in timeline:
        other = str(event.get("peerId") or event.get("fromPeerId") or "")
        if event["event"] == "peerConnected":
            degrees.opened(me, other, ts)
        else:
            degrees.closed(me, other)
    return degrees


def wait_js(peers: Sequence[JsPeer], want: int, since_ms: float, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while True:
        degrees = js_degrees(peers, want, since_ms)
        if degrees.done_at is not None:
            return degrees.done_at
        if time.monotonic() > deadline:
            links = {p[:8]: len(v) for p, v in degrees.links.items()}
            raise TimeoutError(f"not every peer reached {want} links in {timeout:g} s: {links}")
        if any(p.returncode is not None for p in peers):
            raise BenchError("a JS peer exited during the measurement")
        time.sleep(0.01)


def js_first_channel(side: JsSide, timeout: float) -> float:
    network = network_name("js2")
    peers: list[JsPeer] = []
    try:
        a = side.connected_peer(network)
        peers.append(a)
        b = side.idle_peer(network)
        peers.append(b)
        time.sleep(0.1)  # A is settled and alone
        start = now_ms()
        side.issue_connect(b)
        done = wait_js(peers, 1, start, timeout)
        return done - start
    finally:
        close_all(peers)


def js_six_min_peers(side: JsSide, timeout: float) -> float:
    network = network_name("js6")
    peers: list[JsPeer] = []
    try:
        for _ in range(SIX):
            peers.append(side.idle_peer(network))
        start = now_ms()
        for peer in peers:
            side.issue_connect(peer)
        done = wait_js(peers, MIN_PEERS, start, timeout)
        return done - start
    finally:
        close_all(peers)


# --------------------------------------------------------------------------------------------
# The run


@contextlib.contextmanager
def time_budget(seconds: int) -> Iterator[None]:
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def median(values: Sequence[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def measure(samples: Samples, what: str, kind: str, fn: Callable[[], float]) -> None:
    label = f"{kind} {what}"
    try:
        value = fn()
    except TimeoutError as error:  # did not converge in time: counted, not an error
        samples.not_converged[what] = samples.not_converged.get(what, 0) + 1
        print(f"  {label:<24} did not converge: {error}", flush=True)
        return
    except Exception as error:  # a broken measurement
        samples.failures.append(f"{what}: {type(error).__name__}: {error}")
        print(f"  {label:<24} FAILED: {type(error).__name__}: {error}", flush=True)
        return
    getattr(samples, what).append(value)
    print(f"  {label:<24} {value:8.1f} ms", flush=True)


def run_round(
    samples: Samples, kind: str, url: str, side: JsSide, args: argparse.Namespace
) -> None:
    """One round of both measurements for `kind` (``py``, ``py_tuned`` or ``js``)."""
    if kind == "js":
        measure(samples, "first_channel", "js", lambda: js_first_channel(side, args.timeout))
        measure(samples, "six_min_peers", "js", lambda: js_six_min_peers(side, args.timeout))
        return
    delay = args.tuned_delay if kind == "py_tuned" else None
    measure(
        samples,
        "first_channel",
        kind,
        lambda: anyio.run(py_first_channel, url, delay, args.timeout),
    )
    measure(
        samples,
        "six_min_peers",
        kind,
        lambda: anyio.run(py_six_min_peers, url, delay, args.timeout),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="3 rounds instead of 10")
    parser.add_argument("--runs", type=int, default=None, help="rounds (default 10; 3 quick)")
    parser.add_argument("--timeout", type=float, default=30.0, help="per measurement (s)")
    parser.add_argument(
        "--tuned-delay",
        type=float,
        default=0.02,
        help="optimize_delay_s of the py_tuned variant (default 0.02)",
    )
    parser.add_argument("--no-tuned", action="store_true", help="skip the py_tuned variant")
    args = parser.parse_args(argv)
    runs = args.runs if args.runs is not None else (3 if args.quick else 10)
    if runs < 1 or args.timeout <= 0:
        parser.error("--runs must be >= 1 and --timeout > 0")
    kinds = [k for k in KINDS if not (k == "py_tuned" and args.no_tuned)]
    default_delay = MeshConfig(peer_id=new_peer_id()).optimize_delay_s
    print(
        f"mesh connect benchmark: {runs} rounds, {os.cpu_count()} CPUs; "
        f"first_channel = 2 peers, B's connect -> both see the channel open; "
        f"six_min_peers = {SIX} peers (max_peers={MAX_PEERS}, min_peers={MIN_PEERS}), "
        f"connects issued -> every peer has {MIN_PEERS} open links; "
        f"py: optimize_delay_s={default_delay:g} (default)"
        + ("" if args.no_tuned else f", py_tuned: optimize_delay_s={args.tuned_delay:g}"),
        flush=True,
    )
    samples = {kind: Samples() for kind in kinds}
    hub: ServerProcess | None = None
    side: JsSide | None = None
    budget = int(120 + runs * len(kinds) * 2 * (args.timeout + 10))
    try:
        with time_budget(budget):
            hub = start_our_hub()
            side = JsSide()
            print(f"our hub {hub.url}; JS server {side.server.url}", flush=True)
            for round_index in range(1, runs + 1):
                print(f"round {round_index}/{runs}", flush=True)
                for kind in kinds:
                    run_round(samples[kind], kind, hub.url, side, args)
    except (BenchError, OSError) as error:
        print(f"benchmark failed: {error}", file=sys.stderr, flush=True)
        for kind in kinds:
            samples[kind].failures.append(f"run: {type(error).__name__}: {error}")
    finally:
        if side is not None:
            side.close()
        if hub is not None:
            hub.stop()

    result: dict[str, Any] = {"runs": runs}
    for kind in kinds:
        result[f"{kind}_first_channel_ms"] = median(samples[kind].first_channel)
        result[f"{kind}_six_min_peers_ms"] = median(samples[kind].six_min_peers)
    js_first = result["js_first_channel_ms"]
    js_six = result["js_six_min_peers_ms"]
    result["ratio_first_channel"] = ratio(result["py_first_channel_ms"], js_first)
    result["ratio_six"] = ratio(result["py_six_min_peers_ms"], js_six)
    if "py_tuned" in kinds:
        result["ratio_tuned_first_channel"] = ratio(result["py_tuned_first_channel_ms"], js_first)
        result["ratio_tuned_six"] = ratio(result["py_tuned_six_min_peers_ms"], js_six)
        result["tuned_optimize_delay_s"] = args.tuned_delay
    result["default_optimize_delay_s"] = default_delay
    failures = {kind: samples[kind].failures for kind in kinds if samples[kind].failures}
    result["failures"] = failures
    result["not_converged"] = {
        kind: samples[kind].not_converged for kind in kinds if samples[kind].not_converged
    }
    result["samples"] = {
        kind: {
            "first_channel_ms": [round(v, 1) for v in samples[kind].first_channel],
            "six_min_peers_ms": [round(v, 1) for v in samples[kind].six_min_peers],
        }
        for kind in kinds
    }

    print("medians (ms):", flush=True)
    for kind in kinds:
        print(
            f"  {kind:<9} first_channel {result[f'{kind}_first_channel_ms']!s:>8}   "
            f"six_min_peers {result[f'{kind}_six_min_peers_ms']!s:>8}",
            flush=True,
        )
    print(
        f"  ratio py/js: first_channel {result['ratio_first_channel']} (goal <= 1.2), "
        f"six_min_peers {result['ratio_six']}",
        flush=True,
    )
    if "py_tuned" in kinds:
        print(
            f"  ratio py_tuned/js: first_channel {result['ratio_tuned_first_channel']}, "
            f"six_min_peers {result['ratio_tuned_six']}",
            flush=True,
        )
    print(json.dumps(result), flush=True)
    # The reference not converging is its behaviour (its smallest IDs never dial); ours is ours.
    ours_stuck = any(samples[kind].not_converged for kind in kinds if kind != "js")
    return 1 if failures or ours_stuck else 0


if __name__ == "__main__":
    sys.exit(main())
