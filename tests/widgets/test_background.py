"""`Background`: context managers entered in one task, used and closed from others."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from peerpigeon.widgets import Background


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
