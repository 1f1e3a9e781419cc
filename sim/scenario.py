"""A scenario file: which playbook on which inventory, what traffic, for how long, with which seed, and
the SLO to judge it by. `run_scenario` plans the playbook (the same planner as `llmctl apply`), builds the
simulated fleet from the plan and replays the workload through it.

    playbook: ../../playbooks/semi-online-burst.yaml    # paths relative to this file
    inventory: ../../inventory/example-ssh.yaml         # GPUs and their prices
    duration_s: 3600
    seed: 1
    mode: fast                   # or step: the engine scheduler step by step (the reference)
    scrape_interval_s: 2
    metric_lag_s: 0
    slo: {ttft_ms: 2000, itl_ms: 100}
    overrides: {summarise: {max_replicas: 6}}            # per deployment, for sweeps
    workload: {kind: poisson, rate: 5, deployment: summarise}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llmctl.autoscale import Autoscaler
from llmctl.config.source import LineMap, load_yaml, validate
from llmctl.errors import ConfigError
from sim.cluster import ClusterSpec, SimResult, simulate
from sim.from_plan import cluster_from_plan
from sim.outcome import Slo
from sim.pool_spec import PoolSpec, TenantSpec
from sim.workload import Arrival, WorkloadSpec, generate, parse_workload


class SloSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ttft_ms: float | None = Field(default=None, gt=0)
    itl_ms: float | None = Field(default=None, gt=0)

    def slo(self) -> Slo:
        return Slo(self.ttft_ms / 1000 if self.ttft_ms else None, self.itl_ms / 1000 if self.itl_ms else None)


class Override(BaseModel):
    """What a sweep varies per deployment: the replica range and the autoscaler's target."""

    model_config = ConfigDict(extra="forbid")
    initial_replicas: int | None = Field(default=None, ge=0)
    max_replicas: int | None = Field(default=None, ge=1)
    target: float | None = Field(default=None, gt=0)  # the autoscaler signal's per-replica target
    autoscale: bool | None = None  # false: a fixed fleet of initial_replicas


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")
    file: str = ""
    playbook: str
    inventory: str
    duration_s: float = Field(gt=0, le=31 * 86400.0)  # a month of traffic at most: arrivals live in memory
    seed: int = Field(default=0, ge=0)  # numpy seeds are non-negative
    mode: Literal["fast", "step"] = "fast"
    scrape_interval_s: float = Field(default=2.0, gt=0)
    metric_lag_s: float = Field(default=0.0, ge=0)
    slo: SloSpec = SloSpec()
    overrides: dict[str, Override] = Field(default_factory=dict)
    workload: dict[str, Any]
    tenants: list[TenantSpec] = Field(default_factory=list)  # `llmctl sim pool`: sim.pool_spec
    pool: PoolSpec | None = None

    @property
    def base_dir(self) -> Path:
        return Path(self.file).parent

    def path(self, relative: str) -> Path:
        p = Path(relative).expanduser()
        return p if p.is_absolute() else self.base_dir / p


def load_scenario(path: str | Path) -> tuple[Scenario, WorkloadSpec]:
    data, lines = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(str(path), 1, "", "a scenario is a mapping (playbook, inventory, workload, ...)")
    scenario = validate(Scenario, {**data, "file": str(path)}, lines)
    workload = parse_workload(scenario.workload, lines, ("workload",), scenario.duration_s)
    for key in ("playbook", "inventory"):
        if not scenario.path(getattr(scenario, key)).exists():
            raise lines.error((key,), f"no such file: {scenario.path(getattr(scenario, key))}")
    return scenario, workload


def _tuned(factory: Callable[[], Autoscaler], o: Override) -> Callable[[], Autoscaler]:
    """The deployment's policy with a sweep's overrides: the signal's target, and the replica ceiling (the
    policy's own bound, not just the simulated slots, or a larger max_replicas would change nothing)."""

    def make() -> Autoscaler:
        policy = factory()
        signal = policy.signal
        if o.target is not None and dataclasses.is_dataclass(signal) and hasattr(signal, "target"):
            # QueueDepth keeps its per-replica capacity beside the target: both follow the override.
            extra = {"per_replica": max(1, int(o.target))} if hasattr(signal, "per_replica") else {}
            policy.signal = dataclasses.replace(signal, target=o.target, **extra)
        if o.max_replicas is not None:
            low = min(policy.bounds.min_replicas, o.max_replicas)
            policy.bounds = dataclasses.replace(policy.bounds, min_replicas=low, max_replicas=o.max_replicas)
        return policy

    return make


def cluster_for(scenario: Scenario) -> ClusterSpec:
    spec = cluster_from_plan(
        scenario.path(scenario.playbook),
        scenario.path(scenario.inventory),
        mode=scenario.mode,
        scrape_interval_s=scenario.scrape_interval_s,
        metric_lag_s=scenario.metric_lag_s,
        sample_interval_s=max(scenario.scrape_interval_s, scenario.duration_s / 600),
    )
    deps = []
    for d in spec.deployments:
        o = scenario.overrides.get(d.name)
        if o is None:
            deps.append(d)
            continue
        changes: dict[str, Any] = {}
        if o.initial_replicas is not None:
            changes["initial_replicas"] = o.initial_replicas
        if o.max_replicas is not None:
            changes["max_replicas"] = o.max_replicas
        if o.autoscale is False:
            changes["autoscaler"] = None
        elif d.autoscaler is not None and (o.target is not None or o.max_replicas is not None):
            changes["autoscaler"] = _tuned(d.autoscaler, o)
        deps.append(dataclasses.replace(d, **changes))
    unknown = set(scenario.overrides) - {d.name for d in spec.deployments}
    if unknown:
        raise ConfigError(
            scenario.file, None, "overrides", f"no deployment named {', '.join(sorted(unknown))}"
        )
    return dataclasses.replace(spec, deployments=tuple(deps))


def arrivals_for(scenario: Scenario, workload: WorkloadSpec) -> list[Arrival]:
    return generate(workload, scenario.duration_s, scenario.seed, scenario.base_dir)


def run_scenario(
    scenario: Scenario, workload: WorkloadSpec, progress: Callable[[float], None] | None = None
) -> SimResult:
    """Plan, generate the arrivals and simulate; `progress` hears the fraction of simulated time done."""
    if scenario.tenants:
        raise ConfigError(scenario.file, None, "tenants", "a pooled scenario: run it with `llmctl sim pool`")
    cluster = cluster_for(scenario)
    arrivals = arrivals_for(scenario, workload)
    known = {d.name for d in cluster.deployments}
    unknown = sorted({a.deployment for a in arrivals} - known - {""})
    if unknown:
        # With one deployment a misspelt name used to be routed there silently.
        raise ConfigError(
            scenario.file,
            None,
            "workload.deployment",
            f"no deployment named {', '.join(unknown)}; known: {', '.join(sorted(known))}",
        )
    return simulate(cluster, arrivals, scenario.duration_s, progress)


def with_overrides(scenario: Scenario, overrides: dict[str, dict[str, Any]]) -> Scenario:
    merged = {name: o.model_dump(exclude_none=True) for name, o in scenario.overrides.items()}
    for name, values in overrides.items():
        merged[name] = {**merged.get(name, {}), **values}
    return scenario.model_copy(update={"overrides": {n: Override(**v) for n, v in merged.items()}})


__all__ = [
    "LineMap",
    "Override",
    "Scenario",
    "arrivals_for",
    "cluster_for",
    "load_scenario",
    "run_scenario",
    "with_overrides",
]
