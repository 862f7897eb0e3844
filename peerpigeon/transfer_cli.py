"""``peerpigeon send`` and ``peerpigeon receive``: file transfer over a mesh link.

``peerpigeon receive URL [--dir DIR] [--network NAME]`` prints its peer ID and saves every
file streamed to it; ``peerpigeon send URL FILE --to PEER [--network NAME]`` joins the
same network, waits for a link to PEER and streams FILE to it (data-plane.md section 6).
Both report progress on stderr and the final throughput.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TextIO

import anyio

from peerpigeon.io.mesh import LOOPBACK_ICE_HOSTS, PeerPigeonMesh
from peerpigeon.io.streams import IncomingStream, StreamAbortedError
from peerpigeon.protocol.errors import PeerPigeonError
from peerpigeon.protocol.ids import PeerId, is_valid_peer_id

__all__ = ["add_transfer_parsers", "receive_files", "run_transfer", "send_file"]

_MIB = 1024 * 1024
_PROGRESS_EVERY_S = 0.5


def add_transfer_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``send`` and ``receive``."""
    send = sub.add_parser("send", help="stream a file to a neighbour peer")
    send.add_argument("url", metavar="URL", help="the hub, e.g. ws://127.0.0.1:3000")
    send.add_argument("file", metavar="FILE", help="the file to send")
    send.add_argument("--to", required=True, metavar="PEER", help="the receiver's peer ID")
    send.add_argument("--network", default="global", help="network name (default global)")
    send.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the link")
    send.add_argument("--loopback", action="store_true", help="ICE on 127.0.0.1 only")
    recv = sub.add_parser("receive", help="save files streamed to this peer")
    recv.add_argument("url", metavar="URL", help="the hub, e.g. ws://127.0.0.1:3000")
    recv.add_argument("--dir", default=".", help="where to save files (default .)")
    recv.add_argument("--network", default="global", help="network name (default global)")
    recv.add_argument("--peer-id", default=None, help="this peer's 40-hex ID (default: random)")
    recv.add_argument("--count", type=int, default=0, help="exit after N files (0: never)")
    recv.add_argument("--loopback", action="store_true", help="ICE on 127.0.0.1 only")


def _rate(n: int, seconds: float) -> str:
    return f"{n / _MIB:.1f} MiB in {seconds:.2f} s ({n / _MIB / max(seconds, 1e-9):.1f} MiB/s)"


async def send_file(
    url: str,
    path: str | Path,
    to: str,
    *,
    network: str = "global",
    timeout: float = 60.0,
    loopback: bool = False,
    out: TextIO = sys.stderr,
) -> int:
    """Join `network` at `url`, wait for a link to `to`, stream `path`; returns an exit code."""
    if not is_valid_peer_id(to.lower()):
        print(f"peerpigeon send: --to must be 40 hex characters, not {to!r}", file=out)
        return 2
    peer = PeerId(to.lower())
    file = Path(path)
    size = file.stat().st_size
    hosts = LOOPBACK_ICE_HOSTS if loopback else None
    async with PeerPigeonMesh(network_name=network, ice_hosts=hosts) as mesh:
        await mesh.connect(url)
        print(f"peer {mesh.peer_id}: waiting for a link to {peer[:8]}...", file=out)
        with anyio.move_on_after(timeout):
            while peer not in mesh.connected_peers():
                mesh.connect_to_peer(peer)
                await anyio.sleep(0.1)
            # Give its hello a moment: a Python peer gets credit flow control.
            with anyio.move_on_after(2.0):
                while peer not in mesh.machine.python_neighbours():
                    await anyio.sleep(0.05)
        if peer not in mesh.connected_peers():
            print(f"peerpigeon send: no link to {peer[:8]} after {timeout} s", file=out)
            return 1
        start = time.monotonic()
        writer = await mesh.open_stream(
            peer, type="file", filename=file.name, mime_type="", total_size=size
        )
        last = start
        try:
            async with await anyio.open_file(file, "rb") as f:
                while block := await f.read(262_144):
                    await writer.send(block)
                    now = time.monotonic()
                    if now - last >= _PROGRESS_EVERY_S:
                        last = now
                        pct = 100 * writer.bytes_sent / max(size, 1)
                        print(f"  {pct:5.1f}% {_rate(writer.bytes_sent, now - start)}", file=out)
            await writer.aclose()
        except PeerPigeonError as err:
            writer.abort("sender failed")
            print(f"peerpigeon send: {err}", file=out)
            return 1
        # The hub's goodbye outruns SCTP: leave once the receiver confirmed (Python peers),
        # else once the channel drained.
        with anyio.move_on_after(timeout):
            if writer.flow_controlled:
                try:
                    await writer.wait_delivered()
                except StreamAbortedError as err:
                    print(f"peerpigeon send: the receiver refused the file: {err}", file=out)
                    return 1
            else:
                link = mesh._link_for(peer)
                if link is not None:
                    await link.wait_buffered_amount_low(0)
                await anyio.sleep(1.0)
        confirmed = " (confirmed)" if writer.delivered.is_set() else ""
        took = time.monotonic() - start
        print(f"sent {file.name}: {_rate(writer.bytes_sent, took)}{confirmed}", file=out)
    return 0


def _target(directory: Path, name: str | None) -> Path:
    base = Path(name or "stream.bin").name or "stream.bin"  # never a path from the peer
    if base in {".", ".."}:
        base = "stream.bin"
    candidate = directory / base
    n = 1
    while candidate.exists():
        candidate = directory / f"{Path(base).stem}.{n}{Path(base).suffix}"
        n += 1
    return candidate


async def _save(incoming: IncomingStream, directory: Path, out: TextIO) -> bool:
    target = _target(directory, incoming.meta.filename)
    total = incoming.meta.total_size
    print(f"receiving {target.name} from {incoming.peer[:8]} ({total} bytes)", file=out)
    start = last = time.monotonic()
    try:
        async with await anyio.open_file(target, "wb") as f:
            async for chunk in incoming:
                await f.write(chunk)
                now = time.monotonic()
                if now - last >= _PROGRESS_EVERY_S:
                    last = now
                    print(f"  {_rate(incoming.bytes_received, now - start)}", file=out)
    except StreamAbortedError as err:
        print(f"aborted {target.name}: {err.reason}", file=out)
        target.unlink(missing_ok=True)
        return False
    check = "sha256 verified" if incoming.verified else "unverified (JS sender)"
    took = time.monotonic() - start
    print(f"saved {target}: {_rate(incoming.bytes_received, took)}, {check}", file=out)
    return True


async def receive_files(
    url: str,
    directory: str | Path = ".",
    *,
    network: str = "global",
    peer_id: str | None = None,
    count: int = 0,
    loopback: bool = False,
    out: TextIO = sys.stderr,
) -> int:
    """Join `network` at `url` and save streamed files in `directory` (`count` 0: forever)."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    hosts = LOOPBACK_ICE_HOSTS if loopback else None
    async with PeerPigeonMesh(network_name=network, peer_id=peer_id, ice_hosts=hosts) as mesh:
        await mesh.connect(url)
        print(f"peer {mesh.peer_id}: waiting for files", file=out)
        saved = 0
        while count <= 0 or saved < count:
            incoming = await mesh.accept_stream()
            if await _save(incoming, target, out):
                saved += 1
    return 0


def run_transfer(args: argparse.Namespace) -> int:
    """Run ``send`` or ``receive`` (asyncio: aiortc needs it)."""
    if args.command == "send":
        code: int = anyio.run(
            lambda: send_file(
                args.url,
                args.file,
                args.to,
                network=args.network,
                timeout=args.timeout,
                loopback=args.loopback,
            ),
            backend="asyncio",
        )
        return code
    code = anyio.run(
        lambda: receive_files(
            args.url,
            args.dir,
            network=args.network,
            peer_id=args.peer_id,
            count=args.count,
            loopback=args.loopback,
        ),
        backend="asyncio",
    )
    return code
