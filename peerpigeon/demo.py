"""``peerpigeon demo``: a hub and a few mesh peers on loopback, forming a WebRTC mesh.

Everything stays on 127.0.0.1 (ICE gathers loopback only). The demo starts a hub on a
free port, starts the peers, waits until each has at least `min_peers` open data channels
(within `max_peers`), has every peer send a direct message to each neighbour, then stops
one peer and shows the others notice and re-balance. It exits 0 on success.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AsyncExitStack

import anyio

from peerpigeon.io.hub import PeerPigeonServer
from peerpigeon.io.mesh import LOOPBACK_ICE_HOSTS, PeerPigeonMesh
from peerpigeon.protocol.mesh import MessageReceived, PeerConnected, PeerDisconnected

__all__ = ["run_demo"]

DEMO_NETWORK = "demo"


def _short(peer_id: str) -> str:
    return peer_id[:8]


_quiet = [False]


def _printer(
    me: str, verb: str, what: str, stamp: Callable[[], str]
) -> Callable[[PeerConnected | PeerDisconnected], None]:
    def show(event: PeerConnected | PeerDisconnected) -> None:
        if _quiet[0]:
            return
        reason = f" ({event.reason})" if isinstance(event, PeerDisconnected) else ""
        print(f"{stamp()}   {_short(me)} {verb} {_short(event.peer_id)} {what}{reason}")

    return show


async def run_demo(
    peers: int = 4, keep_running: bool = False, timeout_s: float = 50.0, max_peers: int = 3
) -> int:
    """Run the demo; returns the process exit code."""
    if peers < 2:
        print("demo: needs at least 2 peers")
        return 2
    min_peers = min(2, peers - 1)
    started = time.monotonic()
    _quiet[0] = False

    def stamp() -> str:
        return f"[{time.monotonic() - started:5.2f}s]"

    async with PeerPigeonServer(port=0) as server, AsyncExitStack() as stack:
        print(f"{stamp()} hub listening on {server.url}")
        meshes: list[PeerPigeonMesh] = []
        received: dict[str, int] = {}

        def on_message(event: MessageReceived) -> None:
            received[event.from_peer] = received.get(event.from_peer, 0) + 1
            print(f"{stamp()}   message from {_short(event.from_peer)}: {event.content!r}")

        for _ in range(peers):
            mesh = PeerPigeonMesh(
                network_name=DEMO_NETWORK,
                max_peers=max_peers,
                min_peers=min_peers,
                ice_hosts=LOOPBACK_ICE_HOSTS,
            )
            await stack.enter_async_context(mesh)
            mesh.on("peer_connected", _printer(mesh.peer_id, "<->", "data channel open", stamp))
            mesh.on("message_received", on_message)
            await mesh.connect(server.url)
            print(f"{stamp()} peer {_short(mesh.peer_id)} joined")
            meshes.append(mesh)

        with anyio.fail_after(timeout_s):
            while not all(len(m.connected_peers()) >= min_peers for m in meshes):
                await anyio.sleep(0.05)
            links = {tuple(sorted((m.peer_id, p))) for m in meshes for p in m.connected_peers()}
            print(
                f"{stamp()} mesh formed: {len(links)} links, every peer has "
                f"{min_peers}..{max_peers} neighbours"
            )
            sent = 0
            for mesh in meshes:
                for neighbour in mesh.connected_peers():
                    mesh.send_direct_message(neighbour, f"hello from {_short(mesh.peer_id)}")
                    sent += 1
            while sum(received.values()) < sent:
                await anyio.sleep(0.05)
            print(f"{stamp()} all {sent} direct messages delivered")

            leaver = meshes[0]
            watchers = [m for m in meshes[1:] if leaver.peer_id in m.connected_peers()]
            for mesh in watchers:
                mesh.on("peer_disconnected", _printer(mesh.peer_id, "saw", "leave", stamp))
            await leaver.disconnect()
            print(f"{stamp()} peer {_short(leaver.peer_id)} left")
            rest = meshes[1:]
            while any(leaver.peer_id in m.connected_peers() for m in rest):
                await anyio.sleep(0.05)
            want = min(min_peers, len(rest) - 1)
            while not all(len(m.connected_peers()) >= want for m in rest):
                await anyio.sleep(0.05)
            counts = ", ".join(f"{_short(m.peer_id)}:{len(m.connected_peers())}" for m in rest)
            print(f"{stamp()} re-balanced: neighbours per peer {counts}")
            _quiet[0] = True  # the shutdown's own departures are not news
            if keep_running:
                print("running until Ctrl-C")
                await anyio.sleep_forever()
    print(f"{stamp()} demo finished")
    return 0
