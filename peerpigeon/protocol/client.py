"""Signaling client machine: announce, discovery, keepalive, reconnection with URL failover.

The caller owns one WebSocket at a time: it opens and closes it when told to and reports what
happened to it. Wire and behaviour: reference/signaling-and-topology.md sections 2.1, 2.4, 3.3
and 4.2-4.6; weaknesses 16 (reconnect stall) and 22 (departures) of section 8 are fixed here.
"""

from __future__ import annotations

import enum
import math
from dataclasses import asdict, dataclass
from typing import Final, TypeAlias, TypedDict

from . import wire
from .errors import ConfigError, DecodeError, UsageError
from .ids import PeerId, is_valid_peer_id, parse_peer_id
from .outbox import Outbox
from .rand import Rng
from .wire import DEFAULT_MAX_FRAME_BYTES, GLOBAL_NETWORK, JsonObject

__all__ = [
    "CLIENT_DISCONNECT_REASON",
    "AnswerReceived",
    "ClientAction",
    "ClientConfig",
    "ClientEvent",
    "ClientState",
    "ClientStats",
    "CloseSocket",
    "ConnectionRejectedReceived",
    "FrameRejected",
    "IceCandidateReceived",
    "OfferReceived",
    "OpenSocket",
    "PeerDiscovered",
    "PeerLeft",
    "SendText",
    "ServerError",
    "SignalingClient",
    "SignalingConnected",
    "SignalingDisconnected",
    "hub_socket_url",
    "normalize_hub_url",
]

CLOSE_NORMAL: Final = 1000
CLOSE_ABNORMAL: Final = 1006  # never sent on the wire: "the socket went away without a close"
CLOSE_INTERNAL_ERROR: Final = 1011  # what we send when we give up on a silent socket
CLIENT_DISCONNECT_REASON: Final = "Client disconnect"  # the JS client's close reason


# --- URLs -----------------------------------------------------------------------------------


def normalize_hub_url(url: str) -> str:
    """Check a hub URL the way the JS client does; ``http(s)://`` becomes ``ws(s)://``.

    Raises `ConfigError` (field ``urls``) for anything but an absolute ``ws://`` or
    ``wss://`` URL with a host, without whitespace and without a fragment.
    """
    if not isinstance(url, str):
        raise ConfigError("urls", "each URL must be a string")
    if url.startswith("http://"):
        url = "ws://" + url[len("http://") :]
    elif url.startswith("https://"):
        url = "wss://" + url[len("https://") :]
    if not url.startswith(("ws://", "wss://")):
        raise ConfigError("urls", f"{url!r} is not a ws://, wss://, http:// or https:// URL")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise ConfigError("urls", f"{url!r} contains whitespace or control characters")
    if "#" in url:
        raise ConfigError("urls", f"{url!r} has a fragment, which WebSocket URLs may not have")
    rest = url.split("://", 1)[1]
    authority = rest
    for sep in "/?":
        authority = authority.split(sep, 1)[0]
    host_port = authority.rsplit("@", 1)[-1]
    if host_port.startswith("["):
        host, bracket, port = host_port[1:].partition("]")
        if not bracket or (port and not port.startswith(":")):
            raise ConfigError("urls", f"{url!r} has a malformed IPv6 host")
        port = port[1:]
    else:
        host, _, port = host_port.partition(":")
    if not host:
        raise ConfigError("urls", f"{url!r} has no host")
    if port and (not port.isascii() or not port.isdigit() or int(port) > 65535):
        raise ConfigError("urls", f"{url!r} has an invalid port")
    return url


def hub_socket_url(url: str, peer_id: str) -> str:
    """Return the URL to dial: `url` normalized, with ``peerId`` set in its query.

    Like the JS client's ``searchParams.set``: the first ``peerId`` parameter is replaced,
    later ones are removed, otherwise it is appended; an empty path becomes ``/``.
    """
    url = normalize_hub_url(url)
    scheme, rest = url.split("://", 1)
    base, _, query = rest.partition("?")
    if "/" not in base:
        base += "/"
    params: list[str] = []
    replaced = False
    for part in query.split("&"):
        if not part:
            continue
        if part.split("=", 1)[0] == "peerId":
            if not replaced:
                params.append(f"peerId={peer_id}")
                replaced = True
            continue
        params.append(part)
    if not replaced:
        params.append(f"peerId={peer_id}")
    return f"{scheme}://{base}?{'&'.join(params)}"


# --- configuration --------------------------------------------------------------------------


def _positive_finite(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(field, "must be a finite number")
    if value <= 0:
        raise ConfigError(field, "must be greater than 0")
    return float(value)


def _int_at_least(value: object, field: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(field, "must be an integer")
    if value < minimum:
        raise ConfigError(field, f"must be at least {minimum}")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientConfig:
    """Settings of one `SignalingClient`; validated on construction (raises `ConfigError`).

    Attributes:
        peer_id: this client's ID (40 hex characters).
        urls: one or more hub URLs, tried round-robin: the next one after every failed
            attempt and every dropped session. ``http(s)://`` is rewritten to ``ws(s)://``.
        network_name: the namespace, sent in every envelope and used to filter frames.
        max_peers: the ``maxPeers`` sent in every envelope (the server ignores it).
        keepalive_interval_s: after this long without a frame from the hub, send
            ``{"type":"ping"}`` (the hub answers ``pong``); ``None`` sends no pings and
            disables dead-socket detection, as the JS client does.
        keepalive_timeout_s: a session that receives no frame at all for this long is
            dead: the socket is closed and the client reconnects. ``None`` means twice
            ``keepalive_interval_s``, which leaves room for one unanswered ping.
        connect_timeout_s: how long one attempt may take to open.
        reconnect_base_s, reconnect_cap_s: the n-th retry of an outage waits
            ``min(base * 2**(n-1), cap)``, shortened by jitter.
        reconnect_jitter: the delay is drawn from ``[d * (1 - jitter), d]``; in [0, 1).
        max_reconnect_attempts: retries per outage before giving up (``None``: forever).
        max_frame_bytes: largest frame accepted or sent.
        max_discovered: bound of the discovered-peer table; at the bound the oldest
            entry is forgotten (silently: the peer has not left).
    """

    peer_id: PeerId
    urls: tuple[str, ...]
    network_name: str = GLOBAL_NETWORK
    max_peers: int = 3
    keepalive_interval_s: float | None = 30.0
    keepalive_timeout_s: float | None = None
    connect_timeout_s: float = 10.0
    reconnect_base_s: float = 1.0
    reconnect_cap_s: float = 30.0
    reconnect_jitter: float = 0.5
    max_reconnect_attempts: int | None = None
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    max_discovered: int = 10_000

    def __post_init__(self) -> None:
        """Validate every field."""
        if not is_valid_peer_id(self.peer_id):
            raise ConfigError("peer_id", "must be 40 hex characters")
        urls: object = self.urls  # callers may pass a str or a list despite the annotation
        if not isinstance(urls, tuple):
            raise ConfigError("urls", "must be a tuple of URLs")
        if not self.urls:
            raise ConfigError("urls", "must hold at least one URL")
        for url in self.urls:
            normalize_hub_url(url)
        if not isinstance(self.network_name, str) or not self.network_name:
            raise ConfigError("network_name", "must be a non-empty string")
        _int_at_least(self.max_peers, "max_peers", 1)
        if self.keepalive_interval_s is not None:
            interval = _positive_finite(self.keepalive_interval_s, "keepalive_interval_s")
            if self.keepalive_timeout_s is not None:
                timeout = _positive_finite(self.keepalive_timeout_s, "keepalive_timeout_s")
                if timeout <= interval:
                    raise ConfigError(
                        "keepalive_timeout_s", "must be greater than keepalive_interval_s"
                    )
        elif self.keepalive_timeout_s is not None:
            raise ConfigError("keepalive_timeout_s", "needs keepalive_interval_s")
        _positive_finite(self.connect_timeout_s, "connect_timeout_s")
        base = _positive_finite(self.reconnect_base_s, "reconnect_base_s")
        if _positive_finite(self.reconnect_cap_s, "reconnect_cap_s") < base:
            raise ConfigError("reconnect_cap_s", "must be at least reconnect_base_s")
        jitter = self.reconnect_jitter
        if isinstance(jitter, bool) or not isinstance(jitter, int | float):
            raise ConfigError("reconnect_jitter", "must be a number")
        if not 0 <= jitter < 1:
            raise ConfigError("reconnect_jitter", "must be in [0, 1)")
        if self.max_reconnect_attempts is not None:
            _int_at_least(self.max_reconnect_attempts, "max_reconnect_attempts", 0)
        _int_at_least(self.max_frame_bytes, "max_frame_bytes", 1024)
        _int_at_least(self.max_discovered, "max_discovered", 1)

    @property
    def liveness_timeout_s(self) -> float | None:
        """The effective ``keepalive_timeout_s`` (``None`` when keepalive is off)."""
        if self.keepalive_interval_s is None:
            return None
        if self.keepalive_timeout_s is None:
            return 2 * self.keepalive_interval_s
        return self.keepalive_timeout_s


# --- actions, events, state, stats -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenSocket:
    """Open a WebSocket to `url` (the only one; report `socket_opened` or `socket_failed`)."""

    url: str


@dataclass(frozen=True, slots=True)
class SendText:
    """Send `text` as one text frame on the open socket."""

    text: str


@dataclass(frozen=True, slots=True)
class CloseSocket:
    """Close (or abort, if still opening) the socket; report nothing more about it."""

    code: int
    reason: str


ClientAction: TypeAlias = OpenSocket | SendText | CloseSocket


@dataclass(frozen=True, slots=True)
class SignalingConnected:
    """The socket to `url` opened and the announce was queued."""

    url: str


@dataclass(frozen=True, slots=True)
class SignalingDisconnected:
    """The session ended or an attempt failed; `reconnect_at` is the next try, or ``None``.

    ``code`` is the close code reported by the I/O layer, 1006 when the socket failed or
    was given up on, 1000 after `SignalingClient.disconnect`. The discovered-peer table is
    forgotten: peers learnt before are not thereby gone (their WebRTC links may live on).
    """

    code: int
    reason: str
    reconnect_at: float | None


@dataclass(frozen=True, slots=True)
class PeerDiscovered:
    """A peer of our namespace, first learnt in this session (``data`` as the hub sent it)."""

    peer_id: PeerId
    is_hub: bool
    data: JsonObject


@dataclass(frozen=True, slots=True)
class PeerLeft:
    """A discovered peer left: `reason` is ``"goodbye"`` or ``"peer-disconnected"``.

    ``"goodbye"`` means it left the mesh on purpose; ``"peer-disconnected"`` means the hub
    lost its signaling socket, which a JS 1.0.6 peer survives with its WebRTC links intact.
    """

    peer_id: PeerId
    reason: str


@dataclass(frozen=True, slots=True)
class OfferReceived:
    """A WebRTC offer for us."""

    from_peer_id: PeerId
    sdp: str


@dataclass(frozen=True, slots=True)
class AnswerReceived:
    """A WebRTC answer for us."""

    from_peer_id: PeerId
    sdp: str


@dataclass(frozen=True, slots=True)
class IceCandidateReceived:
    """One trickled ICE candidate for us."""

    from_peer_id: PeerId
    candidate: str
    sdp_mid: str | None
    sdp_mline_index: int | None
    username_fragment: str | None


@dataclass(frozen=True, slots=True)
class ConnectionRejectedReceived:
    """A peer refused our offer (``data.reason`` says why, as the JS peers send it)."""

    from_peer_id: PeerId
    data: JsonObject


@dataclass(frozen=True, slots=True)
class ServerError:
    """The hub's ``error`` frame (it refused a frame of ours)."""

    text: str


@dataclass(frozen=True, slots=True)
class FrameRejected:
    """A frame from the hub could not be decoded or validated; it was dropped."""

    field: str
    reason: str


ClientEvent: TypeAlias = (
    SignalingConnected
    | SignalingDisconnected
    | PeerDiscovered
    | PeerLeft
    | OfferReceived
    | AnswerReceived
    | IceCandidateReceived
    | ConnectionRejectedReceived
    | ServerError
    | FrameRejected
)


class ClientState(enum.Enum):
    """Where a `SignalingClient` is in its life."""

    IDLE = "idle"  # never connected
    CONNECTING = "connecting"  # OpenSocket issued, waiting for socket_opened
    OPEN = "open"  # announced; frames flow
    WAITING_RECONNECT = "waiting_reconnect"  # the link is down; retry at next_deadline()
    CLOSED = "closed"  # disconnect() was called, or the retries ran out


@dataclass(frozen=True, slots=True)
class ClientStats:
    """Read-only counters of one `SignalingClient` (a snapshot)."""

    frames_received: int = 0  # frames fed while OPEN
    frames_rejected: int = 0  # undecodable or invalid (each also a FrameRejected event)
    frames_filtered: int = 0  # other namespace, from ourselves, or for another peer
    frames_ignored: int = 0  # valid but not acted on: pong, connected, cleanup, duplicates...
    frames_sent: int = 0
    pings_sent: int = 0
    connect_attempts: int = 0
    connect_timeouts: int = 0
    sessions_opened: int = 0
    keepalive_timeouts: int = 0
    discovered_evicted: int = 0  # forgotten at the max_discovered bound
    stale_reports: int = 0  # socket facts or frames that arrived when no socket was expected


@dataclass(slots=True)
class _Counters:
    frames_received: int = 0
    frames_rejected: int = 0
    frames_filtered: int = 0
    frames_ignored: int = 0
    frames_sent: int = 0
    pings_sent: int = 0
    connect_attempts: int = 0
    connect_timeouts: int = 0
    sessions_opened: int = 0
    keepalive_timeouts: int = 0
    discovered_evicted: int = 0
    stale_reports: int = 0


class _ClientEnvelope(TypedDict):
    max_peers: int
    network_name: str


# Frames the hub addresses to this socket alone; they never carry a networkName, so the
# reference's namespace filter would hide them from every namespace but "global".
_UNSCOPED: Final = (wire.Connected, wire.Pong, wire.ErrorReply)


# --- the machine ----------------------------------------------------------------------------


class SignalingClient(Outbox[ClientAction, ClientEvent]):
    """The signaling client of one peer, as a sans-IO machine.

    Inputs: application calls (`connect`, `send_offer`, `send_answer`, `send_ice_candidate`,
    `send_connection_rejected`, `disconnect`), socket facts (`socket_opened`,
    `socket_closed`, `socket_failed`), frames (`receive_frame`) and the timer
    (`handle_timer`, due at `next_deadline`). Outputs: `ClientAction`s for the I/O layer
    and `ClientEvent`s for the application, both drained (`drain_actions`, `drain_events`).

    Only one socket exists at a time. Once the machine has queued `CloseSocket`, or the I/O
    layer has reported the socket closed or failed, the I/O layer must report nothing more
    about that socket; socket facts and frames that arrive while no socket is expected
    are counted as ``stale_reports`` and otherwise ignored.

    Reconnection (reference 4.5, without its stall): every failed attempt and every ended
    session schedules a retry on the next URL after ``min(base * 2**(n-1), cap)`` less
    jitter, n counting the failures of the current outage; any close code, 1000 included,
    leads to a retry, only `disconnect` does not. The outage ends, and n restarts, with the
    first frame of a session (the hub's ``connected``), not with the open itself: a hub that
    accepts the socket and then refuses it (1008) keeps the backoff growing.

    The discovered-peer table lives for one session, as in the reference: it is forgotten
    whenever the session ends, and the hub sends the namespace's members again after the
    re-announce. `PeerLeft` is emitted only for a peer in the table, so a peer gets at most
    one `PeerLeft` per `PeerDiscovered` even though the hub sends a departure two or three
    times (goodbye plus two ``peer-disconnected`` variants).
    """

    def __init__(self, config: ClientConfig, *, rng: Rng, wall_offset_s: float = 0.0) -> None:
        """Create an idle client; nothing happens until `connect`.

        Args:
            config: the settings.
            rng: jitter for the reconnect delays.
            wall_offset_s: added to ``now`` to give wall-clock seconds since the epoch
                (for the ``timestamp`` of ``goodbye``).
        """
        super().__init__()
        self._config = config
        self._rng = rng
        self._wall_offset_s = wall_offset_s
        self._urls = tuple(hub_socket_url(url, config.peer_id) for url in config.urls)
        self._url_index = 0
        self._state = ClientState.IDLE
        self._failures = 0  # failed attempts and dropped sessions in the current outage
        self._confirmed = False  # a frame has arrived in this session
        self._connect_deadline: float | None = None
        self._reconnect_at: float | None = None
        self._ping_at: float | None = None
        self._dead_at: float | None = None
        self._discovered: dict[PeerId, None] = {}  # an ordered set, oldest first
        self._counters = _Counters()

    # --- read-only views --------------------------------------------------------------------

    @property
    def config(self) -> ClientConfig:
        """The settings."""
        return self._config

    @property
    def peer_id(self) -> PeerId:
        """This client's ID."""
        return self._config.peer_id

    @property
    def state(self) -> ClientState:
        """The current state."""
        return self._state

    @property
    def url(self) -> str:
        """The URL of the current (or next) attempt, ``peerId`` included."""
        return self._urls[self._url_index]

    @property
    def discovered_peers(self) -> tuple[PeerId, ...]:
        """The peers discovered in this session, oldest first."""
        return tuple(self._discovered)

    def stats(self) -> ClientStats:
        """A snapshot of the counters."""
        return ClientStats(**asdict(self._counters))

    def next_deadline(self) -> float | None:
        """When `handle_timer` is next due, or ``None``; a pure query."""
        if self._state is ClientState.CONNECTING:
            return self._connect_deadline
        if self._state is ClientState.WAITING_RECONNECT:
            return self._reconnect_at
        if self._state is ClientState.OPEN:
            due = [t for t in (self._ping_at, self._dead_at) if t is not None]
            return min(due, default=None)
        return None

    # --- application calls -----------------------------------------------------------------

    def connect(self, now: float) -> None:
        """Start connecting (from IDLE or CLOSED), or retry at once (from WAITING_RECONNECT).

        Queues `OpenSocket`. Raises `UsageError` while connecting or connected.
        """
        if self._state in (ClientState.CONNECTING, ClientState.OPEN):
            raise UsageError("state", f"already {self._state.value}")
        if self._state is not ClientState.WAITING_RECONNECT:
            self._failures = 0
        self._open(now)

    def disconnect(self, now: float) -> None:
        """Leave for good: no reconnect. Idempotent (nothing happens when IDLE or CLOSED).

        When OPEN, queues `SendText` (goodbye); when OPEN or CONNECTING, queues
        `CloseSocket` (1000, ``"Client disconnect"``). Emits `SignalingDisconnected`.
        """
        if self._state in (ClientState.IDLE, ClientState.CLOSED):
            return
        if self._state is ClientState.OPEN:
            goodbye_data: JsonObject = {"peerId": self.peer_id, "timestamp": self._wall_ms(now)}
            self._send(wire.Goodbye(data=goodbye_data, **self._envelope()))
        if self._state in (ClientState.OPEN, ClientState.CONNECTING):
            self._act(CloseSocket(CLOSE_NORMAL, CLIENT_DISCONNECT_REASON))
        self._end_session()
        self._state = ClientState.CLOSED
        self._emit(SignalingDisconnected(CLOSE_NORMAL, CLIENT_DISCONNECT_REASON, None))

    def send_offer(self, target: PeerId, sdp: str, now: float) -> None:
        """Send a WebRTC offer to `target` through the hub; queues `SendText`.

        Raises `UsageError` when not OPEN, for a bad target, or when the frame is too big.
        """
        self._require_open()
        self._check_target(target)
        self._check_str(sdp, "sdp")
        self._send(wire.Offer(sdp=sdp, target_peer_id=target, **self._envelope()))

    def send_answer(self, target: PeerId, sdp: str, now: float) -> None:
        """Send a WebRTC answer to `target` through the hub; queues `SendText`.

        Raises `UsageError` when not OPEN, for a bad target, or when the frame is too big.
        """
        self._require_open()
        self._check_target(target)
        self._check_str(sdp, "sdp")
        self._send(wire.Answer(sdp=sdp, target_peer_id=target, **self._envelope()))

    def send_ice_candidate(
        self,
        target: PeerId,
        candidate: str,
        sdp_mid: str | None,
        sdp_mline_index: int | None,
        now: float,
        username_fragment: str | None = None,
    ) -> None:
        """Send one ICE candidate to `target` through the hub; queues `SendText`.

        Raises `UsageError` when not OPEN, for a bad target or field, or when too big.
        """
        self._require_open()
        self._check_target(target)
        self._check_str(candidate, "candidate")
        if sdp_mid is not None:
            self._check_str(sdp_mid, "sdp_mid")
        if sdp_mline_index is not None and (
            isinstance(sdp_mline_index, bool) or not isinstance(sdp_mline_index, int)
        ):
            raise UsageError("sdp_mline_index", "must be an integer or None")
        if username_fragment is not None:
            self._check_str(username_fragment, "username_fragment")
        msg = wire.IceCandidate(
            candidate=candidate,
            sdp_mid=sdp_mid,
            sdp_mline_index=sdp_mline_index,
            username_fragment=username_fragment,
            target_peer_id=target,
            **self._envelope(),
        )
        self._send(msg)

    def send_connection_rejected(self, target: PeerId, data: JsonObject, now: float) -> None:
        """Tell `target` its offer is refused; queues `SendText`.

        The reference hub does not route this type (it answers with an ``error``).
        Raises `UsageError` when not OPEN, for a bad target, or when `data` is not JSON.
        """
        self._require_open()
        self._check_target(target)
        if not isinstance(data, dict):
            raise UsageError("data", "must be a JSON object")
        self._send(wire.ConnectionRejected(data=data, target_peer_id=target, **self._envelope()))

    # --- socket facts ----------------------------------------------------------------------

    def socket_opened(self, now: float) -> None:
        """The socket asked for by `OpenSocket` is open.

        Queues `SendText` (announce); emits `SignalingConnected`.
        """
        if self._state is not ClientState.CONNECTING:
            self._counters.stale_reports += 1
            return
        self._state = ClientState.OPEN
        self._connect_deadline = None
        self._confirmed = False
        self._counters.sessions_opened += 1
        self._heard_from_hub(now)
        announce_data: JsonObject = {"peerId": self.peer_id}
        self._send(wire.Announce(data=announce_data, **self._envelope()))
        self._emit(SignalingConnected(self.url))

    def socket_closed(self, now: float, *, code: int, reason: str) -> None:
        """The socket closed (the hub closed it, or the opening handshake was refused).

        Emits `SignalingDisconnected`; schedules a reconnect unless the retries ran out.
        """
        if self._state in (ClientState.OPEN, ClientState.CONNECTING):
            self._link_down(now, code, reason)
        else:
            self._counters.stale_reports += 1

    def socket_failed(self, now: float, reason: str) -> None:
        """The socket could not be opened, or failed without a close handshake.

        Emits `SignalingDisconnected` (code 1006); schedules a reconnect unless the retries
        ran out.
        """
        if self._state in (ClientState.OPEN, ClientState.CONNECTING):
            self._link_down(now, CLOSE_ABNORMAL, reason)
        else:
            self._counters.stale_reports += 1

    def receive_frame(self, data: str | bytes, now: float) -> None:
        """Feed one frame from the hub. Never raises for bad input.

        May emit `PeerDiscovered`, `PeerLeft`, `OfferReceived`, `AnswerReceived`,
        `IceCandidateReceived`, `ConnectionRejectedReceived`, `ServerError`, or
        `FrameRejected` (the frame is dropped and counted).
        """
        if self._state is not ClientState.OPEN:
            self._counters.stale_reports += 1
            return
        self._counters.frames_received += 1
        self._heard_from_hub(now)
        if not self._confirmed:
            # The hub sends its first frame ("connected") only once it has accepted the
            # socket; a socket it accepts and then refuses (1008) must not reset the backoff.
            self._confirmed = True
            self._failures = 0
        try:
            self._dispatch(wire.decode_message(data, max_bytes=self._config.max_frame_bytes))
        except DecodeError as err:
            self._counters.frames_rejected += 1
            self._emit(FrameRejected(err.field, err.reason))

    # --- timer -----------------------------------------------------------------------------

    def handle_timer(self, now: float) -> None:
        """Do what is due at `now`; harmless when called early or twice.

        May queue `OpenSocket` (a retry), `CloseSocket` (connect or keepalive timeout) or
        `SendText` (ping); may emit `SignalingDisconnected`.
        """
        if self._state is ClientState.CONNECTING:
            if self._connect_deadline is not None and now >= self._connect_deadline:
                self._counters.connect_timeouts += 1
                self._act(CloseSocket(CLOSE_INTERNAL_ERROR, "connect timeout"))
                self._link_down(now, CLOSE_ABNORMAL, "connect timeout")
        elif self._state is ClientState.WAITING_RECONNECT:
            if self._reconnect_at is not None and now >= self._reconnect_at:
                self._open(now)
        elif self._state is ClientState.OPEN:
            if self._dead_at is not None and now >= self._dead_at:
                self._counters.keepalive_timeouts += 1
                self._act(CloseSocket(CLOSE_INTERNAL_ERROR, "keepalive timeout"))
                self._link_down(now, CLOSE_ABNORMAL, "keepalive timeout")
            elif self._ping_at is not None and now >= self._ping_at:
                self._counters.pings_sent += 1
                self._send(wire.Ping())
                interval = self._config.keepalive_interval_s
                self._ping_at = None if interval is None else now + interval

    # --- internals -------------------------------------------------------------------------

    def _open(self, now: float) -> None:
        self._state = ClientState.CONNECTING
        self._reconnect_at = None
        self._connect_deadline = now + self._config.connect_timeout_s
        self._counters.connect_attempts += 1
        self._act(OpenSocket(self.url))

    def _link_down(self, now: float, code: int, reason: str) -> None:
        """The attempt failed or the session ended: schedule a retry on the next URL."""
        self._end_session()
        self._failures += 1
        self._url_index = (self._url_index + 1) % len(self._urls)
        limit = self._config.max_reconnect_attempts
        if limit is not None and self._failures > limit:
            self._state = ClientState.CLOSED
            self._emit(SignalingDisconnected(code, reason, None))
            return
        self._state = ClientState.WAITING_RECONNECT
        self._reconnect_at = now + self._backoff(self._failures)
        self._emit(SignalingDisconnected(code, reason, self._reconnect_at))

    def _backoff(self, n: int) -> float:
        cfg = self._config
        # Past 2.0 ** 1023 the power itself overflows; a product that overflows is inf.
        delay = min(cfg.reconnect_base_s * 2.0 ** min(n - 1, 1023), cfg.reconnect_cap_s)
        return delay * (1.0 - cfg.reconnect_jitter * self._rng.random())

    def _end_session(self) -> None:
        self._connect_deadline = None
        self._reconnect_at = None
        self._ping_at = None
        self._dead_at = None
        self._confirmed = False
        self._discovered.clear()

    def _heard_from_hub(self, now: float) -> None:
        interval = self._config.keepalive_interval_s
        timeout = self._config.liveness_timeout_s
        if interval is None or timeout is None:
            return
        self._ping_at = now + interval
        self._dead_at = now + timeout

    def _wall_ms(self, now: float) -> int:
        return int((now + self._wall_offset_s) * 1000)

    def _envelope(self) -> _ClientEnvelope:
        # What the JS client's sendSignalingMessage adds to every frame (section 2.1).
        return {"max_peers": self._config.max_peers, "network_name": self._config.network_name}

    def _require_open(self) -> None:
        if self._state is not ClientState.OPEN:
            raise UsageError("state", "not connected")

    def _check_target(self, target: object) -> None:
        if not is_valid_peer_id(target):
            raise UsageError("target", "must be 40 hex characters")
        if target == self.peer_id:
            raise UsageError("target", "must not be this client's own ID")

    @staticmethod
    def _check_str(value: object, field: str) -> None:
        if not isinstance(value, str):
            raise UsageError(field, "must be a string")

    def _send(self, msg: wire.Message) -> None:
        try:
            text = wire.encode_message(msg)
        except (ValueError, TypeError, RecursionError):
            raise UsageError("data", "is not encodable as JSON") from None
        if len(text) > self._config.max_frame_bytes:  # ASCII only: characters are bytes
            raise UsageError(
                "frame", f"{len(text)} bytes exceeds max_frame_bytes={self._config.max_frame_bytes}"
            )
        self._counters.frames_sent += 1
        self._act(SendText(text))

    def _dispatch(self, msg: wire.Message) -> None:
        """Apply the reference's receive pipeline (section 2.4); may raise `DecodeError`."""
        me = self.peer_id
        if isinstance(msg, _UNSCOPED):
            if isinstance(msg, wire.ErrorReply):
                self._emit(ServerError(msg.error))
            else:
                self._counters.frames_ignored += 1
            return
        if (
            msg.network != self._config.network_name
            or msg.from_peer_id == me
            or (msg.target_peer_id and msg.target_peer_id != me)
        ):
            self._counters.frames_filtered += 1
            return
        match msg:
            case wire.PeerDiscovered():
                self._discover(parse_peer_id(msg.data.get("peerId"), "data.peerId"), msg)
            case wire.Announce():  # receive-only in the reference: the hub never sends it
                self._discover(parse_peer_id(msg.from_peer_id, "fromPeerId"), msg)
            case wire.Goodbye():
                self._depart(parse_peer_id(msg.from_peer_id, "fromPeerId"), "goodbye")
            case wire.PeerDisconnected():
                peer = parse_peer_id(msg.data.get("peerId"), "data.peerId")
                self._depart(peer, "peer-disconnected")
            case wire.Offer():
                self._emit(OfferReceived(parse_peer_id(msg.from_peer_id, "fromPeerId"), msg.sdp))
            case wire.Answer():
                self._emit(AnswerReceived(parse_peer_id(msg.from_peer_id, "fromPeerId"), msg.sdp))
            case wire.IceCandidate():
                self._emit(
                    IceCandidateReceived(
                        parse_peer_id(msg.from_peer_id, "fromPeerId"),
                        msg.candidate,
                        msg.sdp_mid,
                        msg.sdp_mline_index,
                        msg.username_fragment,
                    )
                )
            case wire.ConnectionRejected():
                sender = parse_peer_id(msg.from_peer_id, "fromPeerId")
                self._emit(ConnectionRejectedReceived(sender, msg.data))
            case _:
                # cleanup, cleanup-all, ping, hub-auth, renegotiation and ICE-restart frames:
                # the reference hub routes none of them to clients.
                self._counters.frames_ignored += 1

    def _discover(self, peer: PeerId, msg: wire.PeerDiscovered | wire.Announce) -> None:
        if peer == self.peer_id:
            self._counters.frames_filtered += 1
            return
        if peer in self._discovered:
            self._counters.frames_ignored += 1
            return
        if len(self._discovered) >= self._config.max_discovered:
            del self._discovered[next(iter(self._discovered))]
            self._counters.discovered_evicted += 1
        self._discovered[peer] = None
        self._emit(PeerDiscovered(peer, msg.is_hub, msg.data))

    def _depart(self, peer: PeerId, reason: str) -> None:
        if peer not in self._discovered:
            self._counters.frames_ignored += 1  # a repeat notice, or a peer we never knew
            return
        del self._discovered[peer]
        self._emit(PeerLeft(peer, reason))
