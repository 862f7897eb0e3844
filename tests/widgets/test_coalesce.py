"""The coalescing throttle: leading and trailing edges, bursts, and the rate bound."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from peerpigeon.widgets import Coalescer


def test_first_change_syncs_at_once() -> None:
    c = Coalescer(10.0)
    assert c.next_deadline() is None
    assert c.changed(5.0)
    assert not c.pending
    assert c.next_deadline() is None


def test_burst_of_100_changes_becomes_one_sync_then_one_trailing_sync() -> None:
    c = Coalescer(10.0)  # interval 0.1 s
    assert c.changed(0.0)  # leading edge
    granted = [c.changed(0.0005 * i) for i in range(1, 101)]  # 100 changes within 50 ms
    assert not any(granted)
    assert c.next_deadline() == pytest.approx(0.1)  # pending
    assert not c.handle_timer(0.09)  # early: safe, nothing
    assert c.handle_timer(0.1)  # the trailing sync carries all 100
    assert not c.pending
    assert not c.handle_timer(0.2)  # nothing pending: nothing to do
    stats = c.stats()
    assert (stats.changes, stats.syncs, stats.coalesced) == (101, 2, 99)


def test_change_after_the_interval_syncs_without_a_timer() -> None:
    c = Coalescer(4.0)
    assert c.changed(1.0)
    assert not c.changed(1.1)
    assert c.changed(1.3)  # the pending one rides along: no separate trailing sync needed
    assert not c.pending


def test_infinite_rate_syncs_every_change() -> None:
    c = Coalescer(math.inf)
    assert all(c.changed(1.0) for _ in range(5))
    assert c.stats().syncs == 5


def test_force_counts_as_a_sync() -> None:
    c = Coalescer(10.0)
    c.changed(0.0)
    c.changed(0.01)
    c.force(0.02)
    assert not c.pending
    assert not c.changed(0.05)  # within the interval of the forced sync
    assert c.next_deadline() == pytest.approx(0.12)


def test_clock_going_backwards_does_not_stall() -> None:
    c = Coalescer(1.0)
    assert c.changed(100.0)
    assert c.changed(3.0)


@pytest.mark.parametrize("rate", [0.0, -1.0, math.nan])
def test_bad_rate(rate: float) -> None:
    with pytest.raises(ValueError, match="max_rate_hz"):
        Coalescer(rate)


def test_syncs_per_s() -> None:
    c = Coalescer(10.0)
    assert c.stats().syncs_per_s(0.0) == 0.0
    t = 0.0
    for _ in range(1000):  # a change every millisecond for one second
        if not c.changed(t):
            deadline = c.next_deadline()
            assert deadline is not None
        t += 0.001
        c.handle_timer(t)
    assert c.stats().syncs_per_s(t) == pytest.approx(10.0, rel=0.05)


@given(
    rate=st.sampled_from([1.0, 10.0, 30.0]),
    gaps=st.lists(st.floats(min_value=0.0, max_value=0.5), min_size=1, max_size=200),
    timer_lateness=st.floats(min_value=0.0, max_value=0.05),
)
def test_syncs_respect_the_rate_and_nothing_is_left_behind(
    rate: float, gaps: list[float], timer_lateness: float
) -> None:
    c = Coalescer(rate)
    now = 0.0
    sync_times: list[float] = []
    for gap in gaps:
        # Fire the trailing timer if it fell due during the gap (possibly late).
        deadline = c.next_deadline()
        if deadline is not None and deadline + timer_lateness <= now + gap:
            at = max(deadline + timer_lateness, now)
            if c.handle_timer(at):
                sync_times.append(at)
        now += gap
        if c.changed(now):
            sync_times.append(now)
        assert c.next_deadline() is None or c.pending
    # Whatever is pending gets its sync at the deadline.
    deadline = c.next_deadline()
    if deadline is not None:
        assert c.handle_timer(max(deadline, now))
        sync_times.append(max(deadline, now))
    assert not c.pending
    interval = 1.0 / rate
    for earlier, later in itertools.pairwise(sync_times):
        assert later - earlier >= interval - 1e-9
    assert c.stats().syncs == len(sync_times)
