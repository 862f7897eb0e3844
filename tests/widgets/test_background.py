"""`Background`: context managers entered in one task, used and closed from others."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import pytest

from peerpigeon.widgets import Background, GraphSnapshot, MeshPeerSource


def test_enter_in_one_task_close_in_another() -> None:
    log: list[str] = []

    @asynccontextmanager
    async def resource(name: str) -> AsyncIterator[str]:
        async with anyio.create_task_group() as tg:  # task-bound, like our servers
            log.append(f"open {name}")
            yield name
            tg.cancel_scope.cancel()
        log.append(f"close {name}")

    async def main() -> None:
        bg = Background()
        # Each "cell" is its own task, as in Jupyter.
        a = await asyncio.create_task(bg.enter(resource("a")))
        b = await asyncio.create_task(bg.enter(resource("b")))
        assert (a, b, len(bg)) == ("a", "b", 2)
        await asyncio.create_task(bg.aclose())
        assert len(bg) == 0

    asyncio.run(main())
    assert log == ["open a", "open b", "close b", "close a"]


def test_failed_enter_raises_and_holds_nothing() -> None:
    @asynccontextmanager
    async def broken() -> AsyncIterator[None]:
        raise OSError("port in use")
        yield  # pragma: no cover

    async def main() -> int:
        bg = Background()
        with pytest.raises(OSError, match="port in use"):
            await bg.enter(broken())
        return len(bg)

    assert asyncio.run(main()) == 0


def test_error_on_exit_is_raised_after_closing_the_rest() -> None:
    closed: list[str] = []

    @asynccontextmanager
    async def fine() -> AsyncIterator[None]:
        yield
        closed.append("fine")

    @asynccontextmanager
    async def bad() -> AsyncIterator[None]:
        yield
        raise RuntimeError("close failed")

    async def main() -> None:
        async with Background() as bg:
            await bg.enter(fine())
            await bg.enter(bad())

    with pytest.raises(RuntimeError, match="close failed"):
        asyncio.run(main())
    assert closed == ["fine"]


def test_exit_one_out_of_order_keeps_the_others_open() -> None:
    log: list[str] = []

    @asynccontextmanager
    async def resource(name: str) -> AsyncIterator[list[str]]:
        async with anyio.create_task_group() as tg:
            log.append(f"open {name}")
            yield [name]  # a fresh object per resource: exit matches by identity
            tg.cancel_scope.cancel()
        log.append(f"close {name}")

    async def main() -> None:
        bg = Background()
        a = await asyncio.create_task(bg.enter(resource("a")))
        b = await asyncio.create_task(bg.enter(resource("b")))
        c = await asyncio.create_task(bg.enter(resource("c")))
        await asyncio.create_task(bg.exit(b))  # another "cell"
        assert len(bg) == 2
        assert log[-1] == "close b"
        with pytest.raises(KeyError):
            await bg.exit(b)  # already gone
        with pytest.raises(KeyError):
            await bg.exit(["a"])  # equal, but not what enter returned
        await bg.aclose()
        assert (a, c) == (["a"], ["c"])

    asyncio.run(main())
    assert log == ["open a", "open b", "open c", "close b", "close c", "close a"]


def test_exit_raises_what_exiting_raised() -> None:
    @asynccontextmanager
    async def bad() -> AsyncIterator[object]:
        yield object()
        raise RuntimeError("close failed")

    async def main() -> int:
        bg = Background()
        value = await bg.enter(bad())
        with pytest.raises(RuntimeError, match="close failed"):
            await bg.exit(value)
        return len(bg)

    assert asyncio.run(main()) == 0


def test_mesh_peers_held_across_tasks_and_drawn() -> None:
    """What notebook 01 does: a hub and mesh peers entered, used and left from other tasks."""
    pytest.importorskip("aiortc")
    from peerpigeon.io.hub import PeerPigeonServer
    from peerpigeon.io.mesh import LOOPBACK_ICE_HOSTS, PeerPigeonMesh

    def links_up(snap: GraphSnapshot) -> set[frozenset[str]]:
        return {frozenset((e.a, e.b)) for e in snap.edges_of_kind("mesh") if e.status == "up"}

    async def until(condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(15.0):
            while not condition():
                await asyncio.sleep(0.02)

    async def main() -> None:
        bg = Background()
        hub = await asyncio.create_task(bg.enter(PeerPigeonServer(port=0)))
        meshes: list[PeerPigeonMesh] = []
        for _ in range(3):
            mesh = PeerPigeonMesh(network_name="widgets-bg", ice_hosts=LOOPBACK_ICE_HOSTS)
            meshes.append(await asyncio.create_task(bg.enter(mesh)))
        a, b, c = meshes
        source = MeshPeerSource(*meshes)
        for mesh in meshes:
            await asyncio.create_task(mesh.connect(hub.url))
        await until(lambda: len(links_up(source.snapshot())) == 3)  # a triangle
        snap = source.snapshot()
        assert all(snap.node(m.peer_id).status == "online" for m in meshes)

        await asyncio.create_task(bg.exit(a))  # a leaves; the others stay up
        assert len(bg) == 3
        await until(lambda: a.peer_id not in b.connected_peers() + c.connected_peers())
        snap = source.snapshot()
        assert snap.node(a.peer_id).status == "offline"
        assert links_up(snap) == {frozenset((b.peer_id, c.peer_id))}

        await asyncio.create_task(bg.aclose())
        assert not hub.is_running
        assert not any(m.status().connected for m in meshes)

    asyncio.run(main())
