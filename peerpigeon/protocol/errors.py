"""Errors of the peerpigeon protocol machines.

They split by who was at fault: `ProtocolViolation` when the remote side sent something
bad, `UsageError` when the local caller misused an API. Each names the offending `field`
(a dotted path) and the `reason`, and `str(err)` is ``"field: reason"``.
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "ConfigError",
    "DecodeError",
    "LimitExceeded",
    "PeerPigeonError",
    "ProtocolViolation",
    "UnknownMessageType",
    "UsageError",
]


class PeerPigeonError(Exception):
    """Base of every error peerpigeon raises on purpose."""

    def __init__(self, field: str, reason: str, *, peer: str | None = None) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.peer = peer


class ProtocolViolation(PeerPigeonError):
    """The remote side sent something that breaks the protocol."""


class DecodeError(ProtocolViolation):
    """A frame could not be decoded: bad JSON, wrong type, missing field, too large."""


class UnknownMessageType(DecodeError):
    """A well-formed frame whose ``type`` this side does not know (kept for the reply)."""

    def __init__(self, message_type: str, *, peer: str | None = None) -> None:
        super().__init__("type", f"unknown message type {message_type!r}", peer=peer)
        self.message_type = message_type


class AuthError(ProtocolViolation):
    """The remote side claimed an identity or a right it has not proven."""


class LimitExceeded(ProtocolViolation):
    """The remote side pushed past a configured bound."""


class UsageError(PeerPigeonError):
    """The local caller used an API in a way it does not allow."""


class ConfigError(UsageError):
    """A configuration value is out of range or of the wrong type."""
