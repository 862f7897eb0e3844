"""Pieces of hub federation that need no server state: proofs, backoff, loop suppression.

Closed federation (``hub_secret``), see docs/federation.md: the accepting hub puts a random
``challenge`` in its ``connected`` frame; the dialling hub answers with a ``hub-auth`` frame
``{nonce, proof}`` where ``proof = HMAC-SHA256(secret, "client" | challenge | nonce | id)``;
the accepting hub checks it and answers ``hub-auth {proof}`` with
``HMAC-SHA256(secret, "server" | nonce | challenge)``, which the dialler checks in turn.
The secret itself never travels; each proof is bound to fresh random values of both sides.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import OrderedDict
from dataclasses import dataclass

from peerpigeon.protocol.rand import Rng
from peerpigeon.protocol.wire import JsonObject

__all__ = [
    "BootstrapBackoff",
    "RelayCache",
    "client_proof",
    "relay_key",
    "server_proof",
    "verify",
]

_LABEL = b"peerpigeon-hub-auth-v1"


def _mac(secret: str, *parts: str) -> str:
    msg = _LABEL + b"".join(b"|" + p.encode("utf-8") for p in parts)
    return hmac.new(secret.encode("utf-8"), msg, hashlib.sha256).hexdigest()


def client_proof(secret: str, challenge: str, nonce: str, hub_id: str) -> str:
    """What the dialling hub sends to prove it knows the secret."""
    return _mac(secret, "client", challenge, nonce, hub_id)


def server_proof(secret: str, challenge: str, nonce: str) -> str:
    """What the accepting hub sends back to prove it knows the secret too."""
    return _mac(secret, "server", nonce, challenge)


def verify(expected: str, given: object) -> bool:
    """Constant-time comparison of a proof with what the other side sent."""
    return isinstance(given, str) and hmac.compare_digest(expected, given)


def relay_key(kind: str, from_peer: str, target: str, data: JsonObject | None) -> str:
    """A digest identifying one signaling frame, for loop and duplicate suppression."""
    body = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(
        f"{kind}\x00{from_peer}\x00{target}\x00{body}".encode(), digest_size=16
    ).hexdigest()


class RelayCache:
    """Recently relayed frame keys, bounded in count and age (oldest forgotten first)."""

    def __init__(self, max_entries: int, ttl_s: float) -> None:
        self._max = max_entries
        self._ttl_s = ttl_s
        self._seen: OrderedDict[str, float] = OrderedDict()  # key -> expiry, in expiry order

    def __len__(self) -> int:
        return len(self._seen)

    def contains(self, key: str, now: float) -> bool:
        """Whether `key` was added and has not expired (adds nothing)."""
        self.expire(now)
        return key in self._seen

    def check_and_add(self, key: str, now: float) -> bool:
        """True the first time `key` is seen within its lifetime; then False."""
        self.expire(now)
        if key in self._seen:
            return False
        if len(self._seen) >= self._max:
            self._seen.popitem(last=False)
        self._seen[key] = now + self._ttl_s
        return True

    def expire(self, now: float) -> None:
        """Forget entries whose lifetime has passed."""
        while self._seen:
            key, expiry = next(iter(self._seen.items()))
            if expiry > now:
                break
            del self._seen[key]


@dataclass(slots=True)
class BootstrapBackoff:
    """Reconnect schedule of one bootstrap URL: capped exponential backoff with jitter.

    Attempts are counted per outage (a successful link resets them). After
    `max_attempts` failures in a row the link rests for `rest_s`, then starts a new burst.
    """

    base_s: float
    cap_s: float
    max_attempts: int
    rest_s: float
    failures: int = 0

    def next_delay(self, rng: Rng) -> float:
        """Count one more failure and return how long to wait before the next attempt."""
        self.failures += 1
        if self.failures > self.max_attempts:
            self.failures = 0
            return self.rest_s
        delay = min(self.base_s * 2.0 ** (self.failures - 1), self.cap_s)
        return delay * (0.5 + 0.5 * rng.random())  # jitter: [d/2, d)

    def reset(self) -> None:
        """The link opened: the next outage starts from the base delay."""
        self.failures = 0
