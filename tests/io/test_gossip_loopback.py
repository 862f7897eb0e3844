"""Gossip between `PeerPigeonMesh` peers over real aiortc data channels on 127.0.0.1.

Four peers in a line, A - B - C - D (``auto_discovery`` off, each link dialled by hand from
its larger end), so that messages must be relayed: a broadcast reaches the far end, a direct
message is routed across two relays, binary data goes to a neighbour byte for byte and is
broadcast to every Python peer once, and what a channel cannot carry is refused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TypeVar

import anyio
import pytest

from peerpigeon.io.hub import PeerPigeonServer
from peerpigeon.io.mesh import LOOPBACK_ICE_HOSTS, PeerPigeonMesh
from peerpigeon.protocol.errors import UsageError
from peerpigeon.protocol.ids import PeerId
from peerpigeon.protocol.mesh import (
    BinaryMessageReceived,
    MeshConfig,
    MeshEvent,
    MessageReceived,
)

pytestmark = pytest.mark.anyio

T = TypeVar("T")
NETWORK = "gossip-loopback"
POLL_S = 0.02
A, B, C, D = (PeerId(x * 20) for x in ("cc", "88", "44", "22"))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aiortc is asyncio-only


async def wait_for(find: Callable[[], T | None], what: str, timeout: float = 10.0) -> T:
    with anyio.move_on_after(timeout):
        while (found := find()) is None:
            await anyio.sleep(POLL_S)
        return found
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def knows(mesh: PeerPigeonMesh, peer: PeerId) -> Callable[[], bool | None]:
    return lambda: True if any(p.peer_id == peer for p in mesh.discovered_peers()) else None


def linked(mesh: PeerPigeonMesh, peer: PeerId) -> Callable[[], bool | None]:
    return lambda: True if peer in mesh.connected_peers() else None


def python_neighbours_are(mesh: PeerPigeonMesh, want: set[PeerId]) -> Callable[[], bool | None]:
    return lambda: True if set(mesh.machine.python_neighbours()) == want else None


def message_in(events: list[MeshEvent], msg_id: str) -> Callable[[], MessageReceived | None]:
    return lambda: next(
        (m for m in events if isinstance(m, MessageReceived) and m.message_id == msg_id), None
    )


def binary_in(
    events: list[MeshEvent], msg_id: str | None
) -> Callable[[], BinaryMessageReceived | None]:
    return lambda: next(
        (x for x in events if isinstance(x, BinaryMessageReceived) and x.message_id == msg_id),
        None,
    )


@asynccontextmanager
async def line_of_four() -> AsyncIterator[dict[PeerId, tuple[PeerPigeonMesh, list[MeshEvent]]]]:
    async with PeerPigeonServer(port=0) as server, AsyncExitStack() as stack:
        peers: dict[PeerId, tuple[PeerPigeonMesh, list[MeshEvent]]] = {}
        for pid in (A, B, C, D):
            config = MeshConfig(
                peer_id=pid,
                network_name=NETWORK,
                allow_global_fallback=False,
                auto_discovery=False,
                advert_delay_s=0.05,
            )
            mesh = PeerPigeonMesh(config=config, ice_hosts=LOOPBACK_ICE_HOSTS)
            await stack.enter_async_context(mesh)
            events: list[MeshEvent] = []
            mesh.on("message_received", events.append)
            mesh.on("binary_message_received", events.append)
            await mesh.connect(server.url)
            peers[pid] = (mesh, events)
        for big, small in ((A, B), (B, C), (C, D)):
            mesh = peers[big][0]
            await wait_for(knows(mesh, small), f"{big[:4]} to discover {small[:4]}")
            assert mesh.connect_to_peer(small)
        for big, small in ((A, B), (B, C), (C, D)):
            await wait_for(linked(peers[big][0], small), f"the link {big[:4]}-{small[:4]}", 20)
        # Every peer has heard its neighbours' hellos: they are Python peers.
        for pid, (mesh, _) in peers.items():
            want = {A: {B}, B: {A, C}, C: {B, D}, D: {C}}[pid]
            await wait_for(python_neighbours_are(mesh, want), f"{pid[:4]}'s hellos")
        yield peers


async def test_messages_cross_a_line_of_relays() -> None:
    with anyio.fail_after(60):
        async with line_of_four() as peers:
            a, _ = peers[A]
            d, d_events = peers[D]

            msg_id = a.send_message("hello line")
            for pid, hops in ((B, 0), (C, 1), (D, 2)):
                events = peers[pid][1]
                got = await wait_for(message_in(events, msg_id), f"the broadcast at {pid[:4]}")
                assert (got.from_peer, got.content, got.hops, got.direct) == (
                    A,
                    "hello line",
                    hops,
                    False,
                )

            dm_id = d.send_direct_message(A, {"routed": True})
            a_events = peers[A][1]
            got = await wait_for(message_in(a_events, dm_id), "the routed direct message")
            assert (got.from_peer, got.content, got.direct, got.hops, got.via) == (
                D,
                {"routed": True},
                True,
                2,
                B,
            )

            await anyio.sleep(0.2)  # anything delivered twice would have arrived by now
            for _, events in peers.values():
                ids = [e.message_id for e in events if isinstance(e, MessageReceived)]
                assert len(ids) == len(set(ids))
            assert d_events  # D got the broadcast


async def test_binary_to_a_neighbour_and_to_everyone() -> None:
    with anyio.fail_after(60):
        async with line_of_four() as peers:
            b, _ = peers[B]
            payload = bytes(range(256)) * 700 + b"\x00"  # 179,201 bytes, under the channel's max
            b.send_binary_data(C, memoryview(payload))
            c_events = peers[C][1]
            got = await wait_for(binary_in(c_events, None), "binary data at C")
            assert (got.from_peer, got.data, got.size, got.broadcast) == (
                B,
                payload,
                len(payload),
                False,
            )

            with pytest.raises(UsageError, match="limit"):
                b.send_binary_data(C, b"\x00" * 300_000)  # over what the channel negotiated
            with pytest.raises(UsageError, match="neighbour"):
                b.send_binary_data(D, b"x")  # binary data to one peer is neighbour-only
            with pytest.raises(UsageError, match="limit"):
                b.send_message("x" * 70_000)  # a gossip frame that could not be relayed

            blob = b"\xffbroadcast\x00" * 1000
            msg_id = peers[A][0].broadcast_binary_data(blob)
            for pid, hops in ((B, 0), (C, 1), (D, 2)):
                events = peers[pid][1]
                got = await wait_for(binary_in(events, msg_id), f"the broadcast at {pid[:4]}")
                assert (got.from_peer, got.data, got.hops, got.broadcast) == (A, blob, hops, True)
            await anyio.sleep(0.2)
            for pid in (B, C, D):
                copies = [
                    x
                    for x in peers[pid][1]
                    if isinstance(x, BinaryMessageReceived) and x.message_id == msg_id
                ]
                assert len(copies) == 1
            for mesh, _ in peers.values():
                assert mesh.stats().data_frames_rejected == 0
