"""Run examples/blocking_client.py as a subprocess against a hub on 127.0.0.1.

Two hubs: our own (``python -m peerpigeon hub``) with two example peers that find each other,
and a tiny websockets hub in this process that checks the frames byte for byte, sends a
fragmented message and pings, and closes the first session to make the example reconnect.
Every process and thread started here is stopped in a ``finally``; everything is bounded.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final
from urllib.parse import parse_qs, urlsplit

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve

ROOT: Final = Path(__file__).resolve().parents[2]
EXAMPLE: Final = ROOT / "examples" / "blocking_client.py"
A: Final = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
B: Final = "0f1e2d3c4b5a69788796a5b4c3d2e1f00a1b2c3d"
FAKE: Final = "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Proc:
    """A child process whose stdout is read line by line with a deadline (no blocking read)."""

    def __init__(self, *args: str) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.lines: list[str] = []
        self._buffer = b""
        self._eof = False

    def _read(self, timeout_s: float) -> None:
        assert self.popen.stdout is not None
        fd = self.popen.stdout.fileno()
        ready, _, _ = select.select([fd], [], [], max(0.0, timeout_s))
        if not ready:
            return
        chunk = os.read(fd, 65536)
        if not chunk:
            self._eof = True
        *complete, self._buffer = (self._buffer + chunk).split(b"\n")
        self.lines += [line.decode() for line in complete]

    def wait_for(self, pattern: str, timeout_s: float, *, count: int = 1) -> re.Match[str]:
        """The `count`-th line (read so far or later) matching `pattern`; fail after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while True:
            matches = [m for line in self.lines if (m := re.search(pattern, line))]
            if len(matches) >= count:
                return matches[count - 1]
            left = deadline - time.monotonic()
            if self._eof or left <= 0:
                pytest.fail(f"no line matching {pattern!r} within {timeout_s}s: {self.lines!r}")
            self._read(left)

    def finish(self, timeout_s: float) -> list[str]:
        """Read to the end, wait for a clean exit, and return every line."""
        deadline = time.monotonic() + timeout_s
        while not self._eof and time.monotonic() < deadline:
            self._read(deadline - time.monotonic())
        assert self._eof, f"still running after {timeout_s}s: {self.lines!r}"
        returncode = self.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        assert self.popen.stderr is not None
        err = self.popen.stderr.read().decode()
        assert returncode == 0, err
        assert "Traceback" not in err, err
        return self.lines

    def interrupt(self) -> None:
        """Ctrl-C: the example says goodbye and exits."""
        self.popen.send_signal(signal.SIGINT)

    def stop(self) -> None:
        """Kill the process if it still runs, and reap it."""
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(timeout=10)
        for stream in (self.popen.stdout, self.popen.stderr):
            if stream is not None:
                stream.close()


def _run_example(url: str, peer: str, seconds: float) -> Proc:
    return Proc(str(EXAMPLE), url, "--peer-id", peer, "--seconds", str(seconds))


@contextmanager
def our_hub() -> Iterator[str]:
    """``python -m peerpigeon hub`` on 127.0.0.1, port chosen by the OS; yields its URL."""
    hub = Proc("-m", "peerpigeon", "hub", "--host", "127.0.0.1", "--port", "0")
    try:
        yield hub.wait_for(r"ws://127\.0\.0\.1:\d+", 15.0).group(0)
    finally:
        hub.stop()


def test_two_examples_meet_through_our_hub() -> None:
    with our_hub() as url:
        first = _run_example(url, A, seconds=30.0)
        second = None
        try:
            first.wait_for(r"^connected ", 10.0)
            second = _run_example(url, B, seconds=30.0)
            second.wait_for(f"^discovered {A}$", 10.0)
            first.wait_for(f"^discovered {B}$", 10.0)
            second.interrupt()
            second_lines = second.finish(10.0)
            first.wait_for(f"^left {B} ", 10.0)
            first.interrupt()
            first_lines = first.finish(10.0)
        finally:
            for proc in (first, second):
                if proc is not None:
                    proc.stop()
    assert second_lines[0] == f"peer {B}"
    assert second_lines[1] == f"connected {url}/?peerId={B}"
    assert f"discovered {A}" in second_lines
    assert second_lines[-1] == "disconnected 1000 Client disconnect (no retry)"
    assert f"discovered {B}" in first_lines
    assert any(line.startswith(f"left {B} ") for line in first_lines)
    assert first_lines[-1] == "disconnected 1000 Client disconnect (no retry)"


class FakeHub:
    """A websockets hub in threads: records frames, closes the first session after 0.3 s."""

    def __init__(self) -> None:
        self.frames: list[list[str]] = []  # per connection
        self.lock = threading.Lock()

    def handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        peer = parse_qs(urlsplit(ws.request.path).query)["peerId"][0]
        with self.lock:
            frames: list[str] = []
            self.frames.append(frames)
            first = len(self.frames) == 1
        try:
            ws.send(json.dumps({"type": "connected", "data": {"peerId": peer}}))
            for message in ws:
                assert isinstance(message, str)
                frames.append(message)
                kind = json.loads(message)["type"]
                if kind == "announce":
                    found = json.dumps(
                        {
                            "type": "peer-discovered",
                            "data": {"peerId": FAKE, "isHub": False},
                            "networkName": "global",
                            "fromPeerId": "system",
                            "targetPeerId": peer,
                        }
                    )
                    ws.send([found[:20], found[20:50], found[50:]])  # one fragmented message
                    if first:
                        time.sleep(0.3)
                        ws.close(1000, "Server shutting down")
                elif kind == "ping":
                    ws.send(json.dumps({"type": "pong", "data": {"timestamp": 1}}))
        except ConnectionClosed:
            pass


def test_example_against_a_fake_hub() -> None:
    fake = FakeHub()
    # The hub pings every 0.1 s: a client that did not answer would be closed with 1011.
    with serve(fake.handler, "127.0.0.1", 0, ping_interval=0.1, ping_timeout=0.3) as server:
        port = server.socket.getsockname()[1]
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        proc = _run_example(f"ws://127.0.0.1:{port}", A, seconds=30.0)
        try:
            proc.wait_for("^disconnected 1000 Server shutting down", 10.0)
            proc.wait_for(f"^discovered {FAKE}$", 10.0, count=2)  # in the second session
            proc.interrupt()
            lines = proc.finish(10.0)
        finally:
            proc.stop()
            server.shutdown()
            thread.join(timeout=10)
    url = f"ws://127.0.0.1:{port}/?peerId={A}"
    assert lines[:3] == [f"peer {A}", f"connected {url}", f"discovered {FAKE}"]
    assert re.fullmatch(
        r"disconnected 1000 Server shutting down \(retry in (0\.[5-9]|1\.0)s\)", lines[3]
    )
    assert lines[4:] == [
        f"connected {url}",
        f"discovered {FAKE}",  # the table was forgotten with the first session
        "disconnected 1000 Client disconnect (no retry)",
    ]
    announce = (
        '{"type":"announce","data":{"peerId":"' + A + '"},"maxPeers":3,"networkName":"global"}'
    )
    assert len(fake.frames) == 2
    assert fake.frames[0] == [announce]
    assert fake.frames[1][0] == announce
    goodbye = json.loads(fake.frames[1][-1])
    assert goodbye["type"] == "goodbye"
    assert goodbye["data"]["peerId"] == A
    assert abs(goodbye["data"]["timestamp"] - time.time() * 1000) < 60_000


def test_example_reports_an_unreachable_hub() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago, and now is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = _run_example(f"ws://127.0.0.1:{port}", A, seconds=1.2)
    try:
        lines = proc.finish(15.0)
    finally:
        proc.stop()
    assert lines[0] == f"peer {A}"
    assert lines[1].startswith("disconnected 1006 ")
    assert lines[-1] == "disconnected 1000 Client disconnect (no retry)"


def test_example_rejects_a_bad_url() -> None:
    proc = Proc(str(EXAMPLE), "ftp://127.0.0.1:1", "--seconds", "0.1")
    try:
        _, err = proc.popen.communicate(timeout=15)
    finally:
        proc.stop()
    assert proc.popen.returncode == 2
    assert b"urls:" in err
