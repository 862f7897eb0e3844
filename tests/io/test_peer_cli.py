"""``peerpigeon peer``: two interactive peers, driven through pipes, on a ``peerpigeon hub``.

Everything is a subprocess on 127.0.0.1 (``--loopback`` keeps ICE there); every wait is
bounded and every process is ended, pass or fail.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
WAIT_S = 30.0
PEER_A = "ab" * 20  # the greater ID: A offers
PEER_B = "12" * 20
NETWORK = "cli-test"


class LineProcess:
    """A subprocess whose stdout lines are collected on a thread; stdin takes text lines."""

    def __init__(self, *args: str) -> None:
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
        self.argv = [sys.executable, "-m", "peerpigeon", *args]
        self.proc = subprocess.Popen(
            self.argv,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            start_new_session=True,
        )
        self.lines: list[str] = []
        self.stderr: list[str] = []
        self._cond = threading.Condition()
        self._eof = False
        self._taken = 0
        self._threads = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line.rstrip("\n"))

    def wait_line(self, pattern: str, timeout: float = WAIT_S) -> re.Match[str]:
        """The first line from the last one returned on that matches `pattern` (a regex)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for index in range(self._taken, len(self.lines)):
                    match = regex.search(self.lines[index])
                    if match is not None:
                        self._taken = index + 1
                        return match
                remaining = deadline - time.monotonic()
                if self._eof or remaining <= 0:
                    break
                self._cond.wait(remaining)
        state = "exited" if self._eof else f"timed out after {timeout} s"
        raise AssertionError(
            f"{' '.join(self.argv)} {state} waiting for {pattern!r}\nstdout:\n"
            + "\n".join(self.lines[-30:])
            + "\nstderr:\n"
            + "\n".join(self.stderr[-30:])
        )

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def close_stdin(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()

    def wait_exit(self, timeout: float = WAIT_S) -> int:
        code = self.proc.wait(timeout)
        for thread in self._threads:
            thread.join(5)
        return code

    def kill(self) -> None:
        """End the whole process group (idempotent)."""
        self.close_stdin()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


@pytest.fixture
def processes() -> Iterator[list[LineProcess]]:
    started: list[LineProcess] = []
    try:
        yield started
    finally:
        for process in reversed(started):
            process.kill()


def start_hub(processes: list[LineProcess]) -> str:
    hub = LineProcess("hub", "--port", "0")
    processes.append(hub)
    return hub.wait_line(r"ws://127\.0\.0\.1:\d+").group(0)


def start_peer(processes: list[LineProcess], url: str, *args: str) -> LineProcess:
    peer = LineProcess("peer", url, "--loopback", "--network", NETWORK, *args)
    processes.append(peer)
    peer.wait_line(r"connected to the hub")
    return peer


def test_two_cli_peers_exchange_messages(processes: list[LineProcess]) -> None:
    url = start_hub(processes)
    a = start_peer(processes, url, "--peer-id", PEER_A, "--min-peers", "1", "--max-peers", "2")
    b = start_peer(processes, url, "--peer-id", PEER_B, "--min-peers", "1")
    assert PEER_A in a.lines[0]

    a.wait_line(rf"peer connected: {PEER_B}$")
    b.wait_line(rf"peer connected: {PEER_A}$")

    # A direct message each way; the peer may be named by a prefix.
    a.send(f"send {PEER_B[:6]} hello from a, with spaces")
    a.wait_line(rf"sent to {PEER_B} \(message [0-9a-f]{{32}}\)")
    b.wait_line(rf"message from {PEER_A} \(direct\): hello from a, with spaces$")
    b.send(f"send {PEER_A} héllo 🕊")
    a.wait_line(rf"message from {PEER_B} \(direct\): héllo 🕊$")

    # The other commands.
    a.send("peers")
    a.wait_line(r"connected peers \(1/2\):")
    a.wait_line(rf"^\[[\d:]+\]   {PEER_B}$")
    a.wait_line(r"discovered peers \(1\):")
    a.wait_line(rf"{PEER_B} connected$")
    a.send("status")
    a.wait_line(rf"peer id:   {PEER_A}$")
    a.wait_line(r"hub:       connected \(ws://127\.0\.0\.1:\d+")
    a.wait_line(rf"network:   {NETWORK}$")
    a.wait_line(r"peers:     1 connected, 1 links \(min 1, max 2\), 1 discovered")
    a.send("broadcast to everyone")
    a.wait_line(r"broadcast sent \(message [0-9a-f]+\)")
    b.wait_line(rf"message from {PEER_A} \(broadcast\): to everyone$")
    a.send("help")
    a.wait_line(r"commands:")
    a.wait_line(r"quit ")
    a.send("send nobody hi")
    a.wait_line(r"error: no known peer starts with 'nobody'")
    a.send("send")
    a.wait_line(r"usage: send <peer> <text>")
    a.send("fly")
    a.wait_line(r"unknown command 'fly'; type help")

    # `quit` leaves cleanly; the other peer sees it go.
    a.send("quit")
    a.wait_line(r"leaving the mesh \(quit\)")
    a.wait_line(r"bye$")
    assert a.wait_exit() == 0
    b.wait_line(rf"peer disconnected: {PEER_A} \((data channel closed|left network)\)")

    # EOF on stdin leaves cleanly too.
    b.close_stdin()
    b.wait_line(r"leaving the mesh \(end of input\)")
    assert b.wait_exit() == 0
    assert not [line for line in a.stderr + b.stderr if "Traceback" in line]


def test_cli_peer_exits_cleanly_on_sigint_and_sigterm(processes: list[LineProcess]) -> None:
    url = start_hub(processes)
    for sig in (signal.SIGINT, signal.SIGTERM):
        peer = start_peer(processes, url)
        peer.wait_line(r'type "help" for commands')
        peer.proc.send_signal(sig)
        peer.wait_line(rf"leaving the mesh \({sig.name}\)")
        assert peer.wait_exit() == 0
        assert not [line for line in peer.stderr if "Traceback" in line]
