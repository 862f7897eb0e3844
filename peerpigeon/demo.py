"""``peerpigeon demo``: a hub and a few peers on loopback, showing discovery and signaling.

Everything stays on 127.0.0.1. The demo starts a hub on a free port, connects the peers
to it, waits until every peer has discovered every other, has each pair exchange an
offer and an answer through the hub (the initiator rule: the larger ID offers), then
has one peer leave and shows the others being told. It exits 0 on success.
"""

from __future__ import annotations

from contextlib import AsyncExitStack

import anyio

from peerpigeon.io.client import SignalingSession
from peerpigeon.io.hub import PeerPigeonServer
from peerpigeon.protocol.client import AnswerReceived, OfferReceived, PeerDiscovered, PeerLeft
from peerpigeon.protocol.ids import is_initiator

__all__ = ["run_demo"]

DEMO_NETWORK = "demo"


def _short(peer_id: str) -> str:
    return peer_id[:8]


async def run_demo(peers: int = 4, keep_running: bool = False, timeout_s: float = 30.0) -> int:
    """Run the demo; returns the process exit code."""
    if peers < 2:
        print("demo: needs at least 2 peers")
        return 2
    async with PeerPigeonServer(port=0) as server:
        print(f"hub listening on {server.url}")
        sessions = [SignalingSession(server.url, network_name=DEMO_NETWORK) for _ in range(peers)]
        discovered: dict[str, set[str]] = {s.peer_id: set() for s in sessions}
        offers_seen: dict[str, set[str]] = {s.peer_id: set() for s in sessions}
        answers_seen: dict[str, set[str]] = {s.peer_id: set() for s in sessions}
        left_seen: dict[str, set[str]] = {s.peer_id: set() for s in sessions}
        everyone = {s.peer_id for s in sessions}
        all_found = anyio.Event()
        all_answered = anyio.Event()
        want_pairs = peers * (peers - 1) // 2

        async def drive(session: SignalingSession) -> None:
            me = session.peer_id
            async for event in session.events():
                match event:
                    case PeerDiscovered(peer_id=other):
                        discovered[me].add(other)
                        print(f"  {_short(me)} discovered {_short(other)}")
                        if is_initiator(me, other):
                            session.send_offer(other, f"v=0\r\ns=demo offer from {me}\r\n")
                        if all(discovered[p] >= everyone - {p} for p in everyone):
                            all_found.set()
                    case OfferReceived(from_peer_id=other):
                        offers_seen[me].add(other)
                        session.send_answer(other, f"v=0\r\ns=demo answer from {me}\r\n")
                    case AnswerReceived(from_peer_id=other):
                        answers_seen[me].add(other)
                        print(f"  {_short(me)} <-> {_short(other)}: offer/answer done")
                        if sum(len(v) for v in answers_seen.values()) == want_pairs:
                            all_answered.set()
                    case PeerLeft(peer_id=other, reason=reason):
                        left_seen[me].add(other)
                        print(f"  {_short(me)} was told {_short(other)} left ({reason})")
                    case _:
                        pass

        with anyio.fail_after(timeout_s):
            async with anyio.create_task_group() as tg, AsyncExitStack() as stack:
                for session in sessions:
                    await stack.enter_async_context(session)
                    print(f"peer {_short(session.peer_id)} connecting")
                    tg.start_soon(drive, session)
                await all_found.wait()
                print(f"all {peers} peers discovered each other")
                await all_answered.wait()
                print(f"all {want_pairs} pairs exchanged offer and answer through the hub")
                leaver = sessions[0]
                await leaver.disconnect()
                print(f"peer {_short(leaver.peer_id)} left")
                rest = sessions[1:]
                while not all(leaver.peer_id in left_seen[s.peer_id] for s in rest):
                    await anyio.sleep(0.05)
                stats = server.machine.stats()
                print(
                    f"hub: {stats.relayed} signals relayed, {stats.frames_sent} frames sent, "
                    f"{stats.connections} peers still connected"
                )
                if keep_running:
                    print("running until Ctrl-C")
                    await anyio.sleep_forever()
                tg.cancel_scope.cancel()
    print("demo finished")
    return 0
