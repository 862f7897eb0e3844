"""Three hubs in a chain, each its own ``python -m peerpigeon hub`` process, on 127.0.0.1.

B bootstraps to A and C to B; one signaling client per hub. The clients on A and C find
each other through B and exchange an offer and an answer; B is killed (SIGKILL) and both
are told that B's client has gone; B comes back on the same port (with a new hub ID) and
discovery across the chain recovers. Every process is killed in a ``finally``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import anyio
import pytest
from anyio.abc import Process

from peerpigeon.io.client import SignalingSession
from peerpigeon.io.hub import PeerPigeonServer
from peerpigeon.protocol.client import (
    AnswerReceived,
    ClientEvent,
    OfferReceived,
    PeerDiscovered,
    PeerLeft,
)
from peerpigeon.protocol.server import BootstrapConnected, HubRegistered, ServerEvent

pytestmark = pytest.mark.anyio

REPO: Final = Path(__file__).resolve().parents[2]
URL: Final = re.compile(rb"ws://127\.0\.0\.1:(\d+)")
# The larger ID sends the offer (the reference's rule), so the client on A offers.
PEER_A: Final = "f" + "a" * 39
PEER_B: Final = "b" * 40
PEER_C: Final = "c" * 40
RECONNECT_S: Final = "0.3"  # the hubs' bootstrap backoff base (default 5 s)


@dataclass
class Hub:
    """One hub process and the URL it printed."""

    name: str
    process: Process
    url: str
    port: int
    stderr: Path


@dataclass
class Peer:
    """A signaling session and everything it reported."""

    session: SignalingSession
    events: list[ClientEvent] = field(default_factory=list)

    def known(self) -> set[str]:
        return set(self.session.machine.discovered_peers)

    def left(self) -> list[str]:
        return [e.peer_id for e in self.events if isinstance(e, PeerLeft)]


async def start_hub(name: str, tmp: Path, *args: str, port: int = 0) -> Hub:
    """``python -m peerpigeon hub --hub --port N ...``; waits for its ws:// URL."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    log = tmp / f"{name}-{port}.stderr"
    command = [sys.executable, "-m", "peerpigeon", "hub", "--hub", "--port", str(port), *args]
    with log.open("wb") as err:
        process = await anyio.open_process(
            command, stdin=subprocess.DEVNULL, stderr=err, cwd=REPO, env=env
        )
    assert process.stdout is not None
    seen = b""
    with anyio.fail_after(15):
        while (found := URL.search(seen)) is None:
            try:
                seen += await process.stdout.receive()
            except anyio.EndOfStream:
                raise AssertionError(f"hub {name} exited: {log.read_text()}") from None
    return Hub(name, process, found.group(0).decode(), int(found.group(1)), log)


def bootstrap(hub: Hub) -> tuple[str, ...]:
    """Arguments that make a hub dial `hub`, retrying quickly."""
    return ("--bootstrap", hub.url, "--reconnect-interval", RECONNECT_S)


async def kill(hub: Hub) -> None:
    """SIGKILL the hub (no goodbye, no close frames) and reap it."""
    if hub.process.returncode is None:
        hub.process.send_signal(signal.SIGKILL)
    with anyio.move_on_after(5):
        await hub.process.wait()


async def until(what: str, check: Callable[[], bool], hubs: list[Hub], timeout: float) -> None:
    """Poll `check` until it holds; on timeout, fail with the hubs' stderr."""
    with anyio.move_on_after(timeout):
        while not check():
            await anyio.sleep(0.02)
        return
    logs = "\n".join(f"--- {h.name}\n{h.stderr.read_text()[-2000:]}" for h in hubs)
    raise AssertionError(f"timed out waiting for {what}\n{logs}")


@asynccontextmanager
async def peer(stack: AsyncExitStack, url: str, peer_id: str) -> AsyncIterator[Peer]:
    events: list[ClientEvent] = []
    session = SignalingSession([url], peer_id=peer_id, on_event=events.append)
    await stack.enter_async_context(session)
    yield Peer(session, events)


async def test_three_hub_chain_through_the_cli_survives_a_hub_death(tmp_path: Path) -> None:
    hubs: list[Hub] = []
    try:
        with anyio.fail_after(55):
            a = await start_hub("A", tmp_path)
            hubs.append(a)
            b = await start_hub(
                "B", tmp_path, "--bootstrap", a.url, "--reconnect-interval", RECONNECT_S
            )
            hubs.append(b)
            c = await start_hub(
                "C", tmp_path, "--bootstrap", b.url, "--reconnect-interval", RECONNECT_S
            )
            hubs.append(c)
            async with AsyncExitStack() as stack:
                pa = await stack.enter_async_context(peer(stack, a.url, PEER_A))
                pb = await stack.enter_async_context(peer(stack, b.url, PEER_B))
                pc = await stack.enter_async_context(peer(stack, c.url, PEER_C))

                # Discovery crosses both links, both ways.
                await until("discovery", lambda: pa.known() == {PEER_B, PEER_C}, hubs, 10)
                await until("discovery", lambda: pc.known() == {PEER_A, PEER_B}, hubs, 10)
                await until("discovery", lambda: pb.known() == {PEER_A, PEER_C}, hubs, 10)

                # Offer and answer between the two ends of the chain.
                pa.session.send_offer(PEER_C, "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n")
                await until(
                    "the offer",
                    lambda: any(isinstance(e, OfferReceived) for e in pc.events),
                    hubs,
                    10,
                )
                (got,) = [e for e in pc.events if isinstance(e, OfferReceived)]
                assert got.from_peer_id == PEER_A
                assert got.sdp.startswith("v=0")
                pc.session.send_answer(PEER_A, "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\n")
                await until(
                    "the answer",
                    lambda: any(isinstance(e, AnswerReceived) for e in pa.events),
                    hubs,
                    10,
                )
                (answer,) = [e for e in pa.events if isinstance(e, AnswerReceived)]
                assert answer.from_peer_id == PEER_C

                # B dies: A and C are told that B's peer (and the far end) is gone.
                await kill(b)
                await until("B's peer gone on A", lambda: PEER_B in pa.left(), hubs, 10)
                await until("B's peer gone on C", lambda: PEER_B in pc.left(), hubs, 10)
                await until("the chain split", lambda: PEER_C in pa.left(), hubs, 10)
                assert pa.known() == set()
                assert pc.known() == set()

                # B returns on the same port, with a new hub ID: everything comes back.
                b2 = await start_hub("B2", tmp_path, *bootstrap(a), port=b.port)
                hubs.append(b2)
                assert b2.port == b.port
                await until("recovery on A", lambda: pa.known() == {PEER_B, PEER_C}, hubs, 20)
                await until("recovery on C", lambda: pc.known() == {PEER_A, PEER_B}, hubs, 20)
                again: list[str] = [e.peer_id for e in pc.events if isinstance(e, PeerDiscovered)]
                assert again.count(PEER_A) >= 2  # found, lost, found again
    finally:
        with anyio.CancelScope(shield=True):
            for hub in hubs:
                await kill(hub)


async def test_a_hub_dials_its_bootstrap_at_start_without_waiting_for_clients() -> None:
    """In process: the dial the machine queues when it is built goes out at once."""
    seen: list[ServerEvent] = []
    with anyio.fail_after(10):
        async with PeerPigeonServer(port=0, is_hub=True, on_event=seen.append) as a:
            b = PeerPigeonServer(port=0, is_hub=True, bootstrap_hubs=[a.url], on_event=seen.append)
            async with b:
                while not any(isinstance(e, HubRegistered) for e in seen):
                    await anyio.sleep(0.01)
                assert BootstrapConnected(url=a.url) in seen
                assert a.machine.stats().hubs == 1
