"""Test (a): real JavaScript peers connected to OUR hub find each other, complete WebRTC and
exchange messages. The hub is ``python -m peerpigeon hub --port 0``."""

from __future__ import annotations

import pytest

from .conftest import JsPeerFactory, OurHubFactory

pytestmark = pytest.mark.interop

PEER_A = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
PEER_B = "f0e1d2c3b4a5968778695a4b3c2d1e0f87654321"


def test_js_peers_through_our_hub(our_hub: OurHubFactory, js_peer: JsPeerFactory) -> None:
    hub = our_hub()
    assert hub.url.startswith("ws://")

    a = js_peer(hub.url, PEER_A)
    b = js_peer(hub.url, PEER_B)

    a.wait_for("peerDiscovered", peerId=PEER_B)
    b.wait_for("peerDiscovered", peerId=PEER_A)
    a.wait_connected(PEER_B)
    b.wait_connected(PEER_A)

    a.send_direct(PEER_B, "hello through our hub")
    assert b.wait_message(PEER_A, "hello through our hub")["direct"] is True
    b.send_direct(PEER_A, {"reply": True})
    assert a.wait_message(PEER_B, {"reply": True})["direct"] is True

    a.broadcast("broadcast through our hub")
    assert b.wait_message(PEER_A, "broadcast through our hub")["direct"] is False
