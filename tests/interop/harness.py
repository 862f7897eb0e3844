"""Drive the real JavaScript PeerPigeon (and our own hub) as subprocesses, from Python.

Standard library only. The Node scripts in ``js/`` print one JSON event per line on stdout and
read one JSON command per line on stdin (the protocol is described in ``README.md``). This module:

* installs the npm dependencies of ``js/`` when they are missing or stale
  (:func:`ensure_node_modules`);
* runs a program in its own session and collects its stdout lines on a background thread
  (:class:`ManagedProcess`), with :meth:`ManagedProcess.wait_for` to wait for an event and
  :meth:`ManagedProcess.close` to end the whole process group;
* wraps the scripts: :class:`NodeProcess` (any script), :class:`JsServer`, :class:`JsPeer`,
  and :class:`OurHub` (``python -m peerpigeon hub``).
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self, TypeVar

INTEROP_DIR = Path(__file__).resolve().parent
JS_DIR = INTEROP_DIR / "js"
REPO_ROOT = INTEROP_DIR.parent.parent

#: Longest a single wait in these tests may take (seconds).
MAX_WAIT = 30.0
#: Bound on ``npm ci`` / ``npm install``.
NPM_INSTALL_TIMEOUT = 600.0

Event = dict[str, Any]
P = TypeVar("P", bound="ManagedProcess")
Matcher = str | Callable[[Event], bool]

# Files whose change means node_modules must be installed again.
_INSTALL_INPUTS = (
    JS_DIR / "package.json",
    JS_DIR / "package-lock.json",
    JS_DIR / "koush-wrtc" / "package.json",
)
# Files that a good install leaves behind.
_INSTALL_OUTPUTS = (
    JS_DIR / "node_modules" / ".package-lock.json",
    JS_DIR / "node_modules" / "peerpigeon" / "package.json",
    JS_DIR / "node_modules" / "ws" / "package.json",
    JS_DIR / "node_modules" / "@roamhq" / "wrtc" / "package.json",
    JS_DIR / "node_modules" / "@koush" / "wrtc" / "index.js",
)


class HarnessError(AssertionError):
    """A harness step failed (missing tool, failed install, process died, timeout).

    An ``AssertionError`` so that pytest reports it as a test failure with its message.
    """


class WaitTimeout(HarnessError):
    """:meth:`ManagedProcess.wait_for` saw no matching event in time."""


class CommandFailed(HarnessError):
    """A script answered a command with ``"ok": false``."""


# --------------------------------------------------------------------------------------------
# npm install


def find_tool(name: str) -> str:
    """Return the path of ``name`` on PATH, or fail with a message saying what is missing."""
    path = shutil.which(name)
    if path is None:
        raise HarnessError(
            f"`{name}` was not found on PATH: the interop tests need Node.js (20 or later) "
            "and npm to run the JavaScript PeerPigeon reference"
        )
    return path


def node_modules_stale() -> bool:
    """True when ``js/node_modules`` is missing, incomplete or older than its inputs."""
    if not all(path.exists() for path in _INSTALL_OUTPUTS):
        return True
    installed = (JS_DIR / "node_modules" / ".package-lock.json").stat().st_mtime
    return any(path.exists() and path.stat().st_mtime > installed for path in _INSTALL_INPUTS)


def ensure_node_modules(timeout: float = NPM_INSTALL_TIMEOUT) -> float:
    """Install ``js/``'s npm dependencies unless they are already up to date.

    Uses ``npm ci`` when ``package-lock.json`` exists, ``npm install`` otherwise. Holds a file
    lock so that concurrent test sessions do not install at the same time. Returns the seconds
    spent installing (0.0 when nothing was done); raises :class:`HarnessError` on failure.
    """
    find_tool("node")
    npm = find_tool("npm")
    lock_path = JS_DIR / ".install.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not node_modules_stale():
                return 0.0
            use_ci = (JS_DIR / "package-lock.json").exists()
            command = [npm, "ci" if use_ci else "install", "--no-audit", "--no-fund"]
            started = time.monotonic()
            try:
                result = subprocess.run(
                    command,
                    cwd=JS_DIR,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                    check=False,
                )
            except subprocess.TimeoutExpired as error:
                raise HarnessError(
                    f"`{' '.join(command)}` in {JS_DIR} did not finish within {timeout:.0f} s"
                ) from error
            if result.returncode != 0:
                tail = "\n".join((result.stdout + result.stderr).splitlines()[-40:])
                raise HarnessError(
                    f"`{' '.join(command)}` in {JS_DIR} failed with exit code "
                    f"{result.returncode}:\n{tail}"
                )
            # npm leaves the hidden lockfile's mtime alone when nothing changed; touch it so the
            # staleness check above is satisfied next time.
            (JS_DIR / "node_modules" / ".package-lock.json").touch()
            if node_modules_stale():
                raise HarnessError(f"`{' '.join(command)}` succeeded but left {JS_DIR} incomplete")
            return time.monotonic() - started
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# --------------------------------------------------------------------------------------------
# Processes


def _describe(matcher: Matcher, fields: Mapping[str, Any]) -> str:
    what = repr(matcher) if isinstance(matcher, str) else getattr(matcher, "__name__", "predicate")
    if fields:
        what += " with " + ", ".join(f"{key}={value!r}" for key, value in fields.items())
    return what


def _matches(event: Event, matcher: Matcher, fields: Mapping[str, Any]) -> bool:
    if isinstance(matcher, str):
        if event.get("event") != matcher:
            return False
    elif not matcher(event):
        return False
    return all(event.get(key) == value for key, value in fields.items())


class ManagedProcess:
    """A subprocess in its own session whose stdout lines are collected on a thread.

    Each stdout line becomes an event: the parsed JSON object if the line is one, otherwise
    ``{"event": "line", "text": <line>}``. Events are kept in arrival order;
    :meth:`wait_for` returns the oldest event that matches and that no earlier ``wait_for``
    returned, so the order in which a test waits does not matter. stderr is kept (last lines
    only) for failure messages.

    ``close()`` ends the process and every process in its group: EOF on stdin first (the
    scripts then shut down cleanly), then SIGTERM, then SIGKILL.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        name: str,
        cwd: Path,
        env: Mapping[str, str] | None = None,
        eof_grace: float = 3.0,
        stderr_lines: int = 200,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.eof_grace = eof_grace
        self._events: list[Event] = []
        self._taken: set[int] = set()
        self._eof = False
        self._cond = threading.Condition()
        self._stderr: deque[str] = deque(maxlen=stderr_lines)
        self._closed = False
        self._proc = subprocess.Popen(
            self.argv,
            cwd=cwd,
            env=None if env is None else dict(env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            start_new_session=True,
        )
        self.pid = self._proc.pid
        assert self._proc.stdout is not None
        assert self._proc.stderr is not None
        self._stdout_thread = threading.Thread(
            target=self._read_stdout, args=(self._proc.stdout,), name=f"{name}-stdout", daemon=True
        )
        self._stderr_thread = threading.Thread(
            target=self._read_stderr, args=(self._proc.stderr,), name=f"{name}-stderr", daemon=True
        )
        self._stdout_thread.start()
        self._stderr_thread.start()

    # -- readers (background threads) ---------------------------------------------------------

    def _read_stdout(self, stream: IO[str]) -> None:
        try:
            for line in stream:
                text = line.rstrip("\r\n")
                if not text:
                    continue
                parsed: Any
                try:
                    parsed = json.loads(text)
                except ValueError:
                    parsed = None
                event = parsed if isinstance(parsed, dict) else {"event": "line", "text": text}
                with self._cond:
                    self._events.append(event)
                    self._cond.notify_all()
        except (OSError, ValueError):
            pass  # the pipe was closed under us by close()
        finally:
            with self._cond:
                self._eof = True
                self._cond.notify_all()

    def _read_stderr(self, stream: IO[str]) -> None:
        try:
            for line in stream:
                self._stderr.append(line.rstrip("\r\n"))
        except (OSError, ValueError):
            pass

    # -- inspection ---------------------------------------------------------------------------

    @property
    def returncode(self) -> int | None:
        """The exit code, or None while the process runs."""
        return self._proc.poll()

    @property
    def events(self) -> list[Event]:
        """A snapshot of every event received so far, in order."""
        with self._cond:
            return list(self._events)

    def stderr_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines the process wrote on stderr."""
        return "\n".join(list(self._stderr)[-lines:])

    def _diagnostics(self) -> str:
        with self._cond:
            recent = self._events[-25:]
        shown = "\n".join("  " + json.dumps(event)[:400] for event in recent) or "  (none)"
        state = "running" if self.returncode is None else f"exited with {self.returncode}"
        return (
            f"[{self.name}: {' '.join(self.argv)}; {state}]\n"
            f"last events:\n{shown}\nstderr tail:\n{self.stderr_tail(20) or '  (empty)'}"
        )

    def find(self, matcher: Matcher, **fields: Any) -> list[Event]:
        """Every event received so far that matches (taken or not); does not wait."""
        with self._cond:
            return [event for event in self._events if _matches(event, matcher, fields)]

    # -- waiting ------------------------------------------------------------------------------

    def wait_for(self, matcher: Matcher, timeout: float = MAX_WAIT, **fields: Any) -> Event:
        """Wait for an event and return it.

        ``matcher`` is an event name (compared with the ``"event"`` field) or a predicate on
        the event dict; keyword arguments add ``event[key] == value`` conditions. The oldest
        matching event not returned before is returned. Raises :class:`WaitTimeout` after
        ``timeout`` seconds, or at once if the process has exited without printing one.
        """
        if timeout > MAX_WAIT:
            raise ValueError(f"timeout {timeout} s is above the harness limit of {MAX_WAIT} s")
        deadline = time.monotonic() + timeout
        with self._cond:
            scanned = 0
            while True:
                for index in range(scanned, len(self._events)):
                    if index in self._taken:
                        continue
                    event = self._events[index]
                    if _matches(event, matcher, fields):
                        self._taken.add(index)
                        return event
                scanned = len(self._events)
                if self._eof:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            # Rescan from the start is unnecessary: taken entries never become available again.
        reason = "exited" if self._eof else f"timed out after {timeout:.1f} s"
        raise WaitTimeout(
            f"{self.name} {reason} waiting for {_describe(matcher, fields)}\n{self._diagnostics()}"
        )

    # -- commands -----------------------------------------------------------------------------

    def send(self, command: Mapping[str, Any]) -> None:
        """Write one JSON command line to the process's stdin."""
        stdin = self._proc.stdin
        if stdin is None or stdin.closed or self.returncode is not None:
            raise HarnessError(f"cannot send {dict(command)!r}: {self._diagnostics()}")
        try:
            stdin.write(json.dumps(command) + "\n")
            stdin.flush()
        except (BrokenPipeError, ValueError) as error:
            raise HarnessError(f"cannot send {dict(command)!r}: {self._diagnostics()}") from error

    # -- ending -------------------------------------------------------------------------------

    def _signal_group(self, sig: signal.Signals) -> bool:
        """Send ``sig`` to the process group; False when no process of it is left."""
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            return False
        except PermissionError:
            return False
        return True

    def close(self, timeout: float = 5.0) -> int | None:
        """End the process and its whole group; idempotent. Returns the exit code.

        EOF on stdin, up to ``eof_grace`` s for a clean exit; then SIGTERM and up to ``timeout``
        s; then SIGKILL. Leftover members of the group are killed even after a clean exit.
        """
        if self._closed:
            return self._proc.returncode
        self._closed = True
        proc = self._proc
        if proc.stdin is not None:
            with contextlib.suppress(OSError, ValueError):
                proc.stdin.close()
        # While the leader is unreaped (or any group member lives) the pgid cannot be reused,
        # so signalling the group is safe until then.
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(self.eof_grace if self.eof_grace > 0 else 0.001)
        if proc.returncode is None and self._signal_group(signal.SIGTERM):
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout)
        # Kill whatever is left in the group (the leader if it ignored SIGTERM, and children).
        self._signal_group(signal.SIGKILL)
        proc.wait()
        self._stdout_thread.join(timeout)
        self._stderr_thread.join(timeout)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError, ValueError):
                    stream.close()
        return proc.returncode

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class NodeProcess(ManagedProcess):
    """One of the Node scripts in ``js/``, run with ``node`` from that folder."""

    _ids = itertools.count(1)

    def __init__(
        self,
        script: str,
        args: Sequence[str] = (),
        *,
        name: str | None = None,
        eof_grace: float = 3.0,
    ) -> None:
        node = find_tool("node")
        if not (JS_DIR / script).is_file():
            raise HarnessError(f"no such script: {JS_DIR / script}")
        super().__init__(
            [node, script, *args],
            name=name or script.removesuffix(".mjs"),
            cwd=JS_DIR,
            eof_grace=eof_grace,
        )

    def request(self, command: Mapping[str, Any], timeout: float = MAX_WAIT) -> Any:
        """Send a command with a fresh ``id``, wait for its result, return its ``value``.

        Raises :class:`CommandFailed` when the script answers ``"ok": false``.
        """
        request_id = next(self._ids)
        self.send({**command, "id": request_id})
        result = self.wait_for("result", timeout, id=request_id)
        if not result.get("ok"):
            raise CommandFailed(
                f"{self.name}: command {dict(command)!r} failed: {result.get('error')}"
            )
        return result.get("value")

    def fail_on_fatal(self, event: Event) -> Event:
        """Turn a ``fatal`` start-up event into a :class:`HarnessError`."""
        if event.get("event") == "fatal":
            raise HarnessError(
                f"{self.name} failed to start: {event.get('message')}\n{self._diagnostics()}"
            )
        return event


class JsServer(NodeProcess):
    """The reference ``PeerPigeonServer`` (``js/js_server.mjs``), listening on loopback."""

    def __init__(
        self,
        *,
        port: int = 0,
        hub: bool = False,
        bootstrap: Sequence[str] = (),
        hub_peer_id: str | None = None,
        quiet: bool = True,
        extra_args: Sequence[str] = (),
        name: str | None = None,
        start_timeout: float = MAX_WAIT,
    ) -> None:
        args = ["--port", str(port)]
        if hub:
            args.append("--hub")
        for url in bootstrap:
            args += ["--bootstrap", url]
        if hub_peer_id is not None:
            args += ["--hub-peer-id", hub_peer_id]
        if quiet:
            args.append("--quiet")
        args += list(extra_args)
        super().__init__("js_server.mjs", args, name=name or ("js-hub" if hub else "js-server"))
        try:
            started = self.fail_on_fatal(
                self.wait_for(lambda e: e.get("event") in ("listening", "fatal"), start_timeout)
            )
        except BaseException:
            self.close()
            raise
        self.port: int = int(started["port"])
        self.url: str = str(started["url"])
        self.hub_peer_id: str | None = started.get("hubPeerId")

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def health(self, timeout: float = 10.0) -> Any:
        """GET ``/health`` and return the parsed JSON body."""
        return http_get_json(f"{self.http_url}/health", timeout)

    def stats(self) -> Any:
        """The server's ``getStats()``."""
        return self.request({"cmd": "stats"})


class JsPeer(NodeProcess):
    """A scripted reference ``PeerPigeonMesh`` peer (``js/js_peer.mjs``)."""

    def __init__(
        self,
        url: str,
        *,
        peer_id: str | None = None,
        network: str | None = None,
        max_peers: int | None = None,
        min_peers: int | None = None,
        quiet: bool = False,
        extra_args: Sequence[str] = (),
        name: str | None = None,
        start_timeout: float = MAX_WAIT,
    ) -> None:
        args = ["--url", url]
        if peer_id is not None:
            args += ["--peer-id", peer_id]
        if network is not None:
            args += ["--network", network]
        if max_peers is not None:
            args += ["--max-peers", str(max_peers)]
        if min_peers is not None:
            args += ["--min-peers", str(min_peers)]
        if quiet:
            args.append("--quiet")
        args += list(extra_args)
        label = name or f"js-peer-{(peer_id or 'auto')[:8]}"
        super().__init__("js_peer.mjs", args, name=label)
        try:
            ready = self.fail_on_fatal(
                self.wait_for(lambda e: e.get("event") in ("ready", "fatal"), start_timeout)
            )
        except BaseException:
            self.close()
            raise
        self.peer_id: str = str(ready["peerId"])
        if name is None:
            self.name = f"js-peer-{self.peer_id[:8]}"

    def send_direct(self, to: str, content: Any) -> str:
        """``sendDirectMessage(to, content)``; returns the message ID."""
        return str(self.request({"cmd": "send", "to": to, "content": content})["messageId"])

    def broadcast(self, content: Any) -> str:
        """``sendMessage(content)`` (gossip broadcast); returns the message ID."""
        return str(self.request({"cmd": "broadcast", "content": content})["messageId"])

    def connect_to_peer(self, peer_id: str) -> None:
        self.request({"cmd": "connectToPeer", "peerId": peer_id})

    def status(self) -> dict[str, Any]:
        """``getStatus()`` plus ``connectedPeerIds`` and ``discoveredPeerIds``."""
        value = self.request({"cmd": "status"})
        assert isinstance(value, dict)
        return value

    def transports(self) -> list[dict[str, Any]]:
        """For each peer link, the selected ICE candidate pair (addresses, ports, protocol)."""
        value = self.request({"cmd": "transports"})
        assert isinstance(value, list)
        return value

    def wait_connected(self, peer_id: str, timeout: float = MAX_WAIT) -> Event:
        return self.wait_for("peerConnected", timeout, peerId=peer_id)

    def wait_message(self, sender: str, content: Any = None, timeout: float = MAX_WAIT) -> Event:
        """Wait for ``messageReceived`` from ``sender`` (and with ``content`` if given)."""

        def wanted(event: Event) -> bool:
            return (
                event.get("event") == "messageReceived"
                and event.get("from") == sender
                and (content is None or event.get("content") == content)
            )

        wanted.__name__ = f"messageReceived from {sender[:8]} content={content!r}"
        return self.wait_for(wanted, timeout)


_WS_URL = re.compile(r"ws://[\w.\-\[\]:]+:(\d+)")


class OurHub(ManagedProcess):
    """Our hub: ``python -m peerpigeon hub --port 0 [args]`` run from the repository root.

    Waits for the first stdout line containing ``ws://HOST:PORT`` and takes the URL from it.
    """

    def __init__(
        self,
        extra_args: Sequence[str] = (),
        *,
        name: str = "our-hub",
        start_timeout: float = MAX_WAIT,
    ) -> None:
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        pythonpath = [str(REPO_ROOT)]
        if env.get("PYTHONPATH"):
            pythonpath.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(pythonpath)
        argv = [sys.executable, "-m", "peerpigeon", "hub", "--port", "0", *extra_args]
        super().__init__(argv, name=name, cwd=REPO_ROOT, env=env, eof_grace=0.0)

        def url_line(event: Event) -> bool:
            return _WS_URL.search(_event_text(event)) is not None

        url_line.__name__ = "a stdout line containing ws://HOST:PORT"
        try:
            line = self.wait_for(url_line, start_timeout)
        except WaitTimeout as error:
            self.close()
            raise HarnessError(
                f"`{' '.join(argv)}` did not print its ws:// URL: is the hub implemented yet?\n"
                f"{error}"
            ) from error
        except BaseException:
            self.close()
            raise
        found = _WS_URL.search(_event_text(line))
        assert found is not None
        self.url: str = found.group(0)
        self.port: int = int(found.group(1))

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def health(self, timeout: float = 10.0) -> Any:
        return http_get_json(f"{self.http_url}/health", timeout)


def _event_text(event: Event) -> str:
    text = event.get("text")
    return text if isinstance(text, str) else json.dumps(event)


# --------------------------------------------------------------------------------------------
# Helpers


def http_get_json(url: str, timeout: float = 10.0) -> Any:
    """GET ``url`` (bypassing any proxy settings) and parse the JSON body."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as response:
        return json.loads(response.read().decode("utf-8"))


class ProcessGroup:
    """Closes every process registered with it, newest first, even when a close fails."""

    def __init__(self) -> None:
        self._processes: list[ManagedProcess] = []

    def add(self, process: P) -> P:
        self._processes.append(process)
        return process

    def __iter__(self) -> Iterator[ManagedProcess]:
        return iter(list(self._processes))

    def close_all(self) -> None:
        errors: list[BaseException] = []
        while self._processes:
            process = self._processes.pop()
            try:
                process.close()
            except BaseException as error:  # keep closing the others
                errors.append(error)
        if errors:
            raise errors[0]
