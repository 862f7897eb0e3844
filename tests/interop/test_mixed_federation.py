"""A mixed federation: the JavaScript reference hub and our hub, bootstrapped each way round.

A real JS peer sits on one hub and our `SignalingSession` on the other. They discover each
other across the hub link, and the JS peer (the larger ID, so the initiator) sends its
offer through both hubs; our side answers with a real aiortc answer and the JS peer
reports the WebRTC link up. Every frame between the two hubs goes through a recording
WebSocket proxy (`FrameTap`), which shows that our hub never sends the JS hub a cross-hub
``peer-disconnected`` (ours only: a JS hub answers it with ``error`` when it arrives as a
client frame), never our route field, and that the JS hub never answers us with ``error``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any, Final, Literal

import anyio
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from peerpigeon.io.client import SignalingSession
from peerpigeon.io.transport import ChannelOpen, IceCandidateInit, LinkEvent
from peerpigeon.io.webrtc import LOOPBACK_ICE_HOSTS, AiortcTransport
from peerpigeon.protocol.client import (
    ClientEvent,
    IceCandidateReceived,
    OfferReceived,
    PeerLeft,
)

from .conftest import JsPeerFactory, JsServerFactory, OurHubFactory
from .harness import MAX_WAIT, JsPeer, JsServer, OurHub

pytestmark = [pytest.mark.interop, pytest.mark.anyio]

# The reference lets the greater ID send the offer: the JS peer initiates, we answer.
JS_PEER: Final = "f0e1d2c3b4a5968778695a4b3c2d1e0f87654321"
OUR_PEER: Final = "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"
OUR_BRIEF: Final = "0b" * 20  # joins our hub and leaves again: a departure to (not) pass on
NETWORK: Final = "mixed"

Direction = Literal["up", "down"]  # up: dialler -> acceptor; down: acceptor -> dialler


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aiortc and the websockets proxy run on asyncio


class FrameTap:
    """A WebSocket proxy in front of `upstream` that records every text frame it carries."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.frames: list[tuple[Direction, dict[str, Any]]] = []
        self.connections = 0
        self._server: Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}"

    async def __aenter__(self) -> FrameTap:
        self._server = await serve(self._relay, "127.0.0.1", 0, max_size=None)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def of(self, direction: Direction, kind: str | None = None) -> list[dict[str, Any]]:
        return [m for d, m in self.frames if d == direction and kind in (None, m.get("type"))]

    async def _relay(self, down: ServerConnection) -> None:
        assert down.request is not None
        self.connections += 1
        async with (
            connect(self.upstream + down.request.path, max_size=None) as up,
            anyio.create_task_group() as tg,
        ):

            async def pump(
                src: ServerConnection | ClientConnection,
                dst: ServerConnection | ClientConnection,
                direction: Direction,
            ) -> None:
                try:
                    async for message in src:
                        text = message if isinstance(message, str) else message.decode()
                        self.frames.append((direction, json.loads(text)))
                        await dst.send(message)
                except ConnectionClosed:
                    pass
                finally:
                    await dst.close()
                    tg.cancel_scope.cancel()

            tg.start_soon(pump, down, up, "up")
            tg.start_soon(pump, up, down, "down")


async def in_thread(fn: Callable[[], Any]) -> Any:
    """Run a blocking harness call (process start, ``wait_for``) off the event loop."""
    return await anyio.to_thread.run_sync(fn)


async def until(what: str, check: Callable[[], bool], timeout: float = MAX_WAIT) -> None:
    with anyio.move_on_after(timeout):
        while not check():
            await anyio.sleep(0.05)
        return
    raise AssertionError(f"timed out waiting for {what}")


async def answer_the_offer(
    session: SignalingSession,
    events: AsyncIterator[ClientEvent],
    opened: anyio.Event,
) -> None:
    """Our side of WebRTC: answer the JS peer's offer with aiortc, apply its candidates."""
    link: AiortcTransport | None = None

    def on_link(event: LinkEvent) -> None:
        if isinstance(event, ChannelOpen):
            opened.set()

    try:
        async for event in events:
            if isinstance(event, OfferReceived) and event.from_peer_id == JS_PEER:
                link = AiortcTransport(on_link, ice_hosts=LOOPBACK_ICE_HOSTS)
                session.send_answer(JS_PEER, await link.accept_offer(event.sdp))
            elif isinstance(event, IceCandidateReceived) and link is not None:
                await link.add_remote_candidate(
                    IceCandidateInit(
                        candidate=event.candidate,
                        sdp_mid=event.sdp_mid,
                        sdp_mline_index=event.sdp_mline_index,
                        username_fragment=event.username_fragment,
                    )
                )
    finally:
        if link is not None:
            with anyio.CancelScope(shield=True):
                await link.close()


@pytest.mark.parametrize("dialler", ["js", "ours"])
async def test_js_and_our_hub_federate_either_way_round(
    dialler: Literal["js", "ours"],
    js_server: JsServerFactory,
    js_peer: JsPeerFactory,
    our_hub: OurHubFactory,
) -> None:
    with anyio.fail_after(100):
        async with AsyncExitStack() as stack:
            if dialler == "js":  # the JS hub lists our hub (through the tap) as its bootstrap
                ours: OurHub = await in_thread(lambda: our_hub("--hub"))
                tap = await stack.enter_async_context(FrameTap(ours.url))
                js: JsServer = await in_thread(lambda: js_server(hub=True, bootstrap=[tap.url]))
                await in_thread(lambda: js.wait_for("bootstrapConnected", uri=tap.url))
                # Our self-description reached the JS hub's bootstrap handler as a hub.
                await in_thread(lambda: js.wait_for("hubDiscovered", via=tap.url))
                to_js: Direction = "down"
            else:  # our hub lists the JS hub (through the tap) as its bootstrap
                js = await in_thread(lambda: js_server(hub=True))
                tap = await stack.enter_async_context(FrameTap(js.url))
                ours = await in_thread(lambda: our_hub("--hub", "--bootstrap", tap.url))
                await in_thread(lambda: js.wait_for("hubRegistered"))
                to_js = "up"
            from_js: Direction = "up" if to_js == "down" else "down"

            # The JS peer first: a JS hub passes news of other hubs' peers on to the peers it
            # has at that moment and keeps none of it, so a JS peer that came later would
            # not hear of ours (our hubs remember, so the other order needs nothing).
            peer: JsPeer = await in_thread(lambda: js_peer(js.url, JS_PEER, NETWORK))
            events: list[ClientEvent] = []
            session = SignalingSession(
                [ours.url], peer_id=OUR_PEER, network_name=NETWORK, on_event=events.append
            )
            await stack.enter_async_context(session)

            # Discovery across the hub link, both ways.
            await until(
                "our client to discover the JS peer",
                lambda: JS_PEER in session.machine.discovered_peers,
            )
            await in_thread(lambda: peer.wait_for("peerDiscovered", peerId=OUR_PEER))

            # The JS peer offers through both hubs; our aiortc answer travels back.
            opened = anyio.Event()
            async with anyio.create_task_group() as tg:
                tg.start_soon(answer_the_offer, session, session.events(), opened)
                await in_thread(lambda: peer.wait_connected(OUR_PEER))
                with anyio.fail_after(MAX_WAIT):
                    await opened.wait()
                tg.cancel_scope.cancel()
            assert any(isinstance(e, OfferReceived) and e.from_peer_id == JS_PEER for e in events)
            assert tap.of(from_js, "offer"), "the offer crossed the hub link"
            assert tap.of(to_js, "answer"), "our answer crossed the hub link"

            # A peer of ours comes and goes: a departure our hubs would pass on, JS's not.
            brief = SignalingSession([ours.url], peer_id=OUR_BRIEF, network_name=NETWORK)
            async with brief:
                await in_thread(lambda: peer.wait_for("peerDiscovered", peerId=OUR_BRIEF))
            await anyio.sleep(1.0)  # anything our hub sends about it has crossed by now

            # The JS peer leaves. A JS hub tells every socket of it, so the hub that dialled
            # it hears (and forgets the peer); a JS hub tells nothing to the hubs it dialled.
            await in_thread(lambda: peer.send({"cmd": "quit"}))
            if dialler == "ours":
                await until(
                    "our client to hear the JS peer left",
                    lambda: any(isinstance(e, PeerLeft) and e.peer_id == JS_PEER for e in events),
                )
            await anyio.sleep(1.0)

            assert tap.connections == 1
            assert tap.of(to_js, "announce") or dialler == "js"
            assert tap.of(to_js, "peer-disconnected") == []  # never to a JS hub
            assert tap.of(to_js, "hub-auth") == []
            assert all("hubPath" not in m.get("data", {}) for m in tap.of(to_js))
            assert tap.of(from_js, "error") == []  # the JS hub refused nothing of ours
            assert [m["data"]["peerId"] for m in tap.of(to_js, "peer-discovered")].count(
                OUR_PEER
            ) == 1
            assert js.find("serverError") == []
