"""`PeerLink` on aiortc: one ``RTCPeerConnection`` with the PeerPigeon ``messages`` channel.

asyncio only: aiortc runs on asyncio and nothing else (no trio). aiortc is the optional
``webrtc`` extra; this module imports without it and `AiortcTransport` says what is missing.
Session setup as in `reference/signaling-and-topology.md` section 6.9; the channel as in
`reference/data-plane.md` section 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ipaddress
import logging
import socket
from asyncio.trsock import TransportSocket
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Final

from peerpigeon.io.transport import (
    CHANNEL_LABEL,
    DEFAULT_REMOTE_MAX_MESSAGE_SIZE,
    BinaryReceived,
    ChannelOpen,
    Closed,
    Failed,
    IceCandidateInit,
    LinkEvent,
    LinkEventHandler,
    LinkRole,
    MediaTrack,
    TextReceived,
    TrackReceived,
)
from peerpigeon.protocol.errors import ConfigError, DecodeError, UsageError

_IMPORT_ERROR: ImportError | None = None
try:
    import aioice.ice as _aioice_ice
    from aiortc import (
        MediaStreamTrack,
        RTCBundlePolicy,
        RTCConfiguration,
        RTCDataChannel,
        RTCIceCandidate,
        RTCIceServer,
        RTCPeerConnection,
        RTCSctpTransport,
        RTCSessionDescription,
    )
    from aiortc.sdp import SessionDescription, candidate_from_sdp
except ImportError as _err:  # the `webrtc` extra is not installed
    _IMPORT_ERROR = _err

__all__ = ["LOOPBACK_ICE_HOSTS", "AiortcTransport"]

LOOPBACK_ICE_HOSTS: Final = ("127.0.0.1",)
"""Pass as ``ice_hosts`` to keep ICE on loopback (tests, benchmarks, the demo)."""

DEFAULT_MAX_PENDING_CANDIDATES: Final = 64
"""Remote candidates kept while the remote description is not yet set; more are dropped."""

MAX_SDP_CHARS: Final = 256 * 1024
"""Longest session description accepted from a peer (a JS offer is about 3-6 KiB)."""

_SDP_CANDIDATE_PREFIX: Final = "candidate:"

logger = logging.getLogger(__name__)

# Host addresses ICE may gather on, for the gathering that runs in this context.
#
# aioice has no option for it: `Connection.gather_candidates` calls the module function
# `aioice.ice.get_host_addresses`, which lists every interface but leaves out 127.0.0.1.
# So we replace that function once, process-wide, by one that returns this variable's
# value when it is set and defers to aioice's own otherwise. The variable is set only
# around our `setLocalDescription` (the one place aiortc gathers); aiortc gathers in tasks
# created inside that call, which copy the context, so the restriction reaches exactly
# this link's gathering even with several links gathering at once, and other aioice users
# in the process see aioice's behaviour unchanged.
_ICE_HOSTS: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar(
    "peerpigeon_ice_hosts", default=None
)


def _install_host_address_hook() -> None:
    original = _aioice_ice.get_host_addresses
    if getattr(original, "__peerpigeon_hook__", False):
        return

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        hosts = _ICE_HOSTS.get()
        if hosts is None:
            return original(use_ipv4=use_ipv4, use_ipv6=use_ipv6)
        return [h for h in hosts if (use_ipv6 if ":" in h else use_ipv4)]

    get_host_addresses.__peerpigeon_hook__ = True  # type: ignore[attr-defined]  # marker
    _aioice_ice.get_host_addresses = get_host_addresses


def _validate_ice_hosts(hosts: Sequence[str]) -> tuple[str, ...]:
    if isinstance(hosts, str):
        raise ConfigError("ice_hosts", "must be a sequence of addresses, not one string")
    checked: list[str] = []
    for i, host in enumerate(hosts):
        try:
            checked.append(str(ipaddress.ip_address(host)))
        except ValueError:
            raise ConfigError(f"ice_hosts.{i}", "must be an IP address") from None
    if not checked:
        raise ConfigError("ice_hosts", "must name at least one address")
    return tuple(checked)


def _parse_candidate(init: IceCandidateInit) -> RTCIceCandidate | None:
    """Turn a JS-style trickled candidate into aiortc's; None means end-of-candidates."""
    text = init.candidate.strip()
    if text.startswith(_SDP_CANDIDATE_PREFIX):
        text = text[len(_SDP_CANDIDATE_PREFIX) :]
    if not text:
        return None  # W3C: an empty candidate string signals end-of-candidates
    if init.sdp_mid is None and init.sdp_mline_index is None:
        raise DecodeError("sdpMid", "sdpMid or sdpMLineIndex is required")
    if init.sdp_mline_index is not None and init.sdp_mline_index < 0:
        raise DecodeError("sdpMLineIndex", "must be >= 0")
    # RFC 8839 section 5.1: foundation component transport priority address port "typ" type
    bits = text.split()
    if len(bits) < 8 or bits[6] != "typ":
        raise DecodeError(
            "candidate",
            "must be 'foundation component transport priority address port typ type ...'",
        )
    if bits[2].lower() not in ("udp", "tcp"):
        raise DecodeError("candidate", "transport must be udp or tcp")
    host = bits[4]
    if not host.endswith(".local"):  # mDNS names are resolved by aioice
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise DecodeError("candidate", "address must be an IP or an mDNS name") from None
    try:
        component, priority, port = int(bits[1]), int(bits[3]), int(bits[5])
        # aiortc's parser assert()s on length and int()s raddr/rport: checked above or here
        candidate = candidate_from_sdp(text)
    except ValueError:
        raise DecodeError("candidate", "component, priority and ports must be integers") from None
    if not 1 <= component <= 256 or not 0 <= port <= 65535 or priority < 0:
        raise DecodeError("candidate", "component, priority or port out of range")
    candidate.sdpMid = init.sdp_mid
    candidate.sdpMLineIndex = init.sdp_mline_index
    return candidate


def _parse_sdp(sdp: str) -> SessionDescription:
    if len(sdp) > MAX_SDP_CHARS:
        raise DecodeError("sdp", f"longer than {MAX_SDP_CHARS} characters")
    if "v=0" not in sdp:
        raise DecodeError("sdp", "has no 'v=0' line")
    try:
        return SessionDescription.parse(sdp)
    except Exception as err:  # aiortc's parser raises assorted builtins on garbage
        raise DecodeError("sdp", f"unparseable ({type(err).__name__})") from err


# aioice leaves its UDP sockets at the kernel's default buffers (about 208 KiB here). A
# data channel in full flight bursts more than that between two reads of a busy event
# loop, and each datagram the kernel drops there costs SCTP a retransmission and half its
# congestion window (or a 1 s timeout). We ask for more; the kernel caps it at rmem_max /
# wmem_max, and a refusal leaves the default.
SOCKET_BUFFER_BYTES: Final = 4 * 1024 * 1024


def _ice_sockets(pc: RTCPeerConnection) -> list[socket.socket | TransportSocket]:
    """The UDP sockets of `pc`'s ICE connection (aioice keeps them per candidate; asyncio
    hands out its sockets wrapped, with `getsockopt`/`setsockopt` still there)."""
    sctp = pc.sctp
    if sctp is None:
        return []
    connection = getattr(sctp.transport.transport, "_connection", None)
    found: list[socket.socket | TransportSocket] = []
    for protocol in getattr(connection, "_protocols", ()):
        transport = getattr(protocol, "transport", None)
        sock = None if transport is None else transport.get_extra_info("socket")
        if isinstance(sock, socket.socket | TransportSocket):
            found.append(sock)
    return found


def _widen_socket_buffers(pc: RTCPeerConnection) -> None:
    for sock in _ice_sockets(pc):
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            with contextlib.suppress(OSError):
                if sock.getsockopt(socket.SOL_SOCKET, option) < SOCKET_BUFFER_BYTES:
                    sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER_BYTES)


class AiortcTransport:
    """`PeerLink` implemented with aiortc (asyncio only).

    Inputs: `create_offer` / `accept_offer`, `accept_answer`, `add_remote_candidate`,
    `send_text` / `send_bytes`, `add_track`, `close`. Outputs: SDP strings (with every local
    candidate inside: aiortc gathers before it answers and never trickles) and `LinkEvent`s
    passed to ``on_event`` synchronously from aiortc's callbacks. It never emits
    `LocalCandidate`.

    Args:
        on_event: receives every event of this link, in order; must not block.
        ice_hosts: the only host addresses ICE gathers on, e.g. `LOOPBACK_ICE_HOSTS`;
            None lets aioice pick (every interface but loopback).
        stun_urls: STUN servers (``stun:host:port``); none by default.
        max_pending_candidates: remote candidates buffered before the remote description.
    """

    def __init__(
        self,
        on_event: LinkEventHandler,
        *,
        ice_hosts: Sequence[str] | None = None,
        stun_urls: Sequence[str] = (),
        max_pending_candidates: int = DEFAULT_MAX_PENDING_CANDIDATES,
    ) -> None:
        if _IMPORT_ERROR is not None:
            raise ImportError(
                "AiortcTransport needs aiortc: install peerpigeon[webrtc]"
            ) from _IMPORT_ERROR
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise UsageError("backend", "aiortc needs a running asyncio event loop") from None
        if max_pending_candidates < 0:
            raise ConfigError("max_pending_candidates", "must be >= 0")
        self._ice_hosts = None if ice_hosts is None else _validate_ice_hosts(ice_hosts)
        if self._ice_hosts is not None:
            _install_host_address_hook()
        self._on_event = on_event
        self._max_pending_candidates = max_pending_candidates
        # max-bundle like the JS reference: one ICE/DTLS transport for every m-section.
        self._connect_tasks: set[asyncio.Task[object]] = set()
        self._pc = RTCPeerConnection(
            RTCConfiguration(
                iceServers=[RTCIceServer(urls=url) for url in stun_urls],
                bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
            )
        )
        self._pc.on("datachannel", self._on_datachannel)
        self._pc.on("track", self._on_track)
        self._pc.on("connectionstatechange", self._on_connection_state)
        self._role: LinkRole | None = None
        self._channel: RTCDataChannel | None = None
        self._max_message_size: int | None = None
        self._pending: deque[RTCIceCandidate | None] = deque()
        self._remote_ready = False
        self._dropped_candidates = 0
        self._ended = False
        self._low_water = asyncio.Event()
        self._pc_closing: asyncio.Task[None] | None = None
        self._max_receive_bytes = RTCSctpTransport.getCapabilities().maxMessageSize

    # -- read-only state -------------------------------------------------------------------

    @property
    def role(self) -> LinkRole | None:
        """Which side this link took, or None before the first offer/answer call."""
        return self._role

    @property
    def is_open(self) -> bool:
        """True while the data channel is open (sending is possible)."""
        return not self._ended and self._channel is not None and self._channel.readyState == "open"

    @property
    def is_closed(self) -> bool:
        """True once the terminal event was delivered or `close` was called."""
        return self._ended

    @property
    def buffered_amount(self) -> int:
        """Bytes queued on the data channel and not yet handed to SCTP."""
        return 0 if self._channel is None else self._channel.bufferedAmount

    @property
    def max_message_size(self) -> int | None:
        """The remote's ``a=max-message-size`` (65536 if absent; 0: none), None before known."""
        return self._max_message_size

    @property
    def dropped_candidates(self) -> int:
        """Remote candidates dropped because the pre-description buffer was full."""
        return self._dropped_candidates

    @property
    def selected_addresses(self) -> tuple[tuple[str, int], tuple[str, int]] | None:
        """(local, remote) address of the nominated ICE pair, None before ICE completes."""
        sctp = self._pc.sctp
        if sctp is None:
            return None
        # aiortc exposes no selected pair; aioice keeps it per component in `_nominated`.
        # Diagnostics only, so it degrades to None if that private attribute goes away.
        nominated = getattr(sctp.transport.transport._connection, "_nominated", None)
        pair = nominated.get(1) if isinstance(nominated, dict) else None
        if pair is None:
            return None
        local, remote = pair.local_addr, pair.remote_addr
        return (str(local[0]), int(local[1])), (str(remote[0]), int(remote[1]))

    @property
    def socket_buffers(self) -> tuple[tuple[int, int], ...]:
        """(receive, send) buffer bytes of each ICE socket, as the kernel reports them."""
        return tuple(
            (
                sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
                sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF),
            )
            for sock in _ice_sockets(self._pc)
        )

    # -- signaling -------------------------------------------------------------------------

    async def create_offer(self) -> str:
        """Become the initiator (or renegotiate when stable); return the offer SDP.

        The first call adds audio and video recvonly transceivers (JS ``offerToReceive*``)
        and then the ``messages`` channel, so that with max-bundle every m-section shares
        the first transceiver's transport. Raises `UsageError` if not stable or closed.
        """
        self._check_usable()
        if self._pc.signalingState != "stable":
            raise UsageError("state", f"cannot offer in signaling state {self._pc.signalingState}")
        if self._role is None:
            self._role = "initiator"
            kinds = {t.kind for t in self._pc.getTransceivers()}
            for kind in ("audio", "video"):
                if kind not in kinds:
                    self._pc.addTransceiver(kind, direction="recvonly")
            self._adopt(self._pc.createDataChannel(CHANNEL_LABEL, ordered=True))
        offer = await self._pc.createOffer()
        with self._gathering():
            await self._pc.setLocalDescription(offer)
        self._watch_connect_tasks()
        return self._pc.localDescription.sdp

    async def accept_offer(self, sdp: str) -> str:
        """Become the answerer (or renegotiate when stable): apply the offer, return the answer.

        Raises `DecodeError` (field ``sdp``) if the offer is unusable, `UsageError` if this
        link is not stable or closed. The channel arrives later, as `ChannelOpen`.
        """
        self._check_usable()
        if self._pc.signalingState != "stable":
            raise UsageError("state", f"cannot answer in signaling state {self._pc.signalingState}")
        parsed = _parse_sdp(sdp)
        if self._role is None:
            self._role = "answerer"
        await self._apply_remote(RTCSessionDescription(sdp=sdp, type="offer"), parsed)
        answer = await self._pc.createAnswer()
        with self._gathering():
            await self._pc.setLocalDescription(answer)
        self._watch_connect_tasks()
        return self._pc.localDescription.sdp

    async def accept_answer(self, sdp: str) -> None:
        """Apply the remote answer to our offer.

        Raises `DecodeError` (field ``sdp``) if the answer is unusable, `UsageError` if no
        offer of ours is outstanding.
        """
        self._check_usable()
        if self._pc.signalingState != "have-local-offer":
            raise UsageError("state", f"no offer outstanding ({self._pc.signalingState})")
        parsed = _parse_sdp(sdp)
        await self._apply_remote(RTCSessionDescription(sdp=sdp, type="answer"), parsed)

    async def add_remote_candidate(self, candidate: IceCandidateInit) -> bool:
        """Apply one trickled candidate now, or buffer it until the remote description is set.

        Returns False if dropped (buffer full, link ended). Raises `DecodeError` if malformed.
        """
        parsed = _parse_candidate(candidate)
        if self._ended:
            return False
        if not self._remote_ready:
            if len(self._pending) >= self._max_pending_candidates:
                self._dropped_candidates += 1  # keep the earliest: JS trickles hosts first
                return False
            self._pending.append(parsed)
            return True
        await self._pc.addIceCandidate(parsed)
        return True

    # -- data ------------------------------------------------------------------------------

    def send_text(self, text: str) -> bool:
        """Queue a text frame; False when the channel is not open. `UsageError` if too large."""
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:
            raise UsageError("message", "text is not encodable as UTF-8") from None
        return self._send(text, size)

    def send_bytes(self, data: bytes | bytearray | memoryview) -> bool:
        """Queue a binary frame; False when the channel is not open. `UsageError` if too large."""
        if type(data) is not bytes:  # aiortc accepts exactly bytes, not bytearray/memoryview
            data = bytes(data)
        return self._send(data, len(data))

    def _send(self, data: str | bytes, size: int) -> bool:
        channel = self._channel
        if self._ended or channel is None or channel.readyState != "open":
            return False
        limit = self._max_message_size
        if limit and size > limit:
            raise UsageError("message", f"{size} bytes is over the remote's limit of {limit}")
        channel.send(data)
        return True

    async def wait_buffered_amount_low(self, low_water_bytes: int) -> None:
        """Return once `buffered_amount` <= ``low_water_bytes``, or the link ended.

        Uses the channel's ``bufferedAmountLowThreshold``, which it sets to the mark.
        """
        if low_water_bytes < 0:
            raise UsageError("low_water_bytes", "must be >= 0")
        while not self._ended:
            channel = self._channel
            if channel is None or channel.bufferedAmount <= low_water_bytes:
                return
            channel.bufferedAmountLowThreshold = low_water_bytes
            event = self._low_water
            await event.wait()

    # -- media -----------------------------------------------------------------------------

    def add_track(self, track: MediaTrack) -> None:
        """Send a local aiortc track; `UsageError` if it is not one.

        Added before `create_offer` / `accept_offer`, it is negotiated with the session;
        added later, it needs a renegotiation (`create_offer` again, on either side).
        """
        self._check_usable()
        if not isinstance(track, MediaStreamTrack):
            raise UsageError("track", "must be an aiortc MediaStreamTrack")
        if track.kind not in ("audio", "video"):
            raise UsageError("track.kind", "must be audio or video")
        self._pc.addTrack(track)

    # -- closing ---------------------------------------------------------------------------

    def _watch_connect_tasks(self) -> None:
        """Retrieve the outcome of aiortc's own connect task for this connection.

        aiortc starts ICE in a task it does not keep (``RTCPeerConnection.__connect``); when
        the link is closed while ICE starts, that task fails with InvalidStateError and
        nobody retrieves it, which asyncio reports as an unhandled error. The link's own
        state already says what happened, so the outcome is only logged.
        """
        for task in asyncio.all_tasks():
            if task in self._connect_tasks:
                continue
            coro = task.get_coro()
            frame = getattr(coro, "cr_frame", None)
            name = getattr(coro, "__qualname__", "")
            if not name.endswith("__connect") or frame is None:
                continue
            if frame.f_locals.get("self") is self._pc:
                self._connect_tasks.add(task)
                task.add_done_callback(self._connect_task_done)

    def _connect_task_done(self, task: asyncio.Task[object]) -> None:
        self._connect_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.debug("aiortc connect task ended: %r", task.exception())

    async def close(self) -> None:
        """Close the channel and the connection; idempotent. Delivers `Closed` if not ended."""
        self._finish(Closed("closed locally"))
        task = self._pc_closing
        if task is not None:
            await asyncio.shield(task)

    # -- internals -------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._ended:
            raise UsageError("state", "link is closed")

    @contextmanager
    def _gathering(self) -> Iterator[None]:
        token = _ICE_HOSTS.set(self._ice_hosts)
        try:
            yield
        finally:
            _ICE_HOSTS.reset(token)

    async def _apply_remote(
        self, description: RTCSessionDescription, parsed: SessionDescription
    ) -> None:
        app = next((m for m in parsed.media if m.kind == "application"), None)
        if app is None:
            raise DecodeError("sdp", "has no application (data channel) section")
        caps = app.sctpCapabilities
        max_size = DEFAULT_REMOTE_MAX_MESSAGE_SIZE if caps is None else caps.maxMessageSize
        if max_size < 0:
            raise DecodeError("sdp", "max-message-size must be >= 0")
        try:
            await self._pc.setRemoteDescription(description)
        except Exception as err:  # aiortc reports bad SDP as ValueError, OperationError, ...
            raise DecodeError("sdp", f"rejected ({type(err).__name__}: {str(err)[:80]})") from err
        self._watch_connect_tasks()
        self._max_message_size = max_size
        # Candidates may arrive while we flush; the loop takes them before going live.
        while self._pending and not self._ended:
            await self._pc.addIceCandidate(self._pending.popleft())
        self._remote_ready = not self._ended

    def _adopt(self, channel: RTCDataChannel) -> None:
        self._channel = channel
        channel.on("open", self._on_channel_open)
        channel.on("message", self._on_message)
        channel.on("close", self._on_channel_close)
        channel.on("bufferedamountlow", self._on_buffered_amount_low)
        if channel.readyState == "open":  # the answerer's channel arrives open
            self._on_channel_open()

    def _deliver(self, event: LinkEvent) -> None:
        try:
            self._on_event(event)
        except Exception:  # an owner's bug must not break aiortc's receive path
            logger.exception("link event handler failed on %s", type(event).__name__)

    def _finish(self, event: Closed | Failed) -> None:
        if self._ended:
            return
        self._ended = True
        self._pending.clear()
        self._low_water.set()
        self._deliver(event)
        self._pc_closing = asyncio.ensure_future(self._pc.close())

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        if self._ended or self._channel is not None or channel.label != CHANNEL_LABEL:
            channel.close()  # one channel per peer pair (data-plane section 1)
            return
        self._adopt(channel)

    def _on_channel_open(self) -> None:
        if self._ended or self._channel is None:
            return
        _widen_socket_buffers(self._pc)
        size = self._max_message_size
        self._deliver(
            ChannelOpen(
                label=self._channel.label,
                max_message_size=DEFAULT_REMOTE_MAX_MESSAGE_SIZE if size is None else size,
            )
        )

    def _on_message(self, message: str | bytes) -> None:
        if self._ended:
            return
        # aiortc reassembles messages of any size, whatever it advertised; refuse to hand
        # on what a well-behaved peer (JS enforces our a=max-message-size) never sends.
        limit = self._max_receive_bytes
        if limit and len(message) * (4 if isinstance(message, str) else 1) > limit:
            size = len(message.encode("utf-8") if isinstance(message, str) else message)
            if size > limit:
                self._finish(Failed(f"received {size} bytes, over our max-message-size {limit}"))
                return
        if isinstance(message, str):
            self._deliver(TextReceived(message))
        else:
            self._deliver(BinaryReceived(bytes(message)))

    def _on_channel_close(self) -> None:
        self._finish(Closed("data channel closed"))

    def _on_buffered_amount_low(self) -> None:
        event, self._low_water = self._low_water, asyncio.Event()
        event.set()

    def _on_track(self, track: MediaStreamTrack) -> None:
        if not self._ended:
            self._deliver(TrackReceived(track))

    def _on_connection_state(self) -> None:
        state = self._pc.connectionState
        if state == "failed":
            self._finish(Failed("connection failed"))
        elif state == "closed":
            self._finish(Closed("connection closed"))
