"""Gossip, routed direct messages and binary data between Python and JavaScript peers.

The Python peers are `PeerPigeonMesh`es in this process (asyncio, aiortc, ICE on
127.0.0.1); the JS peers are ``js/js_peer.mjs`` processes (the reference, crypto on, so they
also send ``key_exchange`` gossip, which the Python peers must relay and never deliver).

* A mixed mesh of two JS and three Python peers (through our hub and through the JS server):
  a broadcast from a JS peer reaches every Python peer, one from a Python peer reaches every
  JS peer (with a TTL of at most 10: JS reports ``10 - ttl`` as hops) and every Python peer;
  binary data crosses a JS-Python link both ways byte for byte; no JS frame is rejected.
* A direct message between two Python peers that can only reach each other through a JS
  peer: the JS peer is the largest ID and the Python peers never dial (``auto_discovery``
  off), so the only links are JS-Python; the message crosses the JS relay both ways.

``js_peer.mjs`` gained a ``sendBinary`` command and forwards ``binaryMessageReceived``.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from functools import partial
from typing import Any

import anyio
import pytest

from peerpigeon.protocol.mesh import BinaryMessageReceived, MessageReceived

from . import mixed
from .conftest import JsPeerFactory, OurHubFactory
from .harness import JsPeer
from .mixed import PyPeer, blocking, js_wait, mesh_config

pytestmark = [pytest.mark.interop, pytest.mark.anyio]

NETWORK = "gossip-interop"
TEST_TIMEOUT_S = 150.0

JS_A = "ee" * 20
JS_B = "66" * 20
PY_A = "cc" * 20
PY_B = "a0" * 20
PY_C = "22" * 20

RELAY = "f0" * 20  # JS, the largest: it dials both Python peers
LEFT = "22" * 20
RIGHT = "44" * 20

PAYLOAD = bytes(range(256)) * 40 + b"\x00end"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aiortc is asyncio-only


def start_js(js_peer: JsPeerFactory, url: str, peer_id: str) -> Awaitable[JsPeer]:
    return mixed.start_js(js_peer, url, peer_id, NETWORK)


def py_peer(url: str, peer_id: str, **overrides: Any) -> AbstractAsyncContextManager[PyPeer]:
    config = mesh_config(peer_id, NETWORK, **overrides)
    return mixed.py_peer(url, config, ("message_received", "binary_message_received"))


async def binary(peer: PyPeer, sender: str) -> BinaryMessageReceived:
    def find() -> BinaryMessageReceived | None:
        return next((b for b in peer.of(BinaryMessageReceived) if b.from_peer == sender), None)

    return await peer.wait_for(find, f"binary data from {sender[:8]}")


def only_linked_to(peer: PyPeer, other: str) -> Callable[[], bool | None]:
    return lambda: True if peer.mesh.connected_peers() == (other,) else None


async def links_of(js: list[JsPeer], py: list[PyPeer]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for p in py:
        graph.setdefault(p.peer_id, set()).update(p.mesh.connected_peers())
    for j in js:
        status = await blocking(j.status)
        graph.setdefault(j.peer_id, set()).update(status["connectedPeerIds"])
    for a, nbs in list(graph.items()):
        for b in nbs:
            graph.setdefault(b, set()).add(a)
    return graph


def connected(graph: dict[str, set[str]], everyone: set[str]) -> bool:
    start = next(iter(everyone))
    seen = {start}
    stack = [start]
    while stack:
        for nxt in graph.get(stack.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return everyone <= seen


async def test_mixed_mesh_broadcasts_and_binary(hub_url: str, js_peer: JsPeerFactory) -> None:
    with anyio.fail_after(TEST_TIMEOUT_S):
        async with AsyncExitStack() as stack:
            py = [
                await stack.enter_async_context(py_peer(hub_url, pid)) for pid in (PY_A, PY_B, PY_C)
            ]
            js = [await start_js(js_peer, hub_url, pid) for pid in (JS_A, JS_B)]
            everyone = {p.peer_id for p in py} | {j.peer_id for j in js}
            with anyio.move_on_after(60):
                while not connected(await links_of(js, py), everyone):
                    await anyio.sleep(0.5)
            graph = await links_of(js, py)
            assert connected(graph, everyone), graph
            print("mesh:", {k[:4]: sorted(v[:4] for v in vs) for k, vs in graph.items()})

            # A JS broadcast reaches every Python peer.
            await blocking(lambda: js[0].broadcast("hello from js"))
            for p in py:
                got = await p.message(JS_A, "hello from js")
                assert got.direct is False
                assert got.hops >= 0

            # A Python broadcast reaches every JS peer and every other Python peer.
            msg_id = py[0].mesh.send_message("hello from python")
            for j in js:
                event = await blocking(partial(j.wait_message, PY_A, "hello from python"))
                assert event["messageId"] == msg_id
                assert event["direct"] is False
                assert 0 <= event["hops"] <= 10  # we never send a JS peer more than TTL 10
            for p in py[1:]:
                assert (await p.message(PY_A, "hello from python")).message_id == msg_id

            # Binary across a JS-Python link, both ways, byte for byte.
            pairs = [(j, p) for j in js for p in py if p.peer_id in graph[j.peer_id]]
            assert pairs, graph
            j, p = pairs[0]
            data = base64.b64encode(PAYLOAD).decode()
            await blocking(lambda: j.request({"cmd": "sendBinary", "to": p.peer_id, "data": data}))
            got_bin = await binary(p, j.peer_id)
            assert (got_bin.data, got_bin.size, got_bin.broadcast) == (PAYLOAD, len(PAYLOAD), False)
            back = PAYLOAD[::-1]
            p.mesh.send_binary_data(j.peer_id, back)
            event = await js_wait(j, "binaryMessageReceived", **{"from": p.peer_id})
            assert base64.b64decode(event["data"]["$bytes"]) == back
            assert event["size"] == len(back)

            # JS traffic (gossip relays, key exchanges, DHT) passed every check, and the key
            # exchanges were never shown to the application.
            for peer in py:
                assert peer.mesh.stats().data_frames_rejected == 0
                assert not [
                    m
                    for m in peer.of(MessageReceived)
                    if isinstance(m.content, dict) and "publicKey" in m.content
                ]
            assert all(
                set(p.mesh.machine.python_neighbours()) <= {q.peer_id for q in py} for p in py
            )


async def test_direct_message_crosses_a_js_relay(
    our_hub: OurHubFactory, js_peer: JsPeerFactory
) -> None:
    url = str(our_hub().url)
    with anyio.fail_after(TEST_TIMEOUT_S):
        quiet = {"auto_discovery": False, "max_ttl": 32, "max_path_length": 40}
        async with (
            py_peer(url, LEFT, **quiet) as left,
            py_peer(url, RIGHT, **quiet) as right,
        ):
            relay = await start_js(js_peer, url, RELAY)
            for p in (left, right):
                await p.wait_for(only_linked_to(p, RELAY), "the JS relay's link", timeout=45)
            sent = left.mesh.send_direct_message(RIGHT, {"via": "js"})
            got = await right.message(LEFT, {"via": "js"})
            assert (got.message_id, got.direct, got.via, got.hops) == (sent, True, RELAY, 1)
            sent_back = right.mesh.send_direct_message(LEFT, "and back")
            got_back = await left.message(RIGHT, "and back")
            assert (got_back.message_id, got_back.via) == (sent_back, RELAY)
            # Only the JS relay links them: no Python-Python link ever formed.
            assert left.mesh.connected_peers() == (RELAY,)
            assert right.mesh.connected_peers() == (RELAY,)
            assert left.mesh.stats().data_frames_rejected == 0
            assert right.mesh.stats().data_frames_rejected == 0
            await blocking(relay.status)
