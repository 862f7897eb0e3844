"""The mesh peer as a sans-IO machine: `Mesh`, its config, actions, events and views.

Reference: reference/signaling-and-topology.md sections 6-7, data-plane.md sections 1, 3, 4
and 12. `machine` holds the machine, `config` its options, `events` what it outputs.
"""

from __future__ import annotations

from peerpigeon.protocol.client import CloseSocket, OpenSocket, SendText

from .config import MeshConfig
from .events import (
    REASON_CONNECTION_FAILED,
    REASON_CONNECTION_TIMEOUT,
    REASON_DATA_CHANNEL_CLOSED,
    REASON_EVICTED_PREFIX,
    REASON_LEFT_NETWORK,
    REASON_MESH_DISCONNECTED,
    REASON_NETWORK_CHANGED,
    REASON_OVER_MAX_PEERS,
    REASON_PROTOCOL_VIOLATION,
    AcceptAnswer,
    AcceptOffer,
    AddRemoteCandidate,
    CloseLink,
    CreateOffer,
    DiscoveredPeer,
    FrameRejected,
    MeshAction,
    MeshEvent,
    MeshStats,
    MeshStatus,
    MessageReceived,
    PeerConnected,
    PeerDisconnected,
    PeerDiscovered,
    PeerEvicted,
    PeerInfo,
    PeersUpdated,
    SendData,
    StatusChanged,
    StatusType,
)
from .machine import FallbackState, Mesh

__all__ = [
    "REASON_CONNECTION_FAILED",
    "REASON_CONNECTION_TIMEOUT",
    "REASON_DATA_CHANNEL_CLOSED",
    "REASON_EVICTED_PREFIX",
    "REASON_LEFT_NETWORK",
    "REASON_MESH_DISCONNECTED",
    "REASON_NETWORK_CHANGED",
    "REASON_OVER_MAX_PEERS",
    "REASON_PROTOCOL_VIOLATION",
    "AcceptAnswer",
    "AcceptOffer",
    "AddRemoteCandidate",
    "CloseLink",
    "CloseSocket",
    "CreateOffer",
    "DiscoveredPeer",
    "FallbackState",
    "FrameRejected",
    "Mesh",
    "MeshAction",
    "MeshConfig",
    "MeshEvent",
    "MeshStats",
    "MeshStatus",
    "MessageReceived",
    "OpenSocket",
    "PeerConnected",
    "PeerDisconnected",
    "PeerDiscovered",
    "PeerEvicted",
    "PeerInfo",
    "PeersUpdated",
    "SendData",
    "SendText",
    "StatusChanged",
    "StatusType",
]
