"""Configuration, actions, events and counters of the signaling server machine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, NewType, TypeAlias

from peerpigeon.protocol.errors import ConfigError
from peerpigeon.protocol.ids import PeerId, is_valid_peer_id
from peerpigeon.protocol.wire import DEFAULT_MAX_FRAME_BYTES

ConnectionId = NewType("ConnectionId", int)

DEFAULT_HUB_NAMESPACE: Final = "pigeonhub-mesh"

# Close codes and reasons the reference sends (section 1.1); JS clients look at the code.
CLOSE_POLICY: Final = 1008
CLOSE_TOO_BIG: Final = 1009
CLOSE_NORMAL: Final = 1000
CLOSE_GOING_AWAY: Final = 1001
REASON_INVALID_ID: Final = "Invalid peerId format"
REASON_DUPLICATE: Final = "Peer already connected"
REASON_FULL: Final = "Maximum connections reached"
REASON_SHUTDOWN: Final = "Server shutting down"


# --- config ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    """Options of the signaling server; every limit says what happens when reached."""

    max_connections: int = 1000
    """Open connections at most; one more is closed with 1008 'Maximum connections reached'."""
    max_message_bytes: int = DEFAULT_MAX_FRAME_BYTES
    """Largest frame accepted; a larger one closes the connection with 1009."""
    max_announce_data_bytes: int = 16_384
    """Largest announce ``data`` kept (copied into every peer-discovered); larger is refused."""
    max_outbound_frames: int = 1024
    """Frames an adapter may queue for one connection; past it the connection is closed."""
    max_bad_frames: int = 50
    """Invalid frames tolerated per connection; past it the connection is closed with 1008."""
    ping_interval_s: float = 30.0
    """WebSocket ping period; also the period of the timeout sweep."""
    peer_timeout_s: float = 300.0
    """A connection with no inbound traffic (frames or pongs) for this long is closed."""
    stale_after_s: float = 60.0
    """An existing connection idle this long is replaced by a newcomer with the same ID."""
    discovery_k: int | None = None
    """When set, an announce is answered with only the k XOR-closest namespace members
    (and only they hear of the newcomer) instead of all of them: O(N*k) frames, not O(N^2)."""
    route_connection_rejected: bool = True
    """Relay ``connection-rejected`` like an offer (the reference answers it with 'error')."""
    is_hub: bool = False
    hub_mesh_namespace: str = DEFAULT_HUB_NAMESPACE
    hub_peer_id: PeerId | None = None
    """This hub's ID on other hubs; generated from the injected entropy when None."""
    bootstrap_hubs: tuple[str, ...] = ()
    """Hub URLs (``ws://host:port``) this hub dials and keeps dialling (hubs only)."""
    auto_connect: bool = True
    """Dial `bootstrap_hubs` as soon as the machine starts."""
    reconnect_interval_s: float = 5.0
    """Base of the capped, jittered backoff between bootstrap reconnects."""
    reconnect_cap_s: float = 60.0
    """Longest wait between two reconnect attempts of one burst."""
    max_reconnect_attempts: int = 10
    """Attempts per outage; then a rest of `reconnect_rest_s` and a new burst (never gives up
    while running, so a hub that was down for an hour is found again)."""
    reconnect_rest_s: float = 300.0
    hub_secret: str | None = None
    """Closed federation: only connections that prove this shared secret (HMAC challenge,
    the secret never travels) may register as hubs or carry other peers' IDs."""
    max_remote_peers: int = 100_000
    """Peers learnt from other hubs; past it new remote peers are dropped and counted."""
    max_relay_cache: int = 10_000
    """Recently relayed hub frames remembered for loop suppression (oldest forgotten)."""
    relay_cache_ttl_s: float = 30.0
    host: str = "127.0.0.1"
    port: int = 3000
    cors_origin: str = "*"

    def __post_init__(self) -> None:
        positive_ints = (
            "max_connections",
            "max_message_bytes",
            "max_announce_data_bytes",
            "max_outbound_frames",
            "max_bad_frames",
        )
        for name in positive_ints:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(name, "must be a positive integer")
        for name in ("max_reconnect_attempts", "max_remote_peers", "max_relay_cache"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(name, "must be a positive integer")
        if not isinstance(self.bootstrap_hubs, tuple):
            raise ConfigError("bootstrap_hubs", "must be a tuple of URLs")
        for url in self.bootstrap_hubs:
            if not isinstance(url, str) or not url.startswith(("ws://", "wss://")):
                raise ConfigError("bootstrap_hubs", f"{url!r} is not a ws:// or wss:// URL")
        if self.hub_secret is not None and (
            not isinstance(self.hub_secret, str) or not self.hub_secret
        ):
            raise ConfigError("hub_secret", "must be a non-empty string")
        for name in (
            "ping_interval_s",
            "peer_timeout_s",
            "stale_after_s",
            "reconnect_interval_s",
            "reconnect_cap_s",
            "reconnect_rest_s",
            "relay_cache_ttl_s",
        ):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not value > 0:
                raise ConfigError(name, "must be a positive number of seconds")
        if self.discovery_k is not None and (
            isinstance(self.discovery_k, bool)
            or not isinstance(self.discovery_k, int)
            or self.discovery_k < 1
        ):
            raise ConfigError("discovery_k", "must be a positive integer or None")
        if not isinstance(self.hub_mesh_namespace, str) or not self.hub_mesh_namespace:
            raise ConfigError("hub_mesh_namespace", "must be a non-empty string")
        if self.hub_peer_id is not None and not is_valid_peer_id(self.hub_peer_id):
            raise ConfigError("hub_peer_id", "must be 40 hex characters")


# --- actions, events, stats -----------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SendText:
    """Send one text frame on a connection."""

    connection: ConnectionId
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Close:
    """Close a connection with this WebSocket close code and reason."""

    connection: ConnectionId
    code: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SendPing:
    """Send a WebSocket ping; report the pong with `receive_pong`."""

    connection: ConnectionId


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenHubLink:
    """Dial another hub: open a WebSocket to `url` under handle `connection`.

    Report `hub_link_opened` or `hub_link_failed`; frames arrive through `receive_frame`
    and the end through `connection_closed`, like any connection.
    """

    connection: ConnectionId
    url: str


ServerAction: TypeAlias = SendText | Close | SendPing | OpenHubLink


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerConnected:
    """A connection was accepted for this peer ID."""

    peer_id: PeerId
    connection: ConnectionId
    total_connections: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionRefused:
    """A connection was refused (and closed) before it was registered."""

    connection: ConnectionId
    code: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerDeparted:
    """A registered connection ended (the reference's ``peerDisconnected``)."""

    peer_id: PeerId
    code: int
    reason: str
    total_connections: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerAnnounced:
    """A peer joined (or re-joined) a namespace."""

    peer_id: PeerId
    network_name: str
    is_hub: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerGoodbye:
    """A peer said goodbye and left its namespace."""

    peer_id: PeerId


@dataclass(frozen=True, slots=True, kw_only=True)
class HubRegistered:
    """A connection registered as a hub."""

    peer_id: PeerId
    total_hubs: int


@dataclass(frozen=True, slots=True, kw_only=True)
class HubUnregistered:
    """A hub's connection ended."""

    peer_id: PeerId
    total_hubs: int


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameRejected:
    """A frame from a connection was dropped; nothing else changed."""

    connection: ConnectionId
    peer_id: PeerId | None
    field: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BootstrapConnected:
    """An outgoing hub link opened (and, in closed mode, both sides proved the secret)."""

    url: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BootstrapDisconnected:
    """An outgoing hub link ended; `retry_at` is when it is dialled again."""

    url: str
    code: int
    reason: str
    retry_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RemotePeerLearned:
    """Another hub told us of a peer (first time, by the first link that did)."""

    peer_id: PeerId
    network_name: str
    via: ConnectionId


@dataclass(frozen=True, slots=True, kw_only=True)
class RemotePeerGone:
    """A peer learnt from another hub left, or the link it was learnt by went down."""

    peer_id: PeerId
    network_name: str


ServerEvent: TypeAlias = (
    PeerConnected
    | ConnectionRefused
    | PeerDeparted
    | PeerAnnounced
    | PeerGoodbye
    | HubRegistered
    | HubUnregistered
    | FrameRejected
    | BootstrapConnected
    | BootstrapDisconnected
    | RemotePeerLearned
    | RemotePeerGone
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerStats:
    """Counters since the machine was created (a snapshot)."""

    connections: int
    peers: int
    hubs: int
    networks: int
    frames_received: int
    frames_sent: int
    relayed: int
    rejected: int
    dropped_unroutable: int
    spoof_attempts: int
    refused_connections: int
    timed_out: int
    remote_peers: int
    hub_frames_sent: int
    hub_frames_received: int
    duplicates_suppressed: int
    auth_failures: int


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpResponse:
    """An HTTP answer for a request that is not a WebSocket upgrade."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes = field(repr=False)
