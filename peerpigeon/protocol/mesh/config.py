"""`MeshConfig`: the options of one mesh peer (the JS constructor's, plus bounds and timers).

Reference: reference/signaling-and-topology.md section 7.1 (options) and data-plane.md
section 13 (numbers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from peerpigeon.protocol.client import ClientConfig
from peerpigeon.protocol.errors import ConfigError
from peerpigeon.protocol.frames import DEFAULT_GOSSIP_TTL, DEFAULT_MAX_DATA_FRAME_BYTES
from peerpigeon.protocol.gossip import GossipConfig
from peerpigeon.protocol.ids import PeerId, is_valid_peer_id
from peerpigeon.protocol.streams import StreamConfig
from peerpigeon.protocol.topology import TopologyConfig
from peerpigeon.protocol.wire import DEFAULT_MAX_FRAME_BYTES, GLOBAL_NETWORK

__all__ = ["MeshConfig"]

_PLACEHOLDER_URL = "ws://placeholder.invalid"


def _positive(value: object, name: str, *, zero_ok: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(name, "must be a finite number")
    if value < 0 or (value == 0 and not zero_ok):
        raise ConfigError(name, "must be greater than 0" if not zero_ok else "must be >= 0")


def _count(value: object, name: str, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(name, "must be an integer")
    if value < minimum:
        raise ConfigError(name, f"must be at least {minimum}")


@dataclass(frozen=True, slots=True, kw_only=True)
class MeshConfig:
    """Settings of one `Mesh`; validated on construction (raises `ConfigError`).

    Attributes (the JS option of the same name in brackets):
        peer_id: this peer's ID, 40 hex characters [peerId].
        network_name: the namespace [networkName].
        allow_global_fallback: when the namespace stays empty, use ``"global"`` until
            peers appear in it again (see `Mesh`) [allowGlobalFallback].
        max_peers, min_peers: link bounds (1..50, 0..49) [maxPeers, minPeers].
        auto_connect: stored and reported, as in JS (the adapter may act on it) [autoConnect].
        auto_discovery: dial discovered peers and run the optimiser [autoDiscovery].
        eviction_strategy: allow evicting a link for a better one [evictionStrategy].
        xor_routing: prefer XOR-closest peers; evict the farthest [xorRouting].
        keep_ring: also keep the two ring neighbours (`topology`), which keeps the mesh
            connected; off gives the reference's pure XOR preference.
        xor_buckets: spread the other links over XOR-distance levels (Kademlia-style
            buckets, `topology`) so that greedy XOR routing and flooding need O(log N)
            hops; off gives the reference's XOR-closest preference.
        connection_timeout_s: a dial or answer whose channel is not open by then is
            abandoned (and the dial retried with backoff).
        dial_backoff_base_s, dial_backoff_cap_s: the n-th consecutive failed dial to a
            peer blocks it for ``min(base * 2**(n-1), cap)``, shortened by ``dial_jitter``.
        reject_backoff_s: the base delay after a peer refused our offer (same doubling,
            capped at ``reject_backoff_cap_s``).
        evicted_backoff_s: after an eviction (either way) do not dial that peer for so long.
        dial_jitter: delays are drawn from ``[d * (1 - jitter), d]``; in [0, 1).
        optimize_interval_s: period of the optimiser (it also runs ``optimize_delay_s``
            after any change of the known peers or links).
        eviction_linger_s: an evicted link stays up this long after the notice, so the
            notice arrives before the close (reference weakness 23).
        eviction_ask_timeout_s: how long we wait for a Python neighbour to answer our ask
            to evict it (docs/eviction.md); a victim keeps the link it agreed to give up
            reserved for twice this long.
        max_eviction_asks: asks to evict waiting for an answer at once; at the bound no
            further eviction is started (the offer is refused, the ring dial waits).
        eviction_refused_hold_s: a neighbour that refused (or did not answer) an ask is not
            asked again, nor evicted, for this long.
        rediscovery_grace_s: after a (re)connection to the hub, known peers the hub has not
            re-announced within this time are forgotten (unless linked).
        fallback_after_s: alone in ``network_name`` this long (hub connected, nobody
            known, no links) -> switch to ``"global"``.
        fallback_probe_interval_s, fallback_probe_window_s: while in fallback, announce in
            ``network_name`` again every interval and stay there if a peer shows up within
            the window.
        max_known_peers: bound of the known-peer table (the oldest unlinked goes).
        max_seen_messages, seen_ttl_s: bound and lifetime of the seen gossip ids.
        max_ttl, max_path_length, max_message_age_s, max_message_bytes, max_binary_bytes,
            max_broadcast_binary_bytes, max_pending_binary, advert_delay_s: the gossip
            layer's settings (`GossipConfig`; ``max_ttl`` defaults to the reference's 10,
            and JS neighbours never get more).
        max_candidates_per_link: ICE candidates forwarded per link; more are dropped.
        max_data_frame_bytes: largest data-channel text frame accepted.
        max_bad_frames: undecodable data frames tolerated per link before closing it.
        keepalive_interval_s ... max_signaling_frame_bytes, max_discovered: the signaling
            client's settings (`ClientConfig`: ``connect_timeout_s`` is
            ``signaling_connect_timeout_s``, ``max_frame_bytes`` is
            ``max_signaling_frame_bytes``).
    """

    peer_id: PeerId
    network_name: str = GLOBAL_NETWORK
    allow_global_fallback: bool = True
    max_peers: int = 3
    min_peers: int = 2
    auto_connect: bool = True
    auto_discovery: bool = True
    eviction_strategy: bool = True
    xor_routing: bool = True
    keep_ring: bool = True
    xor_buckets: bool = True
    connection_timeout_s: float = 15.0
    dial_backoff_base_s: float = 1.0
    dial_backoff_cap_s: float = 60.0
    reject_backoff_s: float = 15.0
    reject_backoff_cap_s: float = 300.0
    evicted_backoff_s: float = 30.0
    dial_jitter: float = 0.5
    optimize_interval_s: float = 5.0
    optimize_delay_s: float = 0.02
    eviction_linger_s: float = 1.0
    eviction_ask_timeout_s: float = 2.0
    max_eviction_asks: int = 4
    eviction_refused_hold_s: float = 5.0
    rediscovery_grace_s: float = 10.0
    fallback_after_s: float = 30.0
    fallback_probe_interval_s: float = 120.0
    fallback_probe_window_s: float = 15.0
    max_known_peers: int = 10_000
    max_seen_messages: int = 10_000
    seen_ttl_s: float = 300.0
    max_ttl: int = DEFAULT_GOSSIP_TTL
    max_path_length: int = 64
    max_message_age_s: float | None = None
    max_message_bytes: int = 65_536
    max_binary_bytes: int = 262_144
    max_broadcast_binary_bytes: int = 65_536
    max_pending_binary: int = 16
    advert_delay_s: float = 0.5
    max_candidates_per_link: int = 64
    max_data_frame_bytes: int = DEFAULT_MAX_DATA_FRAME_BYTES
    max_bad_frames: int = 50
    streams: StreamConfig = field(default_factory=StreamConfig)  # neighbour streams (files)
    keepalive_interval_s: float | None = 30.0
    keepalive_timeout_s: float | None = None
    signaling_connect_timeout_s: float = 10.0
    reconnect_base_s: float = 1.0
    reconnect_cap_s: float = 30.0
    reconnect_jitter: float = 0.5
    max_reconnect_attempts: int | None = None
    max_signaling_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    max_discovered: int = 10_000

    def __post_init__(self) -> None:
        """Validate every field (the signaling ones through `ClientConfig`)."""
        if not is_valid_peer_id(self.peer_id):
            raise ConfigError("peer_id", "must be 40 hex characters")
        if not isinstance(self.network_name, str) or not self.network_name:
            raise ConfigError("network_name", "must be a non-empty string")
        for name in ("allow_global_fallback", "auto_connect"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(name, "must be a bool")
        self.topology()  # min/max peers and the topology flags
        for name in (
            "connection_timeout_s",
            "dial_backoff_base_s",
            "dial_backoff_cap_s",
            "reject_backoff_s",
            "reject_backoff_cap_s",
            "optimize_interval_s",
            "optimize_delay_s",
            "seen_ttl_s",
            "fallback_after_s",
            "fallback_probe_interval_s",
            "fallback_probe_window_s",
            "eviction_ask_timeout_s",
        ):
            _positive(getattr(self, name), name)
        for name in (
            "evicted_backoff_s",
            "eviction_linger_s",
            "rediscovery_grace_s",
            "eviction_refused_hold_s",
        ):
            _positive(getattr(self, name), name, zero_ok=True)
        if self.dial_backoff_cap_s < self.dial_backoff_base_s:
            raise ConfigError("dial_backoff_cap_s", "must be at least dial_backoff_base_s")
        if self.reject_backoff_cap_s < self.reject_backoff_s:
            raise ConfigError("reject_backoff_cap_s", "must be at least reject_backoff_s")
        jitter = self.dial_jitter
        if isinstance(jitter, bool) or not isinstance(jitter, int | float) or not 0 <= jitter < 1:
            raise ConfigError("dial_jitter", "must be a number in [0, 1)")
        for name in ("max_known_peers", "max_seen_messages", "max_candidates_per_link"):
            _count(getattr(self, name), name)
        _count(self.max_bad_frames, "max_bad_frames", 0)
        _count(self.max_eviction_asks, "max_eviction_asks", 0)
        _count(self.max_data_frame_bytes, "max_data_frame_bytes", 1024)
        self.client_config((_PLACEHOLDER_URL,), self.network_name)
        self.gossip()

    def gossip(self) -> GossipConfig:
        """The gossip layer's part of the settings."""
        return GossipConfig(
            max_ttl=self.max_ttl,
            max_path_length=self.max_path_length,
            max_seen=self.max_seen_messages,
            seen_ttl_s=self.seen_ttl_s,
            max_message_age_s=self.max_message_age_s,
            max_message_bytes=self.max_message_bytes,
            max_binary_bytes=self.max_binary_bytes,
            max_broadcast_binary_bytes=self.max_broadcast_binary_bytes,
            max_pending_binary=self.max_pending_binary,
            advert_delay_s=self.advert_delay_s,
        )

    def topology(self) -> TopologyConfig:
        """The topology's part of the settings."""
        return TopologyConfig(
            min_peers=self.min_peers,
            max_peers=self.max_peers,
            xor_routing=self.xor_routing,
            eviction_strategy=self.eviction_strategy,
            auto_discovery=self.auto_discovery,
            keep_ring=self.keep_ring,
            xor_buckets=self.xor_buckets,
        )

    def client_config(self, urls: tuple[str, ...], network_name: str) -> ClientConfig:
        """The signaling client's settings for `urls` in namespace `network_name`."""
        return ClientConfig(
            peer_id=self.peer_id,
            urls=urls,
            network_name=network_name,
            max_peers=self.max_peers,
            keepalive_interval_s=self.keepalive_interval_s,
            keepalive_timeout_s=self.keepalive_timeout_s,
            connect_timeout_s=self.signaling_connect_timeout_s,
            reconnect_base_s=self.reconnect_base_s,
            reconnect_cap_s=self.reconnect_cap_s,
            reconnect_jitter=self.reconnect_jitter,
            max_reconnect_attempts=self.max_reconnect_attempts,
            max_frame_bytes=self.max_signaling_frame_bytes,
            max_discovered=self.max_discovered,
        )
