"""`PeerPigeonMesh` peers on our hub, over real aiortc data channels on 127.0.0.1.

Six peers (max_peers=3, min_peers=2) form one connected mesh with symmetric links within the
degree bounds, carry a direct message across every link in both directions, and re-balance
after one of them leaves. Two peers exercise both event deliveries (callbacks and the async
iterator), messages both ways and `status()`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import anyio
import anyio.abc
import pytest

from peerpigeon.io.hub import PeerPigeonServer
from peerpigeon.io.mesh import LOOPBACK_ICE_HOSTS, PeerPigeonMesh
from peerpigeon.protocol.ids import PeerId
from peerpigeon.protocol.mesh import (
    REASON_DATA_CHANNEL_CLOSED,
    REASON_LEFT_NETWORK,
    MeshEvent,
    MessageReceived,
    PeerConnected,
    PeerDisconnected,
    PeerDiscovered,
    StatusChanged,
)
from peerpigeon.protocol.wire import JsonValue

pytestmark = pytest.mark.anyio

NETWORK = "loopback-test"
MAX_PEERS = 3
MIN_PEERS = 2
POLL_S = 0.02

E = TypeVar("E")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aiortc is asyncio-only


# --- helpers ---------------------------------------------------------------------------------


class Recorder:
    """Every event of one mesh, through a callback per name (``mesh.on``)."""

    NAMES = (
        "peer_discovered",
        "peer_connected",
        "peer_disconnected",
        "peer_evicted",
        "message_received",
        "status_changed",
        "peers_updated",
        "frame_rejected",
    )

    def __init__(self, mesh: PeerPigeonMesh) -> None:
        self.mesh = mesh
        self.events: list[MeshEvent] = []
        self.max_degree_seen = 0
        for name in self.NAMES:
            mesh.on(name, self._record)

    def _record(self, event: MeshEvent) -> None:
        self.events.append(event)
        self.max_degree_seen = max(self.max_degree_seen, len(self.mesh.connected_peers()))

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]

    def messages(self) -> list[MessageReceived]:
        return [e for e in self.events if isinstance(e, MessageReceived)]


def graph(meshes: Iterable[PeerPigeonMesh]) -> dict[PeerId, set[PeerId]]:
    """Each peer's open links, as its mesh reports them."""
    return {m.peer_id: set(m.connected_peers()) for m in meshes}


def is_connected(adjacency: Mapping[PeerId, set[PeerId]]) -> bool:
    """Whether the undirected union graph spans every node."""
    nodes = set(adjacency)
    if not nodes:
        return True
    start = next(iter(nodes))
    seen = {start}
    todo = [start]
    while todo:
        node = todo.pop()
        for other in adjacency[node]:
            if other in nodes and other not in seen:
                seen.add(other)
                todo.append(other)
    return seen == nodes


def is_symmetric(adjacency: Mapping[PeerId, set[PeerId]]) -> bool:
    return all(a in adjacency.get(b, set()) for a, peers in adjacency.items() for b in peers)


def settled(meshes: list[PeerPigeonMesh], min_degree: int) -> bool:
    """One connected mesh, symmetric links, every degree within [min_degree, MAX_PEERS]."""
    adjacency = graph(meshes)
    return (
        is_connected(adjacency)
        and is_symmetric(adjacency)
        and all(min_degree <= len(peers) <= MAX_PEERS for peers in adjacency.values())
        and all(set(peers) <= set(adjacency) for peers in adjacency.values())
    )


async def wait_until(condition: Callable[[], bool], what: str, timeout: float) -> None:
    with anyio.move_on_after(timeout):
        while not condition():
            await anyio.sleep(POLL_S)
    assert condition(), f"timed out after {timeout} s waiting for {what}"


def describe(meshes: Iterable[PeerPigeonMesh]) -> str:
    return "; ".join(
        f"{m.peer_id[:8]}->{sorted(p[:8] for p in m.connected_peers())}" for m in meshes
    )


# --- six peers -------------------------------------------------------------------------------


class PeerTask:
    """A mesh run in its own task, so that it can be stopped (its context exited) in any
    order: a `PeerPigeonMesh` holds a task group, whose scopes must exit last-in first-out
    within one task."""

    def __init__(self, mesh: PeerPigeonMesh) -> None:
        self.mesh = mesh
        self.recorder = Recorder(mesh)
        self._stop = anyio.Event()
        self.stopped = anyio.Event()

    async def run(self, url: str, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        try:
            async with self.mesh:
                await self.mesh.connect(url)
                task_status.started()
                await self._stop.wait()
        finally:
            self.stopped.set()

    async def stop(self) -> None:
        """Exit the mesh's context (it disconnects) and wait until it has."""
        self._stop.set()
        await self.stopped.wait()


async def test_six_peers_form_a_connected_mesh_and_rebalance() -> None:
    with anyio.fail_after(90):
        async with PeerPigeonServer(port=0) as server, anyio.create_task_group() as tg:
            tasks = [
                PeerTask(
                    PeerPigeonMesh(
                        network_name=NETWORK,
                        max_peers=MAX_PEERS,
                        min_peers=MIN_PEERS,
                        ice_hosts=LOOPBACK_ICE_HOSTS,
                    )
                )
                for _ in range(6)
            ]
            for task in tasks:
                await tg.start(task.run, server.url)
            meshes = [task.mesh for task in tasks]
            recorders = {task.mesh.peer_id: task.recorder for task in tasks}

            # 1. One connected mesh, symmetric links, MIN_PEERS..MAX_PEERS each.
            await wait_until(lambda: settled(meshes, MIN_PEERS), "the mesh to form", timeout=45)
            adjacency = graph(meshes)
            assert is_connected(adjacency), describe(meshes)
            assert is_symmetric(adjacency), describe(meshes)
            for mesh in meshes:
                assert MIN_PEERS <= len(mesh.connected_peers()) <= MAX_PEERS, describe(meshes)
                assert mesh.status().connected_count == len(mesh.connected_peers())
                assert mesh.status().total_peer_count <= MAX_PEERS
            # Never more than MAX_PEERS open links at any event.
            for recorder in recorders.values():
                assert recorder.max_degree_seen <= MAX_PEERS

            # 2. A direct message across every link, both ways.
            links = {(a, b) for a, peers in adjacency.items() for b in peers}
            assert len(links) >= len(meshes) * MIN_PEERS  # ordered pairs
            by_id = {m.peer_id: m for m in meshes}
            expected: dict[tuple[PeerId, PeerId], str] = {}
            for a, b in sorted(links):
                content = f"hello {b[:8]} from {a[:8]}"
                message_id = by_id[a].send_direct_message(b, content)
                assert isinstance(message_id, str)
                assert len(message_id) == 32
                expected[(a, b)] = content

            def delivered() -> bool:
                for (a, b), content in expected.items():
                    if not any(
                        m.from_peer == a and m.via == a and m.content == content
                        for m in recorders[b].messages()
                    ):
                        return False
                return True

            await wait_until(delivered, "every direct message", timeout=15)
            for (a, b), content in expected.items():
                (message,) = [
                    m for m in recorders[b].messages() if m.from_peer == a and m.content == content
                ]
                assert message.direct is True
                assert message.encrypted is False
                assert message.hops == 0

            # 3. The best-connected peer leaves (exits its context); its neighbours notice.
            leaver = max(meshes, key=lambda m: (len(m.connected_peers()), m.peer_id))
            neighbours = set(leaver.connected_peers())
            rest = [m for m in meshes if m is not leaver]
            await next(t for t in tasks if t.mesh is leaver).stop()
            await wait_until(
                lambda: all(leaver.peer_id not in m.connected_peers() for m in rest),
                "the others to drop the leaver",
                timeout=15,
            )
            for peer in neighbours:
                gone = [
                    e for e in recorders[peer].of(PeerDisconnected) if e.peer_id == leaver.peer_id
                ]
                assert len(gone) == 1, gone  # exactly one per PeerConnected
                assert gone[0].reason in (REASON_DATA_CHANNEL_CLOSED, REASON_LEFT_NETWORK)
            for mesh in rest:
                if mesh.peer_id not in neighbours:
                    assert not [
                        e
                        for e in recorders[mesh.peer_id].of(PeerDisconnected)
                        if e.peer_id == leaver.peer_id
                    ]

            # 4. The rest re-balance: connected again, every peer back to MIN_PEERS.
            await wait_until(lambda: settled(rest, MIN_PEERS), "re-balancing", timeout=45)
            assert is_connected(graph(rest)), describe(rest)
            for recorder in recorders.values():
                assert recorder.max_degree_seen <= MAX_PEERS
            # Every link opened once was closed at most once per opening.
            for peer, recorder in recorders.items():
                opened = [e.peer_id for e in recorder.of(PeerConnected)]
                closed = [e.peer_id for e in recorder.of(PeerDisconnected)]
                for other in set(closed):
                    assert closed.count(other) <= opened.count(other), (peer[:8], other[:8])
            for task in tasks:
                await task.stop()


# --- two peers -------------------------------------------------------------------------------


async def test_two_peers_exchange_messages_status_and_both_event_deliveries() -> None:
    with anyio.fail_after(60):
        async with (
            PeerPigeonServer(port=0) as server,
            PeerPigeonMesh(
                network_name=NETWORK,
                max_peers=MAX_PEERS,
                min_peers=1,
                ice_hosts=LOOPBACK_ICE_HOSTS,
                allow_global_fallback=False,
            ) as a,
            PeerPigeonMesh(
                network_name=NETWORK,
                max_peers=MAX_PEERS,
                min_peers=1,
                ice_hosts=LOOPBACK_ICE_HOSTS,
                allow_global_fallback=False,
            ) as b,
        ):
            called_a: list[MeshEvent] = []
            called_b: list[MeshEvent] = []
            for name in ("peer_discovered", "peer_connected", "message_received"):
                a.on(name, called_a.append)
                b.on(name, called_b.append)
            before = a.status()
            assert before.peer_id == a.peer_id
            assert before.connected is False
            assert before.signaling_url is None
            assert before.connected_count == 0

            await a.connect(server.url)
            await b.connect(server.url)

            # The async iterator delivers the same events as the callbacks.
            seen_a = await a.wait_for(PeerConnected, lambda e: e.peer_id == b.peer_id, timeout=30)
            seen_b = await b.wait_for(PeerConnected, lambda e: e.peer_id == a.peer_id, timeout=30)
            assert seen_a in called_a
            assert seen_b in called_b
            assert PeerDiscovered(b.peer_id) in called_a
            assert PeerDiscovered(a.peer_id) in called_b
            assert a.connected_peers() == (b.peer_id,)
            assert b.connected_peers() == (a.peer_id,)

            # Messages both ways, any JSON content.
            content_ab: JsonValue = {
                "text": "hello b",
                "n": [1, 2.5, None, True],
                "unicode": "pigeon é 🕊",
            }
            id_ab = a.send_direct_message(b.peer_id, content_ab)
            got_b = await b.wait_for(MessageReceived, lambda e: e.message_id == id_ab, timeout=15)
            assert isinstance(got_b, MessageReceived)
            assert got_b.from_peer == a.peer_id
            assert got_b.via == a.peer_id
            assert got_b.content == content_ab
            assert got_b.direct is True
            assert got_b.hops == 0
            assert got_b in called_b

            id_ba = b.send_direct_message(a.peer_id, "hello a")
            got_a = await a.wait_for(MessageReceived, lambda e: e.message_id == id_ba, timeout=15)
            assert isinstance(got_a, MessageReceived)
            assert (got_a.from_peer, got_a.content, got_a.direct) == (b.peer_id, "hello a", True)
            assert got_a in called_a
            assert isinstance(got_a.timestamp, int)
            assert got_a.timestamp > 1_600_000_000_000

            # status(): the reference's getStatus() in snake_case.
            for mesh, other in ((a, b), (b, a)):
                status = mesh.status()
                assert status.peer_id == mesh.peer_id
                assert status.connected is True
                # JS reports the URL given to connect(); ours carries the ?peerId= query.
                assert status.signaling_url is not None
                assert status.signaling_url.startswith(server.url)
                assert status.network_name == NETWORK
                assert status.original_network_name == NETWORK
                assert status.is_in_fallback_mode is False
                assert status.allow_global_fallback is False
                assert status.connected_count == 1
                assert status.total_peer_count == 1
                assert status.min_peers == 1
                assert status.max_peers == MAX_PEERS
                assert status.discovered_count == 1
                assert status.auto_connect
                assert status.auto_discovery
                assert status.eviction_strategy
                assert status.xor_routing
                (info,) = mesh.peers()
                assert info.peer_id == other.peer_id
                assert info.status == "connected"
                assert info.is_initiator == (mesh.peer_id > other.peer_id)
                (known,) = mesh.discovered_peers()
                assert known.peer_id == other.peer_id
                assert known.is_connected
                assert known.distance == int(mesh.peer_id, 16) ^ int(other.peer_id, 16)
            assert a.stats().messages_sent == 1
            assert a.stats().messages_delivered == 1
            assert b.stats().messages_sent == 1
            assert b.stats().messages_delivered == 1

            # One side leaves: the other sees exactly one PeerDisconnected.
            await a.disconnect()
            gone = await b.wait_for(PeerDisconnected, lambda e: e.peer_id == a.peer_id, timeout=15)
            assert isinstance(gone, PeerDisconnected)
            assert gone.reason in (REASON_DATA_CHANNEL_CLOSED, REASON_LEFT_NETWORK)
            assert b.connected_peers() == ()
            assert a.connected_peers() == ()
            assert a.status().connected is False
            assert not [e for e in called_a if isinstance(e, StatusChanged)]  # not registered

            # Regression: a link that ended (here: closed by the other side) leaves no task
            # behind; each used to keep a parked worker task and its link until exit.
            def worker_tasks() -> list[asyncio.Task[Any]]:
                return [t for t in asyncio.all_tasks() if t.get_name().endswith("._run_worker")]

            await wait_until(lambda: not worker_tasks(), "the link tasks to end", timeout=5)
