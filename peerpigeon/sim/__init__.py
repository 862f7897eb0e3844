"""Deterministic network simulator: the protocol machines on a virtual clock, from one seed.

See DESIGN.md (sim/) and STYLE.md 2.7. `SimNetwork` drives one signaling hub and many
signaling clients over in-memory links with latency, jitter, loss and partitions.
"""

from __future__ import annotations

from .clock import DEFAULT_WALL_OFFSET_S, Scheduler, VirtualClock
from .links import Link, LinkConfig, Partition, PartitionMode, StreamEnd
from .network import (
    ClientHandle,
    HubHandle,
    NetworkCounters,
    SimNetwork,
    SimulationError,
    TraceEntry,
)
from .nodes import SignalingClientNode, SignalingServerNode, SimNode, Transport

__all__ = [
    "DEFAULT_WALL_OFFSET_S",
    "ClientHandle",
    "HubHandle",
    "Link",
    "LinkConfig",
    "NetworkCounters",
    "Partition",
    "PartitionMode",
    "Scheduler",
    "SignalingClientNode",
    "SignalingServerNode",
    "SimNetwork",
    "SimNode",
    "SimulationError",
    "StreamEnd",
    "TraceEntry",
    "Transport",
    "VirtualClock",
]
