"""peerpigeon: WebRTC peer-to-peer mesh networking, wire-compatible with the JS PeerPigeon."""

from __future__ import annotations

__version__ = "0.1.0"
