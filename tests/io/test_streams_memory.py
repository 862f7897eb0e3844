"""A ~48 MiB file crosses between two `PeerPigeonMesh` peers on loopback in bounded memory.

Both peers live in this process, so the peak RSS growth covers the sender (reading the file
in blocks) and the receiver (reading the stream chunk by chunk, never the whole file). The
bound (64 MiB, more than the file itself) is loose: it catches a side that buffers it all.
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

import anyio
import pytest

from peerpigeon.io.hub import PeerPigeonServer
from peerpigeon.io.mesh import LOOPBACK_ICE_HOSTS, PeerPigeonMesh
from peerpigeon.protocol.ids import PeerId
from peerpigeon.protocol.mesh import MeshConfig

pytestmark = pytest.mark.anyio

A, B = PeerId("dd" * 20), PeerId("33" * 20)
MIB = 1024 * 1024
SIZE = 48 * MIB + 4321
BLOCK = 256 * 1024
BOUND_MIB = 64


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aiortc is asyncio-only


def rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/self/status")


class PeakRss:
    """Peak VmRSS, sampled every 10 ms (and VmHWM, reset when the kernel allows)."""

    def __init__(self) -> None:
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to VmRSS
        self.base = rss_kib("VmRSS")
        self.hwm_base = rss_kib("VmHWM")
        self.peak = self.base

    async def sample(self) -> None:
        while True:
            self.peak = max(self.peak, rss_kib("VmRSS"))
            await anyio.sleep(0.01)

    def growth_mib(self) -> float:
        sampled = self.peak - self.base
        hwm = rss_kib("VmHWM") - self.hwm_base
        return max(sampled, hwm if self.hwm_base <= self.base + 1024 else 0) / 1024


def write_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as f:
        for i, at in enumerate(range(0, SIZE, BLOCK)):
            block = (i.to_bytes(8, "big") * (BLOCK // 8))[: min(BLOCK, SIZE - at)]
            digest.update(block)
            f.write(block)
    return digest.hexdigest()


async def until(cond: object, what: str, timeout: float = 30.0) -> None:
    assert callable(cond)
    with anyio.move_on_after(timeout):
        while not cond():
            await anyio.sleep(0.02)
        return
    raise AssertionError(f"timed out waiting for {what}")


async def test_large_file_crosses_in_bounded_memory(tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    expected = write_file(src)
    with anyio.fail_after(120):
        async with PeerPigeonServer(port=0) as server:
            meshes = []
            async with contextlib.AsyncExitStack() as stack:
                for pid in (A, B):
                    config = MeshConfig(
                        peer_id=pid,
                        network_name="streams-memory",
                        allow_global_fallback=False,
                        auto_discovery=False,
                    )
                    mesh = PeerPigeonMesh(config=config, ice_hosts=LOOPBACK_ICE_HOSTS)
                    await stack.enter_async_context(mesh)
                    await mesh.connect(server.url)
                    meshes.append(mesh)
                a, b = meshes
                await until(lambda: any(p.peer_id == B for p in a.discovered_peers()), "discovery")
                assert a.connect_to_peer(B)
                await until(lambda: B in a.machine.python_neighbours(), "B's hello")
                await until(lambda: A in b.machine.python_neighbours(), "A's hello")

                digest = hashlib.sha256()
                got = 0
                verified: list[bool] = []

                async def receive() -> None:
                    nonlocal got
                    incoming = await b.accept_stream()
                    assert incoming.meta.filename == "big.bin"
                    assert incoming.meta.total_size == SIZE
                    async for chunk in incoming:
                        digest.update(chunk)
                        got += len(chunk)
                    verified.append(incoming.verified)

                peak = PeakRss()
                async with anyio.create_task_group() as tg:
                    tg.start_soon(peak.sample)
                    async with anyio.create_task_group() as transfer:
                        transfer.start_soon(receive)
                        sent = await a.send_file(B, src)
                    tg.cancel_scope.cancel()
                growth = peak.growth_mib()
                print(f"peak RSS growth {growth:.1f} MiB")

    assert sent == SIZE
    assert got == SIZE
    assert verified == [True]
    assert digest.hexdigest() == expected
    assert growth < BOUND_MIB, f"peak RSS grew by {growth:.1f} MiB during a {SIZE // MIB} MiB file"
