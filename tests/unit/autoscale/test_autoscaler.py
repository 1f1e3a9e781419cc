"""Autoscaler behaviour: signals, windows, steps, bounds, scale from and to zero, wake before cold start."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from llmctl.autoscale import (
    Autoscaler,
    Bounds,
    InFlightTarget,
    Observation,
    QueueDepth,
    ReplicaView,
    Schedule,
    StartupCosts,
    TtftSlo,
)

COSTS = StartupCosts(cold_start_s=50.0, wake_s=0.8, warm_pool=2)


def obs(
    ready: int = 1,
    sleeping: int = 0,
    starting: int = 0,
    in_flight: int = 0,
    queued: int = 0,
    idle: float | None = 0.0,
    ttft: float | None = None,
) -> Observation:
    replicas = (
        [ReplicaView(f"r{i}", "ready") for i in range(ready)]
        + [ReplicaView(f"s{i}", "sleeping") for i in range(sleeping)]
        + [ReplicaView(f"c{i}", "starting") for i in range(starting)]
    )
    return Observation(
        "d",
        tuple(replicas),
        in_flight=in_flight,
        queued=queued,
        ttft_p95_s=ttft,
        seconds_since_last_request=idle,
    )


def test_in_flight_target_scales_to_demand_with_reason() -> None:
    a = Autoscaler(InFlightTarget(8), Bounds(min_replicas=1, max_replicas=10, max_step_up=10), COSTS)
    d = a.decide(obs(ready=3, in_flight=42), now=0.0)
    assert (d.current, d.target, d.start) == (3, 6, 3)
    assert "in-flight 42 at 8 per replica needs 6" in d.reason and "scale 3 to 6" in d.reason


def test_bounds_and_step_limit() -> None:
    a = Autoscaler(InFlightTarget(1), Bounds(min_replicas=1, max_replicas=5, max_step_up=2), COSTS)
    d = a.decide(obs(ready=1, in_flight=100), now=0.0)
    assert d.target == 3 and "bounded to [1, 5]" in d.reason


def test_up_window_ignores_a_single_spike_and_follows_sustained_load() -> None:
    a = Autoscaler(InFlightTarget(10), Bounds(min_replicas=1, max_replicas=8, up_window_s=20), COSTS)
    assert a.decide(obs(ready=1, in_flight=5), now=0.0).target == 1
    spike = a.decide(obs(ready=1, in_flight=40), now=5.0)
    assert spike.target == 1 and "waiting 20 s" in spike.reason
    a.decide(obs(ready=1, in_flight=40), now=15.0)
    # At t=26 every wish in the last 20 s asked for 4.
    assert a.decide(obs(ready=1, in_flight=40), now=26.0).target == 4


def test_down_window_and_one_step_at_a_time() -> None:
    a = Autoscaler(InFlightTarget(10), Bounds(min_replicas=1, max_replicas=8, down_window_s=60), COSTS)
    a.decide(obs(ready=4, in_flight=40), now=0.0)
    held = a.decide(obs(ready=4, in_flight=5), now=30.0)
    assert held.target == 4 and "down window" in held.reason
    later = a.decide(obs(ready=4, in_flight=5), now=61.0)
    assert later.target == 3 and later.sleep == 1  # the warm pool has room for it


def test_scale_from_zero_is_immediate_and_prefers_waking() -> None:
    a = Autoscaler(InFlightTarget(8), Bounds(min_replicas=0, max_replicas=4, up_window_s=30), COSTS)
    d = a.decide(obs(ready=0, sleeping=1, queued=3), now=0.0)
    assert d.target == 1 and d.wake == 1 and d.start == 0 and "wake 1 sleeping" in d.reason


def test_wakes_sleepers_before_cold_starts() -> None:
    a = Autoscaler(InFlightTarget(4), Bounds(min_replicas=0, max_replicas=8, max_step_up=8), COSTS)
    d = a.decide(obs(ready=1, sleeping=2, in_flight=20), now=0.0)
    assert (d.target, d.wake, d.start) == (5, 2, 2)


def test_idle_timeout_scales_to_zero_but_not_before() -> None:
    b = Bounds(min_replicas=0, max_replicas=2, down_window_s=0, idle_timeout_s=300)
    a = Autoscaler(InFlightTarget(8), b, COSTS)
    assert a.decide(obs(ready=1, idle=120), now=0.0).target == 1
    d = a.decide(obs(ready=1, idle=301), now=181.0)
    assert d.target == 0 and "idle 301 s >= 300 s" in d.reason


def test_starting_replicas_count_as_capacity() -> None:
    a = Autoscaler(InFlightTarget(8), Bounds(min_replicas=1, max_replicas=8, max_step_up=8), COSTS)
    assert a.decide(obs(ready=1, starting=2, in_flight=24), now=0.0).target == 3


def test_queue_depth_keeps_busy_replicas_when_queue_is_empty() -> None:
    sig = QueueDepth(target=4, per_replica=16)
    assert sig.wish(obs(ready=2, in_flight=20, queued=0), 0).replicas == 2
    assert sig.wish(obs(ready=2, in_flight=32, queued=9), 0).replicas == 5


def test_ttft_slo_scales_in_proportion_to_the_breach() -> None:
    sig = TtftSlo(target_s=0.5)
    assert sig.wish(obs(ready=2, ttft=1.5), 0).replicas == 6
    assert sig.wish(obs(ready=2, ttft=0.1, in_flight=0), 0).replicas == 1
    assert sig.wish(obs(ready=2, ttft=0.4), 0).replicas == 2


def test_schedule_wraps_the_day() -> None:
    sig = Schedule(steps=[(8 * 3600, 4), (20 * 3600, 1)])
    assert sig.wish(obs(), 9 * 3600).replicas == 4
    assert sig.wish(obs(), 2 * 3600).replicas == 1  # before 08:00 the 20:00 step still holds
    assert sig.wish(obs(), 86400 + 9 * 3600).replicas == 4


observations = st.builds(
    obs,
    ready=st.integers(0, 6),
    sleeping=st.integers(0, 3),
    starting=st.integers(0, 2),
    in_flight=st.integers(0, 200),
    queued=st.integers(0, 100),
    idle=st.one_of(st.none(), st.floats(0, 1000)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(observations, min_size=1, max_size=30), st.integers(0, 2), st.integers(1, 10))
def test_decisions_respect_bounds_and_steps_and_are_deterministic(
    seq: list[Observation], lo: int, span: int
) -> None:
    bounds = Bounds(
        min_replicas=lo,
        max_replicas=lo + span,
        max_step_up=3,
        max_step_down=1,
        up_window_s=10,
        down_window_s=30,
    )
    first, second = Autoscaler(InFlightTarget(8), bounds, COSTS), Autoscaler(InFlightTarget(8), bounds, COSTS)
    for i, o in enumerate(seq):
        d = first.decide(o, now=i * 5.0)
        assert d == second.decide(o, now=i * 5.0)
        assert d.target - d.current <= 3 and d.current - d.target <= 1
        if d.changed:
            # Out of bounds (say max lowered) the target moves towards them, one step at a time.
            assert min(bounds.min_replicas, d.current) <= d.target <= max(bounds.max_replicas, d.current)
            assert d.wake + d.start == max(0, d.target - d.current)
            assert d.sleep + d.stop == max(0, d.current - d.target)
            assert d.wake <= o.count("sleeping")


def test_a_replica_draining_to_sleep_fills_the_warm_pool() -> None:
    # Found by the live same-moves check: with one replica already draining to sleep, the next scale-down
    # put a second one to sleep, a warm pool of two where the playbook asked for one.
    from llmctl.autoscale import Autoscaler, Bounds, InFlightTarget, StartupCosts
    from llmctl.autoscale.types import Observation, ReplicaView

    policy = Autoscaler(
        InFlightTarget(4),
        Bounds(0, 3, down_window_s=0.0, idle_timeout_s=None),
        StartupCosts(30.0, 1.0, warm_pool=1),
    )
    obs = Observation(
        "burst",
        (
            ReplicaView("b-0", "draining", draining_to="sleep"),
            ReplicaView("b-1", "ready"),
            ReplicaView("b-2", "ready"),
        ),
        in_flight=4,
    )
    d = policy.decide(obs, 0.0)
    assert (d.current, d.target, d.sleep, d.stop) == (2, 1, 0, 1)
    alone = Observation("burst", (ReplicaView("b-1", "ready"), ReplicaView("b-2", "ready")), in_flight=4)
    d = Autoscaler(policy.signal, policy.bounds, policy.costs).decide(alone, 0.0)
    assert (d.sleep, d.stop) == (1, 0)
