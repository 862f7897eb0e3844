"""Gossip as a sans-IO machine: `Gossip`, its config, actions, events and counters.

Reference: reference/data-plane.md sections 3 (gossip), 5 (binary messages), 12 and 14.
Modules: `machine` (the `Gossip` machine; the rules are in its docstring), `config`
(`GossipConfig`), `events`, `seen` (the bounded seen-id cache), `routing` (the next hop of a
direct message), `binary` (header/payload pairing).

API (every input takes ``now``, monotonic seconds; outputs are drained)::

    Gossip(me, config, *, entropy, network="global", wall_offset_s=0.0)
    channels: peer_connected(peer, max_message_size, now), peer_lost(peer, now)
    frames:   receive_text(peer, text, now), receive_json(peer, obj, now),
              receive_frame(peer, frame, now), receive_binary(peer, data, now)
    app:      broadcast(content, now, *, subtype="chat") -> id,
              send_direct(to, content, now, *, subtype="dm") -> id,
              send_binary(peer, data, now), broadcast_binary(data, now) -> id
    timer:    handle_timer(now), next_deadline()
    outputs:  drain_actions() -> [GossipSend], drain_events() -> [GossipEvent]
    views:    stats(), neighbours(), python_neighbours(), seen_count(), pending_binary(peer)
"""

from __future__ import annotations

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
from .machine import (
    FEATURE_BINARY_BROADCAST,
    FEATURE_EVICTION_AGREEMENT,
    FEATURE_NEIGHBOURS,
    Gossip,
    is_control_content,
)
from .routing import Hop, RouteCandidate, next_hop

__all__ = [
    "FEATURE_BINARY_BROADCAST",
    "FEATURE_EVICTION_AGREEMENT",
    "FEATURE_NEIGHBOURS",
    "BinaryMessageReceived",
    "Gossip",
    "GossipAction",
    "GossipConfig",
    "GossipEvent",
    "GossipRejected",
    "GossipSend",
    "GossipStats",
    "Hop",
    "MessageReceived",
    "RouteCandidate",
    "StreamChunkPaired",
    "is_control_content",
    "next_hop",
]
