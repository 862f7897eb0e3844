"""PeerPigeonServer and SignalingSession over real sockets on 127.0.0.1, asyncio and trio."""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import AsyncIterator

import anyio
import pytest
from anyio.abc import SocketAttribute
from websockets.client import ClientProtocol
from websockets.http11 import Response
from websockets.uri import parse_uri

from peerpigeon.io.client import SignalingSession
from peerpigeon.io.hub import PeerPigeonServer
from peerpigeon.io.websocket import LinkClosed, TextOrBinary, WebSocketLink
from peerpigeon.protocol.client import (
    AnswerReceived,
    OfferReceived,
    PeerDiscovered,
    PeerLeft,
    SignalingConnected,
    SignalingDisconnected,
)
from peerpigeon.protocol.server import ServerConfig

pytestmark = pytest.mark.anyio

A = "a" * 40
B = "b" * 40
C = "c" * 40


@pytest.fixture
async def server() -> AsyncIterator[PeerPigeonServer]:
    async with PeerPigeonServer(port=0) as srv:
        yield srv


async def http_get(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """A minimal HTTP/1.1 request over anyio (so it runs on trio too)."""
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        data = b""
        try:
            while True:
                data += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            pass
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, body


class RawClient:
    """A bare WebSocket client (websockets' sans-I/O protocol) for wire-level assertions."""

    def __init__(self, link: WebSocketLink, early: list[str]) -> None:
        self.link = link
        self.inbox: list[str] = list(early)

    @classmethod
    async def connect(cls, url: str) -> RawClient:
        uri = parse_uri(url)
        stream = await anyio.connect_tcp(uri.host, uri.port)
        protocol = ClientProtocol(uri)
        protocol.send_request(protocol.connect())
        for chunk in protocol.data_to_send():
            await stream.send(chunk)
        early: list[str] = []
        got_response = False
        while not got_response:
            protocol.receive_data(await stream.receive())
            for event in protocol.events_received():
                if type(event).__name__ == "Response":
                    got_response = True
                elif hasattr(event, "data"):
                    early.append(bytes(event.data).decode())
        link = WebSocketLink(stream, protocol, max_queue=64, close_timeout_s=1.0)
        return cls(link, early)

    async def recv(self) -> dict[str, object] | LinkClosed:
        if self.inbox:
            return json.loads(self.inbox.pop(0))  # type: ignore[no-any-return]
        while True:
            item = await self.link.receive()
            if isinstance(item, TextOrBinary):
                assert isinstance(item.data, str)
                return json.loads(item.data)  # type: ignore[no-any-return]
            if isinstance(item, LinkClosed):
                return item

    async def send(self, obj: dict[str, object]) -> None:
        assert self.link.send_text(json.dumps(obj))
        # push the queued bytes out
        await anyio.sleep(0)


async def test_health_hubs_and_plain_http(server: PeerPigeonServer) -> None:
    assert server.port is not None
    with anyio.fail_after(10):
        status, headers, body = await http_get(server.port, "/health")
        assert status == 200
        assert headers["content-type"] == "application/json"
        assert headers["access-control-allow-origin"] == "*"
        health = json.loads(body)
        assert health["status"] == "healthy"
        assert health["isHub"] is False
        assert health["connections"] == 0
        status, _, body = await http_get(server.port, "/hubs")
        assert json.loads(body)["totalHubs"] == 0
        status, _, body = await http_get(server.port, "/anything")
        assert body == b"PeerPigeon WebSocket Signaling Server"
        status, headers, _ = await http_get(server.port, "/health", method="OPTIONS")
        assert status == 200
        assert headers["access-control-allow-methods"] == "GET, POST, OPTIONS"


async def test_raw_wire_connected_discovery_relay_and_close_codes(
    server: PeerPigeonServer,
) -> None:
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            a = await RawClient.connect(f"{server.url}/?peerId={A}")
            b = await RawClient.connect(f"{server.url}/any/path?x=1&peerId={B}")
            for client, me in ((a, A), (b, B)):
                tg.start_soon(client.link.run_writer)
                hello = await client.recv()
                assert isinstance(hello, dict)
                assert hello["type"] == "connected"
                assert hello["data"] == {"peerId": me}
            await a.send({"type": "announce", "data": {"peerId": A}, "networkName": "global"})
            await b.send({"type": "announce", "data": {"peerId": B}, "networkName": "global"})
            found = await b.recv()
            assert isinstance(found, dict)
            assert found["type"] == "peer-discovered"
            assert found["data"] == {"peerId": A, "isHub": False}
            assert found["targetPeerId"] == B
            await b.send(
                {
                    "type": "offer",
                    "data": {"type": "offer", "sdp": "v=0 test"},
                    "maxPeers": 3,
                    "networkName": "global",
                    "targetPeerId": A,
                }
            )
            found_b = await a.recv()
            assert isinstance(found_b, dict)
            assert found_b["type"] == "peer-discovered"
            offer = await a.recv()
            assert isinstance(offer, dict)
            assert offer["type"] == "offer"
            assert offer["fromPeerId"] == B
            assert offer["data"] == {"type": "offer", "sdp": "v=0 test"}
            assert "maxPeers" not in offer
            # A third socket with A's live ID is refused; a bad ID too.
            dup = await RawClient.connect(f"{server.url}/?peerId={A}")
            tg.start_soon(dup.link.run_writer)
            closed = await dup.recv()
            assert isinstance(closed, LinkClosed)
            assert (closed.code, closed.reason) == (1008, "Peer already connected")
            bad = await RawClient.connect(f"{server.url}/?peerId=nothex")
            tg.start_soon(bad.link.run_writer)
            closed = await bad.recv()
            assert isinstance(closed, LinkClosed)
            assert (closed.code, closed.reason) == (1008, "Invalid peerId format")
            # B leaves: A is told, with the namespace.
            b.link.close(1000, "bye")
            gone = await a.recv()
            assert isinstance(gone, dict)
            assert gone["type"] == "peer-disconnected"
            assert gone["networkName"] == "global"
            assert gone["data"]["peerId"] == B  # type: ignore[index]
            a.link.close(1000, "bye")
            tg.cancel_scope.cancel()
        for client in (a, b, dup, bad):
            client.link.aclose_nowait()


async def test_oversized_frame_closes_1009() -> None:
    config = ServerConfig(max_message_bytes=2048)
    async with PeerPigeonServer(port=0, config=config) as server:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                a = await RawClient.connect(f"{server.url}/?peerId={A}")
                tg.start_soon(a.link.run_writer)
                assert isinstance(await a.recv(), dict)
                await a.send({"type": "announce", "data": {"pad": "x" * 4096}})
                closed = await a.recv()
                assert isinstance(closed, LinkClosed)
                assert closed.code == 1009
                tg.cancel_scope.cancel()
            a.link.aclose_nowait()


def accepted_end(client: socket.socket) -> socket.socket:
    """A duplicate of the server's socket for `client`'s connection (the server is in-process)."""
    want = (client.getpeername(), client.getsockname())
    for name in os.listdir("/proc/self/fd"):
        try:
            sock = socket.socket(fileno=os.dup(int(name)))
        except OSError:  # not a socket (or already closed)
            continue
        try:
            if sock.type == socket.SOCK_STREAM and (sock.getsockname(), sock.getpeername()) == want:
                return sock
        except OSError:  # a listening or unconnected socket has no peer
            pass
        sock.close()
    raise AssertionError("the server's end of the connection is not in this process")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the socket in /proc")
async def test_accepted_connections_send_without_nagle(server: PeerPigeonServer) -> None:
    # With Nagle on, a frame relayed to a client that has an unacknowledged one waits for the
    # client's delayed ACK (40 ms): the hub must set TCP_NODELAY on every connection it accepts.
    with anyio.fail_after(10):
        uri = parse_uri(f"{server.url}/?peerId={A}")
        async with await anyio.connect_tcp(uri.host, uri.port) as stream:
            protocol = ClientProtocol(uri)
            protocol.send_request(protocol.connect())
            for chunk in protocol.data_to_send():
                await stream.send(chunk)
            while not any(isinstance(e, Response) for e in protocol.events_received()):
                protocol.receive_data(await stream.receive())  # the server has accepted it
            with accepted_end(stream.extra(SocketAttribute.raw_socket)) as ours:
                assert ours.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


async def test_sessions_discover_signal_and_leave(server: PeerPigeonServer) -> None:
    with anyio.fail_after(15):
        async with SignalingSession(server.url, peer_id=A, network_name="room") as sa:  # noqa: SIM117
            async with SignalingSession(server.url, peer_id=B, network_name="room") as sb:
                async with SignalingSession(server.url, peer_id=C, network_name="other") as sc:
                    event = await sa.wait_for(PeerDiscovered)
                    assert isinstance(event, PeerDiscovered)
                    assert event.peer_id == B
                    sb.send_offer(A, "v=0 from b")
                    offer = await sa.wait_for(OfferReceived)
                    assert isinstance(offer, OfferReceived)
                    assert (offer.from_peer_id, offer.sdp) == (B, "v=0 from b")
                    sa.send_answer(B, "v=0 from a")
                    answer = await sb.wait_for(AnswerReceived)
                    assert isinstance(answer, AnswerReceived)
                    assert answer.sdp == "v=0 from a"
                    assert sc.machine.discovered_peers == ()  # another namespace
                await sb.disconnect()
                left = await sa.wait_for(PeerLeft)
                assert isinstance(left, PeerLeft)
                assert left.peer_id == B


async def test_session_reconnects_after_hub_restart() -> None:
    async with PeerPigeonServer(port=0) as first:
        port = first.port
        assert port is not None
        url = first.url
        with anyio.fail_after(20):
            async with SignalingSession(url, peer_id=A) as sa:
                await sa.wait_for(SignalingConnected)
                await first.stop()
                down = await sa.wait_for(SignalingDisconnected)
                assert isinstance(down, SignalingDisconnected)
                assert down.reconnect_at is not None
                async with PeerPigeonServer(port=port) as second:
                    await sa.wait_for(SignalingConnected)
                    while A not in second.machine.peer_ids():
                        await anyio.sleep(0.01)
