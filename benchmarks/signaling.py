#!/usr/bin/env python
"""Signaling relay throughput and latency: our hub against the JavaScript reference server.

One run drives the same closed-loop load against three servers, one after the other:

1. ``ours``: ``python -m peerpigeon hub --port 0 --max-connections 1000``;
2. ``js``: the reference ``PeerPigeonServer`` as shipped, logging on (its console output goes
   to ``/dev/null``: every line is still formatted and written);
3. ``js-quiet``: the same with ``console.*`` silenced (``js_server.mjs --quiet``).

The load: K clients (200; 20 with ``--quick``) connect over loopback WebSocket and announce in
network ``global``; the benchmark waits until every client has been told about the K-1 others.
Clients are paired (0, 1), (2, 3) ... Each client keeps ``--in-flight`` (8) chains going to
its partner: it sends an ``offer`` (an 800-character SDP, in the reference's client envelope,
``targetPeerId`` = partner); the partner answers every offer it receives with an ``answer``;
the sender answers every answer with the next offer. Every relayed frame (offers and answers)
counts as one relay. The SDP text carries a marker with the send time (``time.monotonic_ns``,
one system-wide clock), so relay latency = receive time - send time of each frame, measured
at the client: server time plus both clients' socket and event-loop time.

The load generator is ``--workers`` (2) separate processes, each one asyncio loop with a
minimal hand-written WebSocket client (asyncio ``Protocol``, frames prebuilt and masked once,
only the timestamp masked per frame, one ``write`` per read) so that it costs far less CPU
per relay than the servers. Warm-up, then a fixed measuring window; the server's CPU (from
``/proc/<pid>/stat``), the generator's CPU and the whole machine's are reported for that
window. After the loaded window an unloaded probe (one pair, one frame in flight) gives the
idle relay latency.

Usage: ``python benchmarks/signaling.py [--quick] [--clients K] [--in-flight N] ...``.
Human-readable lines first; the last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import base64
import contextlib
import json
import math
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import (
    BenchError,
    ServerProcess,
    die_with_parent,
    ensure_js_modules,
    machine_cpu_ticks,
    percentile,
    start_js_server,
    start_our_hub,
)

SDP_CHARS = 800
NETWORK = "global"
MARK = b"a=x-pp-bench:"
MARK_LEN = len(MARK)
TS_DIGITS = 19
KIND_OFFER = ord("O")
KIND_ANSWER = ord("A")
SERVER_NAMES = ("ours", "js", "js-quiet")
_WIDTH = 17  # "js-quiet (median)"


# ============================================================================================
# Load generator (runs in worker processes)


def make_sdp(kind: str) -> str:
    """An SDP-looking text of exactly `SDP_CHARS` characters holding the bench marker."""
    fingerprint = ":".join(f"{(i * 37) % 256:02X}" for i in range(32))
    lines = [
        "v=0",
        "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
        f"{MARK.decode()}{kind}:{'0' * TS_DIGITS}",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0",
        "a=extmap-allow-mixed",
        "a=msid-semantic: WMS",
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
        "c=IN IP4 0.0.0.0",
        "a=ice-ufrag:Qx7b",
        "a=ice-pwd:4Zp1uJ6jcqWq0wXlFmo2pBvN",
        "a=ice-options:trickle",
        f"a=fingerprint:sha-256 {fingerprint}",
        "a=setup:actpass" if kind == "O" else "a=setup:active",
        "a=mid:0",
        "a=sctp-port:5000",
        "a=max-message-size:262144",
        "a=candidate:1 1 udp 2122260223 127.0.0.1 54321 typ host generation 0",
    ]
    text = "\r\n".join(lines) + "\r\n"
    pad = SDP_CHARS - len(text) - len("a=x-pad:\r\n")
    if pad < 0:
        raise AssertionError("SDP template too long")
    text += "a=x-pad:" + "x" * pad + "\r\n"
    assert len(text) == SDP_CHARS
    return text


def _rotated(key: bytes, phase: int) -> bytes:
    shift = phase % 4
    return key[shift:] + key[:shift]


def mask_bytes(data: bytes, key: bytes, phase: int = 0) -> bytes:
    """XOR `data` with the 4-byte `key`, starting at byte `phase` of the masking stream."""
    if not data:
        return b""
    stream = (_rotated(key, phase) * (len(data) // 4 + 1))[: len(data)]
    value = int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")
    return value.to_bytes(len(data), "big")


def client_header(length: int, key: bytes, opcode: int = 0x1) -> bytes:
    """A masked client frame header (FIN set) for a payload of `length` bytes."""
    first = bytes([0x80 | opcode])
    if length < 126:
        return first + bytes([0x80 | length]) + key
    if length < 65536:
        return first + bytes([0x80 | 126]) + length.to_bytes(2, "big") + key
    return first + bytes([0x80 | 127]) + length.to_bytes(8, "big") + key


def client_frame(payload: bytes, key: bytes, opcode: int = 0x1) -> bytes:
    return client_header(len(payload), key, opcode) + mask_bytes(payload, key)


class FrameTemplate:
    """A prebuilt, premasked client frame whose only variable part is the send timestamp."""

    __slots__ = ("head", "tail", "var_mask")

    def __init__(self, payload: bytes, key: bytes) -> None:
        marker = payload.find(MARK)
        if marker < 0:
            raise AssertionError("marker missing from the payload")
        ts_at = marker + MARK_LEN + 2
        ts_end = ts_at + TS_DIGITS
        self.head = client_header(len(payload), key) + mask_bytes(payload[:ts_at], key)
        self.tail = mask_bytes(payload[ts_end:], key, ts_end)
        self.var_mask = int.from_bytes(mask_bytes(b"\0" * TS_DIGITS, key, ts_at), "big")

    def build(self, ts_ns: int) -> bytes:
        digits = int.from_bytes(b"%019d" % ts_ns, "big") ^ self.var_mask
        return self.head + digits.to_bytes(TS_DIGITS, "big") + self.tail


def signaling_payload(kind: str, target: str) -> bytes:
    """A client → server frame as a JS peer sends it (``maxPeers`` left out)."""
    message_type = "offer" if kind == "O" else "answer"
    message = {
        "type": message_type,
        "data": {"type": message_type, "sdp": make_sdp(kind)},
        "networkName": NETWORK,
        "targetPeerId": target,
    }
    return json.dumps(message, separators=(",", ":")).encode()


class Phase:
    """Counters of one load phase, shared by every client of a worker."""

    __slots__ = ("in_window", "lat", "received", "running", "sent", "w0", "w1")

    def __init__(self, w0_ns: int = 0, w1_ns: int = 0) -> None:
        self.running = False
        self.w0 = w0_ns
        self.w1 = w1_ns
        self.lat = array.array("q")
        self.in_window = 0
        self.sent = 0
        self.received = 0


class WorkerState:
    def __init__(self, expected_discoveries: int, clients: int) -> None:
        self.phase = Phase()
        self.expected_discoveries = expected_discoveries
        self.pending_discovery = clients
        self.all_discovered = asyncio.Event()
        if expected_discoveries <= 0 or clients == 0:
            self.all_discovered.set()
        self.errors: list[str] = []

    def client_discovered_all(self) -> None:
        self.pending_discovery -= 1
        if self.pending_discovery <= 0:
            self.all_discovered.set()


class BenchClient(asyncio.Protocol):
    """One signaling client: a minimal WebSocket client over an asyncio transport."""

    def __init__(self, state: WorkerState, peer_id: str, partner: str, host: str, port: int):
        self.state = state
        self.peer_id = peer_id
        self.host = host
        self.port = port
        self.key = os.urandom(4)
        self.offer = FrameTemplate(signaling_payload("O", partner), self.key)
        self.answer = FrameTemplate(signaling_payload("A", partner), self.key)
        self.transport: asyncio.Transport | None = None
        self.handshake_done = False
        self.buf = b""
        self.discovered = 0
        self.closed = False
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # --- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET /?peerId={self.peer_id} HTTP/1.1\r\n"
            f"Host: {self.host}:{self.port}\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        )
        transport.write(request.encode("ascii"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"connection lost: {exc!r}"))

    def data_received(self, data: bytes) -> None:
        if not self.handshake_done:
            self.buf += data
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = self.buf[:end], self.buf[end + 4 :]
            self.buf = b""
            if not head.startswith(b"HTTP/1.1 101"):
                line = head.split(b"\r\n", 1)[0].decode("latin-1")
                if not self.opened.done():
                    self.opened.set_exception(ConnectionError(f"upgrade refused: {line}"))
                assert self.transport is not None
                self.transport.close()
                return
            self.handshake_done = True
            self.opened.set_result(None)
            if not data:
                return
        self._frames(data)

    # --- frames ----------------------------------------------------------------------------

    def _frames(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        n = len(buf)
        pos = 0
        now = time.monotonic_ns()
        phase = self.state.phase
        out: list[bytes] = []
        while n - pos >= 2:
            length = buf[pos + 1] & 0x7F
            if length < 126:
                start = pos + 2
            elif length == 126:
                if n - pos < 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                start = pos + 4
            else:
                if n - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                start = pos + 10
            end = start + length
            if end > n:
                break
            opcode = buf[pos] & 0x0F
            pos = end
            if opcode == 0x1:
                at = buf.find(MARK, start, end)
                if at >= 0:
                    at += MARK_LEN
                    sent_at = int(buf[at + 2 : at + 2 + TS_DIGITS])
                    phase.received += 1
                    if phase.w0 <= now < phase.w1:
                        phase.lat.append(now - sent_at)
                        phase.in_window += 1
                    if phase.running:
                        template = self.answer if buf[at] == KIND_OFFER else self.offer
                        out.append(template.build(now))
                        phase.sent += 1
                elif buf.find(b"peer-discovered", start, min(end, start + 64)) >= 0:
                    self.discovered += 1
                    if self.discovered == self.state.expected_discoveries:
                        self.state.client_discovered_all()
            elif opcode == 0x9:  # ping → pong with the same payload
                out.append(client_frame(buf[start:end], self.key, 0xA))
            elif opcode == 0x8:
                code = int.from_bytes(buf[start : start + 2], "big") if length >= 2 else 1005
                reason = buf[start + 2 : end].decode("utf-8", "replace")
                self.state.errors.append(f"{self.peer_id[:8]} closed by server: {code} {reason}")
                self.closed = True
                if self.transport is not None:
                    self.transport.close()
                break
        self.buf = buf[pos:] if pos < n else b""
        if out and self.transport is not None:
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))

    # --- commands --------------------------------------------------------------------------

    def send_announce(self) -> None:
        message = {"type": "announce", "data": {"peerId": self.peer_id}, "networkName": NETWORK}
        payload = json.dumps(message, separators=(",", ":")).encode()
        assert self.transport is not None
        self.transport.write(client_frame(payload, self.key))

    def start_chains(self, count: int, now_ns: int) -> int:
        if self.transport is None or self.closed or count <= 0:
            return 0
        self.transport.write(b"".join(self.offer.build(now_ns) for _ in range(count)))
        return count

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            with contextlib.suppress(Exception):
                self.transport.write(client_frame((1000).to_bytes(2, "big"), self.key, 0x8))
            self.transport.close()


@dataclass
class SessionSpec:
    url: str
    clients: list[tuple[str, str]]  # (peer ID, partner's peer ID); partners are adjacent
    total_clients: int
    discovery_timeout_s: float


@dataclass
class PhaseSpec:
    start_at: float  # time.monotonic()
    warmup_s: float
    duration_s: float
    in_flight: int
    active_pairs: int | None  # None: every pair of the worker
    drain_s: float


async def _recv(conn: Connection) -> Any:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, conn.recv)


async def _session(conn: Connection, spec: SessionSpec) -> None:
    loop = asyncio.get_running_loop()
    host_port = spec.url.removeprefix("ws://")
    host, _, port_text = host_port.rpartition(":")
    port = int(port_text)
    state = WorkerState(spec.total_clients - 1, len(spec.clients))
    clients = [BenchClient(state, pid, partner, host, port) for pid, partner in spec.clients]
    gate = asyncio.Semaphore(50)

    async def connect(client: BenchClient) -> None:
        async with gate:
            await loop.create_connection(lambda: client, host, port)
            await asyncio.wait_for(client.opened, 20)
            client.send_announce()

    try:
        await asyncio.wait_for(asyncio.gather(*(connect(c) for c in clients)), 60)
        discovery_ok = True
        try:
            await asyncio.wait_for(state.all_discovered.wait(), spec.discovery_timeout_s)
        except TimeoutError:
            discovery_ok = False
        conn.send(
            (
                "ready",
                {
                    "connected": sum(not c.closed for c in clients),
                    "discovery_complete": discovery_ok,
                    "min_discovered": min((c.discovered for c in clients), default=0),
                },
            )
        )
        while True:
            command = await _recv(conn)
            if command[0] == "phase":
                conn.send(("phase", await _worker_phase(state, clients, command[1])))
            elif command[0] == "end":
                break
            else:
                raise BenchError(f"unknown worker command {command[0]!r}")
    finally:
        for client in clients:
            client.close()
        await asyncio.sleep(0.05)
    conn.send(("ended", {"errors": state.errors[:20]}))


async def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


async def _worker_phase(
    state: WorkerState, clients: Sequence[BenchClient], spec: PhaseSpec
) -> dict[str, Any]:
    w0 = spec.start_at + spec.warmup_s
    w1 = w0 + spec.duration_s
    phase = Phase(int(w0 * 1e9), int(w1 * 1e9))
    state.phase = phase
    drivers = clients if spec.active_pairs is None else clients[: 2 * spec.active_pairs]
    await _sleep_until(spec.start_at)
    phase.running = True
    now = time.monotonic_ns()
    for client in drivers:
        phase.sent += client.start_chains(spec.in_flight, now)
    await _sleep_until(w0)
    cpu0 = time.process_time()
    await _sleep_until(w1)
    cpu1 = time.process_time()
    phase.running = False
    deadline = time.monotonic() + spec.drain_s
    while phase.received < phase.sent and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    return {
        "in_window": phase.in_window,
        "lat_ns": phase.lat.tobytes(),
        "cpu_s": cpu1 - cpu0,
        "sent": phase.sent,
        "received": phase.received,
        "closed": sum(c.closed for c in clients),
    }


def worker_main(conn: Connection) -> None:
    """A load-generator process: runs sessions on demand until told to exit."""
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and cleans up
    while True:
        try:
            command = conn.recv()
        except (EOFError, OSError):
            return
        if command[0] == "exit":
            return
        if command[0] != "session":
            conn.send(("error", f"unexpected command {command[0]!r}"))
            continue
        try:
            asyncio.run(_session(conn, command[1]))
        except (EOFError, BrokenPipeError):
            return
        except BaseException as error:
            with contextlib.suppress(OSError):
                conn.send(("error", f"{type(error).__name__}: {error}"))


# ============================================================================================
# Orchestration (the main process)


@dataclass
class Worker:
    process: BaseProcess
    conn: Connection

    def send(self, message: tuple[Any, ...]) -> None:
        self.conn.send(message)

    def discard_pending(self) -> None:
        """Drop replies left over from an aborted session."""
        while self.conn.poll(0):
            self.conn.recv()

    def expect(self, kind: str, timeout: float, *, skip_others: bool = False) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            if not self.conn.poll(max(0.0, deadline - time.monotonic())):
                raise BenchError(f"load-generator worker gave no {kind!r} within {timeout:.0f} s")
            try:
                message = self.conn.recv()
            except (EOFError, OSError) as error:
                raise BenchError(f"load-generator worker died: {error!r}") from error
            if message[0] == "error":
                raise BenchError(f"load-generator worker failed: {message[1]}")
            if message[0] == kind:
                return message[1]
            if not skip_others:
                raise BenchError(f"load-generator worker sent {message[0]!r}, expected {kind!r}")


@dataclass
class Figures:
    relays_per_s: float = math.nan
    p50_ms: float = math.nan
    p90_ms: float = math.nan
    p99_ms: float = math.nan
    server_cpu_pct: float = math.nan
    generator_cpu_pct: float = math.nan
    machine_busy_pct: float = math.nan
    lost: int = 0
    idle_p50_ms: float = math.nan
    idle_p99_ms: float = math.nan
    idle_round_trips: int = 0
    error: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class Params:
    clients: int
    in_flight: int
    warmup_s: float
    duration_s: float
    idle_s: float
    workers: int
    rounds: int = 1


def _latencies(results: Sequence[dict[str, Any]]) -> list[int]:
    merged: array.array[int] = array.array("q")
    for result in results:
        part: array.array[int] = array.array("q")
        part.frombytes(result["lat_ns"])
        merged.extend(part)
    return sorted(merged)


def _drive_phase(
    workers: Sequence[Worker],
    server: ServerProcess,
    spec_for: Callable[[int], PhaseSpec],
    measure: Callable[[float, float], None] | None = None,
) -> list[dict[str, Any]]:
    specs = [spec_for(i) for i in range(len(workers))]
    for worker, spec in zip(workers, specs, strict=True):
        worker.send(("phase", spec))
    first = specs[0]
    w0 = first.start_at + first.warmup_s
    w1 = w0 + first.duration_s
    if measure is not None:
        measure(w0, w1)
    timeout = max(0.0, w1 - time.monotonic()) + first.drain_s + 30
    results = [worker.expect("phase", timeout) for worker in workers]
    if not server.alive():
        raise BenchError(f"{server.name} exited during the load\n{server.diagnostics()}")
    return results


def bench_server(server: ServerProcess, workers: Sequence[Worker], params: Params) -> Figures:
    """Drive the load against one running server and return its figures."""
    figures = Figures()
    ids = [os.urandom(20).hex() for _ in range(params.clients)]
    pairs = [(ids[i], ids[i + 1]) for i in range(0, params.clients, 2)]
    shares: list[list[tuple[str, str]]] = [[] for _ in workers]
    for index, (a, b) in enumerate(pairs):
        shares[index % len(workers)] += [(a, b), (b, a)]
    for worker, share in zip(workers, shares, strict=True):
        worker.discard_pending()
        worker.send(("session", SessionSpec(server.url, share, params.clients, 30.0)))
    try:
        ready = [worker.expect("ready", 90) for worker in workers]
        connected = sum(r["connected"] for r in ready)
        if connected != params.clients:
            raise BenchError(f"only {connected} of {params.clients} clients connected")
        if not all(r["discovery_complete"] for r in ready):
            low = min(r["min_discovered"] for r in ready)
            figures.notes.append(f"announce fan-out incomplete (a client saw {low} peers)")

        # --- the loaded window
        cpu: dict[str, float] = {}

        def measure(w0: float, w1: float) -> None:
            time.sleep(max(0.0, w0 - time.monotonic()))
            s0, (b0, t0) = server.cpu_seconds(), machine_cpu_ticks()
            time.sleep(max(0.0, w1 - time.monotonic()))
            s1, (b1, t1) = server.cpu_seconds(), machine_cpu_ticks()
            if s0 is not None and s1 is not None:
                cpu["server"] = s1 - s0
            cpu["machine_busy"] = (b1 - b0) / max(1, t1 - t0)

        start_at = time.monotonic() + 0.3
        results = _drive_phase(
            workers,
            server,
            lambda _i: PhaseSpec(
                start_at, params.warmup_s, params.duration_s, params.in_flight, None, 3.0
            ),
            measure,
        )
        in_window = sum(r["in_window"] for r in results)
        lat = _latencies(results)
        figures.relays_per_s = in_window / params.duration_s
        figures.p50_ms = percentile(lat, 0.50) / 1e6
        figures.p90_ms = percentile(lat, 0.90) / 1e6
        figures.p99_ms = percentile(lat, 0.99) / 1e6
        figures.server_cpu_pct = 100 * cpu.get("server", math.nan) / params.duration_s
        figures.generator_cpu_pct = 100 * sum(r["cpu_s"] for r in results) / params.duration_s
        figures.machine_busy_pct = 100 * cpu.get("machine_busy", math.nan) * (os.cpu_count() or 1)
        figures.lost = sum(r["sent"] - r["received"] for r in results)
        closed = sum(r["closed"] for r in results)
        if figures.server_cpu_pct < 85:
            figures.notes.append(
                f"server CPU only {figures.server_cpu_pct:.0f}% in the window: not saturated "
                "(other load on the machine, or the generator limited it)"
            )
        if figures.lost:
            figures.notes.append(f"{figures.lost} relayed frames never arrived")
        if closed:
            figures.notes.append(f"{closed} client connections were closed during the load")

        # --- the unloaded probe: one pair, one frame in flight
        if params.idle_s > 0:
            start_at = time.monotonic() + 0.2
            results = _drive_phase(
                workers,
                server,
                lambda i: PhaseSpec(start_at, 0.1, params.idle_s, 1, 1 if i == 0 else 0, 2.0),
            )
            lat = _latencies(results)
            figures.idle_round_trips = len(lat) // 2
            figures.idle_p50_ms = percentile(lat, 0.50) / 1e6
            figures.idle_p99_ms = percentile(lat, 0.99) / 1e6
    finally:
        for worker in workers:
            with contextlib.suppress(Exception):
                worker.send(("end",))
        for worker in workers:
            with contextlib.suppress(Exception):
                ended = worker.expect("ended", 15, skip_others=True)
                figures.notes += ended["errors"][:3]
    return figures


# ============================================================================================
# Entry point


class BudgetExceeded(BenchError):
    """The whole run took longer than its time budget."""


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise BudgetExceeded("the benchmark exceeded its time budget")


def _start_server(name: str, max_connections: int) -> ServerProcess:
    if name == "ours":
        return start_our_hub(max_connections)
    return start_js_server(quiet=name == "js-quiet", max_connections=max_connections)


def _fmt(value: float, digits: int = 2) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def _json_number(value: float, digits: int = 3) -> float | None:
    return None if math.isnan(value) else round(value, digits)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="K=20, 1 s warm-up, 3 s window")
    parser.add_argument("--clients", type=int, default=None, help="clients (even; default 200)")
    parser.add_argument("--in-flight", type=int, default=8, help="chains per client (8)")
    parser.add_argument("--duration", type=float, default=None, help="window, s (10; quick 3)")
    parser.add_argument("--warmup", type=float, default=None, help="warm-up, s (2; quick 1)")
    parser.add_argument("--idle", type=float, default=None, help="idle probe, s (1; quick 0.5)")
    parser.add_argument("--workers", type=int, default=2, help="load-generator processes (2)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run the servers in turn this many times; report each server's median round (1)",
    )
    parser.add_argument(
        "--servers",
        default=",".join(SERVER_NAMES),
        help=f"comma-separated subset of {','.join(SERVER_NAMES)} (default: all)",
    )
    args = parser.parse_args(argv)
    params = Params(
        clients=args.clients or (20 if args.quick else 200),
        in_flight=args.in_flight,
        warmup_s=args.warmup if args.warmup is not None else (1.0 if args.quick else 2.0),
        duration_s=args.duration if args.duration is not None else (3.0 if args.quick else 10.0),
        idle_s=args.idle if args.idle is not None else (0.5 if args.quick else 1.0),
        workers=max(1, args.workers),
        rounds=max(1, args.rounds),
    )
    if params.clients < 2 or params.clients % 2:
        parser.error("--clients must be an even number >= 2")
    if params.in_flight < 1 or params.duration_s <= 0 or params.warmup_s < 0:
        parser.error("--in-flight must be >= 1, --duration > 0, --warmup >= 0")
    names = [n.strip() for n in args.servers.split(",") if n.strip()]
    if not names or any(n not in SERVER_NAMES for n in names):
        parser.error(f"--servers takes names from {SERVER_NAMES}")
    params.workers = min(params.workers, params.clients // 2)

    per_server = params.warmup_s + params.duration_s + params.idle_s + 25 + params.clients / 20
    budget = int(60 + params.rounds * len(names) * per_server)
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(budget)

    print(
        f"signaling relay benchmark: {params.clients} clients ({params.clients // 2} pairs), "
        f"{params.in_flight} frames in flight per client, {SDP_CHARS}-character SDP, "
        f"{params.workers} load-generator processes, {os.cpu_count()} CPUs, "
        f"warm-up {params.warmup_s:g} s, window {params.duration_s:g} s"
        + (f", {params.rounds} rounds" if params.rounds > 1 else ""),
        flush=True,
    )
    rounds: dict[str, list[Figures]] = {name: [] for name in names}
    context = multiprocessing.get_context("spawn")
    workers: list[Worker] = []
    servers: list[ServerProcess] = []
    try:
        if any(n.startswith("js") for n in names):
            try:
                ensure_js_modules()
            except Exception as error:  # no Node/npm, failed install: measure ours only
                message = f"npm install failed: {str(error).splitlines()[0]}"
                print(f"  {message}", file=sys.stderr, flush=True)
                for name in [n for n in names if n.startswith("js")]:
                    rounds[name].append(Figures(error=message))
                names = [n for n in names if not n.startswith("js")]
        for _ in range(params.workers if names else 0):
            parent_conn, child_conn = context.Pipe()
            process = context.Process(target=worker_main, args=(child_conn,), daemon=True)
            process.start()
            child_conn.close()
            workers.append(Worker(process, parent_conn))
        for round_index in range(params.rounds):
            for name in names:
                try:
                    servers.append(_start_server(name, max(1000, params.clients + 10)))
                    result = bench_server(servers[-1], workers, params)
                except BenchError as error:
                    if isinstance(error, BudgetExceeded):
                        raise
                    result = Figures(error=str(error).splitlines()[0])
                    print(f"  {name}: FAILED: {error}", file=sys.stderr, flush=True)
                finally:
                    while servers:
                        servers[-1].stop()
                        servers.pop()
                rounds[name].append(result)
                label = name if params.rounds == 1 else f"{name} #{round_index + 1}"
                _print_line(label, result)
    except BudgetExceeded as error:
        print(f"  ABORTED: {error}", file=sys.stderr, flush=True)
        for name in names:
            if not rounds[name]:
                rounds[name].append(Figures(error=str(error)))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        for server in servers:
            server.stop()
        for worker in workers:
            with contextlib.suppress(Exception):
                worker.send(("exit",))
        for worker in workers:
            worker.process.join(3)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(3)
            worker.conn.close()

    figures = {name: _median_round(results) for name, results in rounds.items()}
    if params.rounds > 1:
        for name, result in figures.items():
            _print_line(f"{name} (median)", result, notes=False)
    return _report(figures, rounds, params)


def _median_round(results: Sequence[Figures]) -> Figures:
    """The round whose relay rate is the median (the lower one of an even count)."""
    good = sorted((r for r in results if r.error is None), key=lambda r: r.relays_per_s)
    if not good:
        return results[0] if results else Figures(error="not run")
    return good[(len(good) - 1) // 2]


def _print_line(name: str, f: Figures, *, notes: bool = True) -> None:
    if f.error is not None:
        print(f"  {name:<{_WIDTH}} FAILED: {f.error}", flush=True)
        return
    print(
        f"  {name:<{_WIDTH}} {f.relays_per_s:>9,.0f} relays/s   latency p50 {_fmt(f.p50_ms)} ms"
        f"  p90 {_fmt(f.p90_ms)} ms  p99 {_fmt(f.p99_ms)} ms   CPU: server "
        f"{_fmt(f.server_cpu_pct, 0)}%  generator {_fmt(f.generator_cpu_pct, 0)}%  machine "
        f"{_fmt(f.machine_busy_pct, 0)}% (of {100 * (os.cpu_count() or 1)}%)   unloaded p50 "
        f"{_fmt(f.idle_p50_ms, 3)} ms  p99 {_fmt(f.idle_p99_ms, 3)} ms   "
        f"{_fmt(_per_cpu_second(f), 0)} relays per server CPU-second",
        flush=True,
    )
    for note in f.notes if notes else ():
        print(f"    note: {note}", flush=True)


def _per_cpu_second(f: Figures) -> float:
    """Relays per second of server CPU time: less sensitive to other load on the machine."""
    if math.isnan(f.server_cpu_pct) or f.server_cpu_pct <= 0:
        return math.nan
    return f.relays_per_s / (f.server_cpu_pct / 100)


def _report(figures: dict[str, Figures], rounds: dict[str, list[Figures]], params: Params) -> int:
    empty = Figures()
    ours = figures.get("ours", empty)
    js = figures.get("js", empty)
    quiet = figures.get("js-quiet", empty)

    def ratio(a: float, b: float) -> float:
        return a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan

    vs_js = ratio(ours.relays_per_s, js.relays_per_s)
    vs_quiet = ratio(ours.relays_per_s, quiet.relays_per_s)
    print(
        f"  ratio ours/js = {_fmt(vs_js)}x   ours/js-quiet = {_fmt(vs_quiet)}x   "
        f"js-quiet/js = {_fmt(ratio(quiet.relays_per_s, js.relays_per_s))}x",
        flush=True,
    )
    cpu_ratio = ratio(_per_cpu_second(ours), _per_cpu_second(js))
    cpu_ratio_quiet = ratio(_per_cpu_second(ours), _per_cpu_second(quiet))
    print(
        f"  per server CPU-second: ours/js = {_fmt(cpu_ratio)}x   "
        f"ours/js-quiet = {_fmt(cpu_ratio_quiet)}x",
        flush=True,
    )
    summary: dict[str, Any] = {
        "benchmark": "signaling_relay",
        "ours_relays_per_s": _json_number(ours.relays_per_s, 1),
        "js_relays_per_s": _json_number(js.relays_per_s, 1),
        "js_quiet_relays_per_s": _json_number(quiet.relays_per_s, 1),
        "ratio_vs_js": _json_number(vs_js),
        "ratio_vs_js_quiet": _json_number(vs_quiet),
        "cpu_ratio_vs_js": _json_number(cpu_ratio),
        "cpu_ratio_vs_js_quiet": _json_number(cpu_ratio_quiet),
        "ours_p50_ms": _json_number(ours.p50_ms),
        "ours_p99_ms": _json_number(ours.p99_ms),
        "js_p50_ms": _json_number(js.p50_ms),
        "js_p99_ms": _json_number(js.p99_ms),
        "js_quiet_p50_ms": _json_number(quiet.p50_ms),
        "js_quiet_p99_ms": _json_number(quiet.p99_ms),
        "clients": params.clients,
        "in_flight": params.in_flight,
        "duration_s": params.duration_s,
        "warmup_s": params.warmup_s,
        "sdp_chars": SDP_CHARS,
        "generator_processes": params.workers,
        "rounds": params.rounds,
        "cpus": os.cpu_count(),
        "js_logging": "console output formatted and written to /dev/null",
    }
    for key, f in (("ours", ours), ("js", js), ("js_quiet", quiet)):
        summary[f"{key}_server_cpu_pct"] = _json_number(f.server_cpu_pct, 1)
        summary[f"{key}_generator_cpu_pct"] = _json_number(f.generator_cpu_pct, 1)
        summary[f"{key}_relays_per_cpu_s"] = _json_number(_per_cpu_second(f), 1)
        summary[f"{key}_idle_p50_ms"] = _json_number(f.idle_p50_ms, 4)
        summary[f"{key}_idle_p99_ms"] = _json_number(f.idle_p99_ms, 4)
        summary[f"{key}_lost_frames"] = f.lost
        if f.error is not None:
            summary[f"{key}_error"] = f.error
        if params.rounds > 1:
            summary[f"{key}_relays_per_s_rounds"] = [
                _json_number(r.relays_per_s, 1) for r in rounds.get(key.replace("_", "-"), [])
            ]
    print(json.dumps(summary), flush=True)
    failed = any(r.error is not None for results in rounds.values() for r in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
