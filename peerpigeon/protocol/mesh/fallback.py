"""When to use the global namespace instead of an empty one (``allow_global_fallback``).

The reference has the option but its trigger is disabled (signaling-and-topology.md 3.4).
The rule here: alone in the configured namespace for ``fallback_after_s`` (hub session open,
no known peer, no link) -> announce in ``"global"``. Every ``fallback_probe_interval_s``,
announce in the configured namespace again for ``fallback_probe_window_s``; a peer found
there ends the fallback, otherwise we return to ``"global"``. This class only keeps time;
`Mesh` switches the sessions and the links.
"""

from __future__ import annotations

import enum
from typing import Literal, TypeAlias

from .config import MeshConfig

__all__ = ["FallbackClock", "FallbackState", "FallbackStep"]

FallbackStep: TypeAlias = Literal["enter", "probe", "return"]


class FallbackState(enum.Enum):
    """Where the global fallback is."""

    NORMAL = "normal"  # in the configured namespace
    FALLBACK = "fallback"  # in "global" because the configured namespace was empty
    PROBING = "probing"  # in fallback, announced in the configured namespace to look for peers


class FallbackClock:
    """The fallback's state and deadlines; `due` says which step to take."""

    def __init__(self, config: MeshConfig) -> None:
        """Start in the configured namespace."""
        self._after_s = config.fallback_after_s
        self._interval_s = config.fallback_probe_interval_s
        self._window_s = config.fallback_probe_window_s
        self.state = FallbackState.NORMAL
        self._alone_since: float | None = None
        self._probe_at: float | None = None
        self._probe_until: float | None = None

    def reset(self) -> None:
        """Back to the configured namespace with nothing pending."""
        self.state = FallbackState.NORMAL
        self._alone_since = self._probe_at = self._probe_until = None

    def observe(self, alone: bool, now: float) -> None:
        """Whether we are alone in the configured namespace now (only counts when NORMAL)."""
        if not alone or self.state is not FallbackState.NORMAL:
            self._alone_since = None
        elif self._alone_since is None:
            self._alone_since = now

    def deadline(self) -> float | None:
        """The next step's time, if any."""
        due = [t for t in (self._probe_at, self._probe_until) if t is not None]
        if self._alone_since is not None:
            due.append(self._alone_since + self._after_s)
        return min(due, default=None)

    def due(self, now: float) -> FallbackStep | None:
        """Take the step due at `now` (the state changes) and name it, or ``None``."""
        if self._alone_since is not None and now >= self._alone_since + self._after_s:
            self._alone_since = None
            self.state = FallbackState.FALLBACK
            self._probe_at = now + self._interval_s
            return "enter"
        if self._probe_at is not None and now >= self._probe_at:
            self._probe_at = None
            self.state = FallbackState.PROBING
            self._probe_until = now + self._window_s
            return "probe"
        if self._probe_until is not None and now >= self._probe_until:
            self._probe_until = None
            self.state = FallbackState.FALLBACK
            self._probe_at = now + self._interval_s
            return "return"
        return None

    def leave(self) -> None:
        """Peers were found in the configured namespace: the fallback is over."""
        self.reset()
