"""Test (b): our signaling client on the JS reference server is discovered by a real JS peer
and receives its WebRTC offer (the larger ID offers, so ours has the smaller one)."""

from __future__ import annotations

import anyio
import pytest

from peerpigeon.io.client import SignalingSession
from peerpigeon.protocol.client import IceCandidateReceived, OfferReceived, PeerDiscovered

from .conftest import JsPeerFactory, JsServerFactory

pytestmark = pytest.mark.interop

OURS = "0123456789abcdef0123456789abcdef01234567"  # smaller than THEIRS
THEIRS = "fedcba9876543210fedcba9876543210fedcba98"


def test_js_peer_discovers_and_offers_to_our_client(
    js_server: JsServerFactory, js_peer: JsPeerFactory
) -> None:
    server = js_server()

    async def scenario() -> tuple[OfferReceived, list[PeerDiscovered], int]:
        with anyio.fail_after(30):
            async with SignalingSession(server.url, peer_id=OURS) as session:
                js_peer(server.url, THEIRS)
                discovered: list[PeerDiscovered] = []
                candidates = 0
                offer: OfferReceived | None = None
                async for event in session.events():
                    if isinstance(event, PeerDiscovered):
                        discovered.append(event)
                    elif isinstance(event, OfferReceived):
                        offer = event
                    elif isinstance(event, IceCandidateReceived):
                        candidates += 1
                    if offer is not None and discovered:
                        break
                assert offer is not None
                return offer, discovered, candidates

    offer, discovered, _ = anyio.run(scenario)
    assert [d.peer_id for d in discovered] == [THEIRS]
    assert offer.from_peer_id == THEIRS
    assert offer.sdp.startswith("v=0")
    assert "m=application" in offer.sdp  # the reference's data channel
    assert "m=audio" in offer.sdp
    assert "m=video" in offer.sdp
