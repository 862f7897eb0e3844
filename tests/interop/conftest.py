"""Fixtures that run the JavaScript PeerPigeon reference and our own hub as subprocesses.

Every process a fixture starts is closed when the test ends, pass or fail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

import pytest

from .harness import (
    INTEROP_DIR,
    MAX_WAIT,
    JsPeer,
    JsServer,
    OurHub,
    ProcessGroup,
    ensure_node_modules,
)


class JsServerFactory(Protocol):
    def __call__(
        self,
        *,
        port: int = 0,
        hub: bool = False,
        bootstrap: Sequence[str] = (),
        hub_peer_id: str | None = None,
        quiet: bool = True,
        extra_args: Sequence[str] = (),
    ) -> JsServer: ...


class JsPeerFactory(Protocol):
    def __call__(
        self,
        url: str,
        peer_id: str | None = None,
        network: str | None = None,
        *,
        max_peers: int | None = None,
        min_peers: int | None = None,
        quiet: bool = False,
        extra_args: Sequence[str] = (),
    ) -> JsPeer: ...


OurHubFactory = Callable[..., OurHub]


@pytest.fixture(scope="session")
def js_modules() -> float:
    """Make sure tests/interop/js/node_modules is installed; returns install seconds (0 if none).

    Fails (does not skip) when node or npm is missing or the install fails.
    """
    return ensure_node_modules()


@pytest.fixture
def processes() -> Iterator[ProcessGroup]:
    """Every process started through the factories below; all closed at teardown."""
    group = ProcessGroup()
    try:
        yield group
    finally:
        group.close_all()


@pytest.fixture
def js_server(js_modules: float, processes: ProcessGroup) -> JsServerFactory:
    """Factory: start a reference PeerPigeonServer (or hub) on 127.0.0.1 and wait until it
    listens. The handle has ``.url``, ``.port``, ``.health()``, ``.stats()``."""

    def start(
        *,
        port: int = 0,
        hub: bool = False,
        bootstrap: Sequence[str] = (),
        hub_peer_id: str | None = None,
        quiet: bool = True,
        extra_args: Sequence[str] = (),
    ) -> JsServer:
        return processes.add(
            JsServer(
                port=port,
                hub=hub,
                bootstrap=bootstrap,
                hub_peer_id=hub_peer_id,
                quiet=quiet,
                extra_args=extra_args,
            )
        )

    return start


@pytest.fixture
def js_peer(js_modules: float, processes: ProcessGroup) -> JsPeerFactory:
    """Factory: start a scripted reference PeerPigeonMesh peer connected to ``url`` and wait for
    it to be ready. The handle has ``.peer_id``, ``.send_direct()``, ``.broadcast()``,
    ``.status()``, ``.wait_for()``, ..."""

    def start(
        url: str,
        peer_id: str | None = None,
        network: str | None = None,
        *,
        max_peers: int | None = None,
        min_peers: int | None = None,
        quiet: bool = False,
        extra_args: Sequence[str] = (),
    ) -> JsPeer:
        return processes.add(
            JsPeer(
                url,
                peer_id=peer_id,
                network=network,
                max_peers=max_peers,
                min_peers=min_peers,
                quiet=quiet,
                extra_args=extra_args,
            )
        )

    return start


@pytest.fixture
def our_hub(processes: ProcessGroup) -> OurHubFactory:
    """Factory: start our hub, ``python -m peerpigeon hub --port 0 [extra args]``, and wait
    (bounded) for the ws:// URL it prints. The handle has ``.url`` and ``.port``."""

    def start(*extra_args: str, start_timeout: float = MAX_WAIT) -> OurHub:
        return processes.add(OurHub(extra_args, start_timeout=start_timeout))

    return start


@pytest.fixture(params=["our-hub", "js-server"])
def hub_url(
    request: pytest.FixtureRequest, our_hub: OurHubFactory, js_server: JsServerFactory
) -> str:
    """The signaling URL, once for each side: our hub (a subprocess) or the JS server."""
    if request.param == "our-hub":
        return str(our_hub().url)
    return js_server().url


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test collected from this directory ``interop`` (hooks see all items)."""
    for item in items:
        if INTEROP_DIR in item.path.parents:
            item.add_marker(pytest.mark.interop)
