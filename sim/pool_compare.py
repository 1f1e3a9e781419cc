"""The pooling question: the same tenants and the same arrivals, once each on a fleet of its own and once on
one shared pool, through the same controller code (sim.pooled). `compare` answers with GPU-hours, cost,
SLO attainment per tenant, demand and GPU peak-to-average per tenant and aggregated, preemptions and time
in each cold-start tier.

What the fleets cost: GPUs are owned or rented by the hour whether busy or not, so a fleet's cost is its size
times the duration. A separate fleet is sized for its own tenant's peak: the GPUs the tenant held at its
peak in the separate run (the smallest dedicated fleet that carries that run; the planned slots,
max_replicas x GPUs, are shown beside it). The pool is the scenario's `pool.gpus`, or with `gpus: auto`
the smallest pool (at least every minimum, as the planner requires) whose every tenant keeps its SLO
attainment within `slo_margin` of its separate fleet's. The autoscaled GPU-hours (starting, ready and
draining replicas) are reported too: pay-per-use is the same either way, pooling saves the idle headroom.
SLO attainment counts every request offered: one not answered (rejected, shed, dropped or unfinished)
is a miss.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from llmctl.autoscale import Autoscaler
from llmctl.config.source import format_path, load_yaml
from llmctl.errors import ConfigError, LlmctlError
from llmctl.pool import Tenant
from llmctl.pool.tiers import Tier
from llmctl.spec.deployment import DesiredDeployment
from sim.cluster import ClusterSpec, DeploymentSim
from sim.outcome import Slo, demand_series, fleet_series, gpu_seconds, peak_to_average
from sim.pool_spec import PoolSpec
from sim.pooled import PooledResult, SimPool, pool_groups, pool_member, simulate_pooled
from sim.scenario import Scenario, arrivals_for, cluster_for
from sim.workload import Arrival, WorkloadSpec


@dataclass(frozen=True)
class Tenants:
    """The scenario's tenants as the simulator runs them: their deployments (one slot per replica of their
    own range) and their pool terms."""

    deployments: tuple[DeploymentSim, ...]
    tenants: tuple[Tenant, ...]
    desired: dict[str, DesiredDeployment]  # tenant -> the planned deployment it copies (its desired state)
    gpus_per_replica: int
    gpu_type: str
    price_per_gpu_hour: float


def _bounded(factory: Callable[[], Autoscaler], low: int, high: int) -> Callable[[], Autoscaler]:
    def make() -> Autoscaler:
        policy = factory()
        policy.bounds = dataclasses.replace(policy.bounds, min_replicas=low, max_replicas=high)
        return policy

    return make


def _error(scenario: Scenario, path: tuple[str | int, ...], problem: str) -> ConfigError:
    """An error at the scenario file's line for `path` (the file is read again only to find the line)."""
    try:
        _, lines = load_yaml(scenario.file)
    except (OSError, LlmctlError):
        return ConfigError(scenario.file, None, format_path(path), problem)
    return lines.error(path, problem)


def tenants_of(scenario: Scenario) -> Tenants:
    """Each tenant a copy of its `like` deployment (engine, model, policy) with its own replica range."""
    if not scenario.tenants:
        raise _error(scenario, ("tenants",), "a pooled scenario lists its tenants (sim.pool_spec)")
    planned = {d.name: d for d in cluster_for(scenario).deployments}
    gpu_type, desired = _planned(scenario)
    deps, tenants, likes = [], [], {}
    for i, t in enumerate(scenario.tenants):
        like = t.like or (next(iter(planned)) if len(planned) == 1 else "")
        d = planned.get(like)
        if d is None:
            known = ", ".join(planned)
            raise _error(scenario, ("tenants", i, "like"), f"no deployment {like!r}; known: {known}")
        if d.autoscaler is None:
            raise _error(scenario, ("tenants", i, "like"), f"{like} does not autoscale")
        likes[t.name] = desired[like]
        deps.append(
            dataclasses.replace(
                d,
                name=t.name,
                initial_replicas=t.min_replicas,
                max_replicas=t.max_replicas,
                autoscaler=_bounded(d.autoscaler, t.min_replicas, t.max_replicas),
                backfill=None,
            )
        )
        tenants.append(
            Tenant(
                t.name, t.priority, t.min_replicas, t.max_replicas, d.gpus_per_replica, None, False, t.weight
            )
        )
    names = [t.name for t in tenants]
    if len(set(names)) != len(names):
        raise _error(scenario, ("tenants",), f"tenant names must be unique: {', '.join(names)}")
    widths = {d.gpus_per_replica for d in deps}
    if len(widths) > 1:
        # llmctl.pool.step: members of one pool share one replica width (every holding a whole group).
        raise _error(scenario, ("tenants",), f"tenants of one pool need one replica width: {sorted(widths)}")
    return Tenants(tuple(deps), tuple(tenants), likes, widths.pop(), gpu_type, deps[0].price_per_gpu_hour)


def _planned(scenario: Scenario) -> tuple[str, dict[str, DesiredDeployment]]:
    """The GPU type the playbook is planned on, and each deployment's desired state."""
    from llmctl.planning import plan_and_desired

    plan, desired = plan_and_desired(scenario.path(scenario.playbook), scenario.path(scenario.inventory))
    return (plan.replicas[0].shape.gpu_type if plan.replicas else ""), {d.name: d for d in desired}


def _cluster(scenario: Scenario, deps: list[DeploymentSim]) -> ClusterSpec:
    return dataclasses.replace(cluster_for(scenario), deployments=tuple(deps))


def run_separate(scenario: Scenario, ts: Tenants, arrivals: list[Arrival], per_host: int) -> PooledResult:
    """Every tenant on a pool of its own with its planned slots: the allocator never says no."""
    pools = []
    for t in ts.tenants:
        w = t.gpus_per_replica
        groups = pool_groups(t.name, t.max_replicas * w, per_host, w, ts.gpu_type)
        pools.append(SimPool(t.name, (pool_member(t, t.name, groups, ts.desired[t.name]),)))
    return simulate_pooled(_cluster(scenario, list(ts.deployments)), pools, arrivals, scenario.duration_s)


def run_pooled(
    scenario: Scenario, ts: Tenants, arrivals: list[Arrival], gpus: int, per_host: int
) -> PooledResult:
    groups = pool_groups("pool", gpus, per_host, ts.gpus_per_replica, ts.gpu_type)
    deps = [dataclasses.replace(d, max_replicas=len(groups)) for d in ts.deployments]
    pool = SimPool("pool", tuple(pool_member(t, "pool", groups, ts.desired[t.name]) for t in ts.tenants))
    return simulate_pooled(_cluster(scenario, deps), [pool], arrivals, scenario.duration_s)


# --- numbers ------------------------------------------------------------------------------------------------
def tenant_numbers(run: PooledResult, name: str, slo: Slo, bin_s: float = 60.0) -> dict[str, Any]:
    r = run.result
    recs = [x for x in r.records if x.deployment == name]
    offered = run.offered[name]
    held = run.held[name]
    busy_h = gpu_seconds(r.fleet[name], r.end_s) / 3600
    ttft = np.fromiter((x.ttft_s for x in recs), dtype=float, count=len(recs))
    return {
        "offered": offered,
        "answered": len(recs),
        "not_answered": offered - len(recs),
        "slo_attainment": sum(slo.met(x) for x in recs) / offered if offered else float("nan"),
        "ttft_p99_s": float(np.percentile(ttft, 99)) if ttft.size else float("nan"),
        "busy_gpu_hours": busy_h,
        "held_gpu_hours": gpu_seconds(held, r.end_s) / 3600,
        "peak_gpus_held": max((p.gpus for p in held), default=0),
        "demand_peak_to_average": peak_to_average(demand_series(recs, r.end_s, bin_s)),
        "gpus_peak_to_average": peak_to_average(fleet_series(held, r.end_s, bin_s)),
        "preempted": sum(1 for _, p in run.preemptions if p.tenant == name),
        "refused_ticks": sum(1 for _, x in run.refusals if x.tenant == name),
        "tier_hours": {t.name: run.tier_s[name][t] / 3600 for t in Tier},
        "scale_ups": {t.name: n for t, n in sorted(run.scale_ups[name].items())},
    }


def fleet_numbers(
    run: PooledResult, ts: Tenants, slo: Slo, reserved_gpus: int, bin_s: float = 60.0
) -> dict[str, Any]:
    r = run.result
    held_total = fleet_series(run.held_total, r.end_s, bin_s)
    offered = sum(run.offered.values())
    hours = r.end_s / 3600
    return {
        "reserved_gpus": reserved_gpus,
        "gpu_hours": reserved_gpus * hours,
        "cost": reserved_gpus * hours * ts.price_per_gpu_hour,
        "busy_gpu_hours": gpu_seconds(r.total_fleet, r.end_s) / 3600,
        "slo_attainment": sum(slo.met(x) for x in r.records) / offered if offered else float("nan"),
        "peak_gpus_held": float(held_total.max()) if held_total.size else 0.0,
        "demand_peak_to_average": peak_to_average(demand_series(r.records, r.end_s, bin_s)),
        "gpus_peak_to_average": peak_to_average(held_total),
        "preemptions": len(run.preemptions),
        "tier_hours": {t.name: sum(run.tier_s[n][t] for n in run.tier_s) / 3600 for t in Tier},
    }


@dataclass
class Comparison:
    scenario: str
    gpu_type: str
    price_per_gpu_hour: float
    duration_s: float
    pool_gpus: int
    pool_rule: str
    separate: PooledResult
    pooled: PooledResult
    report: dict[str, Any]


def size_pool(
    scenario: Scenario,
    ts: Tenants,
    arrivals: list[Arrival],
    separate: dict[str, dict[str, Any]],
    spec: PoolSpec,
) -> tuple[int, PooledResult]:
    """The smallest pool (bisection between the largest of every minimum and any one tenant's peak, and the
    sum of the peaks) whose every tenant keeps its SLO attainment within `slo_margin` of its separate fleet."""
    w = ts.gpus_per_replica
    peaks = [max(w, int(separate[t.name]["peak_gpus_held"])) for t in ts.tenants]
    low = max(sum(t.min_replicas * w for t in ts.tenants), max(peaks))
    high = max(low, sum(peaks))

    def good(run: PooledResult) -> bool:
        return all(
            tenant_numbers(run, t.name, scenario.slo.slo())["slo_attainment"]
            >= separate[t.name]["slo_attainment"] - spec.slo_margin
            for t in ts.tenants
        )

    best = run_pooled(scenario, ts, arrivals, high, spec.gpus_per_host)
    while low < high:
        mid = (low + high) // 2 // w * w or w
        if mid < low:
            mid = low
        run = run_pooled(scenario, ts, arrivals, mid, spec.gpus_per_host)
        if good(run):
            high, best = mid, run
        else:
            low = mid + w
    return high, best


def compare(scenario: Scenario, workload: WorkloadSpec, pool_gpus: int | None = None) -> Comparison:
    """Separate fleets and the pool over the same arrivals; `pool_gpus` overrides the scenario's pool."""
    spec = scenario.pool or PoolSpec()
    ts = tenants_of(scenario)
    arrivals = arrivals_for(scenario, workload)
    unknown = sorted({a.deployment for a in arrivals} - {t.name for t in ts.tenants})
    if unknown:
        raise _error(scenario, ("workload",), f"arrivals for {', '.join(unknown)}, which is no tenant")
    slo = scenario.slo.slo()
    w = ts.gpus_per_replica
    minimum = sum(t.min_replicas * w for t in ts.tenants)
    gpus = pool_gpus if pool_gpus is not None else spec.gpus
    if gpus != "auto" and gpus < minimum:
        problem = f"{gpus} GPUs cannot hold every tenant's minimum ({minimum})"
        raise _error(scenario, ("pool", "gpus"), problem)
    separate = run_separate(scenario, ts, arrivals, spec.gpus_per_host)
    sep = {t.name: tenant_numbers(separate, t.name, slo) for t in ts.tenants}
    if gpus == "auto":
        gpus, pooled = size_pool(scenario, ts, arrivals, sep, spec)
        rule = f"auto: the smallest pool whose every tenant keeps SLO attainment within {spec.slo_margin:.1%}"
    else:
        pooled = run_pooled(scenario, ts, arrivals, gpus, spec.gpus_per_host)
        rule = "given by the scenario (pool.gpus)"
    pool = {t.name: tenant_numbers(pooled, t.name, slo) for t in ts.tenants}
    right_sized = sum(int(s["peak_gpus_held"]) for s in sep.values())
    planned = sum(t.max_replicas * w for t in ts.tenants)
    sep_fleet = fleet_numbers(separate, ts, slo, right_sized)
    pool_fleet = fleet_numbers(pooled, ts, slo, gpus)
    report: dict[str, Any] = {
        "scenario": scenario.file,
        "gpu_type": ts.gpu_type,
        "price_per_gpu_hour": ts.price_per_gpu_hour,
        "duration_s": scenario.duration_s,
        "seed": scenario.seed,
        "slo": {"ttft_s": slo.ttft_s, "itl_s": slo.itl_s},
        "pool": {"gpus": gpus, "rule": rule, "minimums": minimum, "gpus_per_host": spec.gpus_per_host},
        # What a scale-up from each tier a simulated slot can be in takes (the perf model's, via the plan).
        "tier_seconds": {
            Tier.ON_DISK.name: ts.deployments[0].cold_start_s,
            Tier.ASLEEP_IN_RAM.name: ts.deployments[0].wake_s,
        },
        "separate_planned_gpus": planned,
        "separate": {"fleet": sep_fleet, "tenants": sep},
        "pooled": {"fleet": pool_fleet, "tenants": pool},
        "saving": 1 - pool_fleet["cost"] / sep_fleet["cost"] if sep_fleet["cost"] else float("nan"),
    }
    return Comparison(
        scenario.file,
        ts.gpu_type,
        ts.price_per_gpu_hour,
        scenario.duration_s,
        gpus,
        rule,
        separate,
        pooled,
        report,
    )


__all__ = [
    "Comparison",
    "Tenants",
    "compare",
    "fleet_numbers",
    "run_pooled",
    "run_separate",
    "size_pool",
    "tenant_numbers",
    "tenants_of",
]
