"""Helpers for tests that put Python `PeerPigeonMesh` peers and JS peers in one mesh.

The Python peers run in the test's process on asyncio (aiortc, ICE on 127.0.0.1); the JS
peers are ``js/js_peer.mjs`` processes whose blocking harness calls run in worker threads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from peerpigeon.io.mesh import LOOPBACK_ICE_HOSTS, PeerPigeonMesh
from peerpigeon.protocol.ids import PeerId
from peerpigeon.protocol.mesh import MeshConfig, MeshEvent, MessageReceived
from peerpigeon.protocol.wire import JsonValue

from .conftest import JsPeerFactory
from .harness import MAX_WAIT, Event, JsPeer

__all__ = ["PyPeer", "blocking", "js_wait", "mesh_config", "py_peer", "start_js"]

T = TypeVar("T")
E = TypeVar("E")

POLL_S = 0.05


async def blocking(fn: Callable[[], T]) -> T:
    """Run a blocking harness call (process start, wait_for, request) in a worker thread."""
    return await anyio.to_thread.run_sync(fn)


async def start_js(
    js_peer: JsPeerFactory, url: str, peer_id: str, network: str, **options: Any
) -> JsPeer:
    """Start a JS peer (``max_peers``, ``min_peers``, ... as the factory takes them)."""
    return await blocking(lambda: js_peer(url, peer_id, network, **options))


async def js_wait(peer: JsPeer, matcher: str | Callable[[Event], bool], **fields: Any) -> Event:
    """Wait for an event of a JS peer (in a worker thread)."""
    return await blocking(lambda: peer.wait_for(matcher, MAX_WAIT, **fields))


def mesh_config(peer_id: str, network: str, **overrides: Any) -> MeshConfig:
    """A Python peer's configuration: no global fallback (the tests use one network)."""
    return MeshConfig(
        peer_id=PeerId(peer_id), network_name=network, allow_global_fallback=False, **overrides
    )


@dataclass
class PyPeer:
    """A Python mesh peer and every event it emitted (recorded by callbacks)."""

    mesh: PeerPigeonMesh
    events: list[MeshEvent]

    @property
    def peer_id(self) -> str:
        return self.mesh.peer_id

    def of(self, kind: type[E]) -> Iterator[E]:
        return (e for e in self.events if isinstance(e, kind))

    async def wait_for(self, find: Callable[[], T | None], what: str, timeout: float = 30) -> T:
        """Poll `find` until it returns something other than None; fail after `timeout`."""
        with anyio.move_on_after(timeout):
            while (found := find()) is None:
                await anyio.sleep(POLL_S)
            return found
        recent = [e for e in self.events if type(e).__name__ != "PeersUpdated"][-15:]
        raise AssertionError(
            f"{self.peer_id[:8]}: timed out after {timeout} s waiting for {what}; "
            f"links {[p[:8] for p in self.mesh.connected_peers()]}; events {recent}"
        )

    async def wait(self, condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
        await self.wait_for(lambda: True if condition() else None, what, timeout)

    async def wait_connected(self, peer: str, timeout: float = 30) -> None:
        await self.wait(
            lambda: peer in self.mesh.connected_peers(), f"a link to {peer[:8]}", timeout
        )

    async def message(self, sender: str, content: JsonValue) -> MessageReceived:
        """The first message from `sender` with `content` (waits for it)."""

        def find() -> MessageReceived | None:
            return next(
                (
                    m
                    for m in self.of(MessageReceived)
                    if m.from_peer == sender and m.content == content
                ),
                None,
            )

        return await self.wait_for(find, f"a message from {sender[:8]}")


@asynccontextmanager
async def py_peer(url: str, config: MeshConfig, recorded: Iterable[str]) -> AsyncIterator[PyPeer]:
    """A connected Python peer that records the events named in `recorded`."""
    mesh = PeerPigeonMesh(config=config, ice_hosts=LOOPBACK_ICE_HOSTS)
    events: list[MeshEvent] = []
    async with mesh:
        for name in recorded:
            mesh.on(name, events.append)
        await mesh.connect(url)
        yield PyPeer(mesh, events)
