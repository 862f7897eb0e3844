"""``peerpigeon peer URL``: an interactive mesh peer on the command line.

It joins the mesh through the hub at URL, prints what happens as it happens (peers
connecting and leaving, evictions, messages) and reads commands from stdin, one per line,
whether stdin is a terminal or a pipe::

    peers                  connected and discovered peers
    send <peer> <text>     a direct message to any peer (an ID, or a prefix of a known one)
    broadcast <text>       a message to the whole mesh
    status                 this peer's status
    help                   this list
    quit                   leave the mesh and exit (also: exit, EOF, Ctrl-C, SIGTERM)

Every line it prints starts with ``[HH:MM:SS]``; event lines carry full peer IDs, e.g.
``[12:00:01] peer connected: 3f2a...`` and ``[12:00:02] message from 3f2a... (direct): hi``.
WebRTC runs on aiortc, so this runs on asyncio.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import stat
import sys
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import IO, TextIO

import anyio
import anyio.to_thread

from peerpigeon.io.mesh import LOOPBACK_ICE_HOSTS, PeerPigeonMesh
from peerpigeon.protocol.errors import PeerPigeonError
from peerpigeon.protocol.ids import is_valid_peer_id
from peerpigeon.protocol.mesh import (
    MessageReceived,
    PeerConnected,
    PeerDisconnected,
    PeerDiscovered,
    PeerEvicted,
    StatusChanged,
)
from peerpigeon.protocol.wire import JsonValue

__all__ = ["HELP", "PeerOptions", "run_peer"]

HELP = """commands:
  peers                  list connected and discovered peers
  send <peer> <text>     send a direct message to any peer (an ID or a unique prefix)
  broadcast <text>       send a message to the whole mesh
  status                 show this peer's status
  help                   show this list
  quit                   leave the mesh and exit (also: exit, EOF, Ctrl-C)"""

_MAX_LINE = 1 << 20  # longest command line read from stdin


@dataclass(frozen=True, slots=True)
class PeerOptions:
    """What ``peerpigeon peer`` was asked for."""

    url: str
    network: str = "global"
    peer_id: str | None = None
    max_peers: int = 3
    min_peers: int = 2
    loopback: bool = False
    connect_timeout_s: float = 10.0
    show_discovered: bool = True


class Console:
    """Writes timestamped lines to stdout, flushed; a closed stdout is not an error."""

    def __init__(self, out: TextIO | None = None) -> None:
        self._out = out if out is not None else sys.stdout
        self.broken = False
        self.leaving = False  # set once we leave the mesh: its own departures are not news

    def line(self, text: str) -> None:
        if self.broken:
            return
        stamp = time.strftime("%H:%M:%S")
        try:
            for part in text.splitlines() or [""]:
                self._out.write(f"[{stamp}] {part}\n")
            self._out.flush()
        except (BrokenPipeError, ValueError, OSError):
            self.broken = True


def _show(content: JsonValue) -> str:
    return content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)


def _listen(mesh: PeerPigeonMesh, console: Console, options: PeerOptions) -> None:
    """Print the events a user cares about, as they happen (not the ones of leaving)."""

    def on_connected(event: PeerConnected) -> None:
        console.line(f"peer connected: {event.peer_id}")

    def on_disconnected(event: PeerDisconnected) -> None:
        if console.leaving:
            return  # every link closes as we leave: not news
        console.line(f"peer disconnected: {event.peer_id} ({event.reason})")

    def on_evicted(event: PeerEvicted) -> None:
        if event.initiated_by_peer:
            console.line(f"evicted by {event.peer_id}: {event.reason}")
        else:
            console.line(f"evicted {event.peer_id}: {event.reason}")

    def on_message(event: MessageReceived) -> None:
        kind = "direct" if event.direct else "broadcast"
        console.line(f"message from {event.from_peer} ({kind}): {_show(event.content)}")

    def on_discovered(event: PeerDiscovered) -> None:
        console.line(f"peer discovered: {event.peer_id}")

    def on_status(event: StatusChanged) -> None:
        if event.type in ("warning", "error", "network"):
            console.line(f"{event.type}: {event.message}")
        elif event.type == "disconnected" and not console.leaving:
            console.line(f"hub connection closed: {event.message}")
        elif event.type == "connected":
            console.line("connected to the hub")

    mesh.on("peer_connected", on_connected)
    mesh.on("peer_disconnected", on_disconnected)
    mesh.on("peer_evicted", on_evicted)
    mesh.on("message_received", on_message)
    mesh.on("status_changed", on_status)
    if options.show_discovered:
        mesh.on("peer_discovered", on_discovered)


# --- commands --------------------------------------------------------------------------------


class Commands:
    """Carries out one command line; `quit` is set when the user asked to leave."""

    def __init__(self, mesh: PeerPigeonMesh, console: Console) -> None:
        self.mesh = mesh
        self.console = console
        self.quit = False

    def run(self, line: str) -> None:
        text = line.strip()
        if not text:
            return
        name, _, rest = text.partition(" ")
        rest = rest.strip()
        handler: dict[str, Callable[[str], None]] = {
            "peers": self._peers,
            "send": self._send,
            "broadcast": self._broadcast,
            "status": self._status,
            "help": self._help,
            "?": self._help,
            "quit": self._quit,
            "exit": self._quit,
        }
        command = handler.get(name.lower())
        if command is None:
            shown = name if len(name) <= 40 else name[:40] + "..."
            self.console.line(f"unknown command {shown!r}; type help")
            return
        try:
            command(rest)
        except PeerPigeonError as err:
            self.console.line(f"error: {err}")

    def _help(self, _: str) -> None:
        self.console.line(HELP)

    def _quit(self, _: str) -> None:
        self.quit = True

    def _peers(self, _: str) -> None:
        mesh = self.mesh
        connected = mesh.connected_peers()
        status = mesh.status()
        lines = [f"connected peers ({len(connected)}/{status.max_peers}):"]
        lines += [f"  {peer}" for peer in connected] or ["  (none)"]
        discovered = mesh.discovered_peers()
        lines.append(f"discovered peers ({len(discovered)}):")
        for peer in discovered:
            state = (
                "connected"
                if peer.is_connected
                else ("connecting" if peer.is_connecting else "not connected")
            )
            lines.append(f"  {peer.peer_id} {state}")
        if not discovered:
            lines.append("  (none)")
        self.console.line("\n".join(lines))

    def _resolve(self, given: str) -> str | None:
        """A full peer ID from an ID or a unique prefix of a connected or known peer."""
        if is_valid_peer_id(given):
            return given
        prefix = given.lower()
        matches = sorted({p for p in self._known() if p.startswith(prefix)})
        if len(matches) == 1:
            return matches[0]
        if matches:
            self.console.line(f"error: {given!r} matches {len(matches)} peers; type more of it")
        else:
            self.console.line(f"error: no known peer starts with {given!r}")
        return None

    def _known(self) -> set[str]:
        known = {str(p.peer_id) for p in self.mesh.discovered_peers()}
        return known | {str(p) for p in self.mesh.connected_peers()}

    def _send(self, rest: str) -> None:
        target, _, message = rest.partition(" ")
        if not target or not message.strip():
            self.console.line("usage: send <peer> <text>")
            return
        peer = self._resolve(target)
        if peer is None:
            return
        # Any peer of the mesh: a neighbour gets it directly, others hop by hop (gossip).
        message_id = self.mesh.send_direct_message(peer, message.strip())
        how = "" if peer in self.mesh.connected_peers() else ", routed through the mesh"
        self.console.line(f"sent to {peer} (message {message_id}{how})")

    def _broadcast(self, rest: str) -> None:
        if not rest:
            self.console.line("usage: broadcast <text>")
            return
        message_id = self.mesh.send_message(rest)
        self.console.line(f"broadcast sent (message {message_id})")

    def _status(self, _: str) -> None:
        s = self.mesh.status()
        hub = f"connected ({s.signaling_url})" if s.connected else "not connected"
        network = s.network_name + (
            f" (fallback from {s.original_network_name})" if s.is_in_fallback_mode else ""
        )
        self.console.line(
            "\n".join(
                (
                    f"peer id:   {s.peer_id}",
                    f"hub:       {hub}",
                    f"network:   {network}",
                    f"peers:     {s.connected_count} connected, {s.total_peer_count} links "
                    f"(min {s.min_peers}, max {s.max_peers}), {s.discovered_count} discovered",
                    f"settings:  auto_discovery={s.auto_discovery} "
                    f"eviction_strategy={s.eviction_strategy} xor_routing={s.xor_routing}",
                )
            )
        )


# --- stdin -----------------------------------------------------------------------------------


def _selectable(fd: int) -> bool:
    """Whether the event loop can wait on `fd`: a pipe, a socket or a terminal (not a regular
    file, nor a device such as /dev/null, which epoll refuses)."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or (stat.S_ISCHR(mode) and os.isatty(fd))


async def _stdin_lines(stdin: IO[str] | None) -> AsyncGenerator[str, None]:
    """Lines from stdin until EOF, without blocking the event loop.

    Pipes, sockets and terminals are read through the event loop; anything else (a regular
    file, /dev/null) through a worker thread, where reads do not block for long.
    """
    if stdin is None:
        return  # no stdin at all (fd 0 closed): nothing to read
    try:
        fd = stdin.fileno()
    except (OSError, ValueError):
        return  # no stdin at all: nothing to read
    if not _selectable(fd):
        while line := await anyio.to_thread.run_sync(stdin.readline, abandon_on_cancel=True):
            yield line
        return
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=_MAX_LINE)
    was_blocking = os.get_blocking(fd)
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), stdin)
    try:
        while True:
            try:
                raw = await reader.readline()
            except ValueError:  # a line over the limit: the reader dropped it
                continue
            if not raw:
                return
            yield raw.decode("utf-8", "replace")
    finally:
        transport.close()
        with contextlib.suppress(OSError):
            os.set_blocking(fd, was_blocking)  # a shared terminal must stay blocking


# --- the peer --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Outcome:
    reason: str = "quit"
    code: int = 0


async def run_peer(options: PeerOptions, stdin: IO[str] | None = None) -> int:
    """Run the interactive peer until quit, EOF, SIGINT or SIGTERM; the exit code."""
    console = Console()
    mesh = PeerPigeonMesh(
        peer_id=options.peer_id,
        network_name=options.network,
        max_peers=options.max_peers,
        min_peers=options.min_peers,
        ice_hosts=LOOPBACK_ICE_HOSTS if options.loopback else None,
    )
    console.line(
        f"peerpigeon peer {mesh.peer_id} (network {options.network!r}, "
        f"max_peers {options.max_peers}, min_peers {options.min_peers}"
        + (", ICE on loopback" if options.loopback else "")
        + ")"
    )
    commands = Commands(mesh, console)
    outcome = _Outcome()
    lines = _stdin_lines(stdin if stdin is not None else sys.stdin)
    # Signals are ours from the start: a Ctrl-C while connecting leaves cleanly too.
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with contextlib.aclosing(lines), mesh:
            _listen(mesh, console, options)
            async with anyio.create_task_group() as tg:

                async def watch_signals() -> None:
                    async for signum in signals:
                        outcome.reason = signal.Signals(signum).name
                        tg.cancel_scope.cancel()
                        return

                async def session() -> None:
                    console.line(f"connecting to {options.url}")
                    try:
                        await mesh.connect(options.url, timeout=options.connect_timeout_s)
                    except TimeoutError:
                        console.line(f"error: no hub answered at {options.url}")
                        outcome.reason, outcome.code = "no hub", 1
                        tg.cancel_scope.cancel()
                        return
                    console.line('type "help" for commands')
                    async for line in lines:
                        commands.run(line)
                        if commands.quit:
                            break
                    else:
                        outcome.reason = "end of input"
                    tg.cancel_scope.cancel()

                tg.start_soon(watch_signals)
                tg.start_soon(session)
            console.line(f"leaving the mesh ({outcome.reason})")
            console.leaving = True
    console.line("left the mesh; bye")
    return outcome.code


def run(options: PeerOptions) -> int:
    """Entry point for the CLI: runs `run_peer` on asyncio (aiortc needs it)."""
    code: int = anyio.run(run_peer, options, backend="asyncio")
    return code
