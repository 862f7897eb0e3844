"""One WebRTC peer link (peer connection + its data channel) behind a backend-neutral interface.

The mesh adapter drives links only through `PeerLink`, so a native WebRTC backend can replace
aiortc (`peerpigeon.io.webrtc.AiortcTransport`) without touching `protocol/`. The channel's wire
properties are in `reference/data-plane.md` section 1, the session setup in
`reference/signaling-and-topology.md` section 6.9.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal, Protocol, TypeAlias, runtime_checkable

__all__ = [
    "CHANNEL_LABEL",
    "DEFAULT_REMOTE_MAX_MESSAGE_SIZE",
    "BinaryReceived",
    "ChannelOpen",
    "Closed",
    "Failed",
    "IceCandidateInit",
    "LinkEvent",
    "LinkEventHandler",
    "LinkRole",
    "LocalCandidate",
    "MediaTrack",
    "PeerLink",
    "TextReceived",
    "TrackReceived",
]

CHANNEL_LABEL: Final = "messages"
"""Label of the one data channel per peer pair (ordered, reliable, in-band negotiated)."""

DEFAULT_REMOTE_MAX_MESSAGE_SIZE: Final = 65536
"""What a peer may send when the remote SDP carries no ``a=max-message-size`` (RFC 8841 §6)."""

LinkRole: TypeAlias = Literal["initiator", "answerer"]


@dataclass(frozen=True, slots=True)
class IceCandidateInit:
    """One trickled ICE candidate, as a JS peer serialises ``RTCIceCandidate``.

    ``candidate`` is the ``candidate:...`` attribute value; the browser sends it with the
    ``candidate:`` prefix, SDP lines carry it without. At least one of ``sdp_mid`` and
    ``sdp_mline_index`` names the media section it belongs to.
    """

    candidate: str
    sdp_mid: str | None = None
    sdp_mline_index: int | None = None
    username_fragment: str | None = None


@runtime_checkable
class MediaTrack(Protocol):
    """A media track as far as the link cares: its kind and id (backends narrow it)."""

    @property
    def kind(self) -> str:
        """``"audio"`` or ``"video"``."""
        ...

    @property
    def id(self) -> str:
        """The track's id."""
        ...


@dataclass(frozen=True, slots=True)
class ChannelOpen:
    """The data channel is open; sending is possible from now on.

    ``max_message_size`` is the largest message the remote accepts, in bytes (0: no limit).
    """

    label: str
    max_message_size: int


@dataclass(frozen=True, slots=True)
class TextReceived:
    """A text frame (SCTP PPID 51) arrived; for PeerPigeon it is always a JSON document."""

    text: str


@dataclass(frozen=True, slots=True)
class BinaryReceived:
    """A binary frame (SCTP PPID 53, or 57 when empty) arrived."""

    data: bytes


@dataclass(frozen=True, slots=True)
class TrackReceived:
    """The remote side started sending a media track."""

    track: MediaTrack


@dataclass(frozen=True, slots=True)
class LocalCandidate:
    """A trickling backend gathered a local candidate; relay it as ``ice-candidate``.

    aiortc never emits this: it puts every candidate in the SDP it returns.
    """

    candidate: IceCandidateInit


@dataclass(frozen=True, slots=True)
class Closed:
    """The link ended without error: the channel or the connection was closed (either side).

    Terminal: after it the link delivers nothing more, and `PeerLink.close` is a no-op.
    """

    reason: str


@dataclass(frozen=True, slots=True)
class Failed:
    """The link ended on an error. Terminal.

    The connection failed (ICE, DTLS or SCTP), or the remote broke the channel's rules
    (a message over the ``a=max-message-size`` we advertised).
    """

    reason: str


LinkEvent: TypeAlias = (
    ChannelOpen | TextReceived | BinaryReceived | TrackReceived | LocalCandidate | Closed | Failed
)
LinkEventHandler: TypeAlias = Callable[[LinkEvent], None]
"""Called synchronously, in order, for each event; must not block (forward to a stream)."""


class PeerLink(Protocol):
    """One peer connection with the PeerPigeon data channel.

    Inputs: `create_offer` (initiator) or `accept_offer` (answerer), then `accept_answer`
    (initiator), `add_remote_candidate` any time, `send_text` / `send_bytes`, `add_track`,
    `close`. Outputs: SDP strings returned by the calls, and `LinkEvent`s delivered to the
    handler the link was built with. Exactly one terminal event (`Closed` or `Failed`) ends
    every link, a local `close()` included. The link never retries nor times out on its
    own: those are the mesh machine's deadlines.
    """

    @property
    def role(self) -> LinkRole | None:
        """Which side this link took, or None before the first offer/answer call."""
        ...

    @property
    def is_open(self) -> bool:
        """True while the data channel is open (sending is possible)."""
        ...

    @property
    def is_closed(self) -> bool:
        """True once the terminal event was delivered or `close` was called."""
        ...

    @property
    def buffered_amount(self) -> int:
        """Bytes queued on the data channel and not yet handed to the transport."""
        ...

    @property
    def max_message_size(self) -> int | None:
        """The remote's limit for one message in bytes (0: none), None before it is known."""
        ...

    @property
    def selected_addresses(self) -> tuple[tuple[str, int], tuple[str, int]] | None:
        """(local, remote) transport address of the selected ICE pair; None before ICE is done."""
        ...

    async def create_offer(self) -> str:
        """Become the initiator: create the channel and the offer; return the offer SDP.

        The offer carries audio and video (recvonly) sections and the application section,
        as the JS reference's ``offerToReceiveAudio/Video`` does.
        """
        ...

    async def accept_offer(self, sdp: str) -> str:
        """Become the answerer: apply the remote offer; return the answer SDP.

        Raises `DecodeError` (field ``sdp``) when the offer cannot be applied.
        """
        ...

    async def accept_answer(self, sdp: str) -> None:
        """Apply the remote answer to our offer.

        Raises `DecodeError` (field ``sdp``) when the answer cannot be applied.
        """
        ...

    async def add_remote_candidate(self, candidate: IceCandidateInit) -> bool:
        """Apply one trickled remote candidate, or buffer it until the remote SDP is set.

        Returns False when it was dropped (buffer full, link closed). Raises `DecodeError`
        (field ``candidate``, ``sdpMid``, ``sdpMLineIndex``) when it cannot be parsed. An
        empty ``candidate`` means end-of-candidates; ``username_fragment`` is not checked
        (the JS reference never restarts ICE, so there is no older generation to filter).
        """
        ...

    def send_text(self, text: str) -> bool:
        """Queue a text frame; False (nothing sent) when the channel is not open.

        Raises `UsageError` (field ``message``) above `max_message_size`.
        """
        ...

    def send_bytes(self, data: bytes | bytearray | memoryview) -> bool:
        """Queue a binary frame; False (nothing sent) when the channel is not open.

        Raises `UsageError` (field ``message``) above `max_message_size`.
        """
        ...

    async def wait_buffered_amount_low(self, low_water_bytes: int) -> None:
        """Return once `buffered_amount` is at or below ``low_water_bytes``, or the link ended."""
        ...

    def add_track(self, track: MediaTrack) -> None:
        """Send a local media track; before the offer/answer, or followed by a renegotiation."""
        ...

    async def close(self) -> None:
        """Close the channel and the connection; idempotent. Delivers `Closed` if not yet ended."""
        ...
