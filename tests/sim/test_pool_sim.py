"""The pooled simulator (sim.pooled) on plain servers: two tenants whose bursts never coincide fit a pool of
about the larger peak, coincident ones need the sum; minimums are always held; every request is answered
or counted; same seed, same run; and a tenant alone on its own pool runs exactly as the plain simulator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from llmctl.autoscale import Autoscaler
from llmctl.autoscale.policy import Bounds, StartupCosts
from llmctl.autoscale.signals import QueueDepth
from llmctl.pool import Reason, Tenant
from llmctl.reconcile.actions import Action
from sim.cluster import ClusterSpec, DeploymentSim, simulate
from sim.outcome import Slo
from sim.pool_compare import tenant_numbers
from sim.pooled import PooledResult, SimPool, pool_groups, pool_member, simulate_pooled
from sim.workload import Arrival, generate, parse_workload

DURATION = 900.0
SLO = Slo(ttft_s=3.0)


def _policy(low: int, high: int) -> Callable[[], Autoscaler]:
    def make() -> Autoscaler:
        return Autoscaler(
            QueueDepth(target=4, per_replica=4),
            Bounds(low, high, max_step_up=4, down_window_s=20.0, idle_timeout_s=30.0),
            StartupCosts(cold_start_s=10.0, wake_s=2.0),
        )

    return make


def _dep(name: str, low: int, high: int, slots: int | None = None) -> DeploymentSim:
    # One replica: 4 servers of 1 s each, so a burst of 10 req/s needs about 3 replicas.
    return DeploymentSim(
        name,
        service_time=lambda a: 1.0,
        servers=4,
        initial_replicas=low,
        max_replicas=slots or high,
        autoscaler=_policy(low, high),
        cold_start_s=10.0,
    )


def _bursts(starts: dict[str, float], seed: int = 3) -> list[Arrival]:
    """Each tenant: 0.3 req/s, and a 200-s burst of 10 req/s from its start."""
    parts = [
        {
            "kind": "step",
            "deployment": name,
            "steps": [{"at_s": 0, "rate": 0.3}, {"at_s": t, "rate": 10.0}, {"at_s": t + 200, "rate": 0.3}],
            "lengths": {"kind": "fixed", "prompt": 1, "output": 1},
        }
        for name, t in starts.items()
    ]
    return generate(parse_workload({"kind": "mix", "parts": parts}), DURATION, seed)


TENANTS = (Tenant("a", 0, 1, 4), Tenant("b", 1, 0, 4))


def _pooled(arrivals: list[Arrival], gpus: int, tenants: tuple[Tenant, ...] = TENANTS) -> PooledResult:
    groups = pool_groups("pool", gpus, 8, 1)
    spec = ClusterSpec(
        tuple(_dep(t.name, t.min_replicas, t.max_replicas, len(groups)) for t in tenants),
        scrape_interval_s=2.0,
    )
    return simulate_pooled(
        spec, [SimPool("pool", tuple(pool_member(t, "pool", groups) for t in tenants))], arrivals, DURATION
    )


def _separate(arrivals: list[Arrival], tenants: tuple[Tenant, ...] = TENANTS) -> PooledResult:
    spec = ClusterSpec(
        tuple(_dep(t.name, t.min_replicas, t.max_replicas) for t in tenants), scrape_interval_s=2.0
    )
    pools = [
        SimPool(t.name, (pool_member(t, t.name, pool_groups(t.name, t.max_replicas, 8, 1)),)) for t in tenants
    ]
    return simulate_pooled(spec, pools, arrivals, DURATION)


def _numbers(run: PooledResult) -> dict[str, dict[str, Any]]:
    return {n: tenant_numbers(run, n, SLO) for n in run.offered}


def _move(entry: tuple[float, str, Action]) -> tuple[object, ...]:
    t, dep, a = entry
    return (t, dep, type(a).__name__, *(v for k, v in vars(a).items() if k != "reason"))


def _peak_total(run: PooledResult) -> int:
    return max(p.gpus for p in run.held_total)


@pytest.fixture(scope="module")
def apart() -> list[Arrival]:
    return _bursts({"a": 100.0, "b": 500.0})


@pytest.fixture(scope="module")
def together() -> list[Arrival]:
    return _bursts({"a": 100.0, "b": 100.0})


def test_bursts_that_never_coincide_need_the_larger_peak_not_the_sum(apart: list[Arrival]) -> None:
    sep = _numbers(_separate(apart))
    peaks = {n: s["peak_gpus_held"] for n, s in sep.items()}
    assert min(peaks.values()) >= 3  # each burst alone needs three replicas or more
    unconstrained = _pooled(apart, sum(peaks.values()))
    # The other tenant keeps one replica for its trickle while the first one bursts.
    assert _peak_total(unconstrained) <= max(peaks.values()) + 1 < sum(peaks.values())
    tight = _pooled(apart, max(peaks.values()) + 1)
    got = _numbers(tight)
    for name, s in sep.items():
        assert got[name]["slo_attainment"] >= s["slo_attainment"] - 0.005, (name, got[name], s)
    assert not tight.preemptions


def test_coincident_bursts_save_nothing(together: list[Arrival]) -> None:
    sep = _numbers(_separate(together))
    peaks = {n: s["peak_gpus_held"] for n, s in sep.items()}
    unconstrained = _pooled(together, sum(peaks.values()))
    assert _peak_total(unconstrained) == sum(peaks.values())
    tight = _numbers(_pooled(together, max(peaks.values()) + 1))
    # The same pool that carried the staggered bursts: now the lower-priority tenant misses its SLO.
    assert tight["a"]["slo_attainment"] < sep["a"]["slo_attainment"] - 0.05, (tight["a"], sep["a"])


def test_minimums_are_always_held_and_preemption_takes_only_extras() -> None:
    # a bursts first and grows; b (higher priority) bursts 50 s later and takes a's extras, never its minimum.
    run = _pooled(_bursts({"a": 100.0, "b": 150.0}), 4)
    kinds = {(p.tenant, p.for_tenant, p.reason) for _, p in run.preemptions}
    assert ("a", "b", Reason.PRIORITY) in kinds
    # Else only replicas above their own tenant's target give way (b's extras once its burst is over).
    assert kinds <= {
        ("a", "b", Reason.PRIORITY),
        ("b", "a", Reason.OVER_TARGET),
        ("a", "b", Reason.OVER_TARGET),
    }
    for t in TENANTS:
        held = run.held[t.name]
        assert all(p.gpus >= t.min_replicas for p in held), (
            t.name,
            [p for p in held if p.gpus < t.min_replicas],
        )
    assert all(p.gpus <= 4 for p in run.held_total)


def test_every_request_is_answered_or_counted(together: list[Arrival]) -> None:
    run = _pooled(together, 4)
    r = run.result
    for name, offered in run.offered.items():
        answered = sum(1 for x in r.records if x.deployment == name)
        lost = r.rejected[name] + r.shed.get(name, 0) + r.dropped[name] + run.unfinished[name]
        assert offered > 1000 and answered + lost == offered, (name, offered, answered, lost)
        n = tenant_numbers(run, name, SLO)
        met = sum(1 for x in r.records if x.deployment == name and SLO.met(x))
        assert n["slo_attainment"] == pytest.approx(met / offered)


def test_same_seed_same_run_and_another_seed_differs() -> None:
    runs = [_pooled(_bursts({"a": 100.0, "b": 150.0}, seed=s), 4) for s in (7, 7, 8)]
    key = [
        ([(x.arrival_s, x.finish_s) for x in r.result.records], r.preemptions, r.result.actions) for r in runs
    ]
    assert key[0] == key[1] and key[0] != key[2]
    assert runs[0].preemptions


def test_a_tenant_alone_on_its_own_pool_runs_as_the_plain_simulator(apart: list[Arrival]) -> None:
    spec = ClusterSpec(
        tuple(_dep(t.name, t.min_replicas, t.max_replicas) for t in TENANTS), scrape_interval_s=2.0
    )
    plain = simulate(spec, apart, DURATION)
    pooled = _separate(apart)
    # The same moves at the same times; only their reasons differ (a start says the pool granted it).
    assert [_move(a) for a in pooled.result.actions] == [_move(a) for a in plain.actions]
    assert pooled.result.records == plain.records
    assert pooled.result.fleet == plain.fleet and not pooled.preemptions and not pooled.refusals
