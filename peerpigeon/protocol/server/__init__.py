"""The signaling server (and hub) machine: `SignalingServer`, its config, actions and events.

See `machine` for the behaviour, `federation` for hub-to-hub pieces, `types` for the values.
"""

from __future__ import annotations

from .machine import ConnectionState, SignalingServer
from .types import (
    CLOSE_GOING_AWAY,
    CLOSE_NORMAL,
    CLOSE_POLICY,
    CLOSE_TOO_BIG,
    DEFAULT_HUB_NAMESPACE,
    BootstrapConnected,
    BootstrapDisconnected,
    Close,
    ConnectionId,
    ConnectionRefused,
    FrameRejected,
    HttpResponse,
    HubRegistered,
    HubUnregistered,
    OpenHubLink,
    PeerAnnounced,
    PeerConnected,
    PeerDeparted,
    PeerGoodbye,
    RemotePeerGone,
    RemotePeerLearned,
    SendPing,
    SendText,
    ServerAction,
    ServerConfig,
    ServerEvent,
    ServerStats,
)

__all__ = [
    "CLOSE_GOING_AWAY",
    "CLOSE_NORMAL",
    "CLOSE_POLICY",
    "CLOSE_TOO_BIG",
    "DEFAULT_HUB_NAMESPACE",
    "BootstrapConnected",
    "BootstrapDisconnected",
    "Close",
    "ConnectionId",
    "ConnectionRefused",
    "ConnectionState",
    "FrameRejected",
    "HttpResponse",
    "HubRegistered",
    "HubUnregistered",
    "OpenHubLink",
    "PeerAnnounced",
    "PeerConnected",
    "PeerDeparted",
    "PeerGoodbye",
    "RemotePeerGone",
    "RemotePeerLearned",
    "SendPing",
    "SendText",
    "ServerAction",
    "ServerConfig",
    "ServerEvent",
    "ServerStats",
    "SignalingServer",
]
