"""The drain half shared by every machine: queued actions and events, swapped out on drain."""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["Outbox"]

A = TypeVar("A")
E = TypeVar("E")


class Outbox(Generic[A, E]):
    """Queues of actions (for the I/O layer) and events (for the application)."""

    def __init__(self) -> None:
        self._actions: list[A] = []
        self._events: list[E] = []

    def drain_actions(self) -> list[A]:
        """Return the queued actions, oldest first, and empty the queue."""
        out, self._actions = self._actions, []
        return out

    def drain_events(self) -> list[E]:
        """Return the queued events, oldest first, and empty the queue."""
        out, self._events = self._events, []
        return out

    def _act(self, action: A) -> None:
        self._actions.append(action)

    def _emit(self, event: E) -> None:
        self._events.append(event)
