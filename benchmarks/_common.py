"""Shared helpers for the benchmarks: server processes, CPU accounting, percentiles.

Standard library only. Every process started here runs in its own session (so its whole
process group can be ended) and gets SIGKILL if the benchmark process dies first.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

REPO_ROOT = Path(__file__).resolve().parent.parent
JS_DIR = REPO_ROOT / "tests" / "interop" / "js"

_CLK_TCK = os.sysconf("SC_CLK_TCK")
_WS_URL = re.compile(r"ws://127\.0\.0\.1:(\d+)")


class BenchError(RuntimeError):
    """A benchmark step failed (a server did not start, a worker broke, a timeout)."""


# --------------------------------------------------------------------------------------------
# Parent-death signal: children never outlive the benchmark


try:
    _PRCTL: Callable[..., int] | None = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _PRCTL = None
_PR_SET_PDEATHSIG = 1


def _set_parent_death_signal() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (best effort)."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


def die_with_parent() -> None:
    """Call in a child process (e.g. a multiprocessing worker) to die with its parent."""
    _set_parent_death_signal()
    if os.getppid() == 1:  # the parent is already gone
        os._exit(1)


def _child_setup() -> None:  # runs between fork and exec: keep it tiny
    _set_parent_death_signal()


# --------------------------------------------------------------------------------------------
# npm install of the interop harness


def ensure_js_modules() -> None:
    """Install ``tests/interop/js/node_modules`` if needed (through the interop harness)."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    try:
        from tests.interop import harness
    except ImportError:
        pass
    else:
        harness.ensure_node_modules()
        return
    if (JS_DIR / "node_modules" / "peerpigeon" / "package.json").exists():
        return
    subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund"],
        cwd=JS_DIR,
        stdin=subprocess.DEVNULL,
        check=True,
        timeout=600,
    )


# --------------------------------------------------------------------------------------------
# CPU accounting from /proc


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds used so far by process ``pid`` (all its threads)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            text = f.read()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def machine_cpu_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks over all CPUs since boot, from ``/proc/stat``."""
    with open("/proc/stat", encoding="ascii") as f:
        parts = f.readline().split()[1:]
    values = [int(v) for v in parts[:8]]  # user nice system idle iowait irq softirq steal
    idle = values[3] + values[4]
    total = sum(values)
    return total - idle, total


# --------------------------------------------------------------------------------------------
# Server processes


class ServerProcess:
    """A server started in its own session whose stdout is drained on a thread.

    ``url`` is taken from the first stdout line containing ``ws://127.0.0.1:PORT``. stdin is
    kept open (EOF on stdin stops the Node harness script); stderr goes where the caller says
    (a file, ``/dev/null``).
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: dict[str, str] | None = None,
        stderr_to_null: bool = False,
        start_timeout: float = 30.0,
        fatal: Callable[[str], bool] = lambda line: False,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self._stdout_tail: deque[str] = deque(maxlen=50)
        self._stderr_file: IO[bytes] | None = None
        if stderr_to_null:
            stderr: int | IO[bytes] = subprocess.DEVNULL
        else:
            self._stderr_file = tempfile.TemporaryFile(prefix=f"bench-{name}-")  # noqa: SIM115
            stderr = self._stderr_file
        self._url_found = threading.Event()
        self._failed: str | None = None
        self.url = ""
        self.port = 0
        self._proc = subprocess.Popen(
            self.argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            start_new_session=True,
            preexec_fn=_child_setup,
        )
        self._fatal = fatal
        self._reader = threading.Thread(target=self._drain, name=f"{name}-stdout", daemon=True)
        self._reader.start()
        try:
            if not self._url_found.wait(start_timeout) or not self.url:
                reason = self._failed or f"no ws:// URL within {start_timeout:.0f} s"
                raise BenchError(f"{name} did not start: {reason}\n{self.diagnostics()}")
        except BaseException:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        return self._proc.pid

    def cpu_seconds(self) -> float | None:
        return process_cpu_seconds(self._proc.pid)

    def alive(self) -> bool:
        return self._proc.poll() is None

    def _drain(self) -> None:
        stdout = self._proc.stdout
        assert stdout is not None
        for raw in stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self._stdout_tail.append(line)
            if self._url_found.is_set():
                continue
            if self._fatal(line):
                self._failed = line
                self._url_found.set()
                continue
            match = _WS_URL.search(line)
            if match is not None:
                self.url = match.group(0)
                self.port = int(match.group(1))
                self._url_found.set()
        self._failed = self._failed or f"exited with {self._proc.wait()}"
        self._url_found.set()

    def diagnostics(self) -> str:
        out = "\n".join(self._stdout_tail) or "(none)"
        err = "(discarded)"
        if self._stderr_file is not None:
            with contextlib.suppress(OSError, ValueError):
                self._stderr_file.seek(0, os.SEEK_END)
                size = self._stderr_file.tell()
                self._stderr_file.seek(max(0, size - 3000))
                err = self._stderr_file.read().decode("utf-8", "replace") or "(empty)"
        return f"[{self.name}: {' '.join(self.argv)}]\nstdout tail:\n{out}\nstderr tail:\n{err}"

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the process group, then SIGKILL what is left; idempotent."""
        proc = self._proc
        if proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout)
        self._signal_group(signal.SIGKILL)  # the leader if it ignored SIGTERM, and children
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        self._reader.join(timeout)
        if proc.stdout is not None:
            with contextlib.suppress(OSError):
                proc.stdout.close()
        if self._stderr_file is not None:
            with contextlib.suppress(OSError):
                self._stderr_file.close()
            self._stderr_file = None


def start_our_hub(max_connections: int = 1000) -> ServerProcess:
    """``python -m peerpigeon hub --port 0 --max-connections N`` from the repository root."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    argv = [
        sys.executable,
        "-m",
        "peerpigeon",
        "hub",
        "--port",
        "0",
        "--max-connections",
        str(max_connections),
    ]
    return ServerProcess("ours", argv, cwd=REPO_ROOT, env=env)


def start_js_server(*, quiet: bool, max_connections: int = 1000) -> ServerProcess:
    """The reference server through ``tests/interop/js/js_server.mjs``.

    Not quiet: the reference's console output goes to the script's stderr, which goes to
    ``/dev/null`` (a synchronous, cheap write, as with ``node server.js > /dev/null``): the
    server still formats and writes every log line. Quiet: ``console.*`` is a no-op. In both
    cases ``--events none`` keeps the harness's own stdout events off (they are not the
    server's logging).
    """
    argv = [
        "node",
        "js_server.mjs",
        "--port",
        "0",
        "--max-connections",
        str(max_connections),
        "--events",
        "none",
    ]
    if quiet:
        argv.append("--quiet")
    return ServerProcess(
        "js-quiet" if quiet else "js",
        argv,
        cwd=JS_DIR,
        stderr_to_null=not quiet,
        fatal=lambda line: '"event":"fatal"' in line,
    )


# --------------------------------------------------------------------------------------------
# Statistics


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of already sorted values, nearest-rank; NaN when empty."""
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return float(sorted_values[index])


def deadline_after(seconds: float) -> float:
    """A ``time.monotonic()`` deadline."""
    return time.monotonic() + seconds
