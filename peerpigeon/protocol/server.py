"""The signaling server (and hub) as a sans-IO machine.

Wire and behaviour: reference/signaling-and-topology.md sections 1-5. The machine keeps
the reference's wire and fixes its weaknesses (section 8): a plain client can never
speak under another peer's ID, departures reach only the departed peer's namespace,
a re-announce leaves the old namespace, a replaced socket's late close never removes
its successor, idle sockets are pinged and timed out, and every map is bounded.

Inputs: `open_connection`, `receive_frame`, `receive_pong`, `connection_closed`,
`connection_overflowed`, `handle_timer`. Outputs: `drain_actions()` (`SendText`,
`Close`, `SendPing`) and `drain_events()` (`ServerEvent`). Read-only: `stats()`,
`health()`, `hubs_info()`, `http_response()`, `next_deadline()`.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Final, NewType, TypeAlias

from .errors import ConfigError, DecodeError, UnknownMessageType, UsageError
from .ids import PeerId, generate_peer_id, is_valid_peer_id, k_closest
from .outbox import Outbox
from .rand import Entropy, Rng
from .wire import (
    DEFAULT_MAX_FRAME_BYTES,
    GLOBAL_NETWORK,
    SYSTEM_SENDER,
    Announce,
    Answer,
    Cleanup,
    CleanupAll,
    Connected,
    ConnectionRejected,
    ErrorReply,
    Goodbye,
    IceCandidate,
    JsonObject,
    Message,
    Offer,
    PeerDisconnected,
    PeerDiscovered,
    Ping,
    Pong,
    decode_message,
    encode_message,
    error_text_for,
    query_param,
)

__all__ = [
    "DEFAULT_HUB_NAMESPACE",
    "Close",
    "ConnectionId",
    "ConnectionRefused",
    "FrameRejected",
    "HttpResponse",
    "HubRegistered",
    "HubUnregistered",
    "PeerAnnounced",
    "PeerConnected",
    "PeerDeparted",
    "PeerGoodbye",
    "SendPing",
    "SendText",
    "ServerAction",
    "ServerConfig",
    "ServerEvent",
    "ServerStats",
    "SignalingServer",
]

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
        for name in ("ping_interval_s", "peer_timeout_s", "stale_after_s"):
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


ServerAction: TypeAlias = SendText | Close | SendPing


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


ServerEvent: TypeAlias = (
    PeerConnected
    | ConnectionRefused
    | PeerDeparted
    | PeerAnnounced
    | PeerGoodbye
    | HubRegistered
    | HubUnregistered
    | FrameRejected
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


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpResponse:
    """An HTTP answer for a request that is not a WebSocket upgrade."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes = field(repr=False)


# --- per-connection state -------------------------------------------------------------


class ConnectionState(Enum):
    """Lifecycle of one connection inside the machine."""

    OPEN = "open"
    CLOSING = "closing"  # we queued Close; the adapter has not reported it closed yet


@dataclass(slots=True)
class _Conn:
    id: ConnectionId
    peer_id: PeerId
    opened_at: float
    last_activity: float
    connected_at_ms: int
    state: ConnectionState = ConnectionState.OPEN
    network: str | None = None
    data: JsonObject = field(default_factory=dict)
    is_hub: bool = False
    registered_at_ms: int = 0
    bad_frames: int = 0


@dataclass(slots=True)
class _Counters:
    frames_received: int = 0
    frames_sent: int = 0
    relayed: int = 0
    rejected: int = 0
    dropped_unroutable: int = 0
    spoof_attempts: int = 0
    refused_connections: int = 0
    timed_out: int = 0


_RELAYED_TYPES: Final = (Offer, Answer, IceCandidate)


class SignalingServer(Outbox[ServerAction, ServerEvent]):
    """The signaling server machine: one instance serves every connection of one server.

    Drive it with `open_connection` / `receive_frame` / `connection_closed` and
    `handle_timer`; after each input drain `drain_actions()` and `drain_events()`.
    """

    def __init__(
        self,
        config: ServerConfig | None = None,
        *,
        rng: Rng,
        entropy: Entropy,
        now: float,
        wall_offset_s: float = 0.0,
    ) -> None:
        super().__init__()
        self.config = config or ServerConfig()
        self._rng = rng
        self._wall_offset_s = wall_offset_s
        self._started_at = now
        self.hub_peer_id: PeerId | None = None
        if self.config.is_hub:
            self.hub_peer_id = self.config.hub_peer_id or generate_peer_id(entropy)
        self._next_conn = 0
        self._conns: dict[ConnectionId, _Conn] = {}
        self._by_peer: dict[PeerId, ConnectionId] = {}
        self._networks: dict[str, dict[PeerId, None]] = {}  # ordered sets, insertion order
        self._hubs: dict[PeerId, None] = {}
        self._count = _Counters()
        self._next_sweep = now + self.config.ping_interval_s
        self._stopped = False

    # --- clocks -----------------------------------------------------------------------

    def wall_ms(self, now: float) -> int:
        """Epoch milliseconds at monotonic time `now` (for ``timestamp`` fields)."""
        return int((now + self._wall_offset_s) * 1000)

    # --- inputs: connections ------------------------------------------------------------

    def open_connection(self, path: str, now: float) -> ConnectionId:
        """A WebSocket was accepted with request target `path` (e.g. ``/?peerId=…``).

        Returns the connection's handle. May queue `SendText` ('connected') or `Close`
        (1008 for an invalid or duplicate ID, or a full server); may emit
        `PeerConnected` or `ConnectionRefused`.
        """
        if self._stopped:
            raise UsageError("server", "stopped")
        self._next_conn += 1
        conn_id = ConnectionId(self._next_conn)
        peer_id = self._peer_id_from_path(path)
        if peer_id is None:
            return self._refuse(conn_id, REASON_INVALID_ID)
        old_id = self._by_peer.get(peer_id)
        if old_id is not None:
            old = self._conns[old_id]
            idle = now - old.last_activity
            if old.state is ConnectionState.OPEN and idle < self.config.stale_after_s:
                return self._refuse(conn_id, REASON_DUPLICATE)
            # The old socket is stale: forget it now; its late close is ignored by identity.
            self._close(old, CLOSE_POLICY, "Replaced by a new connection")
            self._remove(old, now, code=CLOSE_POLICY, reason="replaced")
        if len(self._conns) >= self.config.max_connections:
            return self._refuse(conn_id, REASON_FULL)
        conn = _Conn(
            id=conn_id,
            peer_id=peer_id,
            opened_at=now,
            last_activity=now,
            connected_at_ms=self.wall_ms(now),
        )
        self._conns[conn_id] = conn
        self._by_peer[peer_id] = conn_id
        self._emit(
            PeerConnected(peer_id=peer_id, connection=conn_id, total_connections=len(self._conns))
        )
        self._send(
            conn,
            Connected(
                data={"peerId": peer_id}, from_peer_id=SYSTEM_SENDER, timestamp=self.wall_ms(now)
            ),
        )
        return conn_id

    def connection_closed(
        self, connection: ConnectionId, now: float, *, code: int = 1006, reason: str = ""
    ) -> None:
        """The adapter saw the connection end. Unknown or replaced handles are ignored.

        May queue `SendText` (peer-disconnected to the namespace); may emit
        `PeerDeparted` and `HubUnregistered`.
        """
        conn = self._conns.get(connection)
        if conn is None:
            return
        self._remove(conn, now, code=code, reason=reason or "disconnected")

    def connection_overflowed(self, connection: ConnectionId, now: float) -> None:
        """The adapter's outbound queue for this connection hit `max_outbound_frames`.

        Queues `Close` (1008) and removes the connection as if it had closed.
        """
        conn = self._conns.get(connection)
        if conn is None:
            return
        self._close(conn, CLOSE_POLICY, "Outbound queue overflow")
        self._remove(conn, now, code=CLOSE_POLICY, reason="outbound queue overflow")

    def receive_pong(self, connection: ConnectionId, now: float) -> None:
        """A WebSocket pong (or any sign of life) arrived on the connection."""
        conn = self._conns.get(connection)
        if conn is not None:
            conn.last_activity = now

    def receive_frame(self, connection: ConnectionId, data: str | bytes, now: float) -> None:
        """One WebSocket frame (text or binary) arrived.

        May queue `SendText` (relays, discovery, pong, error) or `Close`; may emit
        `PeerAnnounced`, `PeerGoodbye`, `HubRegistered` or `FrameRejected`. Never raises
        for anything the peer sent.
        """
        conn = self._conns.get(connection)
        if conn is None or conn.state is not ConnectionState.OPEN:
            return
        conn.last_activity = now
        self._count.frames_received += 1
        try:
            msg = decode_message(data, max_bytes=self.config.max_message_bytes)
        except UnknownMessageType as err:
            self._reply_error(conn, err.message_type, err.reason, now)
            return
        except DecodeError as err:
            if err.field == "frame" and "exceeds" in err.reason:
                self._reject(conn, err.field, err.reason, now)
                if conn.id in self._conns:
                    self._close(conn, CLOSE_TOO_BIG, "Message too big")
                    self._remove(conn, now, code=CLOSE_TOO_BIG, reason="message too big")
                return
            if err.field == "type" and err.reason == "is required":
                self._reply_error(conn, "undefined", err.reason, now)  # as JS interpolates it
                return
            self._reject(conn, err.field, err.reason, now)
            return
        self._dispatch(conn, msg, now)

    # --- inputs: timers -----------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When `handle_timer` next has work: the ping / timeout sweep."""
        if self._stopped or not self._conns:
            return None
        return self._next_sweep

    def handle_timer(self, now: float) -> None:
        """Ping every open connection and close those idle past `peer_timeout_s`.

        May queue `SendPing` and `Close`; may emit `PeerDeparted`.
        """
        if self._stopped or now < self._next_sweep:
            return
        self._next_sweep = now + self.config.ping_interval_s
        for conn in list(self._conns.values()):
            if now - conn.last_activity >= self.config.peer_timeout_s:
                self._count.timed_out += 1
                self._close(conn, CLOSE_GOING_AWAY, "Peer timeout")
                self._remove(conn, now, code=CLOSE_GOING_AWAY, reason="peer timeout")
            elif conn.state is ConnectionState.OPEN:
                self._act(SendPing(connection=conn.id))

    def stop(self, now: float) -> None:
        """Close every connection with 1000 'Server shutting down' (queues `Close`)."""
        for conn in list(self._conns.values()):
            self._close(conn, CLOSE_NORMAL, REASON_SHUTDOWN)
        self._stopped = True

    # --- read-only views ------------------------------------------------------------------

    def stats(self) -> ServerStats:
        """A snapshot of the counters and sizes."""
        c = self._count
        return ServerStats(
            connections=len(self._conns),
            peers=len(self._by_peer),
            hubs=len(self._hubs),
            networks=len(self._networks),
            frames_received=c.frames_received,
            frames_sent=c.frames_sent,
            relayed=c.relayed,
            rejected=c.rejected,
            dropped_unroutable=c.dropped_unroutable,
            spoof_attempts=c.spoof_attempts,
            refused_connections=c.refused_connections,
            timed_out=c.timed_out,
        )

    def peer_ids(self) -> list[PeerId]:
        """IDs of the registered connections, oldest first."""
        return list(self._by_peer)

    def network_members(self, network: str) -> list[PeerId]:
        """Announced members of a namespace, in order of announcement."""
        return list(self._networks.get(network, ()))

    def networks(self) -> list[str]:
        """Namespaces with at least one member."""
        return list(self._networks)

    def connection_of(self, peer_id: str) -> ConnectionId | None:
        """The connection currently registered for a peer ID."""
        return self._by_peer.get(PeerId(peer_id))

    def health(self, now: float, *, memory: JsonObject | None = None) -> JsonObject:
        """The reference's ``/health`` body (``memory`` comes from the adapter)."""
        return {
            "status": "healthy",
            "timestamp": self._iso(now),
            "uptime": round(now - self._started_at, 3),
            "isHub": self.config.is_hub,
            "connections": len(self._conns),
            "peers": len(self._by_peer),
            "hubs": len(self._hubs),
            "networks": len(self._networks),
            "memory": memory or {},
        }

    def hubs_info(self, now: float) -> JsonObject:
        """The reference's ``/hubs`` body."""
        hubs: list[JsonObject] = []
        for hub_id in self._hubs:
            conn = self._conns[self._by_peer[hub_id]]
            hubs.append(
                {
                    "peerId": hub_id,
                    "registeredAt": conn.registered_at_ms,
                    "lastActivity": conn.registered_at_ms,
                    "networkName": conn.network,
                    "data": conn.data,
                    "connectedAt": conn.connected_at_ms,
                }
            )
        return {"timestamp": self._iso(now), "totalHubs": len(self._hubs), "hubs": list(hubs)}

    def http_response(
        self, method: str, path: str, now: float, *, memory: JsonObject | None = None
    ) -> HttpResponse:
        """The answer to a plain HTTP request (routes compare the path exactly)."""
        cors = ("Access-Control-Allow-Origin", self.config.cors_origin)
        if method.upper() == "OPTIONS":
            return HttpResponse(
                status=200,
                body=b"",
                headers=(
                    cors,
                    ("Access-Control-Allow-Methods", "GET, POST, OPTIONS"),
                    ("Access-Control-Allow-Headers", "Content-Type, Authorization"),
                ),
            )
        if path == "/health":
            body = json.dumps(self.health(now, memory=memory), separators=(",", ":"))
        elif path == "/hubs":
            body = json.dumps(self.hubs_info(now), separators=(",", ":"))
        else:
            return HttpResponse(
                status=200,
                body=b"PeerPigeon WebSocket Signaling Server",
                headers=(("Content-Type", "text/plain"), cors),
            )
        return HttpResponse(
            status=200, body=body.encode(), headers=(("Content-Type", "application/json"), cors)
        )

    # --- dispatch ---------------------------------------------------------------------------

    def _dispatch(self, conn: _Conn, msg: Message, now: float) -> None:
        match msg:
            case Announce():
                self._on_announce(conn, msg, now)
            case Offer() | Answer() | IceCandidate():
                self._on_relay(conn, msg, now)
            case ConnectionRejected() if self.config.route_connection_rejected:
                self._on_relay(conn, msg, now)
            case Goodbye():
                self._on_goodbye(conn, msg, now)
            case Ping():
                self._send(
                    conn,
                    Pong(
                        data={"timestamp": self.wall_ms(now)},
                        from_peer_id=SYSTEM_SENDER,
                        target_peer_id=conn.peer_id,
                        timestamp=self.wall_ms(now),
                    ),
                )
            case Cleanup() | CleanupAll():
                pass  # leftovers of an older server: accepted and ignored
            case PeerDiscovered() | PeerDisconnected():
                # Only hubs may tell a server about peers; federation is not enabled here.
                self._reject(conn, "type", "only a registered hub may send this", now)
            case _:
                # A type JS peers legitimately send (renegotiation, ICE restart, ...): answer
                # as the reference does, but it is no misbehaviour, so it costs no strike.
                self._reply_error(conn, msg.TYPE, "is not routed by this server", now, strike=False)

    def _on_announce(self, conn: _Conn, msg: Announce, now: float) -> None:
        data = msg.data
        if len(json.dumps(data, separators=(",", ":"))) > self.config.max_announce_data_bytes:
            self._reject(conn, "data", f"exceeds {self.config.max_announce_data_bytes} bytes", now)
            return
        net = msg.network
        is_hub = msg.is_hub or net == self.config.hub_mesh_namespace
        if conn.network is not None and conn.network != net:
            self._leave_network(conn, now, reason="changed network")
        conn.network = net
        conn.data = data
        if is_hub and not conn.is_hub:
            conn.is_hub = True
            conn.registered_at_ms = self.wall_ms(now)
            self._hubs[conn.peer_id] = None
            self._emit(HubRegistered(peer_id=conn.peer_id, total_hubs=len(self._hubs)))
        members = self._networks.setdefault(net, {})
        members.pop(conn.peer_id, None)
        others = list(members)
        members[conn.peer_id] = None
        if self.config.discovery_k is not None:
            others = k_closest(conn.peer_id, others, self.config.discovery_k)
        ts = self.wall_ms(now)
        about_new = self._discovered_data(conn)
        for other_id in others:
            other = self._conns[self._by_peer[other_id]]
            self._send(
                other,
                PeerDiscovered(
                    data=about_new,
                    network_name=net,
                    from_peer_id=SYSTEM_SENDER,
                    target_peer_id=other_id,
                    timestamp=ts,
                ),
            )
            self._send(
                conn,
                PeerDiscovered(
                    data=self._discovered_data(other),
                    network_name=net,
                    from_peer_id=SYSTEM_SENDER,
                    target_peer_id=conn.peer_id,
                    timestamp=ts,
                ),
            )
        self._emit(PeerAnnounced(peer_id=conn.peer_id, network_name=net, is_hub=conn.is_hub))

    def _on_relay(self, conn: _Conn, msg: Message, now: float) -> None:
        if msg.from_peer_id is not None and msg.from_peer_id != conn.peer_id and not conn.is_hub:
            self._count.spoof_attempts += 1
            self._reject(conn, "fromPeerId", "only a hub may relay for another peer", now)
            return
        target_id = msg.target_peer_id
        if not target_id:
            self._count.dropped_unroutable += 1
            return
        if not conn.is_hub and msg.network != (conn.network or GLOBAL_NETWORK):
            self._reject(conn, "networkName", "is not the sender's namespace", now)
            return
        target_conn_id = self._by_peer.get(PeerId(target_id))
        if target_conn_id is None:
            self._count.dropped_unroutable += 1
            return
        target = self._conns[target_conn_id]
        if (target.network or GLOBAL_NETWORK) != msg.network:
            self._count.dropped_unroutable += 1
            return
        relay = _with_envelope(
            msg,
            from_peer_id=msg.from_peer_id or conn.peer_id,
            network_name=msg.network,
            timestamp=self.wall_ms(now),
        )
        self._count.relayed += 1
        self._send(target, relay)

    def _on_goodbye(self, conn: _Conn, msg: Goodbye, now: float) -> None:
        if msg.from_peer_id is not None and msg.from_peer_id != conn.peer_id and not conn.is_hub:
            self._count.spoof_attempts += 1
            self._reject(conn, "fromPeerId", "only a hub may relay for another peer", now)
            return
        if conn.network is None:
            return
        relay = Goodbye(
            data=msg.data,
            from_peer_id=conn.peer_id,
            target_peer_id=None,
            network_name=conn.network,
            timestamp=self.wall_ms(now),
        )
        members = self._networks.get(conn.network, {})
        for member_id in members:
            if member_id != conn.peer_id:
                self._send(self._conns[self._by_peer[member_id]], relay)
        self._leave_network(conn, now, reason="left network", notify=False)
        self._emit(PeerGoodbye(peer_id=conn.peer_id))

    # --- helpers ----------------------------------------------------------------------------

    def _discovered_data(self, conn: _Conn) -> JsonObject:
        # The announcer's data is kept, but peerId and isHub are the server's (weakness 3).
        data: JsonObject = {"peerId": conn.peer_id, "isHub": conn.is_hub}
        for key, value in conn.data.items():
            if key not in data:
                data[key] = value
        return data

    def _leave_network(self, conn: _Conn, now: float, *, reason: str, notify: bool = True) -> None:
        net = conn.network
        if net is None:
            return
        members = self._networks.get(net)
        if members is not None:
            members.pop(conn.peer_id, None)
            if not members:
                del self._networks[net]
            elif notify:
                ts = self.wall_ms(now)
                data: JsonObject = {
                    "peerId": conn.peer_id,
                    "isHub": conn.is_hub,
                    "reason": reason,
                    "timestamp": ts,
                }
                for member_id in members:
                    self._send(
                        self._conns[self._by_peer[member_id]],
                        PeerDisconnected(
                            data=data,
                            network_name=net,
                            from_peer_id=SYSTEM_SENDER,
                            target_peer_id=member_id,
                            timestamp=ts,
                        ),
                    )
        conn.network = None

    def _remove(self, conn: _Conn, now: float, *, code: int, reason: str) -> None:
        del self._conns[conn.id]
        if self._by_peer.get(conn.peer_id) == conn.id:
            del self._by_peer[conn.peer_id]
        self._leave_network(conn, now, reason=reason)
        if conn.is_hub and conn.peer_id in self._hubs:
            del self._hubs[conn.peer_id]
            self._emit(HubUnregistered(peer_id=conn.peer_id, total_hubs=len(self._hubs)))
        self._emit(
            PeerDeparted(
                peer_id=conn.peer_id, code=code, reason=reason, total_connections=len(self._conns)
            )
        )

    def _refuse(self, conn_id: ConnectionId, reason: str) -> ConnectionId:
        self._count.refused_connections += 1
        self._act(Close(connection=conn_id, code=CLOSE_POLICY, reason=reason))
        self._emit(ConnectionRefused(connection=conn_id, code=CLOSE_POLICY, reason=reason))
        return conn_id

    def _close(self, conn: _Conn, code: int, reason: str) -> None:
        if conn.state is ConnectionState.OPEN:
            conn.state = ConnectionState.CLOSING
            self._act(Close(connection=conn.id, code=code, reason=reason))

    def _send(self, conn: _Conn, msg: Message) -> None:
        if conn.state is not ConnectionState.OPEN:
            return
        self._count.frames_sent += 1
        self._act(SendText(connection=conn.id, text=encode_message(msg)))

    def _reply_error(
        self, conn: _Conn, message_type: str, reason: str, now: float, *, strike: bool = True
    ) -> None:
        # At most one strike per frame; the reply goes out first, as a strike may close.
        self._send(
            conn, ErrorReply(error=error_text_for(message_type), timestamp=self.wall_ms(now))
        )
        self._reject(conn, "type", reason, now, strike=strike)

    def _reject(
        self, conn: _Conn, field_name: str, reason: str, now: float, *, strike: bool = True
    ) -> None:
        self._emit(
            FrameRejected(connection=conn.id, peer_id=conn.peer_id, field=field_name, reason=reason)
        )
        if strike:
            self._strike(conn, now)
        else:
            self._count.rejected += 1

    def _strike(self, conn: _Conn, now: float) -> None:
        self._count.rejected += 1
        conn.bad_frames += 1
        if conn.bad_frames > self.config.max_bad_frames and conn.id in self._conns:
            self._close(conn, CLOSE_POLICY, "Too many invalid frames")
            self._remove(conn, now, code=CLOSE_POLICY, reason="too many invalid frames")

    @staticmethod
    def _peer_id_from_path(path: str) -> PeerId | None:
        value = query_param(path, "peerId")
        if value is None or not is_valid_peer_id(value):
            return None
        return PeerId(value)

    def _iso(self, now: float) -> str:
        stamp = _dt.datetime.fromtimestamp(self.wall_ms(now) / 1000, tz=_dt.UTC)
        return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def _with_envelope(
    msg: Message, *, from_peer_id: str, network_name: str, timestamp: int
) -> Message:
    """A relay copy of `msg`: same payload, the server's envelope, no ``maxPeers``."""
    return replace(
        msg,
        from_peer_id=from_peer_id,
        network_name=network_name,
        timestamp=timestamp,
        max_peers=None,
    )
