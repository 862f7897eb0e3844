"""Hypothesis over seeds and scenarios: discovery converges, namespaces stay apart, and no
node is ever left with a deadline in the past."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from peerpigeon.protocol.client import ClientState
from peerpigeon.sim import ClientHandle, LinkConfig, SimNetwork

NAMESPACES = ("global", "red", "blue")


def assert_no_deadline_in_past(net: SimNetwork, *, mid_step: bool = False) -> None:
    """After `run_until(t)` every deadline is after `t`; between two `step`s one may equal
    ``now`` (its wake-up is queued at ``now``), but none may be earlier."""
    for name, deadline in net.deadlines().items():
        if deadline is not None:
            ok = deadline >= net.now if mid_step else deadline > net.now
            assert ok, (name, deadline, net.now)


def assert_discovery_complete(net: SimNetwork) -> None:
    live = [c for c in net.clients if not c.removed]
    for c in live:
        assert c.state is ClientState.OPEN, c
        same = {o.peer_id for o in live if o.network_name == c.network_name}
        assert set(c.discovered_peers) == same - {c.peer_id}, c


@settings(max_examples=50)
@given(
    seed=st.integers(0, 2**32),
    namespaces=st.lists(st.sampled_from(NAMESPACES), min_size=1, max_size=8),
    latency_ms=st.integers(0, 200),
    jitter_ms=st.integers(0, 300),
    stagger_ms=st.integers(0, 500),
)
def test_every_client_discovers_its_namespace(
    seed: int, namespaces: list[str], latency_ms: int, jitter_ms: int, stagger_ms: int
) -> None:
    net = SimNetwork(seed, link=LinkConfig(latency_s=latency_ms / 1e3, jitter_s=jitter_ms / 1e3))
    for ns in namespaces:
        net.add_client(network_name=ns)
        net.run_for(stagger_ms / 1e3)
        assert_no_deadline_in_past(net)
    while net.in_flight:
        assert net.step()
        assert_no_deadline_in_past(net, mid_step=True)
    net.run_for(0.0)
    assert_no_deadline_in_past(net)
    assert_discovery_complete(net)
    for c in net.clients:
        for peer in c.discovered_peers:
            assert net.hub.machine.connection_of(peer) is not None


class ChurnMachine(RuleBasedStateMachine):
    """Joins, leaves, crashes, partitions and time jumps on a small simulated network."""

    def __init__(self) -> None:
        super().__init__()
        self.net: SimNetwork | None = None

    @property
    def sim(self) -> SimNetwork:
        assert self.net is not None
        return self.net

    @precondition(lambda self: self.net is None)
    @rule(seed=st.integers(0, 2**32), jitter_ms=st.integers(0, 100))
    def start(self, seed: int, jitter_ms: int) -> None:
        self.net = SimNetwork(seed, link=LinkConfig(latency_s=0.02, jitter_s=jitter_ms / 1e3))

    def _live(self) -> list[ClientHandle]:
        return [c for c in self.sim.clients if not c.removed] if self.net else []

    @precondition(lambda self: self.net is not None and len(self._live()) < 6)
    @rule(ns=st.sampled_from(NAMESPACES))
    def join(self, ns: str) -> None:
        self.sim.add_client(network_name=ns)

    @precondition(lambda self: self.net is not None and len(self._live()) > 0)
    @rule(
        data=st.data(),
        how=st.sampled_from(["graceful", "crash", "silent"]),
    )
    def leave(self, data: st.DataObject, how: str) -> None:
        victim = data.draw(st.sampled_from(self._live()))
        self.sim.remove_client(victim, graceful=how == "graceful", silent=how == "silent")

    @precondition(
        lambda self: (
            self.net is not None
            and len(self._live()) < 6
            and any(c.removed for c in self.sim.clients)
        )
    )
    @rule(data=st.data())
    def restart(self, data: st.DataObject) -> None:
        # A crashed (or departed) peer comes back under the same ID, as a restarted process.
        live_ids = {c.peer_id for c in self._live()}
        gone = [c for c in self.sim.clients if c.removed and c.peer_id not in live_ids]
        if gone:
            old = data.draw(st.sampled_from(gone))
            self.sim.add_client(peer_id=old.peer_id, network_name=old.network_name)

    @precondition(lambda self: self.net is not None and len(self._live()) > 0)
    @rule(data=st.data(), mode=st.sampled_from(["hold", "drop"]))
    def cut_off(self, data: st.DataObject, mode: str) -> None:
        victims = data.draw(st.lists(st.sampled_from(self._live()), min_size=1, unique=True))
        self.sim.partition(victims, [self.sim.hub], mode=mode)

    @precondition(lambda self: self.net is not None)
    @rule()
    def heal(self) -> None:
        self.sim.heal()

    @precondition(lambda self: self.net is not None)
    @rule(dt=st.floats(0.0, 120.0, allow_nan=False))
    def time_passes(self, dt: float) -> None:
        self.sim.run_for(dt)

    @precondition(lambda self: self.net is not None)
    @rule()
    def settle(self) -> None:
        # Long enough for the hub's ping timeout (300 s + one sweep) and capped backoffs.
        self.sim.heal()
        self.sim.run_for(400.0)
        assert_discovery_complete(self.sim)

    @invariant()
    def deadlines_are_ahead(self) -> None:
        if self.net is not None:
            assert_no_deadline_in_past(self.net)

    def teardown(self) -> None:
        if self.net is not None:
            self.settle()


TestChurn = ChurnMachine.TestCase
TestChurn.settings = settings(max_examples=60, stateful_step_count=20, deadline=None)
