"""`Background`: keep async context managers open across notebook cells.

Jupyter runs each cell in its own asyncio task, while an anyio task group (inside
`PeerPigeonServer`, `SignalingSession`, ...) must be exited by the task that entered it. So
``await stack.enter_async_context(server)`` in one cell and ``await stack.aclose()`` in
another fails. `Background` enters each context manager in a task of its own, which stays
parked inside the ``async with`` until `aclose`; the value is handed back to the cell.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from typing import TypeVar

__all__ = ["Background"]

T = TypeVar("T")


class Background:
    """Async context managers held open by background tasks (asyncio; notebooks).

    ``value = await bg.enter(cm)`` enters `cm` in a new task and returns what its
    ``__aenter__`` returned (or raises what it raised). ``await bg.aclose()`` exits them
    all, the last entered first. Also usable as ``async with Background() as bg``.
    """

    def __init__(self) -> None:
        self._held: list[tuple[asyncio.Event, asyncio.Task[None]]] = []

    def __len__(self) -> int:
        return len(self._held)

    async def enter(self, cm: AbstractAsyncContextManager[T]) -> T:
        """Enter `cm` in a background task; its value, once entered."""
        loop = asyncio.get_running_loop()
        entered: asyncio.Future[T] = loop.create_future()
        release = asyncio.Event()

        async def hold() -> None:
            try:
                async with cm as value:
                    entered.set_result(value)
                    await release.wait()
            except BaseException as err:
                if entered.done():
                    raise
                if isinstance(err, asyncio.CancelledError):
                    entered.cancel()
                else:
                    entered.set_exception(err)

        task = loop.create_task(hold(), name=f"background {type(cm).__name__}")
        try:
            value = await asyncio.shield(entered)
        except BaseException:
            release.set()
            await asyncio.gather(task, return_exceptions=True)
            raise
        self._held.append((release, task))
        return value

    async def aclose(self) -> None:
        """Exit every held context manager, last entered first; re-raises the first error."""
        first: BaseException | None = None
        while self._held:
            release, task = self._held.pop()
            release.set()
            try:
                await task
            except BaseException as err:  # keep closing the rest
                first = first or err
        if first is not None:
            raise first

    async def __aenter__(self) -> Background:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
