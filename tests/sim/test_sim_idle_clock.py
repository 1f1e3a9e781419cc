"""The simulator's idle clock follows the live controller's (llmctl.reconcile.idle, called by both): a
request still in the deployment counts as use, so after a long request the deployment waits the whole idle
timeout from when the request left, not from when it arrived."""

from __future__ import annotations

import inspect

from llmctl.autoscale import Autoscaler
from llmctl.autoscale.policy import Bounds, StartupCosts
from llmctl.autoscale.signals import QueueDepth
from llmctl.autoscale.types import Observation
from llmctl.gateway.store_sync import StoreSync
from llmctl.reconcile.idle import in_use_now
from sim.cluster import ClusterSpec, DeploymentSim, simulate
from sim.shadow import GATEWAY_SYNC_S
from sim.workload import Arrival

SERVICE_S, IDLE_S, TICK_S = 50.0, 30.0, 2.0


def _policy(idle_s: float = IDLE_S) -> Autoscaler:
    return Autoscaler(
        QueueDepth(target=4, per_replica=4),
        Bounds(0, 1, down_window_s=0.0, idle_timeout_s=idle_s),
        StartupCosts(cold_start_s=10.0, wake_s=2.0),
    )


def test_a_long_request_holds_the_idle_clock_until_it_leaves() -> None:
    dep = DeploymentSim("chat", service_time=lambda a: SERVICE_S, initial_replicas=1, autoscaler=_policy)
    spec = ClusterSpec((dep,), scrape_interval_s=TICK_S)
    result = simulate(spec, [Arrival(1.0, 10, 10, "chat")], duration_s=200.0)
    (t, down), *_ = [(t, d) for t, d in result.decisions if d.target < d.current]
    assert down.target == 0
    # The request leaves at 51 s; the last tick that saw it is within one tick before.
    assert 1.0 + SERVICE_S + IDLE_S - TICK_S <= t <= 1.0 + SERVICE_S + IDLE_S + TICK_S, (t, down.reason)


def test_the_idle_clock_reads_zero_only_with_demand() -> None:
    quiet = Observation("chat", (), in_flight=0, queued=0, seconds_since_last_request=12.0)
    assert in_use_now(quiet) == (quiet, False)
    busy, used = in_use_now(Observation("chat", (), in_flight=1, queued=0, seconds_since_last_request=12.0))
    assert used and busy.seconds_since_last_request == 0.0
    held, used = in_use_now(Observation("chat", (), in_flight=0, queued=2, seconds_since_last_request=None))
    assert used and held.seconds_since_last_request == 0.0


def test_demand_is_seen_as_of_the_gateways_last_store_sync() -> None:
    """From zero, a request held at the gateway wakes the deployment at the first tick after the gateway
    wrote it to the store, not at the first tick after it arrived."""

    def first_up(sync_s: float) -> float:
        dep = DeploymentSim(
            "chat",
            service_time=lambda a: 1.0,
            initial_replicas=0,
            max_replicas=1,
            autoscaler=lambda: _policy(idle_s=0.5),  # quiet from the start: no replica before the request
        )
        spec = ClusterSpec((dep,), scrape_interval_s=1.0, demand_sync_s=sync_s)
        result = simulate(spec, [Arrival(2.9, 10, 10, "chat")], duration_s=20.0)
        return next(t for t, d in result.decisions if d.target > d.current)

    assert first_up(0.0) == 3.0
    assert first_up(0.5) == 4.0  # the gateway's pass at 3.0 writes it; the tick at 3.0 read the one at 2.5


def test_the_replay_syncs_demand_as_often_as_the_live_gateway() -> None:
    assert inspect.signature(StoreSync.run).parameters["interval_s"].default == GATEWAY_SYNC_S
