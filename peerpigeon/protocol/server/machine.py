"""The signaling server (and hub) as a sans-IO machine.

Wire and behaviour: reference/signaling-and-topology.md sections 1-5. The machine keeps
the reference's wire and fixes its weaknesses (section 8): a plain client can never
speak under another peer's ID, departures reach only the departed peer's namespace,
a re-announce leaves the old namespace, a replaced socket's late close never removes
its successor, idle sockets are pinged and timed out, and every map is bounded.

As a hub (docs/federation.md) it also dials its bootstrap hubs, exchanges peers with
every hub it is linked to (both ways, across any number of links, departures included),
routes signaling toward the hub where its target lives, and suppresses loops.

Inputs: `open_connection`, `receive_frame`, `receive_pong`, `connection_closed`,
`connection_overflowed`, `hub_link_opened`, `hub_link_failed`, `handle_timer`.
Outputs: `drain_actions()` (`SendText`, `Close`, `SendPing`, `OpenHubLink`) and
`drain_events()` (`ServerEvent`). Read-only: `stats()`, `health()`, `hubs_info()`,
`http_response()`, `next_deadline()`, `remote_peers()`.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field, fields, replace
from enum import Enum
from typing import Final, get_args

from peerpigeon.protocol.errors import DecodeError, UnknownMessageType, UsageError
from peerpigeon.protocol.ids import PeerId, generate_peer_id, is_valid_peer_id, k_closest
from peerpigeon.protocol.outbox import Outbox
from peerpigeon.protocol.rand import Entropy, Rng
from peerpigeon.protocol.wire import (
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
    HubAuth,
    IceCandidate,
    JsonObject,
    Message,
    Offer,
    PeerDisconnected,
    PeerDiscovered,
    Ping,
    Pong,
    decode_json_object,
    decode_message,
    encode_message,
    encode_relay,
    error_text_for,
    message_from_object,
    query_param,
    relay_parts,
)

from .federation import BootstrapBackoff, RelayCache, client_proof, relay_key, server_proof, verify
from .types import (
    CLOSE_GOING_AWAY,
    CLOSE_NORMAL,
    CLOSE_POLICY,
    CLOSE_TOO_BIG,
    REASON_DUPLICATE,
    REASON_FULL,
    REASON_INVALID_ID,
    REASON_SHUTDOWN,
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

__all__ = ["ConnectionState", "SignalingServer"]

# Our hubs advertise this capability: they accept cross-hub departures (JS hubs answer a
# cross-hub peer-disconnected with 'error', so it is sent only to hubs that advertise it).
CAP_DEPARTURES: Final = "departures"
HUB_CAPABILITIES: Final = ("signaling", "relay", CAP_DEPARTURES)
REASON_HUB_AUTH: Final = "Hub authentication required"
REASON_LINK_DOWN: Final = "hub link down"
# Ours only, in the data of hub-to-hub frames (JS hubs ignore both; docs/federation.md):
# HUB_PATH on peer-discovered is the route the news took, newest hop first, as
# [hubId, tag] pairs: the tag names the link that hub learnt it by, and for the peer's own
# hub (last) the announcement. A hub drops news that already passed through it.
# On peer-disconnected, HUB_PATH names the announcement that ended ([[home, tag]]);
# LOST_LINK = [hubId, tag] says instead that this link broke and routes over it died.
HUB_PATH: Final = "hubPath"
LOST_LINK: Final = "lostLink"
MAX_HUB_PATH: Final = 32  # hops; longer routes are refused (bounds frames and loop checks)
UNKNOWN_HUB: Final = "0" * 40  # the home of a peer learnt from a JS hub whose ID we never saw

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
    challenge: str | None = None  # closed federation: what a dialling hub must sign
    authenticated: bool = False  # proved the hub secret
    capabilities: tuple[str, ...] = ()
    serial: int = 0  # tag of its latest announcement (names it between hubs)
    tag: int = 0  # names this connection in HUB_PATH routes when it carries a hub


class LinkState(Enum):
    """Lifecycle of an outgoing hub link."""

    CONNECTING = "connecting"
    AUTHENTICATING = "authenticating"  # closed mode: waiting for the other hub's proof
    OPEN = "open"
    CLOSING = "closing"


@dataclass(slots=True)
class _Link:
    id: ConnectionId
    url: str
    state: LinkState = LinkState.CONNECTING
    challenge: str | None = None
    nonce: str | None = None
    capabilities: tuple[str, ...] = ()
    hub_id: str | None = None  # from the other hub's self-description (ours send one)
    tag: int = 0  # names this link in HUB_PATH routes
    # The other side's 'connected' arrived: we know whether it is one of ours (it lists its
    # capabilities there) or a JS hub. Until then the link carries only our announce.
    introduced: bool = False


@dataclass(slots=True)
class _Bootstrap:
    url: str
    backoff: BootstrapBackoff
    link: ConnectionId | None = None
    retry_at: float | None = None


Hop = tuple[str, int]  # one HUB_PATH entry: (hub ID, tag of a link or an announcement)


@dataclass(slots=True)
class _Remote:
    via: ConnectionId
    via_tag: int
    network: str
    data: JsonObject
    path: tuple[Hop, ...] = ()  # the route from `via`'s hub to the peer's hub (HUB_PATH)

    @property
    def home(self) -> Hop | None:
        """(the peer's hub, the serial of its announcement), when known."""
        return self.path[-1] if self.path else None


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
    hub_frames_sent: int = 0
    hub_frames_received: int = 0
    duplicates_suppressed: int = 0
    auth_failures: int = 0
    remote_dropped: int = 0


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
        self._entropy = entropy
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
        # federation
        self._links: dict[ConnectionId, _Link] = {}
        self._bootstraps: dict[str, _Bootstrap] = {}
        self._remote: dict[PeerId, _Remote] = {}
        self._relay_cache = RelayCache(self.config.max_relay_cache, self.config.relay_cache_ttl_s)
        # Tags name announcements and hub links in routes; a random start keeps a hub that
        # restarts under the same ID from reusing the names its previous life gave out.
        self._next_tag = int.from_bytes(entropy.token_bytes(5), "big") << 12
        if self.config.is_hub:
            for url in dict.fromkeys(self.config.bootstrap_hubs):
                if self._is_self_url(url):
                    continue
                backoff = BootstrapBackoff(
                    base_s=self.config.reconnect_interval_s,
                    cap_s=self.config.reconnect_cap_s,
                    max_attempts=self.config.max_reconnect_attempts,
                    rest_s=self.config.reconnect_rest_s,
                )
                self._bootstraps[url] = _Bootstrap(url=url, backoff=backoff)
                if self.config.auto_connect:
                    self._dial(self._bootstraps[url], now)

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
        if not self._conns:
            self._next_sweep = now + self.config.ping_interval_s  # no stale sweep time
        conn = _Conn(
            tag=self._new_tag(),
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
        hello: JsonObject = {"peerId": peer_id}
        if self.config.is_hub:
            # JS clients ignore extra fields of 'connected'; a dialling hub learns from this
            # whether we take departures and routes before it sends us any peer.
            hello["capabilities"] = list(HUB_CAPABILITIES)
        if self.config.hub_secret is not None:
            # JS clients ignore extra fields of 'connected'; a dialling hub signs this.
            conn.challenge = self._entropy.token_bytes(16).hex()
            hello["challenge"] = conn.challenge
        self._send(
            conn,
            Connected(data=hello, from_peer_id=SYSTEM_SENDER, timestamp=self.wall_ms(now)),
        )
        return conn_id

    def connection_closed(
        self, connection: ConnectionId, now: float, *, code: int = 1006, reason: str = ""
    ) -> None:
        """The adapter saw the connection end. Unknown or replaced handles are ignored.

        May queue `SendText` (peer-disconnected to the namespace); may emit
        `PeerDeparted` and `HubUnregistered`.
        """
        link = self._links.get(connection)
        if link is not None:
            self._link_down(link, now, code=code, reason=reason or "disconnected")
            return
        conn = self._conns.get(connection)
        if conn is None:
            return
        self._remove(conn, now, code=code, reason=reason or "disconnected")

    def hub_link_opened(self, connection: ConnectionId, now: float) -> None:
        """The WebSocket asked for by `OpenHubLink` is open.

        Queues `SendText`: the hub announce and our peers (or, in closed mode, the proof
        first); may emit `BootstrapConnected`.
        """
        link = self._links.get(connection)
        if link is None or link.state is not LinkState.CONNECTING:
            return
        if self.config.hub_secret is not None:
            link.state = LinkState.AUTHENTICATING  # wait for 'connected' and its challenge
            return
        self._link_ready(link, now)

    def hub_link_failed(self, connection: ConnectionId, now: float, reason: str) -> None:
        """The WebSocket asked for by `OpenHubLink` could not be opened (or broke).

        Schedules the next attempt; emits `BootstrapDisconnected`.
        """
        link = self._links.get(connection)
        if link is not None:
            self._link_down(link, now, code=1006, reason=reason)

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
        link = self._links.get(connection)
        if link is not None:
            self._on_link_frame(link, data, now)
            return
        conn = self._conns.get(connection)
        if conn is None or conn.state is not ConnectionState.OPEN:
            return
        conn.last_activity = now
        self._count.frames_received += 1
        try:
            obj = decode_json_object(data, max_bytes=self.config.max_message_bytes)
            parts = relay_parts(obj)
            if parts is not None and self._relay_fast(conn, parts, now):
                return
            msg = message_from_object(obj)
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
        if self._stopped:
            return None
        due = [b.retry_at for b in self._bootstraps.values() if b.retry_at is not None]
        if self._conns:
            due.append(self._next_sweep)
        return min(due, default=None)

    def handle_timer(self, now: float) -> None:
        """Ping every open connection and close those idle past `peer_timeout_s`.

        May queue `SendPing` and `Close`; may emit `PeerDeparted`.
        """
        if self._stopped:
            return
        for boot in self._bootstraps.values():
            if boot.retry_at is not None and now >= boot.retry_at:
                self._dial(boot, now)
        if not self._conns:
            self._next_sweep = now + self.config.ping_interval_s
            return
        if now < self._next_sweep:
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
        for link in self._links.values():
            if link.state is not LinkState.CLOSING:
                link.state = LinkState.CLOSING
                self._act(Close(connection=link.id, code=CLOSE_NORMAL, reason="Hub shutting down"))
        for boot in self._bootstraps.values():
            boot.retry_at = None
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
            remote_peers=len(self._remote),
            hub_frames_sent=c.hub_frames_sent,
            hub_frames_received=c.hub_frames_received,
            duplicates_suppressed=c.duplicates_suppressed,
            auth_failures=c.auth_failures,
        )

    def remote_peers(self, network: str | None = None) -> list[PeerId]:
        """Peers learnt from other hubs (optionally of one namespace), oldest first."""
        return [p for p, r in self._remote.items() if network is None or r.network == network]

    def bootstrap_status(self) -> list[JsonObject]:
        """Each bootstrap URL: whether its link is up and how many failures in a row."""
        out: list[JsonObject] = []
        for boot in self._bootstraps.values():
            link = self._links.get(boot.link) if boot.link is not None else None
            out.append(
                {
                    "uri": boot.url,
                    "connected": link is not None and link.state is LinkState.OPEN,
                    "attemptNumber": boot.backoff.failures,
                }
            )
        return out

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
            case HubAuth():
                self._on_hub_auth(conn, msg, now)
            case PeerDiscovered() | PeerDisconnected() if not self._is_trusted_hub(conn):
                self._reject(conn, "type", "only a registered hub may send this", now)
            case PeerDiscovered():
                self._on_remote_discovered(conn.id, msg, now)
            case PeerDisconnected():
                self._on_remote_gone(conn.id, msg, now)
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
        if is_hub and self.config.hub_secret is not None and not conn.authenticated:
            self._count.auth_failures += 1
            self._reject(conn, "data.isHub", "hub registration needs the hub secret", now)
            if conn.id in self._conns:
                self._close(conn, CLOSE_POLICY, REASON_HUB_AUTH)
                self._remove(conn, now, code=CLOSE_POLICY, reason="hub authentication required")
            return
        if conn.network is not None and conn.network != net:
            self._leave_network(conn, now, reason="changed network")
        conn.network = net
        conn.data = data
        conn.serial = self._new_tag()
        newly_hub = is_hub and not conn.is_hub
        if newly_hub:
            conn.is_hub = True
            conn.registered_at_ms = self.wall_ms(now)
            caps = data.get("capabilities")
            if isinstance(caps, list):
                conn.capabilities = tuple(c for c in caps if isinstance(c, str))[:16]
            self._hubs[conn.peer_id] = None
            self._emit(HubRegistered(peer_id=conn.peer_id, total_hubs=len(self._hubs)))
        members = self._networks.setdefault(net, {})
        members.pop(conn.peer_id, None)
        others: list[PeerId] = list(members)
        members[conn.peer_id] = None
        remotes = [] if conn.is_hub else self.remote_peers(net)
        if self.config.discovery_k is not None:
            local_set = set(others)
            picked = k_closest(conn.peer_id, others + remotes, self.config.discovery_k)
            others = [p for p in picked if p in local_set]
            remotes = [p for p in picked if p not in local_set]
        ts = self.wall_ms(now)
        about_new = self._discovered_data(conn)
        for remote_id in remotes:
            self._send(
                conn,
                PeerDiscovered(
                    data=self._remote_data(remote_id),
                    network_name=net,
                    from_peer_id=SYSTEM_SENDER,
                    target_peer_id=conn.peer_id,
                    timestamp=ts,
                ),
            )
        if newly_hub:
            self._greet_hub(conn, now)
        elif not conn.is_hub:
            route = self._home_route(conn)
            self._announce_to_hubs(conn.peer_id, net, about_new, route, now, exclude=None)
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
        trusted = self._is_trusted_hub(conn)
        if msg.from_peer_id is not None and msg.from_peer_id != conn.peer_id and not trusted:
            self._count.spoof_attempts += 1
            self._reject(conn, "fromPeerId", "only a hub may relay for another peer", now)
            return
        if trusted:
            self._route_hub_relay(conn.id, msg, now)
            return
        if not msg.target_peer_id:
            self._count.dropped_unroutable += 1
            return
        if msg.network != (conn.network or GLOBAL_NETWORK):
            self._reject(conn, "networkName", "is not the sender's namespace", now)
            return
        relay = _with_envelope(
            msg,
            from_peer_id=conn.peer_id,
            network_name=msg.network,
            timestamp=self.wall_ms(now),
        )
        if not self._deliver_local(relay):
            self._relay_cache.check_and_add(self._relay_key(relay), now)
            self._forward_to_hubs(relay, arrival=None)

    def _relay_fast(
        self, conn: _Conn, parts: tuple[str, str | None, str | None, str], now: float
    ) -> bool:
        """`_on_relay` for a plain relay delivered on this server, encoded from `parts`.

        Does what `_dispatch` would do with the decoded message and returns True; returns
        False, having done nothing, for whatever it leaves to the general path (a hub's
        relay, a spoofed sender, another namespace, a target elsewhere).
        """
        head, network_name, from_peer_id, target = parts
        peer_id = conn.peer_id
        if conn.is_hub or (from_peer_id is not None and from_peer_id != peer_id):
            return False
        network = network_name or GLOBAL_NETWORK
        if network != (conn.network or GLOBAL_NETWORK):
            return False
        target_conn_id = self._by_peer.get(PeerId(target))
        if target_conn_id is None:
            return False
        target_conn = self._conns[target_conn_id]
        if (target_conn.network or GLOBAL_NETWORK) != network:
            return False
        count = self._count
        count.relayed += 1
        if target_conn.state is ConnectionState.OPEN:
            count.frames_sent += 1
            text = encode_relay(head, network, peer_id, target, self.wall_ms(now))
            self._act(SendText(connection=target_conn_id, text=text))
        return True

    def _deliver_local(self, relay: Message) -> bool:
        """Send a relay to its target if the target is on this server (True if it is)."""
        target_conn_id = self._by_peer.get(PeerId(relay.target_peer_id or ""))
        if target_conn_id is None:
            return False
        target = self._conns[target_conn_id]
        if (target.network or GLOBAL_NETWORK) != relay.network:
            self._count.dropped_unroutable += 1
            return True
        self._count.relayed += 1
        self._send(target, relay)
        return True

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

    # --- federation -------------------------------------------------------------------------

    def _is_trusted_hub(self, conn: _Conn) -> bool:
        return conn.is_hub and (self.config.hub_secret is None or conn.authenticated)

    def _on_hub_auth(self, conn: _Conn, msg: HubAuth, now: float) -> None:
        secret = self.config.hub_secret
        if secret is None or conn.challenge is None or conn.authenticated:
            self._reject(conn, "type", "hub-auth is not expected here", now, strike=False)
            return
        nonce = msg.data.get("nonce")
        if not isinstance(nonce, str) or not 16 <= len(nonce) <= 128:
            self._reject(conn, "data.nonce", "must be a string of 16..128 characters", now)
            return
        expected = client_proof(secret, conn.challenge, nonce, conn.peer_id)
        if not verify(expected, msg.data.get("proof")):
            self._count.auth_failures += 1
            self._reject(conn, "data.proof", "does not prove the hub secret", now)
            if conn.id in self._conns:
                self._close(conn, CLOSE_POLICY, "Hub authentication failed")
                self._remove(conn, now, code=CLOSE_POLICY, reason="hub authentication failed")
            return
        conn.authenticated = True
        self._send(
            conn,
            HubAuth(
                data={"proof": server_proof(secret, conn.challenge, nonce)},
                from_peer_id=SYSTEM_SENDER,
                target_peer_id=conn.peer_id,
                timestamp=self.wall_ms(now),
            ),
        )

    def _greet_hub(self, conn: _Conn, now: float) -> None:
        """A hub registered with us: tell it who we are and every peer we know."""
        ts = self.wall_ms(now)
        if self.hub_peer_id is not None:
            me: JsonObject = {
                "peerId": self.hub_peer_id,
                "isHub": True,
                "capabilities": list(HUB_CAPABILITIES),
                "self": True,
            }
            self._send(
                conn,
                PeerDiscovered(
                    data=me,
                    network_name=self.config.hub_mesh_namespace,
                    from_peer_id=SYSTEM_SENDER,
                    target_peer_id=conn.peer_id,
                    timestamp=ts,
                ),
            )
        self._send_known_peers(conn.id, now)

    def _send_known_peers(self, channel: ConnectionId, now: float) -> None:
        """Every local peer and every remote peer not learnt through `channel`."""
        for peer_id, conn_id in self._by_peer.items():
            peer = self._conns[conn_id]
            if peer.is_hub or peer.network is None or peer.state is not ConnectionState.OPEN:
                continue
            if peer.network == self.config.hub_mesh_namespace:
                continue
            data = self._discovered_data(peer)
            route = self._home_route(peer)
            self._to_channel(channel, self._discovery(peer_id, peer.network, data, route, now))
        for peer_id, remote in self._remote.items():
            if remote.via != channel:
                data = self._remote_data(peer_id)
                msg = self._discovery(peer_id, remote.network, data, self._route(remote), now)
                self._to_channel(channel, msg)

    def _discovery(
        self, peer_id: PeerId, net: str, data: JsonObject, route: tuple[Hop, ...], now: float
    ) -> Message:
        """A hub-to-hub peer-discovered carrying our `route` to the peer."""
        data = {**data, HUB_PATH: [list(hop) for hop in route]}
        return PeerDiscovered(
            data=data, network_name=net, from_peer_id=SYSTEM_SENDER, timestamp=self.wall_ms(now)
        )

    def _route(self, remote: _Remote) -> tuple[Hop, ...]:
        """Our route to a remote peer: this hub and the link it was learnt by, then its path."""
        return ((self.hub_peer_id or "", remote.via_tag), *remote.path)

    def _home_route(self, conn: _Conn) -> tuple[Hop, ...]:
        """The route of one of our own peers: this hub and the serial of its announcement."""
        return ((self.hub_peer_id or "", conn.serial),)

    def _new_tag(self) -> int:
        self._next_tag += 1
        return self._next_tag

    def _channel_tag(self, channel: ConnectionId) -> int:
        link = self._links.get(channel)
        if link is not None:
            return link.tag
        conn = self._conns.get(channel)
        return conn.tag if conn is not None else 0

    def _channel_hub(self, channel: ConnectionId) -> str | None:
        """The hub ID at the other end of a hub channel, when known."""
        link = self._links.get(channel)
        if link is not None:
            return link.hub_id
        conn = self._conns.get(channel)
        return conn.peer_id if conn is not None else None

    def _remote_data(self, peer_id: PeerId) -> JsonObject:
        data: JsonObject = {"peerId": peer_id, "isHub": False}
        for key, value in self._remote[peer_id].data.items():
            if key not in data:
                data[key] = value
        return data

    def _channels(self, exclude: ConnectionId | None) -> list[ConnectionId]:
        """Open hub links and registered (trusted) hubs, except `exclude`."""
        out = [
            link.id
            for link in self._links.values()
            if link.state is LinkState.OPEN and link.introduced and link.id != exclude
        ]
        for hub_id in self._hubs:
            conn = self._conns[self._by_peer[hub_id]]
            if (
                conn.id != exclude
                and conn.state is ConnectionState.OPEN
                and self._is_trusted_hub(conn)
            ):
                out.append(conn.id)
        return out

    def _capable(self, channel: ConnectionId) -> bool:
        link = self._links.get(channel)
        if link is not None:
            return CAP_DEPARTURES in link.capabilities
        conn = self._conns.get(channel)
        return conn is not None and CAP_DEPARTURES in conn.capabilities

    def _to_channel(self, channel: ConnectionId, msg: Message) -> None:
        self._count.hub_frames_sent += 1
        link = self._links.get(channel)
        js_hub = not self._capable(channel)
        if js_hub and isinstance(msg, PeerDiscovered) and HUB_PATH in msg.data:
            # A JS hub would hand our route on to its clients: it gets the reference's data.
            msg = replace(msg, data={k: v for k, v in msg.data.items() if k != HUB_PATH})
        if link is not None:
            self._act(SendText(connection=channel, text=encode_message(msg)))
            return
        conn = self._conns.get(channel)
        if conn is not None:
            self._send(conn, replace(msg, target_peer_id=msg.target_peer_id or conn.peer_id))

    def _announce_to_hubs(
        self,
        peer_id: PeerId,
        net: str,
        data: JsonObject,
        route: tuple[Hop, ...],
        now: float,
        *,
        exclude: ConnectionId | None,
    ) -> None:
        if net == self.config.hub_mesh_namespace:
            return
        msg = self._discovery(peer_id, net, data, route, now)
        for channel in self._channels(exclude):
            self._to_channel(channel, msg)

    def _departure_to_hubs(
        self,
        peer_id: PeerId,
        net: str,
        reason: str,
        now: float,
        *,
        exclude: ConnectionId | None,
        ended: Hop | None = None,
        lost_link: Hop | None = None,
    ) -> None:
        """Tell hubs that take departures: announcement `ended` left, or `lost_link` broke."""
        if net == self.config.hub_mesh_namespace:
            return
        ts = self.wall_ms(now)
        data: JsonObject = {"peerId": peer_id, "isHub": False, "reason": reason, "timestamp": ts}
        if lost_link is not None:
            data[LOST_LINK] = list(lost_link)
        elif ended is not None:
            data[HUB_PATH] = [list(ended)]
        msg = PeerDisconnected(
            data=data, network_name=net, from_peer_id=SYSTEM_SENDER, timestamp=ts
        )
        for channel in self._channels(exclude):
            if self._capable(channel):
                self._to_channel(channel, msg)

    def _hub_path(self, channel: ConnectionId, data: JsonObject) -> tuple[Hop, ...] | None:
        """The route in a discovery (HUB_PATH); for a JS hub's news, just that hub.

        None when the field is malformed or longer than `MAX_HUB_PATH`.
        """
        raw = data.get(HUB_PATH)
        if raw is None:
            return ((self._channel_hub(channel) or UNKNOWN_HUB, 0),)
        if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_HUB_PATH:
            return None
        hops = [_hop(item) for item in raw]
        return tuple(hop for hop in hops if hop is not None) if None not in hops else None

    def _gone_key(self, pid: PeerId, home: Hop) -> str:
        return f"gone\x00{pid}\x00{home[0]}\x00{home[1]}"

    def _lost_key(self, link: Hop) -> str:
        return f"lost\x00{link[0]}\x00{link[1]}"

    def _on_remote_discovered(self, via: ConnectionId, msg: PeerDiscovered, now: float) -> None:
        peer_id = msg.peer_id
        path = self._hub_path(via, msg.data)
        if peer_id is None or not is_valid_peer_id(peer_id) or path is None:
            self._count.rejected += 1
            return
        pid = PeerId(peer_id)
        net = msg.network
        if msg.is_hub or pid in self._by_peer or net == self.config.hub_mesh_namespace:
            return  # hubs are not peers; our own peers come back as echoes
        home = path[-1] if path else None
        if (
            any(hub == self.hub_peer_id for hub, _ in path)
            or (home is not None and self._relay_cache.contains(self._gone_key(pid, home), now))
            or any(self._relay_cache.contains(self._lost_key(hop), now) for hop in path[:-1])
        ):
            # The news went round a cycle back to us, or it is older than the departure of
            # that announcement or the loss of a link on its route (it crossed that news).
            self._count.duplicates_suppressed += 1
            return
        known = self._remote.get(pid)
        if known is not None:
            newer = (
                home is not None
                and known.home is not None
                and home[0] == known.home[0]
                and home[1] > known.home[1]
            ) or (known.via == via and known.network != net)
            if not newer:
                self._count.duplicates_suppressed += 1
                return
            # The peer announced again on its hub (maybe in another namespace): replace.
            self._forget_remote(pid, now, reason="changed network", exclude=None, tell_hubs=False)
        if len(self._remote) >= self.config.max_remote_peers:
            self._count.remote_dropped += 1
            return
        stored = {k: v for k, v in msg.data.items() if k != HUB_PATH}
        remote = self._remote[pid] = _Remote(
            via=via, via_tag=self._channel_tag(via), network=net, data=stored, path=path
        )
        self._emit(RemotePeerLearned(peer_id=pid, network_name=net, via=via))
        data = self._remote_data(pid)
        members = [
            m for m in self._networks.get(net, ()) if not self._conns[self._by_peer[m]].is_hub
        ]
        if self.config.discovery_k is not None:
            members = k_closest(pid, members, self.config.discovery_k)
        ts = self.wall_ms(now)
        for member in members:
            self._send(
                self._conns[self._by_peer[member]],
                PeerDiscovered(
                    data=data,
                    network_name=net,
                    from_peer_id=SYSTEM_SENDER,
                    target_peer_id=member,
                    timestamp=ts,
                ),
            )
        self._announce_to_hubs(pid, net, data, self._route(remote), now, exclude=via)

    def _on_remote_gone(self, via: ConnectionId, msg: PeerDisconnected, now: float) -> None:
        peer_id = msg.peer_id
        if peer_id is None or not is_valid_peer_id(peer_id):
            return
        pid = PeerId(peer_id)
        known = self._remote.get(pid)
        if known is not None and known.network != msg.network:
            # A JS hub we dialled tells every socket of a departure, with no namespace: it
            # stands for the peers we learnt from that hub.
            js_notice = msg.network_name is None and known.via == via and not self._capable(via)
            if not js_notice:
                known = None
        if LOST_LINK in msg.data:
            lost = _hop(msg.data[LOST_LINK])
            if lost is None:
                self._count.rejected += 1
                return
            self._on_route_lost(via, pid, msg.network, known, lost, now)
            return
        # The peer left its hub: true whichever way we reach it. Remember which
        # announcement ended, so that news of it still in flight elsewhere is refused.
        ended: Hop | None = None
        raw = msg.data.get(HUB_PATH)
        if isinstance(raw, list) and len(raw) == 1:
            ended = _hop(raw[0])
        if ended is not None:
            self._relay_cache.check_and_add(self._gone_key(pid, ended), now)
        if known is None:
            return  # never knew it, or already forgot it: the news stops here
        if ended is not None and known.home is not None and known.home != ended:
            return  # a later announcement of the peer is what we know: keep it
        reason = msg.data.get("reason")
        text = reason[:64] if isinstance(reason, str) and reason else "left network"
        self._forget_remote(pid, now, reason=text, exclude=via, ended=ended)

    def _on_route_lost(
        self,
        via: ConnectionId,
        pid: PeerId,
        net: str,
        known: _Remote | None,
        lost: Hop,
        now: float,
    ) -> None:
        """Another hub's route to `pid` died with link `lost`; ours may not use that link."""
        if known is None:
            self._relay_cache.check_and_add(self._lost_key(lost), now)
            local = self._conns.get(self._by_peer.get(pid, ConnectionId(0)))
            if local is not None and local.network == net and not local.is_hub:
                # The peer is ours: whoever lost its route can reach it through us.
                data = self._discovered_data(local)
                self._to_channel(via, self._discovery(pid, net, data, self._home_route(local), now))
            return
        self._relay_cache.check_and_add(self._lost_key(lost), now)
        route = self._route(known)
        if lost in route[:-1] or known.via == via:
            self._forget_remote(pid, now, reason=REASON_LINK_DOWN, exclude=via, lost_link=lost)
            return
        # Our route avoids the broken link: teach it to the hub that lost its own.
        data = self._remote_data(pid)
        self._to_channel(via, self._discovery(pid, known.network, data, route, now))

    def _forget_remote(
        self,
        pid: PeerId,
        now: float,
        *,
        reason: str,
        exclude: ConnectionId | None,
        ended: Hop | None = None,
        lost_link: Hop | None = None,
        tell_hubs: bool = True,
    ) -> None:
        remote = self._remote.pop(pid)
        self._emit(RemotePeerGone(peer_id=pid, network_name=remote.network))
        ts = self.wall_ms(now)
        data: JsonObject = {"peerId": pid, "isHub": False, "reason": reason, "timestamp": ts}
        for member in self._networks.get(remote.network, ()):
            conn = self._conns[self._by_peer[member]]
            if conn.is_hub:
                continue
            self._send(
                conn,
                PeerDisconnected(
                    data=data,
                    network_name=remote.network,
                    from_peer_id=SYSTEM_SENDER,
                    target_peer_id=member,
                    timestamp=ts,
                ),
            )
        if tell_hubs:
            self._departure_to_hubs(
                pid,
                remote.network,
                reason,
                now,
                exclude=exclude,
                ended=ended,
                lost_link=lost_link,
            )

    def _drop_remotes_via(self, via: ConnectionId, tag: int, now: float, *, reason: str) -> None:
        lost = (self.hub_peer_id or "", tag)
        self._relay_cache.check_and_add(self._lost_key(lost), now)
        for pid in [p for p, r in self._remote.items() if r.via == via]:
            self._forget_remote(pid, now, reason=reason, exclude=via, lost_link=lost)

    def _relay_key(self, msg: Message) -> str:
        data = json.loads(encode_message(replace(msg, timestamp=None, network_name=None)))
        return relay_key(msg.TYPE, msg.from_peer_id or "", msg.target_peer_id or "", data)

    def _route_hub_relay(self, arrival: ConnectionId, msg: Message, now: float) -> None:
        """A signaling frame another hub passed to us: deliver it or pass it on, once."""
        if not msg.target_peer_id or not msg.from_peer_id:
            self._count.dropped_unroutable += 1
            return
        relay = _with_envelope(
            msg,
            from_peer_id=msg.from_peer_id,
            network_name=msg.network,
            timestamp=self.wall_ms(now),
        )
        if not self._relay_cache.check_and_add(self._relay_key(relay), now):
            self._count.duplicates_suppressed += 1
            return
        if not self._deliver_local(relay):
            self._forward_to_hubs(relay, arrival=arrival)

    def _forward_to_hubs(self, relay: Message, *, arrival: ConnectionId | None) -> None:
        remote = self._remote.get(PeerId(relay.target_peer_id or ""))
        if remote is not None:
            channels = [] if remote.via == arrival else [remote.via]
        else:
            channels = self._channels(arrival)  # unknown target: ask every other hub
        if isinstance(relay, ConnectionRejected):
            # JS hubs answer it with 'error' (their peers could not receive it anyway).
            channels = [c for c in channels if self._capable(c)]
        if not channels:
            self._count.dropped_unroutable += 1
            return
        self._count.relayed += 1
        for channel in channels:
            self._to_channel(channel, relay)

    # --- outgoing hub links -------------------------------------------------------------------

    def _is_self_url(self, url: str) -> bool:
        rest = url.split("://", 1)[-1].split("/", 1)[0].split("?", 1)[0]
        host, _, port = rest.rpartition(":")
        if not host:
            host, port = rest, "443" if url.startswith("wss") else "80"
        local = {"localhost", "127.0.0.1", "0.0.0.0", "::1", "[::1]", self.config.host}
        return host in local and port == str(self.config.port)

    def _dial(self, boot: _Bootstrap, now: float) -> None:
        self._next_conn += 1
        link = _Link(id=ConnectionId(self._next_conn), url=boot.url, tag=self._new_tag())
        self._links[link.id] = link
        boot.link = link.id
        boot.retry_at = None
        sep = "&" if "?" in boot.url else "?"
        self._act(OpenHubLink(connection=link.id, url=f"{boot.url}{sep}peerId={self.hub_peer_id}"))

    def _link_ready(self, link: _Link, now: float) -> None:
        link.state = LinkState.OPEN
        boot = self._bootstraps.get(link.url)
        if boot is not None:
            boot.backoff.reset()
        self._emit(BootstrapConnected(url=link.url))
        announce: JsonObject = {
            "isHub": True,
            "port": self.config.port,
            "host": self.config.host,
            "capabilities": list(HUB_CAPABILITIES),
            "timestamp": self.wall_ms(now),
        }
        self._to_channel(
            link.id, Announce(data=announce, network_name=self.config.hub_mesh_namespace)
        )
        if link.introduced:
            self._send_known_peers(link.id, now)

    def _link_down(self, link: _Link, now: float, *, code: int, reason: str) -> None:
        del self._links[link.id]
        boot = self._bootstraps.get(link.url)
        if boot is not None and boot.link == link.id:
            boot.link = None
            if not self._stopped:
                boot.retry_at = now + boot.backoff.next_delay(self._rng)
                self._emit(
                    BootstrapDisconnected(
                        url=link.url, code=code, reason=reason, retry_at=boot.retry_at
                    )
                )
        self._drop_remotes_via(link.id, link.tag, now, reason=REASON_LINK_DOWN)

    def _fail_link(self, link: _Link, now: float, reason: str) -> None:
        self._count.auth_failures += 1
        if link.state is not LinkState.CLOSING:
            link.state = LinkState.CLOSING
            self._act(Close(connection=link.id, code=CLOSE_POLICY, reason=reason))
        self._link_down(link, now, code=CLOSE_POLICY, reason=reason)

    def _on_link_frame(self, link: _Link, data: str | bytes, now: float) -> None:
        if link.state is LinkState.CLOSING:
            return
        self._count.hub_frames_received += 1
        try:
            msg = decode_message(data, max_bytes=self.config.max_message_bytes)
        except DecodeError as err:
            self._count.rejected += 1
            self._emit(
                FrameRejected(connection=link.id, peer_id=None, field=err.field, reason=err.reason)
            )
            return
        if isinstance(msg, Connected) and not link.introduced:
            # What the other hub is decides what it gets: ours list their capabilities in
            # 'connected'; JS hubs list none and never receive departures or routes.
            link.introduced = True
            caps = msg.data.get("capabilities")
            if isinstance(caps, list):
                link.capabilities = tuple(c for c in caps if isinstance(c, str))[:16]
            if link.state is LinkState.OPEN:
                self._send_known_peers(link.id, now)
                return
        secret = self.config.hub_secret
        if link.state is LinkState.AUTHENTICATING and secret is not None:
            if isinstance(msg, Connected) and link.nonce is None:
                challenge = msg.data.get("challenge")
                if not isinstance(challenge, str) or not challenge:
                    self._fail_link(link, now, "Hub gave no authentication challenge")
                    return
                link.challenge = challenge
                link.nonce = self._entropy.token_bytes(16).hex()
                proof = client_proof(secret, challenge, link.nonce, self.hub_peer_id or "")
                self._to_channel(link.id, HubAuth(data={"nonce": link.nonce, "proof": proof}))
            elif isinstance(msg, HubAuth) and link.nonce is not None:
                expected = server_proof(secret, link.challenge or "", link.nonce)
                if not verify(expected, msg.data.get("proof")):
                    self._fail_link(link, now, "Hub authentication failed")
                    return
                self._link_ready(link, now)
            return
        if link.state is not LinkState.OPEN:
            return
        match msg:
            case PeerDiscovered() if msg.is_hub:
                if msg.data.get("self") is True:  # our self-description, as the acceptor
                    caps = msg.data.get("capabilities")
                    if isinstance(caps, list):
                        link.capabilities = tuple(c for c in caps if isinstance(c, str))[:16]
                    if msg.peer_id is not None and is_valid_peer_id(msg.peer_id):
                        link.hub_id = msg.peer_id
            case PeerDiscovered():
                self._on_remote_discovered(link.id, msg, now)
            case PeerDisconnected():
                self._on_remote_gone(link.id, msg, now)
            case Offer() | Answer() | IceCandidate() | ConnectionRejected():
                self._route_hub_relay(link.id, msg, now)
            case _:
                pass  # connected, pong, error, hub-namespace chatter: nothing to do

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
        if not conn.is_hub:
            ended = (self.hub_peer_id or "", conn.serial)
            self._departure_to_hubs(conn.peer_id, net, reason, now, exclude=None, ended=ended)
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
            self._drop_remotes_via(conn.id, conn.tag, now, reason=REASON_LINK_DOWN)
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


def _hop(item: object) -> Hop | None:
    """One HUB_PATH / LOST_LINK entry, ``[hubId, n]``, or None when malformed."""
    if not isinstance(item, list) or len(item) != 2:
        return None
    hub, n = item
    if not isinstance(hub, str) or not is_valid_peer_id(hub):
        return None
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < 2**53:
        return None
    return (hub, n)


_ENVELOPE_FIELDS: Final = frozenset(
    ("network_name", "from_peer_id", "target_peer_id", "timestamp", "max_peers")
)
# Each message type's own fields (the payload), for building relay copies without replace().
_PAYLOAD_FIELDS: Final[dict[type, tuple[str, ...]]] = {
    cls: tuple(f.name for f in fields(cls) if f.name not in _ENVELOPE_FIELDS)
    for cls in get_args(Message)
}


def _with_envelope(
    msg: Message, *, from_peer_id: str, network_name: str, timestamp: int
) -> Message:
    """A relay copy of `msg`: same payload, the server's envelope, no ``maxPeers``."""
    cls = type(msg)
    payload = {name: getattr(msg, name) for name in _PAYLOAD_FIELDS[cls]}
    return cls(
        from_peer_id=from_peer_id,
        network_name=network_name,
        timestamp=timestamp,
        target_peer_id=msg.target_peer_id,
        **payload,
    )
