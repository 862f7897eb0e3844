"""`Background`: keep async context managers open across notebook cells.

Jupyter runs each cell in its own asyncio task, while an anyio task group (inside
`PeerPigeonServer`, `SignalingSession`, ...) must be exited by the task that entered it. So
``await stack.enter_async_context(server)`` in one cell and ``await stack.aclose()`` in
another fails. `Background` enters each context manager in a task of its own, which stays
parked inside the ``async with`` until `exit` (that one) or `aclose` (all); the value
is handed back to the cell.
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
    ``__aenter__`` returned (or raises what it raised). ``await bg.exit(value)`` exits that
    one now (e.g. stop one peer of several); ``await bg.aclose()`` exits the rest, the last
    entered first. Also usable as ``async with Background() as bg``.
    """

    def __init__(self) -> None:
        self._held: list[tuple[object, asyncio.Event, asyncio.Task[None]]] = []

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
        self._held.append((value, release, task))
        return value

    async def exit(self, value: object) -> None:
        """Exit the held context manager that `enter` returned `value` for, now.

        The others stay open. Raises `KeyError` if nothing held has that value (compared
        by identity; the latest entered first), or what exiting it raised.
        """
        for index in range(len(self._held) - 1, -1, -1):
            if self._held[index][0] is value:
                _, release, task = self._held.pop(index)
                release.set()
                await task
                return
        raise KeyError(f"not held: {value!r}")

    async def aclose(self) -> None:
        """Exit every held context manager, last entered first; re-raises the first error."""
        first: BaseException | None = None
        while self._held:
            _, release, task = self._held.pop()
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
