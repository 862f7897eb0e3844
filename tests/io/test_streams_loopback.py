"""Streams between two `PeerPigeonMesh` peers over real aiortc data channels on 127.0.0.1.

A file of a few MiB crosses byte for byte (size and sha256 checked at the end); an abort on
either side reaches both; a receiver that stops reading makes the sender wait with a
bounded number of bytes in flight; a stream to a non-neighbour is refused.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import anyio
import pytest

from peerpigeon.io.hub import PeerPigeonServer
from peerpigeon.io.mesh import LOOPBACK_ICE_HOSTS, PeerPigeonMesh
from peerpigeon.io.streams import StreamAbortedError, StreamWriter
from peerpigeon.protocol.errors import UsageError
from peerpigeon.protocol.ids import PeerId
from peerpigeon.protocol.mesh import MeshConfig, MeshEvent, StreamAborted
from peerpigeon.protocol.streams import StreamConfig

pytestmark = pytest.mark.anyio

A, B, C = (PeerId(x * 20) for x in ("cc", "88", "44"))
WINDOW = 65_536
STREAMS = StreamConfig(window_bytes=WINDOW, credit_threshold_bytes=WINDOW // 4)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aiortc is asyncio-only


async def until(cond: object, what: str, timeout: float = 20.0) -> None:
    assert callable(cond)
    with anyio.move_on_after(timeout):
        while not cond():
            await anyio.sleep(0.02)
        return
    raise AssertionError(f"timed out waiting for {what}")


@asynccontextmanager
async def pair() -> AsyncIterator[tuple[PeerPigeonMesh, PeerPigeonMesh, PeerPigeonMesh]]:
    async with PeerPigeonServer(port=0) as server, AsyncExitStack() as stack:
        meshes = []
        for pid in (A, B, C):
            config = MeshConfig(
                peer_id=pid,
                network_name="streams-loopback",
                allow_global_fallback=False,
                auto_discovery=False,
                streams=STREAMS,
            )
            mesh = PeerPigeonMesh(config=config, ice_hosts=LOOPBACK_ICE_HOSTS)
            await stack.enter_async_context(mesh)
            await mesh.connect(server.url)
            meshes.append(mesh)
        a, b, c = meshes
        await until(lambda: any(p.peer_id == B for p in a.discovered_peers()), "discovery")
        assert a.connect_to_peer(B)
        await until(lambda: B in a.connected_peers() and A in b.connected_peers(), "the link")
        await until(lambda: B in a.machine.python_neighbours(), "B's hello")
        await until(lambda: A in b.machine.python_neighbours(), "A's hello")
        yield a, b, c


async def test_file_crosses_byte_exact_and_non_neighbour_is_refused(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 123)
    src = tmp_path / "blob.bin"
    src.write_bytes(data)
    with anyio.fail_after(60):
        async with pair() as (a, b, _c):
            with pytest.raises(UsageError):
                await a.open_stream(C)
            received = bytearray()

            async def receive() -> None:
                incoming = await b.accept_stream()
                assert incoming.meta.filename == "blob.bin"
                assert incoming.meta.total_size == len(data)
                async for chunk in incoming:
                    received.extend(chunk)
                assert incoming.verified
                incoming.close()

            async with anyio.create_task_group() as tg:
                tg.start_soon(receive)
                sent = await a.send_file(B, src)
            assert sent == len(data)
            assert hashlib.sha256(received).digest() == hashlib.sha256(data).digest()
            assert a.machine.stream_stats().ended_out == 1
            assert b.machine.stream_stats().ended_in == 1


async def send_forever(writer: StreamWriter) -> None:
    while True:
        await writer.send(b"y" * 4096)


async def test_abort_from_either_side_reaches_both() -> None:
    with anyio.fail_after(60):
        async with pair() as (a, b, _):
            a_events: list[MeshEvent] = []
            b_events: list[MeshEvent] = []
            a.on("stream_aborted", a_events.append)
            b.on("stream_aborted", b_events.append)
            # sender aborts
            writer = await a.open_stream(B)
            incoming = await b.accept_stream()
            await writer.send(b"x" * 10_000)
            writer.abort("sender quits")
            with pytest.raises(StreamAbortedError):
                async for _ in incoming:
                    pass
            await until(lambda: b_events, "B's abort event")
            assert isinstance(b_events[0], StreamAborted)
            assert b_events[0].by_peer
            # receiver aborts
            writer = await a.open_stream(B)
            incoming = await b.accept_stream()
            incoming.abort("receiver quits")
            await until(lambda: len(a_events) == 2, "A's abort event")
            with pytest.raises(StreamAbortedError):
                await send_forever(writer)
            assert a.machine.stream_stats().aborted_out == 2
            await until(lambda: a.machine.open_stream_count() == (0, 0), "A freed")
            assert b.machine.open_stream_count() == (0, 0)


async def test_slow_reader_makes_the_sender_wait() -> None:
    with anyio.fail_after(60):
        async with pair() as (a, b, _):
            writer = await a.open_stream(B)
            incoming = await b.accept_stream()
            done = anyio.Event()

            async def write() -> None:
                await writer.send(b"z" * (4 * WINDOW))
                done.set()

            async with anyio.create_task_group() as tg:
                tg.start_soon(write)
                await anyio.sleep(1.0)
                assert not done.is_set()  # blocked on credit
                assert writer.bytes_sent <= WINDOW
                assert b.machine.stream_buffered_bytes() <= WINDOW
                total = 0
                while total < 4 * WINDOW:
                    total += len(await incoming.receive())
                await done.wait()
            await writer.aclose()


async def test_wait_delivered_confirms_or_raises() -> None:
    """`wait_delivered` is True once the receiver checked the whole stream; when the receiver
    aborts instead, the sender hears of it even if its end frame was already on the way."""
    with anyio.fail_after(60):
        async with pair() as (a, b, _):
            writer = await a.open_stream(B)
            incoming = await b.accept_stream()
            await writer.send(b"d" * 50_000)  # within the window: nobody reads yet
            await writer.aclose()
            got = b"".join([chunk async for chunk in incoming])
            assert len(got) == 50_000
            assert await writer.wait_delivered() is True
            assert (a.machine.open_stream_count(), b.machine.open_stream_count()) == ((0, 0),) * 2

            writer = await a.open_stream(B)
            await writer.send(b"e" * 1000)
            incoming = await b.accept_stream()
            incoming.abort("receiver quits")  # its abort and our end frame cross

            async def close_and_wait() -> bool:
                await writer.aclose()
                return await writer.wait_delivered()

            with pytest.raises(StreamAbortedError):
                await close_and_wait()
            assert not writer.delivered.is_set()
            await until(lambda: a.machine.open_stream_count() == (0, 0), "A freed")
