"""What a `Mesh` asks of the I/O layer (actions) and tells the application (events).

Event names and payloads mirror the JS mesh events (reference/signaling-and-topology.md
section 7.2, data-plane.md section 12) in snake_case; `MessageReceived` and
`BinaryMessageReceived` come from the gossip layer (`peerpigeon.protocol.gossip`). Actions
map one to one onto the signaling socket (`OpenSocket`, `SendText`, `CloseSocket`, shared
with the signaling client) and onto `peerpigeon.io.transport.PeerLink` calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

from peerpigeon.protocol.client import CloseSocket, OpenSocket, SendText
from peerpigeon.protocol.gossip.events import BinaryMessageReceived, MessageReceived
from peerpigeon.protocol.ids import PeerId
from peerpigeon.protocol.streams import (
    StreamAborted,
    StreamCredit,
    StreamData,
    StreamDelivered,
    StreamEnded,
    StreamOpened,
)
from peerpigeon.protocol.wire import JsonValue

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
    "BinaryMessageReceived",
    "CloseLink",
    "CloseSocket",
    "CreateOffer",
    "DiscoveredPeer",
    "EvictionRequested",
    "FrameRejected",
    "MeshAction",
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
    "StreamAborted",
    "StreamCredit",
    "StreamData",
    "StreamDelivered",
    "StreamEnded",
    "StreamOpened",
]

# `PeerDisconnected.reason` values; the JS reference uses the same strings (section 7.2).
REASON_CONNECTION_FAILED: Final = "connection failed"
REASON_DATA_CHANNEL_CLOSED: Final = "data channel closed"
REASON_LEFT_NETWORK: Final = "left network"
REASON_MESH_DISCONNECTED: Final = "mesh disconnected"
REASON_EVICTED_PREFIX: Final = "evicted: "
REASON_OVER_MAX_PEERS: Final = "over max peers limit"
# Ours: the JS reference has no such cases.
REASON_CONNECTION_TIMEOUT: Final = "connection timeout"
REASON_NETWORK_CHANGED: Final = "network changed"
REASON_PROTOCOL_VIOLATION: Final = "protocol violation"


# --- actions ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CreateOffer:
    """Create a fresh link to `peer` as the initiator (`PeerLink.create_offer`).

    Report ``link_offer_created`` with the SDP, or ``link_failed``.
    """

    peer: PeerId


@dataclass(frozen=True, slots=True)
class AcceptOffer:
    """Create a fresh link to `peer` as the answerer and apply its offer (`accept_offer`).

    Report ``link_answer_created`` with the SDP, or ``link_failed``.
    """

    peer: PeerId
    sdp: str


@dataclass(frozen=True, slots=True)
class AcceptAnswer:
    """Apply `peer`'s answer to our offer (`accept_answer`); on error report ``link_failed``."""

    peer: PeerId
    sdp: str


@dataclass(frozen=True, slots=True)
class AddRemoteCandidate:
    """Apply one trickled remote ICE candidate (`add_remote_candidate`); errors are ignored."""

    peer: PeerId
    candidate: str
    sdp_mid: str | None
    sdp_mline_index: int | None
    username_fragment: str | None


@dataclass(frozen=True, slots=True)
class SendData:
    """Send one message on `peer`'s data channel: text (JSON) or binary."""

    peer: PeerId
    data: str | bytes


@dataclass(frozen=True, slots=True)
class CloseLink:
    """Close the link to `peer` and report nothing more about it (not even its close)."""

    peer: PeerId
    reason: str


MeshAction: TypeAlias = (
    OpenSocket
    | SendText
    | CloseSocket
    | CreateOffer
    | AcceptOffer
    | AcceptAnswer
    | AddRemoteCandidate
    | SendData
    | CloseLink
)


# --- events ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeerDiscovered:
    """A peer of our namespace, first learnt (``peerDiscovered``)."""

    peer_id: PeerId


@dataclass(frozen=True, slots=True)
class PeerConnected:
    """The data channel to `peer_id` opened (``peerConnected``)."""

    peer_id: PeerId


@dataclass(frozen=True, slots=True)
class PeerDisconnected:
    """A connected peer's link ended (``peerDisconnected``); one per `PeerConnected`.

    ``reason`` is one of the ``REASON_*`` strings; ``detail`` what the I/O layer reported.
    """

    peer_id: PeerId
    reason: str
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class PeerEvicted:
    """An eviction (``peerEvicted``): `peer_id` evicted us (``initiated_by_peer``), or we it."""

    peer_id: PeerId
    reason: str
    initiated_by_peer: bool


@dataclass(frozen=True, slots=True)
class EvictionRequested:
    """A Python neighbour `peer_id` asked to evict us (ours; docs/eviction.md).

    ``accepted``: we agreed (its link is reserved: we keep ``min_peers`` without it), or
    refused (the link stays). `PeerEvicted` follows only if it then evicts us.
    """

    peer_id: PeerId
    accepted: bool


StatusType: TypeAlias = Literal[
    "initialized",
    "connecting",
    "connected",
    "disconnected",
    "info",
    "warning",
    "error",
    "setting",
    "network",
]


@dataclass(frozen=True, slots=True)
class StatusChanged:
    """``statusChanged``: `type` as in JS; `message` is human-readable, not an API."""

    type: StatusType
    message: str | None = None
    peer_id: PeerId | None = None
    setting: str | None = None
    value: JsonValue = None
    network_name: str | None = None


@dataclass(frozen=True, slots=True)
class PeersUpdated:
    """The set of links changed (``peersUpdated``)."""


@dataclass(frozen=True, slots=True)
class FrameRejected:
    """A frame was dropped as invalid: from the hub (`peer` None) or from a neighbour."""

    peer: PeerId | None
    source: Literal["signaling", "data"]
    field: str
    reason: str


MeshEvent: TypeAlias = (
    PeerDiscovered
    | PeerConnected
    | PeerDisconnected
    | PeerEvicted
    | EvictionRequested
    | MessageReceived
    | BinaryMessageReceived
    | StatusChanged
    | PeersUpdated
    | FrameRejected
    # --- streams (peerpigeon.protocol.streams) ---
    | StreamOpened
    | StreamData
    | StreamEnded
    | StreamAborted
    | StreamCredit
    | StreamDelivered
)


# --- read-only views -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class MeshStatus:
    """A snapshot like JS ``getStatus()`` (``polling`` left out; ``discovered_count`` is real)."""

    peer_id: PeerId
    connected: bool  # the signaling session is open
    signaling_url: str | None
    network_name: str  # the namespace in use ("global" while in fallback)
    original_network_name: str
    is_in_fallback_mode: bool
    allow_global_fallback: bool
    connected_count: int  # open data channels
    total_peer_count: int  # links that take a slot: open, dialling, answering
    min_peers: int
    max_peers: int
    discovered_count: int
    auto_connect: bool
    auto_discovery: bool
    eviction_strategy: bool
    xor_routing: bool


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """One link, like an entry of JS ``getPeers()``.

    ``status`` is ``"connecting"`` (dialling or answering), ``"channel-connecting"``
    (offer and answer applied) or ``"connected"``.
    """

    peer_id: PeerId
    status: str
    is_initiator: bool
    connection_started_at: float


@dataclass(frozen=True, slots=True)
class DiscoveredPeer:
    """One known peer, like an entry of JS ``getDiscoveredPeers()``."""

    peer_id: PeerId
    discovered_at: float
    distance: int
    is_connecting: bool
    is_connected: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class MeshStats:
    """Read-only counters of one `Mesh` (a snapshot)."""

    dials_started: int = 0
    dials_failed: int = 0  # timed out, refused, or the link failed before opening
    dial_timeouts: int = 0
    offers_accepted: int = 0
    offers_rejected: int = 0
    links_opened: int = 0
    links_closed: int = 0  # open links that ended, whoever ended them
    evictions_sent: int = 0
    evictions_received: int = 0
    # The eviction agreement between Python peers (docs/eviction.md). As evictor:
    eviction_asks_sent: int = 0
    eviction_asks_accepted: int = 0
    eviction_asks_refused: int = 0
    eviction_asks_timed_out: int = 0
    eviction_asks_cancelled: int = 0  # not needed after all (a slot freed, purpose gone)
    eviction_answers_dropped: int = 0  # unknown id, not from the asked peer, or late
    # As victim:
    eviction_requests_accepted: int = 0
    eviction_requests_refused: int = 0
    candidates_dropped: int = 0
    data_frames_received: int = 0
    data_frames_rejected: int = 0
    data_frames_ignored: int = 0  # valid, but for a later layer (binary, streams, DHT, ...)
    gossip_duplicates: int = 0
    gossip_dropped: int = 0  # other namespace, loop, too old, our own, or filtered content
    messages_delivered: int = 0  # MessageReceived and BinaryMessageReceived emitted
    messages_sent: int = 0  # messages we originated (broadcasts, direct, binary broadcasts)
    stale_reports: int = 0  # link or socket facts about a link or socket that is gone
    known_forgotten: int = 0  # known peers dropped at the bound or after a session
    fallback_switches: int = 0
