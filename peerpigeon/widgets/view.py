"""`MeshView`: a Jupyter widget (anywidget) that draws a live mesh from any `GraphSource`.

The browser side is ``static/meshview.js``, shipped in the package and sent to the front
end as the widget's ES module: no CDN, no network. Changes reported by the source go
through a `Coalescer`, so a burst of simulator events becomes one sync and the kernel
never spends more than a bounded share of its time on the drawing. `stats` tells the rate
it sustains and what each sync costs.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

import anywidget
import traitlets

from .assets import load_esm
from .coalesce import Coalescer
from .graph import GraphSnapshot, GraphSource, encode_snapshot
from .sources import (
    HubSource,
    MeshPeer,
    MeshPeerSource,
    MeshSimSource,
    PeerSource,
    SignalingHub,
    SignalingPeer,
    SimNetworkSource,
)

if TYPE_CHECKING:
    from peerpigeon.protocol.mesh import Mesh
    from peerpigeon.sim import SimNetwork
    from peerpigeon.sim.mesh import MeshSim

__all__ = ["DEFAULT_MAX_RATE_HZ", "MeshView", "ViewStats"]

DEFAULT_MAX_RATE_HZ: Final = 10.0
LabelMode = Literal["auto", "all", "none"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ViewStats:
    """What the Python side of a view did (a snapshot).

    Attributes:
        changes: change notifications from the source.
        syncs: times the graph was rebuilt and handed to the front end.
        skipped: syncs that found nothing new to send (only the clock moved).
        syncs_per_s: sustained sync rate since the first sync (wall clock).
        mean_sync_ms: mean time of one sync in Python (snapshot, encode, assign).
        max_sync_ms: the slowest sync.
        total_sync_s: time spent syncing, in all.
        nodes: nodes in the latest graph.
        edges: edges in the latest graph.
    """

    changes: int
    syncs: int
    skipped: int
    syncs_per_s: float
    mean_sync_ms: float
    max_sync_ms: float
    total_sync_s: float
    nodes: int
    edges: int


class MeshView(anywidget.AnyWidget):
    """A live drawing of a mesh: peers, hubs, links, statuses and message pulses.

    ``MeshView(source)`` draws any `GraphSource`; `from_simulation`, `from_peers`,
    `from_mesh` and `from_hub` build the source. Display it as the last expression of a
    cell; it follows the source until `close`. Outside a running asyncio loop (a plain
    script), trailing changes are synced by the next change or by `flush`. The browser's
    own counters (updates, frames, time per update) come back in `frontend`.

    Args:
        source: what to draw.
        max_rate_hz: at most this many syncs per second (bursts are coalesced).
        poll_s: also re-read the source this often (for sources that cannot push);
            needs a running asyncio loop (a notebook has one).
        height: drawing height in pixels.
        labels: which nodes get a text label.
        animate: draw message pulses along the links.
        clock: the wall clock the rate limit is measured with.
    """

    _esm = load_esm()

    graph = traitlets.Dict().tag(sync=True)
    options = traitlets.Dict().tag(sync=True)
    frontend = traitlets.Dict().tag(sync=True)  # the browser's own counters, reported back

    def __init__(
        self,
        source: GraphSource,
        *,
        max_rate_hz: float = DEFAULT_MAX_RATE_HZ,
        poll_s: float | None = None,
        height: int = 420,
        labels: LabelMode = "auto",
        animate: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if poll_s is not None and not (math.isfinite(poll_s) and poll_s > 0):
            raise ValueError("poll_s must be a positive number")
        super().__init__()
        self.source = source
        self.options = {"height": int(height), "labels": labels, "animate": bool(animate)}
        self._clock = clock
        self._coalescer = Coalescer(max_rate_hz)
        self._timer: asyncio.TimerHandle | None = None
        self._poll_task: asyncio.Task[None] | None = None
        self._closed = False
        self._last_body: tuple[object, ...] | None = None
        self._skipped = 0
        self._sync_total_s = 0.0
        self._sync_max_s = 0.0
        self._syncs = 0
        self._first_sync_at: float | None = None
        self._last_sync_at: float | None = None
        self._nodes = 0
        self._edges = 0
        self._unsubscribe = source.subscribe(self._on_change)
        self._sync(self._clock())
        self._coalescer.force(self._clock())
        if poll_s is not None:
            self._start_polling(poll_s)

    # --- constructors ---------------------------------------------------------------------

    @classmethod
    def from_simulation(
        cls,
        sim: SimNetwork | MeshSim,
        *,
        focus: str | None = None,
        include_removed: bool = False,
        title: str | None = None,
        max_rate_hz: float = DEFAULT_MAX_RATE_HZ,
        height: int = 420,
        labels: LabelMode = "auto",
        animate: bool = True,
    ) -> MeshView:
        """A view of a whole simulation: a `SimNetwork` (signaling) or a `MeshSim` (mesh).

        A `SimNetwork` reports its own changes; a `MeshSim` does not, so advance it with
        `play` (or call `changed` after running it).
        """
        source: GraphSource
        from peerpigeon.sim import SimNetwork

        if isinstance(sim, SimNetwork):
            source = SimNetworkSource(
                sim, focus=focus, include_removed=include_removed, title=title
            )
        else:
            source = MeshSimSource(sim, focus=focus, include_removed=include_removed, title=title)
        return cls(source, max_rate_hz=max_rate_hz, height=height, labels=labels, animate=animate)

    @classmethod
    def from_peers(
        cls,
        *peers: SignalingPeer,
        title: str = "local peers",
        poll_s: float = 0.25,
        max_rate_hz: float = DEFAULT_MAX_RATE_HZ,
        height: int = 360,
    ) -> MeshView:
        """A view of what local peers know (`PeerSource`), polled every `poll_s`."""
        return cls(
            PeerSource(*peers, title=title),
            poll_s=poll_s,
            max_rate_hz=max_rate_hz,
            height=height,
        )

    @classmethod
    def from_mesh(
        cls,
        *peers: Mesh | MeshPeer,
        title: str = "local mesh peers",
        poll_s: float = 0.25,
        max_rate_hz: float = DEFAULT_MAX_RATE_HZ,
        height: int = 360,
    ) -> MeshView:
        """A view of what local mesh peers know (`MeshPeerSource`), polled every `poll_s`."""
        return cls(
            MeshPeerSource(*peers, title=title),
            poll_s=poll_s,
            max_rate_hz=max_rate_hz,
            height=height,
        )

    @classmethod
    def from_hub(
        cls,
        server: HubSource | SignalingHub,
        *,
        poll_s: float = 0.25,
        max_rate_hz: float = DEFAULT_MAX_RATE_HZ,
        height: int = 360,
    ) -> MeshView:
        """A view of a running hub and its peers (`HubSource`), polled every `poll_s`."""
        source = server if isinstance(server, HubSource) else HubSource(server)
        return cls(source, poll_s=poll_s, max_rate_hz=max_rate_hz, height=height)

    # --- public -------------------------------------------------------------------------------

    def changed(self) -> None:
        """Tell the view its source changed (coalesced like the source's own reports)."""
        self._on_change()

    def flush(self) -> None:
        """Sync now, whatever the rate limit and even if only the clock moved."""
        now = self._clock()
        self._cancel_timer()
        self._coalescer.force(now)
        self._sync(now, always=True)

    def snapshot(self) -> GraphSnapshot:
        """The source's graph now (what the next sync will send)."""
        return self.source.snapshot()

    def stats(self) -> ViewStats:
        """Counters of the Python side."""
        c = self._coalescer.stats()
        syncs = self._syncs
        rate = 0.0
        if self._first_sync_at is not None and self._last_sync_at is not None and syncs > 1:
            span = self._last_sync_at - self._first_sync_at
            rate = (syncs - 1) / span if span > 0 else 0.0
        return ViewStats(
            changes=c.changes,
            syncs=syncs,
            skipped=self._skipped,
            syncs_per_s=rate,
            mean_sync_ms=1000.0 * self._sync_total_s / syncs if syncs else 0.0,
            max_sync_ms=1000.0 * self._sync_max_s,
            total_sync_s=self._sync_total_s,
            nodes=self._nodes,
            edges=self._edges,
        )

    def write_html(self, path: str | Path, *, title: str | None = None) -> Path:
        """Write the current graph as a standalone offline HTML page (see `embed`)."""
        from .embed import write_html

        return write_html(self.source.snapshot(), path, title=title, options=dict(self.options))

    def close(self) -> None:
        """Stop following the source and close the widget."""
        if getattr(self, "_closed", True) is False:  # (not set if __init__ failed early)
            self._closed = True
            self._unsubscribe()
            self._cancel_timer()
            if self._poll_task is not None:
                self._poll_task.cancel()
                self._poll_task = None
        super().close()

    def __repr__(self) -> str:
        """What a front end without widgets shows (e.g. a notebook viewer)."""
        title = self.graph.get("title") or type(self.source).__name__
        return f"<MeshView {title!s}: {self._nodes} nodes, {self._edges} links>"

    # --- driving ------------------------------------------------------------------------------

    def _on_change(self) -> None:
        if self._closed:
            return
        now = self._clock()
        if self._coalescer.changed(now):
            self._cancel_timer()
            self._sync(now)
        elif self._timer is None:
            self._arm_timer(now)

    def _arm_timer(self, now: float) -> None:
        deadline = self._coalescer.next_deadline()
        if deadline is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop: the next change or flush() syncs
            return
        self._timer = loop.call_later(max(0.0, deadline - now), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._closed:
            return
        now = self._clock()
        if self._coalescer.handle_timer(now):
            self._sync(now)
        else:
            self._arm_timer(now)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _start_polling(self, poll_s: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop: refresh with flush()
            return

        async def poll() -> None:
            while not self._closed:
                await asyncio.sleep(poll_s)
                self._on_change()

        self._poll_task = loop.create_task(poll())

    def _sync(self, now: float, *, always: bool = False) -> None:
        start = time.perf_counter()
        payload = encode_snapshot(self.source.snapshot())
        # Only the clock moved: not worth a message to the front end (unless flushed).
        body = (payload["title"], payload["nodes"], payload["edges"], payload["counters"])
        if body == self._last_body and not always:
            self._skipped += 1
        else:
            self._last_body = body
            self.graph = payload
        elapsed = time.perf_counter() - start
        self._syncs += 1
        self._sync_total_s += elapsed
        self._sync_max_s = max(self._sync_max_s, elapsed)
        if self._first_sync_at is None:
            self._first_sync_at = now
        self._last_sync_at = now
        nodes, edges = payload["nodes"], payload["edges"]
        self._nodes = len(nodes) if isinstance(nodes, list) else 0
        self._edges = len(edges) if isinstance(edges, list) else 0
