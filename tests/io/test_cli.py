"""The ``peerpigeon`` command line: hub start-up line, environment variables, clean shutdown,
and the demo (the README's main job)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

URL_RE = re.compile(r"ws://127\.0\.0\.1:(\d+)")


@contextmanager
def hub_process(
    *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[str], int]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "peerpigeon", "hub", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = URL_RE.search(line)
        assert match, f"no URL in start-up line {line!r}"
        yield proc, int(match.group(1))
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def health(port: int) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


def test_hub_prints_its_url_serves_health_and_stops_on_sigterm() -> None:
    with hub_process("--port", "0") as (proc, port):
        assert health(port)["status"] == "healthy"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
        assert proc.returncode == 0
        assert "stopped" in out


def test_environment_variables_apply_when_no_flag_is_given() -> None:
    env = {"PORT": "0", "MAX_CONNECTIONS": "7", "HUB_MESH_NAMESPACE": "my-hubs"}
    with hub_process("--hub", env=env) as (proc, port):
        body = health(port)
        assert body["isHub"] is True
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)
        assert proc.returncode == 0


def test_flags_win_over_environment() -> None:
    with hub_process("--port", "0", env={"PORT": "1"}) as (_proc, port):
        assert port != 1
        assert health(port)["isHub"] is False


def test_bad_config_is_a_clear_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "peerpigeon", "hub", "--port", "0", "--max-connections", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "max_connections" in proc.stderr


@pytest.mark.parametrize("peers", [3])
def test_demo_runs_and_exits_zero(peers: int) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "peerpigeon", "demo", "--peers", str(peers)],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 0, proc.stderr
    assert "mesh formed" in proc.stdout
    assert "direct messages delivered" in proc.stdout
    assert "re-balanced" in proc.stdout
    assert "demo finished" in proc.stdout
