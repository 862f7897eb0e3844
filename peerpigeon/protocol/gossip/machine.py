"""The `Gossip` machine: dedup, TTL, flooding, XOR-routed direct messages, binary messages.

Reference: data-plane.md sections 3 (gossip), 5 (binary messages) and 14 (weaknesses). The
wire is the reference's; the behaviour differs where the reference is weak:

* **Dedup** is bounded in size and age (`SeenCache`), and a message older than
  ``max_message_age_s`` is not delivered, so an id forgotten by the cache cannot be replayed
  into a second delivery. Every id is delivered to the application at most once.
* **TTL** is checked: an envelope must carry an integer 1..``max_ttl`` (W-GOS-4). We
  originate with ``max_ttl``; a JS neighbour never gets more than 10, a Python neighbour
  never more than the ``maxTtl`` of its hello. ``hops`` is ``len(path) - 1``.
* **The sending neighbour must be the last hop of the path**, and the origin its first
  (every JS relay and origin writes them so); a frame that breaks this is rejected. The
  origin itself stays unverifiable, as in JS (W-GOS-1).
* **Flooding** goes to every neighbour except the sender and the peers already on the
  path (they would drop it), preserving unknown fields, with ``ttl - 1`` and ``path + us``.
* **Direct messages** (``dm``, ``dht-routing`` with a ``to``) go hop by hop towards the
  target by XOR distance, seeing one step further through the neighbour lists of Python
  neighbours, and past local minima (`routing`), never to a peer on the path.
* **Subtypes**: ``chat`` with a non-empty string and ``dm`` for us are delivered; other
  subtypes (``key_exchange``/``key_exchange_response`` from JS peers, ``encrypted``,
  ``mediaEvent``, unknown ones) are relayed and never delivered; DM control contents
  (``signaling-relay`` ...) are dropped (W-CTL-2).
* **Binary**: ``__BINARY__`` + payload to one neighbour; ``__PP_BINARY__`` + payload for a
  broadcast between Python peers (JS's own ``broadcastBinaryData`` throws); the pairing FIFO
  is bounded and every header queues a descriptor (`binary`); a payload whose length
  differs from its header, or with no header, is rejected.
* **Sizes**: what does not fit a channel's negotiated maximum is refused at the origin
  (`UsageError`) and counted at a relay (``too_large``), never silently lost (W-BIN-3).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from typing import Final

from peerpigeon.protocol.errors import DecodeError, UsageError
from peerpigeon.protocol.frames import (
    DEFAULT_MAX_DATA_FRAME_BYTES,
    HELLO_VERSION,
    JS_MAX_TTL,
    MAX_HELLO_NEIGHBOURS,
    BadBinaryHeader,
    BinaryGossipHeader,
    BinaryHeader,
    DataFrame,
    GossipMessage,
    Hello,
    OtherFrame,
    decode_data_object,
    decode_gossip,
    encode_binary_gossip_header,
    encode_binary_header,
    encode_gossip,
    encode_hello,
    encode_relayed_gossip,
    expects_payload,
)
from peerpigeon.protocol.ids import PeerId, is_valid_peer_id
from peerpigeon.protocol.outbox import Outbox
from peerpigeon.protocol.rand import Entropy
from peerpigeon.protocol.wire import GLOBAL_NETWORK, JsonObject, JsonValue, decode_json_object

from .binary import Pending, PendingKind, PendingPayloads
from .config import GossipConfig
from .events import (
    BinaryMessageReceived,
    GossipAction,
    GossipEvent,
    GossipRejected,
    GossipSend,
    GossipStats,
    MessageReceived,
    StreamChunkPaired,
)
from .routing import RouteCandidate, next_hop
from .seen import SeenCache

__all__ = [
    "FEATURE_BINARY_BROADCAST",
    "FEATURE_EVICTION_AGREEMENT",
    "FEATURE_NEIGHBOURS",
    "Gossip",
    "is_control_content",
]

FEATURE_BINARY_BROADCAST: Final = "binary-broadcast"
FEATURE_NEIGHBOURS: Final = "neighbours"
FEATURE_EVICTION_AGREEMENT: Final = "evict-ask"  # it answers __PP_EVICT_ASK__ (the mesh's)
_FEATURES: Final = (FEATURE_BINARY_BROADCAST, FEATURE_NEIGHBOURS, FEATURE_EVICTION_AGREEMENT)
_PATH_ENTRY_BYTES: Final = 43  # ',"<40 hex>"' added to the path per hop
_ROUTED_SUBTYPES: Final = frozenset({"dm", "dht-routing"})
# A path joined with commas: peer IDs (40 hex characters, as `is_valid_peer_id`) and
# nothing else, since a comma inside an entry would make one comma too many.
_PEER_ID_LIST_RE: Final = re.compile(r"[a-fA-F0-9]{40}(?:,[a-fA-F0-9]{40})*")
# DM contents a JS peer handles internally and never shows the application (data-plane
# 3.6.4, and the mesh-level filter of chat strings); we act on none of them (W-CTL-2).
_CONTROL_CONTENT_TYPES: Final = frozenset(
    {
        "signaling-relay",
        "peer-announce-relay",
        "bootstrap-keepalive",
        "client-peer-announcement",
        "cross-bootstrap-signaling",
    }
)


def is_control_content(content: JsonValue) -> bool:
    """Whether a message content is one of the JS internal control objects (filtered)."""
    obj: JsonObject | None = None
    if isinstance(content, dict):
        obj = content
    elif isinstance(content, str) and content.lstrip().startswith("{"):
        try:
            obj = decode_json_object(content)
        except DecodeError:
            obj = None
    return obj is not None and obj.get("type") in _CONTROL_CONTENT_TYPES


def _lowered(path: tuple[str, ...] | None) -> set[str]:
    """The peers on `path`, lower-cased."""
    return {hop.lower() for hop in path or ()}


# How long after a channel opens a peer's hello may still be on its way: until then the
# neighbour may be a Python peer (the mesh spares it from eviction; we keep it informed).
HELLO_WAIT_S: Final = 1.0


@dataclass(slots=True)
class _Counters:
    received: int = 0
    delivered: int = 0
    duplicates: int = 0
    rejected: int = 0
    other_network: int = 0
    loops: int = 0
    stale: int = 0
    filtered: int = 0
    ignored: int = 0
    originated: int = 0
    relayed: int = 0
    ttl_exhausted: int = 0
    path_exhausted: int = 0
    too_large: int = 0
    dm_routed: int = 0
    dm_local_minima: int = 0
    dm_dead_ends: int = 0
    binary_delivered: int = 0
    binary_relayed: int = 0
    binary_discarded: int = 0
    hellos_received: int = 0


@dataclass(slots=True)
class _Neighbour:
    """One open channel as gossip sees it."""

    peer: PeerId
    lower: str  # peer, lower-cased (paths are compared so)
    value: int
    max_message_size: int  # 0: no limit known
    pending: PendingPayloads
    python: bool = False  # it sent a hello
    max_ttl: int = JS_MAX_TTL
    features: frozenset[str] = frozenset()
    onward: tuple[int, ...] | None = None  # its neighbours, from its hello
    advertised: tuple[PeerId, ...] | None = None  # the neighbour list we last sent it
    degree: int | None = None  # its open links, from its last hello
    connected_at: float = 0.0
    min_peers: int | None = None  # its min_peers, from its last hello (newer peers only)
    ttl_cap: int = field(default=JS_MAX_TTL)

    def fits(self, size: int) -> bool:
        return self.max_message_size <= 0 or size <= self.max_message_size


class Gossip(Outbox[GossipAction, GossipEvent]):
    """Gossip for one peer as a sans-IO machine.

    Inputs, all with ``now`` (seconds, monotonic):

    * channel facts from the owner: `peer_connected`, `peer_lost`;
    * frames: `receive_text` (parses), `receive_json` (a frame the owner parsed) or
      `receive_frame` (one it decoded); `receive_binary` for binary frames;
    * application calls: `broadcast`, `send_direct`, `send_binary`, `broadcast_binary`;
    * the timer: `handle_timer`, due at `next_deadline` (seen-id expiry, neighbour adverts).

    Outputs: `GossipSend` actions and `GossipEvent`s (`drain_actions`, `drain_events`);
    counters in `stats`.
    """

    def __init__(
        self,
        me: PeerId,
        config: GossipConfig,
        *,
        entropy: Entropy,
        network: str = GLOBAL_NETWORK,
        wall_offset_s: float = 0.0,
        max_frame_bytes: int = DEFAULT_MAX_DATA_FRAME_BYTES,
        min_peers: int | None = None,
    ) -> None:
        """Create the machine for peer `me` in namespace `network`.

        `wall_offset_s` turns ``now`` into wall-clock seconds (wire timestamps, message
        age); `max_frame_bytes` bounds the text frames `receive_text` decodes; `min_peers`
        (the mesh's) goes in our hellos, so that evictors spare us at that degree.
        """
        super().__init__()
        if not is_valid_peer_id(me):
            raise UsageError("me", "must be 40 hex characters")
        self._me = me
        self._me_lower = me.lower()
        self._me_int = int(me, 16)
        self._config = config
        self._entropy = entropy
        self._network = network
        self._wall_offset_s = wall_offset_s
        self._max_frame_bytes = max_frame_bytes
        self._min_peers = min_peers
        self._seen = SeenCache(max_size=config.max_seen, ttl_s=config.seen_ttl_s)
        self._seen_has = self._seen.has
        self._neighbours: dict[PeerId, _Neighbour] = {}
        self._advert_at: float | None = None
        self._c = _Counters()

    # --- views -----------------------------------------------------------------------------

    @property
    def peer_id(self) -> PeerId:
        """Our ID."""
        return self._me

    @property
    def config(self) -> GossipConfig:
        """The settings."""
        return self._config

    @property
    def network(self) -> str:
        """The namespace whose messages we accept and send."""
        return self._network

    def neighbours(self) -> tuple[PeerId, ...]:
        """The open channels, oldest first."""
        return tuple(self._neighbours)

    def python_neighbours(self) -> tuple[PeerId, ...]:
        """The neighbours that said hello (Python peers), oldest first."""
        return tuple(p for p, nb in self._neighbours.items() if nb.python)

    def reported_degree(self, peer: PeerId) -> tuple[int, int | None] | None:
        """`peer`'s open links and ``min_peers`` from its last hello (None: no hello yet)."""
        nb = self._neighbours.get(peer)
        if nb is None or nb.degree is None:
            return None
        return (nb.degree, nb.min_peers)

    def agrees_to_evictions(self, peer: PeerId) -> bool:
        """Whether `peer`'s hello says it answers asks to evict it (a Python peer)."""
        nb = self._neighbours.get(peer)
        return nb is not None and nb.python and FEATURE_EVICTION_AGREEMENT in nb.features

    def seen_count(self) -> int:
        """Ids in the seen cache."""
        return len(self._seen)

    def pending_binary(self, peer: PeerId) -> int:
        """Binary headers from `peer` still waiting for their payload."""
        nb = self._neighbours.get(peer)
        return 0 if nb is None else len(nb.pending)

    def stats(self) -> GossipStats:
        """A snapshot of the counters."""
        return GossipStats(**asdict(self._c), seen_evicted=self._seen.evicted)

    def next_deadline(self) -> float | None:
        """When `handle_timer` is next due, or ``None``; a pure query."""
        seen = self._seen.deadline()
        advert = self._advert_at
        if seen is None:
            return advert
        return seen if advert is None else min(seen, advert)

    # --- facts -------------------------------------------------------------------------------

    def set_network(self, network: str) -> None:
        """Switch namespace (the mesh's global fallback); later messages use the new one."""
        self._network = network

    def peer_connected(self, peer: PeerId, max_message_size: int, now: float) -> None:
        """A data channel to `peer` opened (`max_message_size` 0: no limit known).

        Queues our hello to it (a JS peer ignores it); the other Python neighbours hear of
        the new link after ``advert_delay_s``.
        """
        if peer in self._neighbours or not is_valid_peer_id(peer):
            return
        nb = _Neighbour(
            peer=peer,
            lower=peer.lower(),
            value=int(peer, 16),
            max_message_size=max(0, max_message_size),
            pending=PendingPayloads(self._config.max_pending_binary),
            connected_at=now,
        )
        self._neighbours[peer] = nb
        self._send_hello(nb)
        self._advert_soon(now)

    def peer_lost(self, peer: PeerId, now: float) -> None:
        """The channel to `peer` closed; its pending binary headers are dropped.

        The other Python neighbours hear of it at once (a new link waits ``advert_delay_s``):
        our degree fell, and an evictor must not take us below ``min_peers`` on a stale
        count. So do neighbours whose hello has not come yet within `HELLO_WAIT_S` of the
        channel opening (they may be Python peers). At most one hello per neighbour per
        lost link.
        """
        if self._neighbours.pop(peer, None) is None:
            return
        current = self._neighbour_list()
        young = now - HELLO_WAIT_S
        for nb in self._neighbours.values():
            if (nb.python or nb.connected_at > young) and nb.advertised != current:
                self._send_hello(nb, current)

    # --- frames ------------------------------------------------------------------------------

    def receive_text(self, peer: PeerId, text: str | bytes, now: float) -> None:
        """One text frame from neighbour `peer` (`bytes`: undecoded UTF-8); never raises.

        Frames of other layers (eviction, signaling, DHT, streams) are ignored. May emit
        `MessageReceived` or `GossipRejected`; may queue `GossipSend` (relays).
        """
        nb = self._neighbours.get(peer)
        if nb is None:
            return
        try:
            obj = decode_json_object(text, max_bytes=self._max_frame_bytes)
        except DecodeError as err:
            self._reject(peer, err.field, err.reason)
            return
        self._receive_json(nb, obj, now)

    def receive_json(self, peer: PeerId, obj: JsonObject, now: float) -> None:
        """One text frame from `peer`, parsed as a JSON object (the mesh parses once).

        A gossip envelope whose id we have seen is a duplicate before anything else is
        checked, as in JS (data-plane 3.4): every peer gets most messages several times,
        so that path is kept short. Otherwise as `receive_text`.
        """
        nb = self._neighbours.get(peer)
        if nb is not None:
            self._receive_json(nb, obj, now)

    def _receive_json(self, nb: _Neighbour, obj: JsonObject, now: float) -> None:
        if obj.get("type") != "gossip":
            try:
                frame = decode_data_object(obj, max_path=self._config.max_path_length)
            except DecodeError as err:
                self._reject(nb.peer, err.field, err.reason)
                return
            self.receive_frame(nb.peer, frame, now)
            return
        msg_id = obj.get("id")
        if isinstance(msg_id, str) and self._seen_has(msg_id):
            network = obj.get("networkName") or GLOBAL_NETWORK
            if network == self._network:
                c = self._c
                c.received += 1
                c.duplicates += 1
                return
        try:  # what decode_data_object and receive_frame do with a gossip frame
            msg = decode_gossip(obj, max_path=self._config.max_path_length)
        except DecodeError as err:
            self._reject(nb.peer, err.field, err.reason)
            return
        self._on_gossip(nb, msg, now)

    def receive_frame(self, peer: PeerId, frame: DataFrame, now: float) -> None:
        """One decoded frame from neighbour `peer` (the mesh decodes once for all layers).

        Handles gossip envelopes, hellos and binary headers; ignores the rest.
        """
        nb = self._neighbours.get(peer)
        if nb is None:
            return
        match frame:
            case GossipMessage():
                self._on_gossip(nb, frame, now)
            case Hello():
                self._on_hello(nb, frame)
            case BinaryHeader() | BinaryGossipHeader() | BadBinaryHeader():
                self._on_binary_header(nb, frame, now)
            case OtherFrame() if expects_payload(frame):
                # A stream chunk: paired here, handed to the stream layer (StreamChunkPaired).
                self._queue_payload(nb, Pending(PendingKind.STREAM, stream_header=frame.body))
            case _:
                return

    def receive_binary(self, peer: PeerId, data: bytes, now: float) -> None:
        """One binary frame from `peer`: the payload of its oldest pending header.

        May emit `BinaryMessageReceived` or `GossipRejected`; may queue relays.
        """
        nb = self._neighbours.get(peer)
        if nb is None:
            return
        item = nb.pending.pop()
        if item is None:
            self._reject(peer, "binary", "payload without a header")
            return
        if item.kind is PendingKind.DISCARD:
            self._c.binary_discarded += 1
            return
        if item.kind is PendingKind.STREAM and item.stream_header is not None:
            self._emit(StreamChunkPaired(peer=peer, header=item.stream_header, data=bytes(data)))
            return
        if len(data) != item.size:
            self._c.binary_discarded += 1
            self._reject(peer, "size", f"header said {item.size} bytes, payload has {len(data)}")
            return
        if item.kind is PendingKind.DIRECT:
            self._c.binary_delivered += 1
            self._emit(
                BinaryMessageReceived(
                    from_peer=peer,
                    data=bytes(data),
                    size=len(data),
                    timestamp=self._wall_ms(now),
                    via=peer,
                )
            )
            return
        header = item.header
        assert header is not None  # BROADCAST descriptors always carry their header
        if not self._seen.add(header.id, now):
            self._c.duplicates += 1  # another copy completed first
            return
        self._c.binary_delivered += 1
        self._emit(
            BinaryMessageReceived(
                from_peer=header.from_peer,
                data=bytes(data),
                size=len(data),
                timestamp=self._wall_ms(now),
                via=peer,
                broadcast=True,
                message_id=header.id,
                hops=len(header.path or ()) - 1,
            )
        )
        self._flood_binary(header.relayed_by(self._me), bytes(data), exclude=peer, relay=True)

    # --- application calls -------------------------------------------------------------------

    def broadcast(self, content: JsonValue, now: float, *, subtype: str = "chat") -> str:
        """Flood `content` to the whole mesh as gossip `subtype`; returns the message id.

        ``chat`` content must be a non-empty string (as in JS). Queues `GossipSend` to each
        neighbour (none: nobody hears it). Raises `UsageError` for bad content or a frame
        that could outgrow ``max_message_bytes`` on its way.
        """
        if subtype == "chat" and (not isinstance(content, str) or not content.strip()):
            raise UsageError("content", "must be a non-empty string")
        if not isinstance(subtype, str) or not subtype:
            raise UsageError("subtype", "must be a non-empty string")
        msg = self._new_message(subtype, content, None, now)
        self._seen.add(msg.id, now)
        self._c.originated += 1
        self._flood(msg, {self._me_lower}, exclude=None, relay=False)
        return msg.id

    def send_direct(
        self, to: PeerId, content: JsonValue, now: float, *, subtype: str = "dm"
    ) -> str:
        """Send `content` to peer `to` (any peer), routed hop by hop; returns the message id.

        Queues one `GossipSend`. Raises `UsageError` for a bad or our own ID, bad content,
        an oversized frame, or when we have no neighbour to route through.
        """
        if not is_valid_peer_id(to):
            raise UsageError("peer", "must be 40 hex characters")
        if to.lower() == self._me_lower:
            raise UsageError("peer", "cannot send a direct message to yourself")
        if not self._neighbours:
            raise UsageError("peer", "no neighbour to route through")
        msg = self._new_message(subtype, content, to, now)
        self._seen.add(msg.id, now)
        self._c.originated += 1
        self._route(msg, exclude=None, relay=False)
        return msg.id

    def send_binary(self, peer: PeerId, data: bytes, now: float) -> None:
        """Send `data` to the neighbour `peer` (``__BINARY__`` header, then the bytes).

        Queues two `GossipSend`s, back to back. Raises `UsageError` when `peer` is not a
        neighbour or `data` exceeds ``max_binary_bytes`` or the channel's maximum.
        """
        nb = self._neighbours.get(peer)
        if nb is None:
            raise UsageError("peer", "is not a connected neighbour")
        payload = bytes(data)
        limit = self._config.max_binary_bytes
        if nb.max_message_size > 0:
            limit = min(limit, nb.max_message_size)
        if len(payload) > limit:
            raise UsageError("data", f"{len(payload)} bytes exceeds the limit of {limit}")
        self._act(GossipSend(peer, encode_binary_header(len(payload))))
        self._act(GossipSend(peer, payload))

    def broadcast_binary(self, data: bytes, now: float) -> str:
        """Flood `data` to the Python peers of the mesh; returns the message id.

        JS peers never get it (their own ``broadcastBinaryData`` throws): it goes to the
        neighbours that said hello, and Python relays pass it on the same way. Raises
        `UsageError` when no neighbour takes it or `data` is too large.
        """
        payload = bytes(data)
        takers = [nb for nb in self._neighbours.values() if self._takes_binary(nb)]
        if not takers:
            raise UsageError("peers", "no neighbour takes binary broadcasts (JS peers do not)")
        limit = self._config.max_broadcast_binary_bytes
        for nb in takers:
            if nb.max_message_size > 0:
                limit = min(limit, nb.max_message_size)
        if len(payload) > limit:
            raise UsageError("data", f"{len(payload)} bytes exceeds the limit of {limit}")
        header = BinaryGossipHeader(
            id=self._new_id(),
            from_peer=self._me,
            size=len(payload),
            network_name=self._network,
            timestamp=self._wall_ms(now),
            ttl=self._config.max_ttl,
            path=(self._me,),
        )
        self._seen.add(header.id, now)
        self._c.originated += 1
        self._flood_binary(header, payload, exclude=None, relay=False)
        return header.id

    # --- timer -------------------------------------------------------------------------------

    def handle_timer(self, now: float) -> None:
        """Forget expired ids and send due neighbour adverts; harmless early or twice."""
        self._seen.expire(now)
        if self._advert_at is not None and now >= self._advert_at:
            self._advert_at = None
            current = self._neighbour_list()
            for nb in self._neighbours.values():
                if nb.python and nb.advertised != current:
                    self._send_hello(nb, current)

    # --- internals: gossip -------------------------------------------------------------------

    def _on_gossip(self, nb: _Neighbour, msg: GossipMessage, now: float) -> None:
        self._c.received += 1
        via = nb.peer
        path = msg.path
        try:
            on_path = self._check_envelope(nb, msg.from_peer, msg.ttl, path)
        except DecodeError as err:
            self._reject(via, err.field, err.reason)
            return
        if self._skip(msg.id, msg.network, on_path, msg.timestamp, now):
            return
        self._seen.add(msg.id, now)
        subtype = msg.subtype
        if subtype in _ROUTED_SUBTYPES and msg.to is not None:
            if msg.to.strip().lower() == self._me_lower:
                if subtype != "dm":
                    self._c.ignored += 1  # dht-routing: for the DHT layer
                elif is_control_content(msg.content):
                    self._c.filtered += 1
                else:
                    self._deliver(msg, via, direct=True)
                return  # the target does not relay (as in JS)
            self._route(msg.relayed_by(self._me), exclude=via, relay=True)
            return
        if subtype == "chat":
            content = msg.content
            if not isinstance(content, str) or not content.strip():
                self._c.filtered += 1  # JS drops it and does not relay it either
                return
            if is_control_content(content):
                self._c.filtered += 1  # JS's mesh hides these chat strings but relays them
            else:
                self._deliver(msg, via, direct=False)
        else:
            self._c.ignored += 1  # key exchange, encrypted, media, unknown: relay only
        self._flood(msg, on_path, exclude=via, relay=True)

    def _check_envelope(
        self,
        nb: _Neighbour,
        origin: PeerId,
        ttl: int | float | None,
        path: tuple[str, ...] | None,
    ) -> set[str]:
        """The peers on the path of a valid envelope from `nb`, lower-cased.

        Raises `DecodeError` (field, reason) when the envelope is invalid.
        """
        if ttl is None:
            raise DecodeError("ttl", "is required")
        if isinstance(ttl, float) or ttl < 1 or ttl > self._config.max_ttl:
            raise DecodeError("ttl", f"must be an integer 1..{self._config.max_ttl}")
        if not path:
            raise DecodeError("path", "is required")
        try:
            joined = ",".join(path)
        except TypeError:  # not strings
            joined = ""
        if _PEER_ID_LIST_RE.fullmatch(joined) is None:
            raise DecodeError("path", "entries must be peer IDs")
        on_path = {hop.lower() for hop in path}
        if path[-1].lower() != nb.lower:
            raise DecodeError("path", "does not end with the sending neighbour")
        if path[0].lower() != origin.lower():
            raise DecodeError("path", "does not start with the origin")
        if len(on_path) != len(path):
            raise DecodeError("path", "repeats a peer")
        return on_path

    def _skip(
        self,
        msg_id: str,
        network: str,
        on_path: set[str],
        timestamp: int | float | None,
        now: float,
    ) -> bool:
        """Whether a valid envelope is dropped (counted) before it is remembered."""
        if network != self._network:
            self._c.other_network += 1
        elif self._seen_has(msg_id):  # dedup before the remaining checks, as JS does
            self._c.duplicates += 1
        elif self._me_lower in on_path:
            self._c.loops += 1  # our own messages too: their path starts with us
        elif self._too_old(timestamp, now):
            self._c.stale += 1
        else:
            return False
        return True

    def _too_old(self, timestamp: int | float | None, now: float) -> bool:
        max_age = self._config.max_message_age_s
        if max_age is None or timestamp is None:
            return False
        return self._wall_ms(now) - timestamp > max_age * 1000.0

    def _deliver(self, msg: GossipMessage, via: PeerId, *, direct: bool) -> None:
        self._c.delivered += 1
        self._emit(
            MessageReceived(
                from_peer=msg.from_peer,
                content=msg.content,
                timestamp=msg.timestamp,
                message_id=msg.id,
                hops=len(msg.path or ()) - 1,
                direct=direct,
                encrypted=False,
                via=via,
            )
        )

    def _eligible(self, on_path: set[str], exclude: PeerId | None) -> list[_Neighbour]:
        """Open neighbours except `exclude` and the peers in `on_path` (lower-cased)."""
        return [
            nb for p, nb in self._neighbours.items() if p != exclude and nb.lower not in on_path
        ]

    def _budget_ok(self, ttl: int | float | None, hops: int) -> bool:
        """Whether a copy with this TTL and `hops` on its path may still be sent (counts when
        not)."""
        if ttl is None or ttl < 1:
            self._c.ttl_exhausted += 1
            return False
        if hops > self._config.max_path_length:
            self._c.path_exhausted += 1
            return False
        return True

    def _flood(
        self, msg: GossipMessage, on_path: set[str], *, exclude: PeerId | None, relay: bool
    ) -> None:
        """Send `msg` (`relay`: the copy we relay) to the neighbours not in `on_path`.

        `on_path` holds the peers on the path of `msg`, lower-cased.
        """
        targets = self._eligible(on_path, exclude)
        if not targets:
            return
        ttl, hops = msg.ttl, len(msg.path or ())
        if relay and ttl is not None:
            ttl, hops = ttl - 1, hops + 1  # msg.relayed_by(us), not built
        if not self._budget_ok(ttl, hops):
            return
        self._send_gossip(msg, targets, relay=relay, forward=relay)

    def _route(self, msg: GossipMessage, *, exclude: PeerId | None, relay: bool) -> None:
        to = msg.to
        assert to is not None  # only targeted messages are routed
        candidates = self._eligible(_lowered(msg.path), exclude)
        if not self._budget_ok(msg.ttl, len(msg.path or ())):
            return
        visited = {int(hop, 16) for hop in msg.path or ()}
        hop = next_hop(
            self._me_int,
            int(to.strip(), 16),
            [RouteCandidate(nb.peer, nb.value, nb.onward) for nb in candidates],
            visited,
        )
        if hop is None:
            self._c.dm_dead_ends += 1
            return
        self._c.dm_routed += 1
        if not hop.progress:
            self._c.dm_local_minima += 1
        self._send_gossip(msg, [self._neighbours[hop.peer]], relay=relay)

    def _send_gossip(
        self, msg: GossipMessage, targets: list[_Neighbour], *, relay: bool, forward: bool = False
    ) -> None:
        """Send `msg` (`forward`: the copy we relay, as `relayed_by`) to `targets`, with each
        one's TTL cap; `relay` counts the copies as relayed."""
        ttl = msg.ttl
        assert isinstance(ttl, int)  # checked on receipt; ours are ints
        if forward:
            ttl -= 1
        act = self._actions.append
        # the common case: no neighbour caps the TTL below ours
        text = encode_relayed_gossip(msg, self._me) if forward else encode_gossip(msg)
        size = len(text)  # compact ASCII JSON: characters are bytes
        capped: dict[int, str] | None = None
        sent = 0
        for nb in targets:
            cap = nb.ttl_cap
            if cap >= ttl:
                out, out_size = text, size
            else:
                if capped is None:
                    capped = {}
                known = capped.get(cap)
                if known is None:
                    known = capped[cap] = (
                        encode_relayed_gossip(msg, self._me, ttl=cap)
                        if forward
                        else encode_gossip(replace(msg, ttl=cap))
                    )
                out, out_size = known, len(known)
            limit = nb.max_message_size
            if limit > 0 and out_size > limit:  # _Neighbour.fits
                self._c.too_large += 1
                continue
            sent += 1
            act(GossipSend(nb.peer, out))
        if relay:
            self._c.relayed += sent

    def _new_id(self) -> str:
        return self._entropy.token_bytes(16).hex()

    def _new_message(
        self, subtype: str, content: JsonValue, to: PeerId | None, now: float
    ) -> GossipMessage:
        msg = GossipMessage(
            id=self._new_id(),
            subtype=subtype,
            content=content,
            from_peer=self._me,
            to=to,
            network_name=self._network,
            timestamp=self._wall_ms(now),
            ttl=self._config.max_ttl,
            path=(self._me,),
        )
        size = len(encode_gossip(msg)) + _PATH_ENTRY_BYTES * self._config.max_ttl
        limit = self._config.max_message_bytes
        for nb in self._neighbours.values():
            if nb.max_message_size > 0:
                limit = min(limit, nb.max_message_size)
        if size > limit:
            raise UsageError(
                "content", f"the message may grow to {size} bytes; the limit is {limit}"
            )
        return msg

    # --- internals: binary ---------------------------------------------------------------

    def _takes_binary(self, nb: _Neighbour) -> bool:
        return nb.python and FEATURE_BINARY_BROADCAST in nb.features

    def _queue_payload(self, nb: _Neighbour, item: Pending) -> None:
        if not nb.pending.push(item):
            self._reject(
                nb.peer,
                "binary",
                f"more than {self._config.max_pending_binary} headers without a payload",
            )

    def _on_binary_header(
        self, nb: _Neighbour, frame: BinaryHeader | BinaryGossipHeader | BadBinaryHeader, now: float
    ) -> None:
        discard = Pending(PendingKind.DISCARD)
        if isinstance(frame, BadBinaryHeader):
            self._queue_payload(nb, discard)
            self._reject(nb.peer, frame.field, frame.reason)
            return
        if isinstance(frame, BinaryHeader):
            limit = self._config.max_binary_bytes
            if frame.size > limit:
                self._queue_payload(nb, discard)
                self._reject(nb.peer, "size", f"{frame.size} bytes exceeds the limit of {limit}")
                return
            self._queue_payload(nb, Pending(PendingKind.DIRECT, size=frame.size))
            return
        self._c.received += 1
        limit = self._config.max_broadcast_binary_bytes
        try:
            on_path = self._check_envelope(nb, frame.from_peer, frame.ttl, frame.path)
            if frame.size > limit:
                raise DecodeError("size", f"{frame.size} bytes exceeds the limit of {limit}")
        except DecodeError as err:
            self._queue_payload(nb, discard)
            self._reject(nb.peer, err.field, err.reason)
            return
        if self._skip(frame.id, frame.network, on_path, frame.timestamp, now):
            self._queue_payload(nb, discard)
            return
        self._queue_payload(nb, Pending(PendingKind.BROADCAST, size=frame.size, header=frame))

    def _flood_binary(
        self, header: BinaryGossipHeader, payload: bytes, *, exclude: PeerId | None, relay: bool
    ) -> None:
        eligible = self._eligible(_lowered(header.path), exclude)
        targets = [nb for nb in eligible if self._takes_binary(nb)]
        if not targets or not self._budget_ok(header.ttl, len(header.path or ())):
            return
        ttl = header.ttl
        assert isinstance(ttl, int)
        for nb in targets:
            if not nb.fits(len(payload)):
                self._c.too_large += 1
                continue
            cap = min(ttl, nb.ttl_cap)
            text = encode_binary_gossip_header(header if cap == ttl else replace(header, ttl=cap))
            if relay:
                self._c.binary_relayed += 1
            self._act(GossipSend(nb.peer, text))
            self._act(GossipSend(nb.peer, payload))

    # --- internals: hello ----------------------------------------------------------------

    def _neighbour_list(self) -> tuple[PeerId, ...]:
        return tuple(self._neighbours)[:MAX_HELLO_NEIGHBOURS]

    def _send_hello(self, nb: _Neighbour, current: tuple[PeerId, ...] | None = None) -> None:
        listed = self._neighbour_list() if current is None else current
        nb.advertised = listed
        hello = Hello(
            from_peer=self._me,
            version=HELLO_VERSION,
            max_ttl=self._config.max_ttl,
            features=_FEATURES,
            neighbours=listed,
            min_peers=self._min_peers,
        )
        self._act(GossipSend(nb.peer, encode_hello(hello)))

    def _advert_soon(self, now: float) -> None:
        if self._advert_at is None and any(nb.python for nb in self._neighbours.values()):
            self._advert_at = now + self._config.advert_delay_s

    def _on_hello(self, nb: _Neighbour, hello: Hello) -> None:
        if hello.from_peer.lower() != nb.peer.lower():
            self._reject(nb.peer, "from", "is not the sending neighbour")
            return
        self._c.hellos_received += 1
        first = not nb.python
        nb.python = True
        nb.max_ttl = hello.max_ttl
        nb.ttl_cap = hello.max_ttl
        nb.features = frozenset(hello.features)
        nb.degree = len(hello.neighbours)
        nb.min_peers = hello.min_peers
        listed = hello.neighbours[: self._config.max_neighbour_list]
        nb.onward = tuple(int(p, 16) for p in listed) if FEATURE_NEIGHBOURS in nb.features else None
        if first and nb.advertised != self._neighbour_list():
            self._send_hello(nb)  # our list changed since our first hello to it

    # --- internals: misc -----------------------------------------------------------------

    def _reject(self, peer: PeerId, field_name: str, reason: str) -> None:
        self._c.rejected += 1
        self._emit(GossipRejected(peer, field_name, reason))

    def _wall_ms(self, now: float) -> int:
        return int((now + self._wall_offset_s) * 1000)
