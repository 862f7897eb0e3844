"""Two `AiortcTransport`s in one process, on loopback only (aiortc runs on asyncio only)."""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TypeVar

import anyio
import pytest
from aiortc import AudioStreamTrack, MediaStreamTrack, VideoStreamTrack
from anyio.streams.memory import MemoryObjectSendStream
from av import AudioFrame, VideoFrame

from peerpigeon.io.transport import (
    CHANNEL_LABEL,
    BinaryReceived,
    ChannelOpen,
    Closed,
    Failed,
    IceCandidateInit,
    LinkEvent,
    PeerLink,
    TextReceived,
    TrackReceived,
)
from peerpigeon.io.webrtc import LOOPBACK_ICE_HOSTS, SOCKET_BUFFER_BYTES, AiortcTransport
from peerpigeon.protocol.errors import ConfigError, DecodeError, UsageError

pytestmark = pytest.mark.anyio

AIORTC_MAX_MESSAGE_SIZE = 262144  # what aiortc 1.16 advertises (a=max-message-size)
T = TypeVar("T")
CANDIDATE_HOST = re.compile(r"^a=candidate:\S+ \d+ \S+ \d+ (\S+) \d+ typ ", re.MULTILINE)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aiortc is asyncio-only


class Peer:
    """A link whose events go into an unbounded memory stream, as a mesh adapter would."""

    def __init__(
        self,
        *,
        ice_hosts: tuple[str, ...] | None = LOOPBACK_ICE_HOSTS,
        max_pending_candidates: int = 64,
    ) -> None:
        send: MemoryObjectSendStream[LinkEvent]
        send, self.events = anyio.create_memory_object_stream[LinkEvent](math.inf)
        self._send = send
        self.link = AiortcTransport(
            send.send_nowait, ice_hosts=ice_hosts, max_pending_candidates=max_pending_candidates
        )

    async def expect(self, kind: type[T]) -> T:
        event = await self.events.receive()
        assert isinstance(event, kind), event
        return event

    async def aclose(self) -> None:
        await self.link.close()
        self._send.close()
        self.events.close()


@pytest.fixture
async def peers() -> AsyncIterator[tuple[Peer, Peer]]:
    a, b = Peer(), Peer()
    try:
        yield a, b
    finally:
        with anyio.fail_after(10):
            await a.aclose()
            await b.aclose()


async def connect(a: Peer, b: Peer) -> tuple[str, str]:
    """Offer from a, answer from b; wait until both channels are open."""
    initiator: PeerLink = a.link  # only the interface: mypy checks AiortcTransport fits it
    answerer: PeerLink = b.link
    offer = await initiator.create_offer()
    answer = await answerer.accept_offer(offer)
    await initiator.accept_answer(answer)
    for peer in (a, b):
        opened = await peer.expect(ChannelOpen)
        assert opened.label == CHANNEL_LABEL
    return offer, answer


def candidate_hosts(sdp: str) -> set[str]:
    return {m.group(1) for m in CANDIDATE_HOST.finditer(sdp)}


def strip_candidates(sdp: str) -> tuple[str, list[str]]:
    """Remove the candidates (and end-of-candidates) from an SDP; return them, deduplicated."""
    lines = sdp.split("\r\n")
    found = [line.removeprefix("a=") for line in lines if line.startswith("a=candidate:")]
    kept = [line for line in lines if not line.startswith(("a=candidate:", "a=end-of-cand"))]
    return "\r\n".join(kept), list(dict.fromkeys(found))


async def test_offer_answer_opens_messages_channel_on_loopback(peers: tuple[Peer, Peer]) -> None:
    a, b = peers
    with anyio.fail_after(20):
        offer, answer = await connect(a, b)
    assert (a.link.role, b.link.role) == ("initiator", "answerer")
    assert a.link.is_open
    assert b.link.is_open
    # The JS reference offers to receive audio and video besides the data channel.
    assert re.search(r"m=audio .*\r\n(a=.*\r\n|c=.*\r\n)*?a=recvonly", offer)
    assert re.search(r"m=video .*\r\n(a=.*\r\n|c=.*\r\n)*?a=recvonly", offer)
    assert "m=application " in offer
    assert "a=group:BUNDLE 0 1 2" in offer
    assert candidate_hosts(offer) == {"127.0.0.1"}
    assert candidate_hosts(answer) == {"127.0.0.1"}
    for link in (a.link, b.link):
        assert link.max_message_size == AIORTC_MAX_MESSAGE_SIZE
        selected = link.selected_addresses
        assert selected is not None
        (local_host, _), (remote_host, _) = selected
        assert (local_host, remote_host) == ("127.0.0.1", "127.0.0.1")


async def test_ice_sockets_get_wide_buffers_once_open(peers: tuple[Peer, Peer]) -> None:
    """A channel in full flight overruns the kernel's default UDP buffers (drops, then SCTP
    retransmits); an open link asks for SOCKET_BUFFER_BYTES, capped by the kernel."""
    a, b = peers
    with anyio.fail_after(20):
        await connect(a, b)
    cap = SOCKET_BUFFER_BYTES
    with contextlib.suppress(OSError, ValueError):
        cap = min(cap, int(Path("/proc/sys/net/core/rmem_max").read_text()))
    with contextlib.suppress(OSError, ValueError):
        cap = min(cap, int(Path("/proc/sys/net/core/wmem_max").read_text()))
    for link in (a.link, b.link):
        sizes = link.socket_buffers
        assert sizes
        for receive, send in sizes:
            assert receive >= cap  # Linux reports twice what was set
            assert send >= cap


async def test_text_and_binary_cross_both_ways_byte_exact(peers: tuple[Peer, Peer]) -> None:
    a, b = peers
    big = os.urandom(200 * 1024)
    texts = ['{"type":"gossip"}', "", "h\u00e9llo \U0001f54a\ufe0f mesh", "x" * 70_000]
    blobs = [b"", b"\x00\xff" * 3, big]
    with anyio.fail_after(20):
        await connect(a, b)
        for sender, receiver in ((a, b), (b, a)):
            for text in texts:
                assert sender.link.send_text(text)
            for blob in blobs:
                assert sender.link.send_bytes(blob)
            assert sender.link.send_bytes(bytearray(b"from a bytearray"))
            for text in texts:
                assert (await receiver.expect(TextReceived)).text == text
            for blob in blobs:
                assert (await receiver.expect(BinaryReceived)).data == blob
            assert (await receiver.expect(BinaryReceived)).data == b"from a bytearray"


async def test_messages_at_the_remote_limit_pass_and_above_it_raise(
    peers: tuple[Peer, Peer],
) -> None:
    a, b = peers
    limit = AIORTC_MAX_MESSAGE_SIZE
    at_limit_text = "\u00e9" * (limit // 2)  # two UTF-8 bytes each: the limit counts bytes
    at_limit_bytes = os.urandom(limit)
    with anyio.fail_after(20):
        await connect(a, b)
        assert a.link.send_text(at_limit_text)
        assert a.link.send_bytes(at_limit_bytes)
        with pytest.raises(UsageError) as too_big:
            a.link.send_bytes(at_limit_bytes + b"!")
        assert too_big.value.field == "message"
        with pytest.raises(UsageError):
            a.link.send_text(at_limit_text + "!")
        assert a.link.send_text("after")
        assert (await b.expect(TextReceived)).text == at_limit_text
        assert (await b.expect(BinaryReceived)).data == at_limit_bytes
        assert (await b.expect(TextReceived)).text == "after"


async def test_incoming_message_over_our_limit_fails_the_link(peers: tuple[Peer, Peer]) -> None:
    """aiortc would deliver it; the link refuses what our a=max-message-size forbids."""
    a, b = peers
    with anyio.fail_after(20):
        offer = await a.link.create_offer()
        no_limit = offer.replace("a=max-message-size:262144", "a=max-message-size:0")
        await a.link.accept_answer(await b.link.accept_offer(no_limit))
        await a.expect(ChannelOpen)
        await b.expect(ChannelOpen)
        assert b.link.max_message_size == 0  # b was told a accepts anything
        assert b.link.send_text("\u00e9" * 10_000)  # fine: well under the limit in bytes
        assert b.link.send_bytes(os.urandom(AIORTC_MAX_MESSAGE_SIZE + 1))
        assert (await a.expect(TextReceived)).text == "\u00e9" * 10_000
        failed = await a.expect(Failed)
        assert "max-message-size" in failed.reason
        await b.expect(Closed)


async def test_trickled_candidates_connect_without_candidates_in_sdp(
    peers: tuple[Peer, Peer],
) -> None:
    """Candidates go through the trickle path, as JS peers send them; some come early."""
    a, b = peers
    with anyio.fail_after(20):
        offer, offer_candidates = strip_candidates(await a.link.create_offer())
        assert offer_candidates
        assert "a=candidate" not in offer
        for line in offer_candidates:  # before the offer: buffered until it is applied
            trickled = IceCandidateInit(line, sdp_mid="0", sdp_mline_index=0)
            assert await b.link.add_remote_candidate(trickled)
        answer, answer_candidates = strip_candidates(await b.link.accept_offer(offer))
        await a.link.accept_answer(answer)
        for line in answer_candidates:  # after the answer: applied at once
            bare = line.removeprefix("candidate:")  # the SDP form, without the prefix
            assert await a.link.add_remote_candidate(IceCandidateInit(bare, sdp_mid="0"))
        await a.expect(ChannelOpen)
        await b.expect(ChannelOpen)
        assert a.link.send_text("over trickled candidates")
        assert (await b.expect(TextReceived)).text == "over trickled candidates"


async def test_remote_candidates_are_validated_and_bounded() -> None:
    with anyio.fail_after(10):
        peer = Peer(max_pending_candidates=2)
        try:
            link = peer.link
            host = "candidate:1 1 udp 2122260223 127.0.0.1 54321 typ host generation 0"
            js_style = IceCandidateInit(host, "0", 0, "abcd")
            assert await link.add_remote_candidate(js_style)
            assert await link.add_remote_candidate(IceCandidateInit(host, sdp_mline_index=0))
            assert not await link.add_remote_candidate(js_style)  # over the bound: dropped
            assert link.dropped_candidates == 1
            bad = {
                "candidate:1 1 udp 2122260223 127.0.0.1": "candidate",
                "candidate:1 1 udp high 127.0.0.1 5 typ host": "candidate",
                "candidate:1 1 sctp 1 127.0.0.1 5 typ host": "candidate",
                "candidate:1 1 udp 1 not-an-ip 5 typ host": "candidate",
                "candidate:1 1 udp 1 127.0.0.1 70000 typ host": "candidate",
                "candidate:1 1 udp 1 10.0.0.1 5 typ srflx raddr 0.0.0.0 rport x": "candidate",
            }
            for text, field in bad.items():
                with pytest.raises(DecodeError) as err:
                    await link.add_remote_candidate(IceCandidateInit(text, "0", 0))
                assert err.value.field == field, text
            with pytest.raises(DecodeError) as err:
                await link.add_remote_candidate(IceCandidateInit(host))
            assert err.value.field == "sdpMid"
        finally:
            await peer.aclose()
        assert not await link.add_remote_candidate(js_style)  # after close: dropped


async def test_wait_buffered_amount_low(peers: tuple[Peer, Peer]) -> None:
    a, b = peers
    chunk = os.urandom(64 * 1024)
    with anyio.fail_after(30):
        await connect(a, b)
        await a.link.wait_buffered_amount_low(0)  # nothing queued: returns at once
        for i in range(48):
            assert a.link.send_bytes(bytes([i]) + chunk)
        assert a.link.buffered_amount > 1024 * 1024
        await a.link.wait_buffered_amount_low(512 * 1024)
        assert a.link.buffered_amount <= 512 * 1024
        await a.link.wait_buffered_amount_low(0)
        assert a.link.buffered_amount == 0
        for i in range(48):
            assert (await b.expect(BinaryReceived)).data == bytes([i]) + chunk


async def test_close_is_seen_by_the_other_side_and_is_idempotent(
    peers: tuple[Peer, Peer],
) -> None:
    a, b = peers
    with anyio.fail_after(20):
        await connect(a, b)
        await a.link.close()
        assert await a.expect(Closed) == Closed("closed locally")
        with anyio.fail_after(5):
            closed = await b.expect(Closed)
        assert closed.reason in ("data channel closed", "connection closed")
        await a.link.close()
        await b.link.close()
        assert a.link.is_closed
        assert b.link.is_closed
        assert not a.link.send_text("late")
        assert not b.link.send_bytes(b"late")
        await a.link.wait_buffered_amount_low(0)
        with pytest.raises(UsageError):
            await a.link.create_offer()
    with pytest.raises(anyio.WouldBlock):  # exactly one terminal event each
        a.events.receive_nowait()
    with pytest.raises(anyio.WouldBlock):
        b.events.receive_nowait()


async def test_unusable_sdp_and_misuse(peers: tuple[Peer, Peer]) -> None:
    a, b = peers
    with anyio.fail_after(20):
        assert not a.link.send_text("too early")
        with pytest.raises(UsageError):
            await a.link.accept_answer("v=0\r\n")  # no offer outstanding
        for garbage in ("", "hello", "v=0\r\nm=nonsense\r\n", "v=0\r\n" + "x" * 300_000):
            with pytest.raises(DecodeError) as err:
                await b.link.accept_offer(garbage)
            assert err.value.field == "sdp"
        offer = await a.link.create_offer()
        no_channel = offer[: offer.index("m=application")]
        with pytest.raises(DecodeError):
            await b.link.accept_offer(no_channel)
        negative_size = offer.replace("a=max-message-size:262144", "a=max-message-size:-1")
        with pytest.raises(DecodeError):
            await b.link.accept_offer(negative_size)
        with pytest.raises(UsageError):
            await a.link.create_offer()  # an offer is already outstanding


async def test_ice_host_restriction_is_per_link(peers: tuple[Peer, Peer]) -> None:
    """A loopback-only link and a default link gathering at once each keep their own hosts."""
    restricted, _ = peers
    default = Peer(ice_hosts=None)
    try:
        with anyio.fail_after(20):
            offers: dict[str, str] = {}

            async def offer(name: str, peer: Peer) -> None:
                offers[name] = await peer.link.create_offer()

            async with anyio.create_task_group() as tg:
                tg.start_soon(offer, "restricted", restricted)
                tg.start_soon(offer, "default", default)
        assert candidate_hosts(offers["restricted"]) == {"127.0.0.1"}
        assert "127.0.0.1" not in candidate_hosts(offers["default"])  # aioice's own choice
    finally:
        await default.aclose()
    with pytest.raises(ConfigError):
        AiortcTransport(lambda _: None, ice_hosts=["localhost"])
    with pytest.raises(ConfigError):
        AiortcTransport(lambda _: None, ice_hosts=[])


async def test_media_track_reaches_the_other_side(peers: tuple[Peer, Peer]) -> None:
    a, b = peers
    track = AudioStreamTrack()  # aiortc's silence generator
    try:
        with anyio.fail_after(20):
            a.link.add_track(track)
            offer = await a.link.create_offer()
            assert re.search(r"m=audio .*\r\n(a=.*\r\n|c=.*\r\n)*?a=sendrecv", offer)
            answer = await b.link.accept_offer(offer)
            await a.link.accept_answer(answer)
            received = await b.expect(TrackReceived)
            assert received.track.kind == "audio"
            await b.expect(ChannelOpen)
            await a.expect(ChannelOpen)
            assert isinstance(received.track, MediaStreamTrack)
            frame = await received.track.recv()
            assert isinstance(frame, AudioFrame)
            assert frame.sample_rate == 48000
        with pytest.raises(UsageError):
            a.link.add_track(object())  # type: ignore[arg-type]  # deliberately wrong
    finally:
        track.stop()


async def test_track_added_after_open_is_renegotiated(peers: tuple[Peer, Peer]) -> None:
    """The answerer adds video later and re-offers over the same link; data keeps flowing."""
    a, b = peers
    track = VideoStreamTrack()  # aiortc's test-pattern generator
    try:
        with anyio.fail_after(20):
            await connect(a, b)
            b.link.add_track(track)
            offer = await b.link.create_offer()
            assert re.search(r"m=video .*\r\n(a=.*\r\n|c=.*\r\n)*?a=sendrecv", offer)
            await b.link.accept_answer(await a.link.accept_offer(offer))
            received = await a.expect(TrackReceived)
            assert received.track.kind == "video"
            assert isinstance(received.track, MediaStreamTrack)
            assert isinstance(await received.track.recv(), VideoFrame)
            assert a.link.send_text("still here")
            assert (await b.expect(TextReceived)).text == "still here"
    finally:
        track.stop()


def test_needs_asyncio() -> None:
    async def build() -> None:
        AiortcTransport(lambda _: None)

    with pytest.raises(UsageError) as err:
        anyio.run(build, backend="trio")
    assert err.value.field == "backend"
