"""The mesh peer as a sans-IO machine: `Mesh`, its config, actions, events and views.

Reference: reference/signaling-and-topology.md sections 6-7, data-plane.md sections 1, 3, 4,
9.5 and 12. Modules: `machine` (the `Mesh`), `config` (`MeshConfig`), `events` (actions,
events, status views), `links` (per-peer link records), `fallback` (global-fallback
timing), `eviction` (the eviction agreement between Python peers). Whom to dial, keep and
evict: `..topology`; gossip, direct messages and binary messages: `..gossip` (the `Gossip`
machine the mesh composes).

API (every input takes ``now``, monotonic seconds; outputs are drained)::

    Mesh(config, *, rng, entropy, wall_offset_s=0.0)
    app:      connect(urls, now), disconnect(now), connect_to_peer(peer, now) -> bool,
              send_message(content, now) -> message id,
              send_direct_message(peer, content, now) -> message id,
              send_binary_data(peer, data, now), broadcast_binary_data(data, now) -> id
    hub:      socket_opened(now), socket_frame(data, now), socket_closed(now, *, code, reason),
              socket_failed(now, reason)
    links:    link_offer_created(peer, sdp, now), link_answer_created(peer, sdp, now),
              link_candidate(peer, candidate, sdp_mid, sdp_mline_index, username_fragment,
              now), link_open(peer, max_message_size, now), link_text(peer, text, now),
              link_binary(peer, data, now), link_closed(peer, reason, now),
              link_failed(peer, reason, now)
    timer:    handle_timer(now), next_deadline()
    outputs:  drain_actions() -> [MeshAction], drain_events() -> [MeshEvent]
    views:    status(), connected_peers(), discovered_peers(), peers(), stats(),
              gossip_stats(), python_neighbours(), link_count(), ring_neighbours(),
              eviction_asks(), eviction_reservations(),
              network_name, fallback_state, signaling_state

Contract with the I/O layer (io/mesh.py and sim/mesh.py obey it):

* Perform actions in order. `OpenSocket` / `SendText` / `CloseSocket` are the signaling
  client's: one socket at a time; after `CloseSocket` report nothing more about it.
* `CreateOffer` / `AcceptOffer` each create a *fresh* link for that peer (report
  ``link_offer_created`` / ``link_answer_created``, or ``link_failed``). The machine never
  asks for a link to a peer while one is live: it sends `CloseLink` first.
* `AcceptAnswer`: apply it; if it cannot be applied, report ``link_failed``.
  `AddRemoteCandidate`: apply or buffer it; errors are ignored.
* `SendData`: queue it on the channel, in order. An eviction notice is a `SendData`
  followed ``eviction_linger_s`` later by `CloseLink` (sooner if the victim closes), so
  the adapter need not flush before closing (reference weakness 23); flushing briefly
  before a close still helps.
* After `CloseLink` the adapter closes the link and reports nothing more about it, not
  even its ``Closed`` event. A link that ends on its own is reported once
  (``link_closed`` / ``link_failed``) and gets no `CloseLink`.
* Facts about a peer without a live link are counted (``stale_reports``) and ignored.
* After any input, if ``now >= next_deadline()``, call `handle_timer(now)`.

Behaviour beyond the topology rules:

* Offers are answered only per the initiator rule; a wrong-way or unwelcome offer gets
  ``connection-rejected`` with ``data.reason`` ``initiator_role_conflict`` or
  ``max_peers_reached`` (our hub routes it; the JS hub answers it with an ``error``, which
  becomes a ``warning`` status). A refused dial is retried after ``reject_backoff_s``
  (doubling); a dial that does not open within ``connection_timeout_s`` is closed and
  retried after ``dial_backoff_base_s`` (doubling, capped).
* Eviction: both sides emit `PeerEvicted` (``initiated_by_peer`` tells which side) and
  `PeerDisconnected` (``"evicted: <reason>"``); JS emits one of them on each side. After
  an eviction, neither side dials the other for ``evicted_backoff_s``. A Python victim
  is asked first and agrees only if it keeps ``min_peers`` open links (module
  `eviction`, docs/eviction.md); the offer or ring dial that wanted the slot waits for
  its answer (`EvictionRequested` on the victim). JS victims are evicted at once.
* Gossip (`peerpigeon.protocol.gossip`): ``chat`` broadcasts are flooded and delivered,
  direct messages are routed to any peer by XOR distance, binary data goes to one
  neighbour (``__BINARY__``) or, between Python peers, to all (``__PP_BINARY__``); every
  message id is delivered at most once. ``key_exchange`` / ``key_exchange_response`` (sent
  by JS peers with crypto on) and other subtypes are relayed, never delivered. On every new
  channel a ``__PP_HELLO__`` frame tells a Python peer our TTL bound and neighbours (JS
  ignores it). A frame whose sender field names another peer than the neighbour is rejected.
* The hub: links survive a lost signaling session (as in JS 1.0.6); known peers survive
  it too, and those the hub has not re-announced ``rediscovery_grace_s`` after the new
  session opens are forgotten unless linked. ``goodbye`` closes the peer's link
  (``"left network"``); ``peer-disconnected`` forgets the peer but keeps an open link.
* Global fallback (``allow_global_fallback`` and a namespace other than ``"global"``):
  alone (hub session open, nobody known, no link) for ``fallback_after_s`` -> a new
  session announced in ``"global"``; ``status().network_name`` becomes ``"global"``,
  ``is_in_fallback_mode`` true, a ``network`` status is emitted. Every
  ``fallback_probe_interval_s`` the peer announces in its own namespace again for
  ``fallback_probe_window_s`` (global links stay up, no new dials): a peer discovered
  there, or an offer from one, ends the fallback (global links close with
  ``"network changed"``, a ``network`` status); otherwise it returns to ``"global"``.
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
    BinaryMessageReceived,
    CloseLink,
    CreateOffer,
    DiscoveredPeer,
    EvictionRequested,
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
    StreamAborted,
    StreamCredit,
    StreamData,
    StreamDelivered,
    StreamEnded,
    StreamOpened,
)
from .fallback import FallbackState
from .machine import Mesh

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
    "StreamAborted",
    "StreamCredit",
    "StreamData",
    "StreamDelivered",
    "StreamEnded",
    "StreamOpened",
]
