"""The harness itself, with the JavaScript reference alone: JS server and JS peers."""

from __future__ import annotations

import pytest

from .conftest import JsPeerFactory, JsServerFactory

pytestmark = pytest.mark.interop

# Fixed IDs keep the run deterministic: the reference lets the peer with the greater ID send
# the offer, so PEER_B is always the initiator here.
PEER_A = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
PEER_B = "f0e1d2c3b4a5968778695a4b3c2d1e0f87654321"


def test_js_server_health(js_server: JsServerFactory) -> None:
    server = js_server()
    assert server.url == f"ws://127.0.0.1:{server.port}"
    health = server.health()
    assert health["status"] == "healthy"
    assert health["isHub"] is False
    assert health["connections"] == 0
    stats = server.stats()
    assert stats["isRunning"] is True
    assert stats["port"] == server.port


def test_js_hub_health(js_server: JsServerFactory) -> None:
    hub = js_server(hub=True)
    assert hub.hub_peer_id is not None
    assert len(hub.hub_peer_id) == 40
    health = hub.health()
    assert health["status"] == "healthy"
    assert health["isHub"] is True


def test_two_js_peers_connect_and_message(
    js_server: JsServerFactory, js_peer: JsPeerFactory
) -> None:
    server = js_server()
    a = js_peer(server.url, PEER_A)
    b = js_peer(server.url, PEER_B)
    assert (a.peer_id, b.peer_id) == (PEER_A, PEER_B)

    # Discovery through the server, then WebRTC on both sides.
    a.wait_for("peerDiscovered", peerId=PEER_B)
    b.wait_for("peerDiscovered", peerId=PEER_A)
    a.wait_connected(PEER_B)
    b.wait_connected(PEER_A)

    # Every selected ICE pair has the loopback candidate at one end: the @koush/wrtc wrapper
    # drops every other candidate from signaling. (libwebrtc still gathers the host's own
    # interface address and may send from it, or answer such a socket as a peer-reflexive
    # candidate, so the other end can be an address of this host: nothing leaves the machine.)
    for peer, other in ((a, PEER_B), (b, PEER_A)):
        (link,) = peer.transports()
        assert link["peerId"] == other
        assert link["connectionState"] == "connected"
        ends = (link["local"], link["remote"])
        assert "127.0.0.1" in [end["address"] for end in ends], link
        assert all(end["candidateType"] in ("host", "prflx") for end in ends), link

    # Direct messages both ways; content may be a string or any JSON value.
    a.send_direct(PEER_B, "hello from a")
    received = b.wait_message(PEER_A, "hello from a")
    assert received["direct"] is True
    b.send_direct(PEER_A, {"text": "hello from b", "n": [1, 2, 3]})
    received = a.wait_message(PEER_B, {"text": "hello from b", "n": [1, 2, 3]})
    assert received["direct"] is True

    # A broadcast reaches the other peer (and the reference echoes it to its sender).
    a.broadcast("to everyone")
    received = b.wait_message(PEER_A, "to everyone")
    assert received["direct"] is False
    a.wait_message(PEER_A, "to everyone")

    status = a.status()
    assert status["connectedPeerIds"] == [PEER_B]
    assert status["connected"] is True

    # A clean quit is seen by the other peer and by the server.
    a.send({"cmd": "quit"})
    b.wait_for("peerDisconnected", peerId=PEER_A)
    assert a.close() == 0
