"""The `Mesh` machine: signaling client + topology + data-channel control, one input API.

Reference: reference/signaling-and-topology.md sections 6-7 and data-plane.md sections 1,
3, 4.1, 9.5 and 12. Behaviour and the I/O contract: the package docstring; the topology
rules: `peerpigeon.protocol.topology`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Final

from peerpigeon.protocol import client as pc
from peerpigeon.protocol.errors import DecodeError, UsageError
from peerpigeon.protocol.frames import (
    DEFAULT_EVICTION_REASON,
    BadBinaryHeader,
    BinaryGossipHeader,
    BinaryHeader,
    EvictionAnswer,
    EvictionAsk,
    EvictionCancel,
    EvictionNotice,
    GossipMessage,
    Hello,
    OtherFrame,
    SignalingEnvelope,
    decode_data_object,
    encode_eviction,
    encode_eviction_answer,
    encode_eviction_ask,
    encode_eviction_cancel,
    expects_payload,
)
from peerpigeon.protocol.gossip import (
    BinaryMessageReceived,
    Gossip,
    GossipRejected,
    GossipSend,
    GossipStats,
    MessageReceived,
    StreamChunkPaired,
)
from peerpigeon.protocol.gossip.machine import HELLO_WAIT_S
from peerpigeon.protocol.ids import PeerId, is_initiator, is_valid_peer_id
from peerpigeon.protocol.outbox import Outbox
from peerpigeon.protocol.rand import Entropy, Rng
from peerpigeon.protocol.streams import (
    StreamMux,
    StreamMuxStats,
    StreamRejected,
    is_stream_frame_type,
)
from peerpigeon.protocol.topology import (
    REJECT_MAX_PEERS,
    REJECT_ROLE_CONFLICT,
    Evict,
    LinkPhase,
    PeerTable,
    Reject,
    choose_victim,
    decide_offer,
    fill_target,
    plan_dials,
)
from peerpigeon.protocol.wire import GLOBAL_NETWORK, JsonValue, decode_json_object

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
    EvictionRequested,
    FrameRejected,
    MeshAction,
    MeshEvent,
    MeshStats,
    MeshStatus,
    PeerConnected,
    PeerDisconnected,
    PeerDiscovered,
    PeerEvicted,
    PeerInfo,
    PeersUpdated,
    SendData,
    StatusChanged,
)
from .eviction import Agreements, Ask, HeldOffer, Purpose, RingDial
from .fallback import FallbackClock, FallbackState
from .links import Link, LinkTable

__all__ = ["FallbackState", "Mesh"]

_CLOSE_EVICTED: Final = "evicted"
_CLOSE_REPLACED: Final = "replaced by a new offer"
# A link this young without a hello may be a Python peer whose hello is in flight: not a
# victim yet (see `Mesh._not_evictable`).
HELLO_GRACE_S: Final = HELLO_WAIT_S
_REQUEST_ID_BYTES: Final = 8  # an ask's request id: 16 hex characters


@dataclass(slots=True)
class _Counters:
    dials_started: int = 0
    dials_failed: int = 0
    dial_timeouts: int = 0
    offers_accepted: int = 0
    offers_rejected: int = 0
    links_opened: int = 0
    links_closed: int = 0
    evictions_sent: int = 0
    evictions_received: int = 0
    eviction_asks_sent: int = 0
    eviction_asks_accepted: int = 0
    eviction_asks_refused: int = 0
    eviction_asks_timed_out: int = 0
    eviction_asks_cancelled: int = 0
    eviction_answers_dropped: int = 0
    eviction_requests_accepted: int = 0
    eviction_requests_refused: int = 0
    candidates_dropped: int = 0
    data_frames_received: int = 0
    data_frames_rejected: int = 0
    data_frames_ignored: int = 0
    stale_reports: int = 0
    known_forgotten: int = 0
    fallback_switches: int = 0


class Mesh(Outbox[MeshAction, MeshEvent]):
    """One mesh peer as a sans-IO machine: signaling, topology and the data channels.

    Inputs, all with ``now`` (seconds, monotonic):

    * application calls: `connect`, `disconnect`, `connect_to_peer`, `send_message`,
      `send_direct_message`, `send_binary_data`, `broadcast_binary_data`;
    * signaling socket facts (forwarded to the `SignalingClient` it composes):
      `socket_opened`, `socket_frame`, `socket_closed`, `socket_failed`;
    * link facts from the WebRTC adapter, per peer: `link_offer_created`,
      `link_answer_created`, `link_candidate`, `link_open`, `link_text`, `link_binary`,
      `link_closed`, `link_failed`;
    * the timer: `handle_timer`, due at `next_deadline`.

    Outputs: `MeshAction`s (`drain_actions`) and `MeshEvent`s (`drain_events`).

    The contract with the I/O layer and the behaviour are in the package docstring
    (`peerpigeon.protocol.mesh`).
    """

    def __init__(
        self, config: MeshConfig, *, rng: Rng, entropy: Entropy, wall_offset_s: float = 0.0
    ) -> None:
        """Create an idle peer; queues `StatusChanged` (initialized).

        Args:
            config: the settings.
            rng: jitter of backoffs and of the optimiser's period.
            entropy: message ids.
            wall_offset_s: added to ``now`` for wall-clock seconds (wire timestamps).
        """
        super().__init__()
        self._config = config
        self._topology = config.topology()
        self._me = config.peer_id
        self._rng = rng
        self._entropy = entropy
        self._wall_offset_s = wall_offset_s
        self._client: pc.SignalingClient | None = None
        self._urls: tuple[str, ...] = ()
        self._table = PeerTable(self._me, max_known=config.max_known_peers)
        self._links = LinkTable()
        self._departed: dict[PeerId, None] = {}  # linked peers the hub says are gone
        self._gossip = Gossip(
            self._me,
            config.gossip(),
            entropy=entropy,
            network=config.network_name,
            wall_offset_s=wall_offset_s,
            max_frame_bytes=config.max_data_frame_bytes,
            min_peers=config.min_peers,
        )
        self._streams = StreamMux(config.streams, entropy=entropy, wall_offset_s=wall_offset_s)
        self._agreements = Agreements(max_asks=config.max_eviction_asks)
        self._freed: list[Ask] = []  # asks whose victim's link ended: their slot is free
        # Offers that only a young link's slot could take: answered when its grace ends.
        self._waiting: dict[PeerId, tuple[str, float]] = {}  # offerer -> (sdp, decide_at)
        self._epoch = 0  # signaling sessions so far
        self._optimize_at: float | None = None
        self._purge_at: float | None = None
        self._network = config.network_name  # the namespace our links belong to
        self._fallback = FallbackClock(config)
        self._counters = _Counters()
        self._emit(StatusChanged("initialized", peer_id=self._me))

    # --- read-only views ---------------------------------------------------------------------

    @property
    def config(self) -> MeshConfig:
        """The settings."""
        return self._config

    @property
    def peer_id(self) -> PeerId:
        """This peer's ID."""
        return self._me

    @property
    def network_name(self) -> str:
        """The namespace in use (``"global"`` while in fallback)."""
        return self._network

    @property
    def fallback_state(self) -> FallbackState:
        """Where the global fallback is."""
        return self._fallback.state

    @property
    def signaling_state(self) -> pc.ClientState:
        """The signaling client's state (IDLE before `connect`)."""
        return pc.ClientState.IDLE if self._client is None else self._client.state

    def connected_peers(self) -> tuple[PeerId, ...]:
        """Peers with an open data channel, oldest link first."""
        return self._links.open_peers()

    def link_count(self) -> int:
        """Links that take a slot (open, dialling, answering)."""
        return len(self._links)

    def ring_neighbours(self) -> tuple[PeerId, ...]:
        """Our ring predecessor and successor among the known peers (see `topology`)."""
        return self._table.ring_neighbours()

    def discovered_peers(self) -> tuple[DiscoveredPeer, ...]:
        """The known peers, oldest first."""
        me = int(self._me, 16)
        out = []
        for peer in self._table:
            link = self._links.get(peer)
            out.append(
                DiscoveredPeer(
                    peer_id=peer,
                    discovered_at=self._table.discovered_at(peer),
                    distance=int(peer, 16) ^ me,
                    is_connecting=link is not None and link.phase is not LinkPhase.OPEN,
                    is_connected=link is not None and link.phase is LinkPhase.OPEN,
                )
            )
        return tuple(out)

    def peers(self) -> tuple[PeerInfo, ...]:
        """Every link that takes a slot, oldest first."""
        return self._links.infos()

    def status(self) -> MeshStatus:
        """A snapshot like JS ``getStatus()``."""
        cfg = self._config
        client = self._client
        return MeshStatus(
            peer_id=self._me,
            connected=client is not None and client.state is pc.ClientState.OPEN,
            signaling_url=None if client is None else client.url,
            network_name=self._network,
            original_network_name=cfg.network_name,
            is_in_fallback_mode=self._fallback.state is not FallbackState.NORMAL,
            allow_global_fallback=cfg.allow_global_fallback,
            connected_count=len(self.connected_peers()),
            total_peer_count=len(self._links),
            min_peers=cfg.min_peers,
            max_peers=cfg.max_peers,
            discovered_count=len(self._table),
            auto_connect=cfg.auto_connect,
            auto_discovery=cfg.auto_discovery,
            eviction_strategy=cfg.eviction_strategy,
            xor_routing=cfg.xor_routing,
        )

    def stats(self) -> MeshStats:
        """A snapshot of the counters (the gossip ones summed up; see `gossip_stats`)."""
        g = self._gossip.stats()
        counters = asdict(self._counters)
        counters["data_frames_ignored"] += g.ignored
        return MeshStats(
            **counters,
            gossip_duplicates=g.duplicates,
            gossip_dropped=g.other_network + g.loops + g.stale + g.filtered,
            messages_delivered=g.delivered + g.binary_delivered,
            messages_sent=g.originated,
        )

    def gossip_stats(self) -> GossipStats:
        """The gossip layer's counters (relays, drops by cause, routing, binary)."""
        return self._gossip.stats()

    def python_neighbours(self) -> tuple[PeerId, ...]:
        """Neighbours that said hello: Python peers (larger TTLs, binary broadcast)."""
        return self._gossip.python_neighbours()

    def eviction_asks(self) -> tuple[Ask, ...]:
        """Our asks to evict a Python neighbour, waiting for its answer (docs/eviction.md)."""
        return self._agreements.asks()

    def eviction_reservations(self) -> tuple[PeerId, ...]:
        """Neighbours we agreed may evict us, until they do (or cancel, or it lapses)."""
        return self._agreements.reserved()

    def next_deadline(self) -> float | None:
        """When `handle_timer` is next due, or ``None``; a pure query."""
        client = self._client
        best: float | None = None
        for at in (
            None if client is None else client.next_deadline(),
            self._optimize_at,
            self._purge_at,
            self._fallback.deadline(),
            self._links.deadline(),
            self._gossip.next_deadline(),
            self._streams.next_deadline(),
            self._agreements.deadline(),
            min((at for _, at in self._waiting.values()), default=None),
        ):
            if at is not None and (best is None or at < best):
                best = at
        return best

    # --- application calls -------------------------------------------------------------------

    def connect(self, urls: Iterable[str], now: float) -> None:
        """Connect to the hub at `urls` (tried in turn) and start the mesh.

        Queues `OpenSocket`; emits `StatusChanged` (connecting). Raises `ConfigError` for a
        bad URL and `UsageError` when already connected or connecting.
        """
        if self._client is not None and self._client.state is not pc.ClientState.CLOSED:
            raise UsageError("state", "already connected or connecting")
        url_tuple = tuple(urls)
        self._config.client_config(url_tuple, self._network)  # validates the URLs
        self._urls = url_tuple
        self._emit(StatusChanged("connecting", message=f"connecting to {url_tuple[0]}"))
        self._start_client(self._network, now)
        self._optimize_at = now + self._config.optimize_interval_s

    def disconnect(self, now: float) -> None:
        """Leave the mesh: close every link, say goodbye to the hub. Idempotent.

        Queues `CloseLink` per link, then the client's goodbye `SendText` and `CloseSocket`;
        emits `PeerDisconnected` (``"mesh disconnected"``) per connected peer,
        `PeersUpdated` and `StatusChanged` (disconnected). Known peers are forgotten and
        the fallback is reset to the configured namespace.
        """
        had_links = bool(self._links)
        self._agreements.clear()  # the links close: nothing to cancel or answer
        self._freed.clear()
        self._waiting.clear()
        for peer in self._links.drain_lingering():
            self._act(CloseLink(peer, REASON_MESH_DISCONNECTED))
        for peer in list(self._links):
            self._drop_link(peer, REASON_MESH_DISCONNECTED, now, close=True, retry=False)
        client = self._client
        if client is not None:
            client.disconnect(now)
            self._pump(now)
        self._table.clear()
        self._departed.clear()
        self._optimize_at = self._purge_at = None
        self._fallback.reset()
        self._network = self._config.network_name
        self._gossip.set_network(self._network)
        if had_links:
            self._emit(PeersUpdated())

    def connect_to_peer(self, peer: PeerId, now: float) -> bool:
        """Dial `peer` now if the rules allow it; returns whether a dial started.

        It does not when: a link to it exists, we are not the initiator (JS refuses offers
        from the smaller ID; the other side must dial), the hub session is not open, or
        every slot is taken. May queue `CreateOffer`. Raises `UsageError` for a bad ID or
        our own.
        """
        if not is_valid_peer_id(peer):
            raise UsageError("peer", "must be 40 hex characters")
        if peer == self._me:
            raise UsageError("peer", "cannot connect to yourself")
        if peer in self._links or not is_initiator(self._me, peer):
            return False
        if self.signaling_state is not pc.ClientState.OPEN:
            return False
        if len(self._links) >= self._config.max_peers:
            return False
        self._learn(peer, now)
        self._dial(peer, now)
        return True

    def send_message(self, content: str, now: float) -> str:
        """Broadcast chat `content` to the whole mesh (gossip ``chat``); returns its id.

        Queues `SendData` to every neighbour (none: nobody hears it; unlike JS there is no
        local echo). Raises `UsageError` unless `content` is a non-empty string (as JS
        requires) or when the message could outgrow ``max_message_bytes``.
        """
        msg_id = self._gossip.broadcast(content, now)
        self._pump_gossip(now)
        return msg_id

    def send_direct_message(self, peer: PeerId, content: JsonValue, now: float) -> str:
        """Send `content` to `peer`, any peer of the mesh, as a gossip ``dm``; returns its id.

        It goes to `peer` if it is a neighbour, else hop by hop towards it by XOR distance
        (`peerpigeon.protocol.gossip.routing`). Queues one `SendData`. Raises `UsageError`
        for a bad ID or our own, content that is not JSON, a message that could outgrow
        ``max_message_bytes`` or the channels' maximum, or when we have no neighbour.
        """
        msg_id = self._gossip.send_direct(peer, content, now)
        self._pump_gossip(now)
        return msg_id

    def send_binary_data(self, peer: PeerId, data: bytes, now: float) -> None:
        """Send `data` to the neighbour `peer` (``__BINARY__`` header, then the bytes).

        Queues two `SendData`s. Raises `UsageError` when `peer` is not a connected neighbour
        or `data` is larger than ``max_binary_bytes`` or the channel's negotiated maximum
        (JS sends and loses it).
        """
        self._gossip.send_binary(peer, data, now)
        self._pump_gossip(now)

    def broadcast_binary_data(self, data: bytes, now: float) -> str:
        """Flood `data` to the Python peers of the mesh; returns its id.

        JS peers never get it (JS's own ``broadcastBinaryData`` throws). Raises
        `UsageError` when no neighbour is a Python peer or `data` is too large.
        """
        msg_id = self._gossip.broadcast_binary(data, now)
        self._pump_gossip(now)
        return msg_id

    # --- application calls: streams (peerpigeon.protocol.streams) ----------------------------

    def open_stream(
        self,
        peer: PeerId,
        now: float,
        *,
        stream_id: str | None = None,
        type: str = "binary",  # the reference's metadata field
        filename: str | None = None,
        mime_type: str | None = None,
        total_size: int | None = None,
    ) -> str:
        """Open a byte stream to the neighbour `peer`; returns its id (``__STREAM_INIT__``).

        Python neighbours get a credit window (`stream_available`); JS neighbours none (pace
        on the channel's buffered amount). Raises `UsageError` when `peer` is not a
        connected neighbour (streams are neighbour-only) or has too many streams.
        """
        link = self._links.get(peer)
        if link is None or link.phase is not LinkPhase.OPEN:
            raise UsageError("peer", "not a connected neighbour")
        sid = self._streams.open_stream(
            peer,
            now,
            flow_control=peer in self._gossip.python_neighbours(),
            stream_id=stream_id,
            type=type,
            filename=filename,
            mime_type=mime_type,
            total_size=total_size,
        )
        self._pump_streams(now)
        return sid

    def stream_available(self, peer: PeerId, stream_id: str) -> int | None:
        """Bytes the outgoing stream may send now (``None``: no credit limit, a JS peer)."""
        return self._streams.available(peer, stream_id)

    def stream_send(self, peer: PeerId, stream_id: str, data: bytes, now: float) -> None:
        """Send `data` on an outgoing stream (within `stream_available`); see `StreamMux.send`."""
        self._streams.send(peer, stream_id, data, now)
        self._pump_streams(now)

    def stream_end(self, peer: PeerId, stream_id: str, now: float) -> None:
        """Finish an outgoing stream (``__STREAM_END__`` with size and sha256)."""
        self._streams.end_stream(peer, stream_id, now)
        self._pump_streams(now)

    def stream_abort(
        self, peer: PeerId, stream_id: str, reason: str, now: float, *, outgoing: bool = True
    ) -> None:
        """Abort our stream (``outgoing=False``: one from `peer`); emits `StreamAborted`."""
        self._streams.abort_stream(peer, stream_id, reason, now, outgoing=outgoing)
        self._pump_streams(now)

    def stream_acknowledge(self, peer: PeerId, stream_id: str, n: int, now: float) -> None:
        """The application consumed `n` bytes of an incoming stream: credit goes back."""
        self._streams.acknowledge(peer, stream_id, n, now)
        self._pump_streams(now)

    def stream_stats(self) -> StreamMuxStats:
        """The stream layer's counters."""
        return self._streams.stats()

    def open_stream_count(self) -> tuple[int, int]:
        """(outgoing, incoming) streams open now."""
        return self._streams.open_count()

    def stream_buffered_bytes(self) -> int:
        """Bytes of incoming streams delivered and not yet read (acknowledged)."""
        return self._streams.buffered_bytes()

    # --- signaling socket facts --------------------------------------------------------------

    def socket_opened(self, now: float) -> None:
        """The signaling socket opened; see `SignalingClient.socket_opened`."""
        if self._client is None:
            self._counters.stale_reports += 1
            return
        self._client.socket_opened(now)
        self._after_input(now)

    def socket_frame(self, data: str | bytes, now: float) -> None:
        """One frame from the hub; never raises for bad input (emits `FrameRejected`)."""
        if self._client is None:
            self._counters.stale_reports += 1
            return
        self._client.receive_frame(data, now)
        self._after_input(now)

    def socket_closed(self, now: float, *, code: int, reason: str) -> None:
        """The signaling socket closed; the client reconnects with backoff."""
        if self._client is None:
            self._counters.stale_reports += 1
            return
        self._client.socket_closed(now, code=code, reason=reason)
        self._after_input(now)

    def socket_failed(self, now: float, reason: str) -> None:
        """The signaling socket failed or could not open; the client reconnects."""
        if self._client is None:
            self._counters.stale_reports += 1
            return
        self._client.socket_failed(now, reason)
        self._after_input(now)

    # --- link facts --------------------------------------------------------------------------

    def link_offer_created(self, peer: PeerId, sdp: str, now: float) -> None:
        """Our offer to `peer` is ready: it goes to the hub (`SendText`).

        If the hub session is not open the dial is abandoned (`CloseLink`, retry later).
        """
        link = self._links.get(peer)
        if link is None or link.phase is not LinkPhase.DIALING or link.offer_sent:
            self._counters.stale_reports += 1
            return
        client = self._client
        if client is None or client.state is not pc.ClientState.OPEN:
            self._dial_failed(peer, now, REASON_CONNECTION_FAILED, backoff_s=None)
        else:
            link.offer_sent = True
            client.send_offer(peer, sdp, now)
        self._after_input(now)

    def link_answer_created(self, peer: PeerId, sdp: str, now: float) -> None:
        """Our answer to `peer` is ready: it goes to the hub (`SendText`)."""
        link = self._links.get(peer)
        if link is None or link.phase is not LinkPhase.ANSWERING:
            self._counters.stale_reports += 1
            return
        link.phase = LinkPhase.CONNECTING
        client = self._client
        if client is not None and client.state is pc.ClientState.OPEN:
            client.send_answer(peer, sdp, now)
        # Otherwise the answer is lost: the link times out, and the dialler retries.
        self._after_input(now)

    def link_candidate(
        self,
        peer: PeerId,
        candidate: str,
        sdp_mid: str | None,
        sdp_mline_index: int | None,
        username_fragment: str | None,
        now: float,
    ) -> None:
        """A trickling backend gathered a local candidate: it goes to the hub."""
        client = self._client
        if peer not in self._links or client is None or client.state is not pc.ClientState.OPEN:
            self._counters.stale_reports += 1
            return
        try:
            client.send_ice_candidate(
                peer, candidate, sdp_mid, sdp_mline_index, now, username_fragment
            )
        except UsageError:
            self._counters.candidates_dropped += 1
        self._after_input(now)

    def link_open(self, peer: PeerId, max_message_size: int, now: float) -> None:
        """The data channel to `peer` is open (0: no size limit).

        Emits `PeerConnected` and `PeersUpdated`.
        """
        link = self._links.get(peer)
        if link is None or link.phase is LinkPhase.OPEN:
            self._counters.stale_reports += 1
            return
        link.phase = LinkPhase.OPEN
        link.deadline = None
        link.opened_at = now
        link.max_message_size = max(0, max_message_size)
        self._table.dial_succeeded(peer)
        self._counters.links_opened += 1
        self._emit(PeerConnected(peer))
        self._emit(PeersUpdated())
        self._gossip.peer_connected(peer, link.max_message_size, now)
        self._pump_gossip(now)
        self._after_input(now)

    def link_text(self, peer: PeerId, text: str, now: float) -> None:
        """One text frame from `peer`; never raises for bad input.

        May emit `MessageReceived`, `PeerEvicted` + `PeerDisconnected` (eviction notice),
        or `FrameRejected`; may queue `SendData` (relays) or `CloseLink`. A control frame
        whose sender field names a peer other than `peer` (``from`` of an eviction notice
        or hello, ``fromPeerId`` of a signaling wrapper, the last hop of a gossip path) is
        rejected: a neighbour may not speak for another peer (W-CTL-1).
        """
        link = self._links.get(peer)
        if link is None or link.phase is not LinkPhase.OPEN:
            self._counters.stale_reports += 1
            return
        self._counters.data_frames_received += 1
        try:
            obj = decode_json_object(text, max_bytes=self._config.max_data_frame_bytes)
            if obj.get("type") == "gossip":  # the hot path: straight to the gossip layer
                self._gossip.receive_json(peer, obj, now)
                self._pump_gossip(now)
                self._after_input(now)
                return
            frame = decode_data_object(obj, max_path=self._config.max_path_length)
        except DecodeError as err:
            self._bad_frame(link, err.field, err.reason, now)
        else:
            match frame:
                case EvictionNotice(from_peer=claimed):
                    if claimed is not None and claimed.lower() != peer.lower():
                        self._bad_frame(link, "from", "is not the sending neighbour", now)
                    else:
                        self._on_evicted(peer, frame, now)
                case EvictionAsk() | EvictionAnswer() | EvictionCancel():
                    if frame.from_peer.lower() != peer.lower():
                        self._bad_frame(link, "from", "is not the sending neighbour", now)
                    else:
                        self._on_agreement_frame(peer, frame, now)
                case SignalingEnvelope(from_peer_id=claimed):
                    if claimed is not None and claimed.lower() != peer.lower():
                        self._bad_frame(link, "fromPeerId", "is not the sending neighbour", now)
                    else:
                        self._counters.data_frames_ignored += 1  # renegotiation: media layer
                case (
                    GossipMessage()
                    | Hello()
                    | BinaryHeader()
                    | BinaryGossipHeader()
                    | BadBinaryHeader()
                ):
                    self._gossip.receive_frame(peer, frame, now)
                    self._pump_gossip(now)
                case OtherFrame():
                    if expects_payload(frame):  # a stream chunk: its payload must be paired
                        self._gossip.receive_frame(peer, frame, now)
                        self._pump_gossip(now)
                    elif is_stream_frame_type(frame.frame_type):
                        self._streams.receive_frame(peer, frame.body, None, now)
                        self._pump_streams(now)
                    else:
                        self._counters.data_frames_ignored += 1  # DHT and others: later layers
        self._after_input(now)

    def link_binary(self, peer: PeerId, data: bytes, now: float) -> None:
        """One binary frame from `peer`: the payload of its oldest binary header.

        May emit `BinaryMessageReceived` or `FrameRejected` (no header, wrong size); may
        queue `SendData` (a broadcast relayed to Python neighbours).
        """
        link = self._links.get(peer)
        if link is None or link.phase is not LinkPhase.OPEN:
            self._counters.stale_reports += 1
            return
        self._counters.data_frames_received += 1
        self._gossip.receive_binary(peer, data, now)
        self._pump_gossip(now)
        self._after_input(now)

    def link_closed(self, peer: PeerId, reason: str, now: float) -> None:
        """The link to `peer` ended without error (either side closed it).

        Emits `PeerDisconnected` (``"data channel closed"``) if it was open.
        """
        self._link_ended(peer, REASON_DATA_CHANNEL_CLOSED, reason, now)

    def link_failed(self, peer: PeerId, reason: str, now: float) -> None:
        """The link to `peer` failed (ICE, DTLS, SCTP, or a bad offer or answer).

        Emits `PeerDisconnected` (``"connection failed"``) if it was open; a dial that
        failed is retried with backoff.
        """
        self._link_ended(peer, REASON_CONNECTION_FAILED, reason, now)

    # --- timer -------------------------------------------------------------------------------

    def handle_timer(self, now: float) -> None:
        """Do what is due at `now`; harmless when called early or twice.

        May time out dials and answers (`CloseLink`), close evicted links, forget
        unconfirmed peers, switch the fallback, and run the optimiser (`CreateOffer`,
        eviction `SendData`); the client may reconnect or ping.
        """
        client = self._client
        if client is not None:
            client.handle_timer(now)
            self._pump(now)
        self._gossip.handle_timer(now)
        self._pump_gossip(now)
        self._streams.handle_timer(now)
        self._pump_streams(now)
        for ask in self._agreements.expire(now):
            self._ask_timed_out(ask, now)
        for peer, (sdp, at) in list(self._waiting.items()):
            if at <= now:
                del self._waiting[peer]
                self._answer_offer(peer, sdp, now, may_wait=False)
        for peer in self._links.timed_out(now):
            link = self._links.get(peer)
            self._counters.dial_timeouts += int(link is not None and link.initiator)
            self._dial_failed(peer, now, REASON_CONNECTION_TIMEOUT, backoff_s=None)
        if self._purge_at is not None and now >= self._purge_at:
            self._purge_at = None
            self._purge_unconfirmed()
        self._fallback_timers(now)
        if self._optimize_at is not None and now >= self._optimize_at:
            self._optimize(now)
        # Last: the optimiser may just have evicted (with eviction_linger_s = 0, due now).
        for peer in self._links.lingers_due(now):
            self._act(CloseLink(peer, _CLOSE_EVICTED))
        self._after_input(now)

    # --- internals: signaling ----------------------------------------------------------------

    def _start_client(self, network: str, now: float) -> None:
        client = pc.SignalingClient(
            self._config.client_config(self._urls, network),
            rng=self._rng,
            wall_offset_s=self._wall_offset_s,
        )
        self._client = client
        client.connect(now)
        self._pump(now)

    def _switch_client(self, network: str, now: float) -> None:
        """Leave the hub session and announce in `network` in a new one."""
        old = self._client
        if old is not None:
            old.disconnect(now)
            for action in old.drain_actions():
                self._act(action)
            old.drain_events()  # the replaced session's SignalingDisconnected
        self._table.clear()
        self._departed.clear()
        self._purge_at = None
        for peer in self._links:
            self._table.add(peer, now, self._epoch, protect=self._links)
        self._start_client(network, now)

    def _pump(self, now: float) -> None:
        """Move the client's actions to ours and act on its events, in order."""
        client = self._client
        if client is None:
            return
        for action in client.drain_actions():
            self._act(action)
        for event in client.drain_events():
            if self._client is not client:
                break  # a handler replaced the client; the old one's events are moot
            self._on_client_event(event, now)
            for action in client.drain_actions():
                self._act(action)

    def _on_client_event(self, event: pc.ClientEvent, now: float) -> None:
        match event:
            case pc.SignalingConnected(url=url):
                self._epoch += 1
                self._purge_at = now + self._config.rediscovery_grace_s
                self._emit(StatusChanged("connected", message=f"connected to {url}"))
                self._optimize_soon(now)
            case pc.SignalingDisconnected(reason=reason):
                self._purge_at = None
                self._emit(StatusChanged("disconnected", message=reason))
            case pc.PeerDiscovered(peer_id=peer, is_hub=is_hub):
                if not is_hub:
                    self._on_discovered(peer, now)
            case pc.PeerLeft(peer_id=peer, reason=reason):
                self._on_left(peer, reason, now)
            case pc.OfferReceived(from_peer_id=peer, sdp=sdp):
                self._on_offer(peer, sdp, now)
            case pc.AnswerReceived(from_peer_id=peer, sdp=sdp):
                link = self._links.get(peer)
                if link is None or link.phase is not LinkPhase.DIALING or not link.offer_sent:
                    self._counters.stale_reports += 1
                    return
                link.phase = LinkPhase.CONNECTING
                self._act(AcceptAnswer(peer, sdp))
            case pc.IceCandidateReceived():
                self._on_remote_candidate(event)
            case pc.ConnectionRejectedReceived(from_peer_id=peer, data=data):
                link = self._links.get(peer)
                if link is None or not link.initiator or link.phase is LinkPhase.OPEN:
                    self._counters.stale_reports += 1
                    return
                why = data.get("reason")
                self._emit(
                    StatusChanged(
                        "info",
                        message=f"{peer[:8]}... refused our offer: {why}",
                        peer_id=peer,
                    )
                )
                failures = self._table.failures(peer) + 1
                backoff = self._delay(
                    failures, self._config.reject_backoff_s, self._config.reject_backoff_cap_s
                )
                self._dial_failed(peer, now, REASON_CONNECTION_FAILED, backoff_s=backoff)
            case pc.ServerError(text=text):
                self._emit(StatusChanged("warning", message=f"hub error: {text}"))
            case pc.FrameRejected(field=field, reason=reason):
                self._emit(FrameRejected(None, "signaling", field, reason))

    def _on_discovered(self, peer: PeerId, now: float) -> None:
        if self._fallback.state is FallbackState.PROBING:
            self._leave_fallback(now)
        self._departed.pop(peer, None)
        if self._learn(peer, now):
            self._emit(PeerDiscovered(peer))
            if self._worth_optimizing(peer):
                self._optimize_soon(now)

    def _on_left(self, peer: PeerId, reason: str, now: float) -> None:
        link = self._links.get(peer)
        if reason == "goodbye":
            if link is not None:
                self._drop_link(peer, REASON_LEFT_NETWORK, now, close=True, retry=False)
                self._emit(PeersUpdated())
            self._forget(peer)
        elif link is not None and link.phase is LinkPhase.OPEN:
            # The hub lost its socket; a JS 1.0.6 peer keeps its links, so we keep ours.
            self._departed[peer] = None
            return
        else:
            if link is not None:
                self._drop_link(peer, REASON_CONNECTION_FAILED, now, close=True, retry=False)
                self._emit(PeersUpdated())
            self._forget(peer)
        self._optimize_soon(now)

    def _on_remote_candidate(self, event: pc.IceCandidateReceived) -> None:
        peer = event.from_peer_id
        link = self._links.get(peer)
        if link is None:
            self._counters.stale_reports += 1
            return
        if link.candidates >= self._config.max_candidates_per_link:
            self._counters.candidates_dropped += 1
            return
        link.candidates += 1
        self._act(
            AddRemoteCandidate(
                peer,
                event.candidate,
                event.sdp_mid,
                event.sdp_mline_index,
                event.username_fragment,
            )
        )

    def _on_offer(self, peer: PeerId, sdp: str, now: float) -> None:
        if self._fallback.state is FallbackState.PROBING:
            self._leave_fallback(now)
        if self._links.stop_lingering(peer):
            self._act(CloseLink(peer, _CLOSE_EVICTED))
        link = self._links.get(peer)
        if link is not None and link.phase is LinkPhase.OPEN:
            self._counters.stale_reports += 1  # JS ignores an offer on an open link too
            return
        self._learn(peer, now)
        if self._agreements.replace_offer(peer, sdp):
            return  # we wait for a victim's answer on its behalf: the new offer waits instead
        if peer in self._waiting:
            self._waiting[peer] = (sdp, self._waiting[peer][1])
            return
        if link is not None and not link.initiator:
            # The dialler gave up and tries again: the new offer replaces our answer.
            self._links.pop(peer)
            self._act(CloseLink(peer, _CLOSE_REPLACED))
        self._answer_offer(peer, sdp, now)

    def _answer_offer(self, peer: PeerId, sdp: str, now: float, *, may_wait: bool = True) -> None:
        """Accept, refuse, or hold the offer while a Python victim is asked to agree.

        An offer that only a young link (no hello yet) could make room for waits until the
        young links' grace ends, then is decided again (once): by then the link is a Python
        peer to ask, or a JS peer to evict as the reference would.
        """
        slots = self._links.slots()
        protected = self._protected()
        decision = decide_offer(
            self._me, peer, slots, protected, self._topology, fragile=self._not_evictable(now)
        )
        if (
            may_wait
            and isinstance(decision, Reject)
            and decision.reason == REJECT_MAX_PEERS
            and len(self._waiting) < self._config.max_eviction_asks
        ):
            young = self._young(now)
            alt = decide_offer(
                self._me,
                peer,
                slots,
                protected,
                self._topology,
                fragile=self._not_evictable(now, young=False),
            )
            if young and isinstance(alt, Evict):
                self._waiting[peer] = (sdp, max(young.values()))
                return
        if isinstance(decision, Evict):
            made = self._make_room(decision.victim, HeldOffer(peer, sdp), now)
            if made is None:
                return  # held: answered once the victim agrees (or refused if it does not)
            if not made:
                decision = Reject(REJECT_MAX_PEERS)
        if isinstance(decision, Reject):
            self._reject_offer(peer, decision.reason, now)
            return
        self._accept_offer(peer, sdp, now)

    def _reject_offer(self, peer: PeerId, reason: str, now: float) -> None:
        self._counters.offers_rejected += 1
        client = self._client
        if client is not None and client.state is pc.ClientState.OPEN:
            client.send_connection_rejected(peer, {"reason": reason}, now)
        if reason == REJECT_ROLE_CONFLICT:
            # They want a link and cannot have one their way; we may dial them.
            self._optimize_soon(now)

    def _accept_offer(self, peer: PeerId, sdp: str, now: float) -> None:
        self._counters.offers_accepted += 1
        self._links.add(
            Link(
                peer,
                initiator=False,
                phase=LinkPhase.ANSWERING,
                started_at=now,
                deadline=now + self._config.connection_timeout_s,
            )
        )
        self._act(AcceptOffer(peer, sdp))
        self._emit(PeersUpdated())

    # --- internals: links --------------------------------------------------------------------

    def _dial(self, peer: PeerId, now: float) -> None:
        if self._links.stop_lingering(peer):
            self._act(CloseLink(peer, _CLOSE_EVICTED))
        self._counters.dials_started += 1
        self._links.add(
            Link(
                peer,
                initiator=True,
                phase=LinkPhase.DIALING,
                started_at=now,
                deadline=now + self._config.connection_timeout_s,
            )
        )
        self._act(CreateOffer(peer))
        self._emit(PeersUpdated())

    def _dial_failed(
        self, peer: PeerId, now: float, reason: str, *, backoff_s: float | None
    ) -> None:
        """Abandon a link that has not opened (or close an open one) and back off."""
        link = self._links.get(peer)
        if link is None:
            return
        self._drop_link(peer, reason, now, close=True, retry=True, backoff_s=backoff_s)
        self._emit(PeersUpdated())
        self._optimize_soon(now)

    def _drop_link(
        self,
        peer: PeerId,
        reason: str,
        now: float,
        *,
        close: bool,
        retry: bool,
        detail: str | None = None,
        backoff_s: float | None = None,
    ) -> None:
        """Forget the link to `peer`; `close` queues `CloseLink`; `retry` sets a backoff."""
        link = self._links.pop(peer)
        self._gossip.peer_lost(peer, now)
        self._streams.peer_lost(peer, now)
        self._freed += self._agreements.link_lost(peer)
        if close:
            self._act(CloseLink(peer, reason))
        if link.phase is LinkPhase.OPEN:
            self._counters.links_closed += 1
            self._emit(PeerDisconnected(peer, reason, detail))
        elif link.initiator:
            self._counters.dials_failed += 1
        if retry and link.initiator:
            if backoff_s is None:
                failures = self._table.failures(peer) + 1
                cfg = self._config
                backoff_s = self._delay(failures, cfg.dial_backoff_base_s, cfg.dial_backoff_cap_s)
            self._table.dial_failed(peer, now + backoff_s)
        if peer in self._departed:
            del self._departed[peer]
            self._forget(peer)

    def _link_ended(self, peer: PeerId, reason: str, detail: str, now: float) -> None:
        if self._links.stop_lingering(peer):
            return  # the evicted peer closed first: done
        if peer not in self._links:
            self._counters.stale_reports += 1
            return
        self._drop_link(peer, reason, now, close=False, retry=True, detail=detail)
        self._emit(PeersUpdated())
        self._optimize_soon(now)
        self._after_input(now)

    def _evict(self, peer: PeerId, reason: str, now: float) -> None:
        """Evict `peer`: notice on the channel now, `CloseLink` after the linger."""
        link = self._links.pop(peer)
        self._gossip.peer_lost(peer, now)
        self._streams.peer_lost(peer, now)
        self._freed += self._agreements.link_lost(peer)
        self._table.hold_off(peer, now + self._config.evicted_backoff_s)
        if link.phase is not LinkPhase.OPEN:
            self._act(CloseLink(peer, REASON_EVICTED_PREFIX + reason))
            return
        self._counters.evictions_sent += 1
        self._counters.links_closed += 1
        self._act(SendData(peer, encode_eviction(EvictionNotice(reason, self._me))))
        self._links.linger(peer, now + self._config.eviction_linger_s)
        self._emit(PeerEvicted(peer, reason, initiated_by_peer=False))
        self._emit(PeerDisconnected(peer, REASON_EVICTED_PREFIX + reason))
        self._emit(PeersUpdated())

    def _on_evicted(self, peer: PeerId, notice: EvictionNotice, now: float) -> None:
        reason = notice.reason or DEFAULT_EVICTION_REASON
        self._links.pop(peer)
        self._gossip.peer_lost(peer, now)
        self._streams.peer_lost(peer, now)
        self._freed += self._agreements.link_lost(peer)
        self._counters.evictions_received += 1
        self._counters.links_closed += 1
        self._act(CloseLink(peer, REASON_EVICTED_PREFIX + reason))
        self._table.hold_off(peer, now + self._config.evicted_backoff_s)
        self._emit(PeerEvicted(peer, reason, initiated_by_peer=True))
        self._emit(PeerDisconnected(peer, REASON_EVICTED_PREFIX + reason))
        self._emit(PeersUpdated())
        if peer in self._departed:
            del self._departed[peer]
            self._forget(peer)
        self._optimize_soon(now)

    def _bad_frame(self, link: Link, field: str, reason: str, now: float) -> None:
        self._counters.data_frames_rejected += 1
        link.bad_frames += 1
        self._emit(FrameRejected(link.peer, "data", field, reason))
        if link.bad_frames > self._config.max_bad_frames:
            self._drop_link(link.peer, REASON_PROTOCOL_VIOLATION, now, close=True, retry=True)
            self._emit(PeersUpdated())

    # --- internals: gossip -------------------------------------------------------------------

    def _pump_gossip(self, now: float) -> None:
        """Move the gossip layer's sends to our actions and its events to ours."""
        gossip = self._gossip
        for action in gossip.drain_actions():
            match action:
                case GossipSend(peer=peer, data=data):
                    self._act(SendData(peer, data))
        for event in gossip.drain_events():
            match event:
                case GossipRejected(peer=peer, field=field, reason=reason):
                    link = self._links.get(peer)
                    if link is not None:
                        self._bad_frame(link, field, reason, now)
                case MessageReceived() | BinaryMessageReceived():
                    self._emit(event)
                case StreamChunkPaired(peer=peer, header=header, data=data):
                    self._streams.receive_frame(peer, header, data, now)
                    self._pump_streams(now)

    # --- internals: streams ------------------------------------------------------------------

    def _pump_streams(self, now: float) -> None:
        """Move the stream layer's sends to our actions and its events to ours."""
        for action in self._streams.drain_actions():
            self._act(SendData(action.peer, action.data))
        for event in self._streams.drain_events():
            if isinstance(event, StreamRejected):
                self._counters.data_frames_rejected += 1
                self._emit(FrameRejected(event.peer, "data", event.field, event.reason))
            else:
                self._emit(event)

    # --- internals: topology -----------------------------------------------------------------

    def _protected(self) -> tuple[PeerId, ...]:
        return self._table.ring_neighbours() if self._topology.ring_enabled else ()

    def _young(self, now: float) -> dict[PeerId, float]:
        """Open links without a hello still within their grace, and when it ends."""
        out: dict[PeerId, float] = {}
        for peer in self._links:
            link = self._links.get(peer)
            opened = None if link is None else link.opened_at
            if opened is None or self._gossip.reported_degree(peer) is not None:
                continue
            if now < opened + HELLO_GRACE_S:
                out[peer] = opened + HELLO_GRACE_S
        return out

    def _not_evictable(self, now: float, *, young: bool = True) -> tuple[PeerId, ...]:
        """Neighbours that may not be victims now (docs/eviction.md).

        * *Fragile*: a Python neighbour's last hello says how many open links it has (us
          included) and, from newer peers, its ``min_peers`` (else ours is assumed); at or
          below it, it would refuse (or, an older Python peer, be taken below its minimum).
        * *Young*: a link open for less than `HELLO_GRACE_S` without a hello may be a Python
          peer whose hello is in flight; it becomes evictable as what its hello (or the
          lack of one) shows.
        * *Asked*: a victim we are asking already; *spared*: one that refused (or ignored)
          an ask less than ``eviction_refused_hold_s`` ago.

        JS peers report nothing: the reference's eviction rules apply to them, and a JS
        victim may drop below its ``minPeers`` (it re-dials on its own).
        """
        gossip = self._gossip
        asked = self._agreements.victims()
        out: list[PeerId] = []
        for peer in self._links:
            link = self._links.get(peer)
            if link is None or not link.is_open:
                continue  # closing a link that is not open takes nobody's open link
            if peer in asked or link.spare_until > now:
                out.append(peer)
                continue
            reported = gossip.reported_degree(peer)
            if reported is None:
                opened = link.opened_at
                if young and opened is not None and now < opened + HELLO_GRACE_S:
                    out.append(peer)
                continue
            degree, their_min = reported
            floor = self._config.min_peers if their_min is None else their_min
            if degree <= floor:
                out.append(peer)
        return tuple(out)

    # --- internals: the eviction agreement (docs/eviction.md) ----------------------------------

    def _make_room(self, victim: PeerId, purpose: Purpose, now: float) -> bool | None:
        """Evict `victim` for `purpose`: True done, None asked (wait), False not allowed.

        A victim whose hello offers the agreement is asked first (``__PP_EVICT_ASK__``);
        other links are evicted at once, as in the reference. Either way, while we hold
        reservations we never drop below what we promised (`Agreements.may_evict`).
        """
        link = self._links.get(victim)
        if link is None:
            return False
        agreements = self._agreements
        if link.is_open:
            if not agreements.may_evict(victim, self.connected_peers(), self._config.min_peers):
                return False
            if self._gossip.agrees_to_evictions(victim):
                if not agreements.can_ask():
                    return False
                request_id = self._entropy.token_bytes(_REQUEST_ID_BYTES).hex()
                deadline = now + self._config.eviction_ask_timeout_s
                agreements.start(request_id, victim, purpose, deadline)
                self._counters.eviction_asks_sent += 1
                self._act(SendData(victim, encode_eviction_ask(EvictionAsk(self._me, request_id))))
                return None
        self._evict(victim, DEFAULT_EVICTION_REASON, now)
        return True

    def _on_agreement_frame(
        self, peer: PeerId, frame: EvictionAsk | EvictionAnswer | EvictionCancel, now: float
    ) -> None:
        agreements = self._agreements
        match frame:
            case EvictionAsk(request_id=request_id):
                accepted = agreements.consider(
                    peer,
                    request_id,
                    self.connected_peers(),
                    self._config.min_peers,
                    now + 2 * self._config.eviction_ask_timeout_s,
                )
                if accepted:
                    self._counters.eviction_requests_accepted += 1
                else:
                    self._counters.eviction_requests_refused += 1
                answer = EvictionAnswer(self._me, request_id, accepted)
                self._act(SendData(peer, encode_eviction_answer(answer)))
                self._emit(EvictionRequested(peer, accepted))
            case EvictionCancel(request_id=request_id):
                agreements.cancelled(peer, request_id)
            case EvictionAnswer(request_id=request_id, accept=accept):
                ask = agreements.answered(peer, request_id)
                if ask is None:
                    self._counters.eviction_answers_dropped += 1
                elif accept:
                    self._counters.eviction_asks_accepted += 1
                    self._agreed(ask, now)
                else:
                    self._counters.eviction_asks_refused += 1
                    self._spare(ask.victim, now)
                    self._ask_failed(ask, now, retry=True)

    def _agreed(self, ask: Ask, now: float) -> None:
        """The victim agreed: evict it and use the slot, unless the offer or dial is moot.

        (No slot can have freed meanwhile: a freed slot cancels the oldest ask at once, see
        `_settle_asks`; and our promises already counted this ask when it was made.)
        """
        if not self._purpose_pending(ask.purpose):
            self._cancel(ask)
            self._ask_failed(ask, now, retry=False)
            return
        self._evict(ask.victim, DEFAULT_EVICTION_REASON, now)
        self._fulfil(ask.purpose, now)

    def _ask_timed_out(self, ask: Ask, now: float) -> None:
        self._counters.eviction_asks_timed_out += 1
        self._send_cancel(ask)  # its answer may still come: it is dropped then
        self._spare(ask.victim, now)
        self._ask_failed(ask, now, retry=False)

    def _ask_failed(self, ask: Ask, now: float, *, retry: bool) -> None:
        """No room was made for `ask`'s purpose: look for another victim, or give up."""
        match ask.purpose:
            case HeldOffer(peer=peer, sdp=sdp):
                if retry and peer not in self._links:
                    self._answer_offer(peer, sdp, now)  # the victim is spared: another, or no
                elif peer not in self._links:
                    self._reject_offer(peer, REJECT_MAX_PEERS, now)
            case RingDial():
                if retry:
                    self._optimize_soon(now)

    def _cancel(self, ask: Ask) -> None:
        self._counters.eviction_asks_cancelled += 1
        self._send_cancel(ask)

    def _send_cancel(self, ask: Ask) -> None:
        """Release the victim's reservation (if its link is still open)."""
        link = self._links.get(ask.victim)
        if link is not None and link.is_open:
            cancel = EvictionCancel(self._me, ask.request_id)
            self._act(SendData(ask.victim, encode_eviction_cancel(cancel)))

    def _spare(self, peer: PeerId, now: float) -> None:
        link = self._links.get(peer)
        if link is not None:
            link.spare_until = now + self._config.eviction_refused_hold_s

    def _purpose_pending(self, purpose: Purpose) -> bool:
        """Whether the offer or dial an ask was for still wants a slot."""
        if purpose.peer in self._links or purpose.peer not in self._table:
            return False
        return isinstance(purpose, HeldOffer) or self._client_open()

    def _fulfil(self, purpose: Purpose, now: float) -> None:
        """Use a slot made (or freed) for `purpose`: answer the held offer, or dial."""
        if not self._purpose_pending(purpose) or len(self._links) >= self._config.max_peers:
            if isinstance(purpose, HeldOffer) and purpose.peer not in self._links:
                self._reject_offer(purpose.peer, REJECT_MAX_PEERS, now)
            return
        match purpose:
            case HeldOffer(peer=peer, sdp=sdp):
                self._accept_offer(peer, sdp, now)
            case RingDial(peer=peer):
                self._dial(peer, now)

    def _settle_asks(self, now: float) -> None:
        """Asks whose victim's link ended, then asks a freed slot makes needless."""
        freed, self._freed = self._freed, []
        for ask in freed:
            if len(self._links) < self._config.max_peers:
                self._fulfil(ask.purpose, now)
            else:
                self._ask_failed(ask, now, retry=True)
        agreements = self._agreements
        while len(self._links) < self._config.max_peers:
            asks = agreements.asks()
            if not asks:
                break
            ask = asks[0]
            agreements.take(ask.request_id)
            self._cancel(ask)
            self._fulfil(ask.purpose, now)

    def _client_open(self) -> bool:
        client = self._client
        return client is not None and client.state is pc.ClientState.OPEN

    def _learn(self, peer: PeerId, now: float) -> bool:
        before = self._table.forgotten_at_bound
        added = self._table.add(peer, now, self._epoch, protect=self._links)
        self._counters.known_forgotten += self._table.forgotten_at_bound - before
        return added

    def _forget(self, peer: PeerId) -> None:
        self._table.remove(peer)
        self._departed.pop(peer, None)
        self._waiting.pop(peer, None)
        for ask in self._agreements.purpose_lost(peer):
            self._cancel(ask)

    def _worth_optimizing(self, peer: PeerId) -> bool:
        """Whether a newly known peer may change the plan (cheap; the timer covers the rest)."""
        count = len(self._links)
        if count < self._config.min_peers:
            return True
        if peer in self._protected():
            return True
        return count < fill_target(self._topology) and is_initiator(self._me, peer)

    def _optimize_soon(self, now: float) -> None:
        if self._client is None:
            return
        at = now + self._config.optimize_delay_s
        if self._optimize_at is None or at < self._optimize_at:
            self._optimize_at = at

    def _optimize(self, now: float) -> None:
        cfg = self._config
        self._optimize_at = now + cfg.optimize_interval_s * (0.75 + 0.5 * self._rng.random())
        client = self._client
        if client is None or client.state is not pc.ClientState.OPEN:
            return
        if self._fallback.state is FallbackState.PROBING:
            return  # our offers would not reach the global peers
        protected = self._protected()
        for _ in range(len(self._links) - cfg.max_peers):
            victim = choose_victim(
                self._me,
                self._links.slots(),
                protected,
                xor_routing=cfg.xor_routing,
                buckets=self._topology.buckets_enabled,
            )
            if victim is None:
                break
            self._drop_link(victim, REASON_OVER_MAX_PEERS, now, close=True, retry=False)
            self._emit(PeersUpdated())
        plan = plan_dials(
            self._me,
            self._table,
            self._links.slots(),
            self._topology,
            now,
            fragile=self._not_evictable(now),
            pending=self._agreements.purposes(),
        )
        waiting: set[PeerId] = set()
        for victim, peer in zip(plan.evictions, plan.replacements, strict=True):
            if not self._make_room(victim, RingDial(peer), now):
                waiting.add(peer)  # asked (dialled once agreed), or no room this time
        for peer in plan.dials:
            if peer not in waiting:
                self._dial(peer, now)

    def _purge_unconfirmed(self) -> None:
        for peer in self._table.unconfirmed(self._epoch):
            if peer not in self._links and not self._links.is_lingering(peer):
                self._table.remove(peer)
                self._counters.known_forgotten += 1

    def _delay(self, n: int, base: float, cap: float) -> float:
        delay = min(base * 2.0 ** min(n - 1, 64), cap)
        return delay * (1.0 - self._config.dial_jitter * self._rng.random())

    # --- internals: global fallback ----------------------------------------------------------

    def _fallback_timers(self, now: float) -> None:
        cfg = self._config
        step = self._fallback.due(now)
        if step == "enter":
            self._network = GLOBAL_NETWORK
            self._gossip.set_network(GLOBAL_NETWORK)
            self._counters.fallback_switches += 1
            self._emit(
                StatusChanged(
                    "network",
                    message=f"no peers in {cfg.network_name!r}: using the global network",
                    network_name=GLOBAL_NETWORK,
                )
            )
            self._switch_client(GLOBAL_NETWORK, now)
        elif step == "probe":
            self._switch_client(cfg.network_name, now)
        elif step == "return":
            self._switch_client(GLOBAL_NETWORK, now)

    def _leave_fallback(self, now: float) -> None:
        """Peers showed up in the configured namespace: stay there, drop the global links."""
        cfg = self._config
        self._fallback.leave()
        self._network = cfg.network_name
        self._gossip.set_network(cfg.network_name)
        self._counters.fallback_switches += 1
        had_links = bool(self._links)
        self._agreements.clear()  # every link closes; held offers were from global peers
        self._freed.clear()
        self._waiting.clear()
        for peer in self._links.drain_lingering():
            self._act(CloseLink(peer, REASON_NETWORK_CHANGED))
        for peer in list(self._links):
            self._drop_link(peer, REASON_NETWORK_CHANGED, now, close=True, retry=False)
            self._forget(peer)
        if had_links:
            self._emit(PeersUpdated())
        self._emit(
            StatusChanged(
                "network",
                message=f"peers found in {cfg.network_name!r}: leaving the global fallback",
                network_name=cfg.network_name,
            )
        )

    def _update_alone(self, now: float) -> None:
        cfg = self._config
        alone = (
            cfg.allow_global_fallback
            and cfg.network_name != GLOBAL_NETWORK
            and self.signaling_state is pc.ClientState.OPEN
            and not self._table
            and not self._links
        )
        self._fallback.observe(alone, now)

    # --- internals: misc ---------------------------------------------------------------------

    def _after_input(self, now: float) -> None:
        self._pump(now)
        self._settle_asks(now)
        self._pump_gossip(now)  # hellos queued by lost links (evictions, drops)
        self._update_alone(now)
