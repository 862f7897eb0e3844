"""Python `PeerPigeonMesh` peers and real JavaScript PeerPigeon peers in one mesh.

Every test runs twice: through our hub (``python -m peerpigeon hub``) and through the JS
reference server. The Python peers run in this process on asyncio (aiortc, ICE on 127.0.0.1);
the JS peers are ``js/js_peer.mjs`` processes, whose blocking harness calls run in worker
threads.

* A mixed mesh of two JS and two Python peers: the IDs make every link form in a known
  direction (the greater ID offers), JS offering to Python and Python offering to JS, and
  every JS-Python link carries a direct message both ways.
* Eviction both ways: a full JS peer evicts a Python peer for an XOR-closer offerer (the
  Python peer reports `PeerEvicted` with ``initiated_by_peer``), and a full Python peer
  evicts a JS peer for a new ring neighbour (the JS peer emits ``peerEvicted``).
"""

from __future__ import annotations

from collections.abc import Awaitable
from contextlib import AbstractAsyncContextManager
from functools import partial

import anyio
import pytest

from peerpigeon.protocol.mesh import REASON_EVICTED_PREFIX, PeerDisconnected, PeerEvicted
from peerpigeon.protocol.wire import JsonValue

from . import mixed
from .conftest import JsPeerFactory
from .harness import JsPeer
from .mixed import PyPeer, blocking, js_wait, mesh_config

pytestmark = [pytest.mark.interop, pytest.mark.anyio]

NETWORK = "mixed-mesh"
RECORDED = (
    "peer_connected",
    "peer_disconnected",
    "peer_evicted",
    "message_received",
    "status_changed",
)
TEST_TIMEOUT_S = 120.0

# The mixed mesh: ordered JS_HI > PY_HI > JS_LO > PY_LO. With max_peers=3 all six links
# form; the greater ID offers (the reference's initiator rule), so:
#   JS_HI -> PY_HI, JS_HI -> PY_LO, JS_LO -> PY_LO   (JS offers to Python)
#   PY_HI -> JS_LO                                    (Python offers to JS)
#   JS_HI -> JS_LO, PY_HI -> PY_LO                    (same-language links)
JS_HI = "ee" * 20
PY_HI = "cc" * 20
JS_LO = "66" * 20
PY_LO = "22" * 20

# JS evicts Python (reference section 6.5: eviction only on an incoming offer when full, for
# an XOR-closer offerer): the JS evictor E (max_peers=1) is linked to the Python peer FAR (E
# offers: E > FAR); then the Python peer NEAR (NEAR > E, so NEAR offers) shows up. NEAR is
# XOR-closer to E than FAR (E ^ NEAR = 0x01a0..., E ^ FAR = 0xb0b0...), so E, full, evicts FAR.
# (NEAR dials E: with only E and FAR known, both are NEAR's ring neighbours.)
EVICTOR = "a0" * 20
FAR = "10" * 20
NEAR = "a1" + "00" * 19

# Python evicts JS. A full Python peer evicts only for an offer it prefers to one of its
# links: from a ring neighbour (`peerpigeon.protocol.topology`: ring neighbours are the
# predecessor and successor among the known peers by ID; a full peer makes room for one by
# evicting an unprotected link), or, with the XOR-distance buckets, for an XOR level it lacks
# while another is covered twice. (With max_peers=1 neither can happen: the ring needs two
# slots, and one link never crowds a level; the reference's bare "XOR-closer offerer" rule
# does not apply to our topology.) So: the Python evictor PY_E (max_peers=2) is linked to
# the JS peer JS_FAR and the Python peer PY_H (it offers both: they are its ring neighbours
# while it knows only them). Then the JS peer JS_NEAR joins: in the ring 10 < 70 < 80 < a1,
# PY_E's neighbours become PY_H and JS_NEAR, so JS_FAR loses its protection; JS_NEAR > PY_E
# offers on discovery, and PY_E, full, evicts JS_FAR for its new ring neighbour.
JS_FAR = "10" * 20
PY_H = "70" * 20
PY_E = "80" * 20
JS_NEAR = "a1" + "00" * 19


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aiortc is asyncio-only


# --- helpers ---------------------------------------------------------------------------------


def start_js(js_peer: JsPeerFactory, url: str, peer_id: str, **options: int) -> Awaitable[JsPeer]:
    return mixed.start_js(js_peer, url, peer_id, NETWORK, **options)


def py_peer(url: str, peer_id: str, **overrides: int) -> AbstractAsyncContextManager[PyPeer]:
    return mixed.py_peer(url, mesh_config(peer_id, NETWORK, **overrides), RECORDED)


def link_initiator(py: PyPeer, other: str) -> bool:
    """Whether the Python side offered the link to `other`."""
    (info,) = [p for p in py.mesh.peers() if p.peer_id == other]
    return info.is_initiator


# --- the mixed mesh --------------------------------------------------------------------------


async def test_mixed_mesh_links_and_direct_messages(hub_url: str, js_peer: JsPeerFactory) -> None:
    with anyio.fail_after(TEST_TIMEOUT_S):
        async with py_peer(hub_url, PY_LO) as py_lo, py_peer(hub_url, PY_HI) as py_hi:
            js_lo = await start_js(js_peer, hub_url, JS_LO)
            js_hi = await start_js(js_peer, hub_url, JS_HI)
            js_peers = (js_hi, js_lo)
            py_peers = (py_hi, py_lo)

            # Every JS-Python pair opens its data channel, seen from both sides.
            for py in py_peers:
                for js in js_peers:
                    await py.wait_connected(js.peer_id)
                    await js_wait(js, "peerConnected", peerId=py.peer_id)
            # The same-language links form too (all six: max_peers=3 with four peers).
            await py_hi.wait_connected(PY_LO)
            await js_wait(js_hi, "peerConnected", peerId=JS_LO)
            for py in py_peers:
                assert sorted(py.mesh.connected_peers()) == sorted(
                    p for p in (JS_HI, PY_HI, JS_LO, PY_LO) if p != py.peer_id
                )

            # The initiator rule held both ways across languages.
            assert link_initiator(py_hi, JS_LO) is True  # Python offered to JS
            assert link_initiator(py_hi, JS_HI) is False  # JS offered to Python
            assert link_initiator(py_lo, JS_HI) is False
            assert link_initiator(py_lo, JS_LO) is False
            assert link_initiator(py_hi, PY_LO) is True

            # A direct message both ways on every JS-Python link.
            for js in js_peers:
                for py in py_peers:
                    to_py: JsonValue = {"from": "js", "by": js.peer_id[:8], "n": [1, 2.5, None]}
                    message_id = await blocking(partial(js.send_direct, py.peer_id, to_py))
                    got = await py.message(js.peer_id, to_py)
                    assert got.direct is True
                    assert got.message_id == message_id
                    assert got.via == js.peer_id  # a neighbour: delivered first hand
                    assert got.hops == 0

                    to_js: JsonValue = {"from": "python", "by": py.peer_id[:8], "text": "é 🕊"}
                    sent_id = py.mesh.send_direct_message(js.peer_id, to_js)
                    seen = await blocking(partial(js.wait_message, py.peer_id, to_js))
                    assert seen["direct"] is True
                    assert seen["messageId"] == sent_id
                    assert seen["encrypted"] is False

            # Nothing the JS peers sent was rejected as malformed.
            for py in py_peers:
                assert py.mesh.stats().data_frames_rejected == 0


# --- eviction --------------------------------------------------------------------------------


async def test_js_peer_evicts_python_peer(hub_url: str, js_peer: JsPeerFactory) -> None:
    """A full JS peer (max_peers=1) evicts its Python neighbour for an XOR-closer offerer."""
    with anyio.fail_after(TEST_TIMEOUT_S):
        async with py_peer(hub_url, FAR) as far:
            evictor = await start_js(js_peer, hub_url, EVICTOR, max_peers=1, min_peers=1)
            await far.wait_connected(EVICTOR)
            await js_wait(evictor, "peerConnected", peerId=FAR)

            async with py_peer(hub_url, NEAR) as near:
                await near.wait_connected(EVICTOR)
                gone = await js_wait(evictor, "peerDisconnected", peerId=FAR)
                assert gone["reason"] == "evicted: incoming closer peer"

                await far.wait(
                    lambda: any(e.peer_id == EVICTOR for e in far.of(PeerEvicted)),
                    "the eviction notice",
                )
                (evicted,) = [e for e in far.of(PeerEvicted) if e.peer_id == EVICTOR]
                assert evicted.initiated_by_peer is True
                assert evicted.reason == "incoming closer peer"
                (closed,) = [e for e in far.of(PeerDisconnected) if e.peer_id == EVICTOR]
                assert closed.reason == REASON_EVICTED_PREFIX + "incoming closer peer"
                assert EVICTOR not in far.mesh.connected_peers()
                assert far.mesh.stats().evictions_received == 1
                # The evictor kept the closer peer.
                status = await blocking(evictor.status)
                assert status["connectedPeerIds"] == [NEAR]


async def test_python_peer_evicts_js_peer(hub_url: str, js_peer: JsPeerFactory) -> None:
    """A full Python peer (max_peers=2) evicts its JS neighbour for a new ring neighbour."""
    with anyio.fail_after(TEST_TIMEOUT_S):
        far = await start_js(js_peer, hub_url, JS_FAR)
        async with (
            py_peer(hub_url, PY_H) as helper,
            py_peer(hub_url, PY_E, max_peers=2, min_peers=1) as evictor,
        ):
            await evictor.wait_connected(JS_FAR)
            await evictor.wait_connected(PY_H)
            assert link_initiator(evictor, JS_FAR) is True
            await js_wait(far, "peerConnected", peerId=PY_E)
            await helper.wait_connected(PY_E)

            near = await start_js(js_peer, hub_url, JS_NEAR)
            await evictor.wait_connected(JS_NEAR)
            await js_wait(near, "peerConnected", peerId=PY_E)

            notice = await js_wait(far, "peerEvicted", peerId=PY_E)
            assert notice["initiatedByPeer"] is True
            assert notice["reason"] == "topology optimization"

            (ours,) = [e for e in evictor.of(PeerEvicted) if e.peer_id == JS_FAR]
            assert ours.initiated_by_peer is False
            assert ours.reason == "topology optimization"
            (closed,) = [e for e in evictor.of(PeerDisconnected) if e.peer_id == JS_FAR]
            assert closed.reason == REASON_EVICTED_PREFIX + "topology optimization"
            assert sorted(evictor.mesh.connected_peers()) == sorted((PY_H, JS_NEAR))
            assert evictor.mesh.stats().evictions_sent == 1
            # The JS peer dropped the link (it emits peerEvicted, and no peerDisconnected).
            with anyio.move_on_after(5):
                while PY_E in (await blocking(far.status))["connectedPeerIds"]:
                    await anyio.sleep(0.2)
            assert PY_E not in (await blocking(far.status))["connectedPeerIds"]
            assert not far.find("peerDisconnected", peerId=PY_E)
