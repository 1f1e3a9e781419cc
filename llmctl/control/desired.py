"""The desired state of one deployment as `llmctl apply` records it in the store: everything the controller
and the gateway need to run it without the playbook or the planner: the replica slots (argv, env, host,
GPUs, port), how it scales, how the gateway routes it and what a start-up or wake-up costs.

Slots are ordered: the first `initial` run after an apply; the rest are spare placements on free GPUs that
the controller fills, in order, when the autoscaler asks for more replicas.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from llmctl.autoscale import (
    Autoscaler,
    Bounds,
    InFlightTarget,
    QueueDepth,
    Schedule,
    Signal,
    StartupCosts,
    TtftSlo,
)
from llmctl.config.playbook import Deployment, Playbook
from llmctl.errors import LlmctlError
from llmctl.perf.cold_start import cold_start_time, wake_time
from llmctl.planner import Plan, PlannedReplica
from llmctl.planner.shape import shape_profile
from llmctl.state.records import deployments, put_deployment
from llmctl.state.store import Store


def spec_hash(r: PlannedReplica) -> str:
    data = json.dumps([r.host, r.gpu_indices, r.port, r.argv, sorted(r.env.items())], sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Slot:
    """Where and how one replica of the deployment runs."""

    name: str
    host: str
    address: str
    gpus: tuple[int, ...]
    port: int
    argv: tuple[str, ...]
    env: dict[str, str]
    spec_hash: str
    engine: str  # vllm | sglang | emulated
    shares_with: str = ""  # back-fill: the other deployment's slot whose GPUs these are

    @classmethod
    def of(cls, r: PlannedReplica) -> Slot:
        return cls(
            r.name,
            r.host,
            r.address,
            r.gpu_indices,
            r.port,
            r.argv,
            dict(r.env),
            spec_hash(r),
            r.shape.engine,
            r.shares_with,
        )


@dataclass(frozen=True)
class ScalingSpec:
    min_replicas: int
    max_replicas: int
    signal: str
    target: float
    idle_timeout_s: float
    ttft_target_s: float | None = None
    warm_pool: int = 0  # replicas kept asleep instead of stopped on scale-down (sleep-capable engines)
    down_window_s: float = 60.0
    schedule: tuple[tuple[float, int], ...] = ()  # (seconds after 00:00 UTC, replicas), sorted; signal schedule

    @property
    def autoscaled(self) -> bool:
        return self.max_replicas > max(1, self.min_replicas) or self.min_replicas == 0


@dataclass(frozen=True)
class DesiredDeployment:
    name: str
    workload: str
    flavour: str  # API the replicas speak: vllm | sglang
    route: str
    api_key_env: str | None
    scaling: ScalingSpec
    cold_start_s: float
    wake_s: float
    sleep_mode: bool
    initial: int
    slots: tuple[Slot, ...] = field(default_factory=tuple)
    # The playbook's latency targets, {ttft_ms: {p50, p99}, itl_ms: {p50, p99}}: shown against measurements.
    targets: dict[str, dict[str, float | None]] = field(default_factory=dict)
    # Back-fill: the deployment whose idle spare slots this one runs on (each slot's `shares_with`).
    backfill_for: str | None = None

    def slot(self, name: str) -> Slot | None:
        return next((s for s in self.slots if s.name == name), None)

    def autoscaler(self) -> Autoscaler:
        s = self.scaling
        signal: Signal
        if s.signal == "ttft_slo" and s.ttft_target_s:
            signal = TtftSlo(s.ttft_target_s)
        elif s.signal == "schedule" and s.schedule:
            signal = Schedule(s.schedule)
        elif s.signal == "queue_depth":
            signal = QueueDepth(s.target, per_replica=int(s.target))
        else:
            signal = InFlightTarget(s.target)
        bounds = Bounds(
            min_replicas=s.min_replicas,
            max_replicas=max(s.max_replicas, s.min_replicas),
            up_window_s=0.0,
            down_window_s=s.down_window_s,
            idle_timeout_s=s.idle_timeout_s,
        )
        return Autoscaler(signal, bounds, StartupCosts(self.cold_start_s, self.wake_s, s.warm_pool))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, name: str, data: dict[str, Any]) -> DesiredDeployment:
        try:
            slots = tuple(
                Slot(**{**s, "gpus": tuple(s["gpus"]), "argv": tuple(s["argv"])}) for s in data["slots"]
            )
            scaling = data["scaling"]
            schedule = tuple((float(t), int(n)) for t, n in scaling.get("schedule", ()))
            return cls(
                **{**data, "name": name, "scaling": ScalingSpec(**{**scaling, "schedule": schedule}), "slots": slots}
            )
        except (KeyError, TypeError) as exc:
            raise LlmctlError(
                f"deployment {name!r} in the state store was written by another llmctl version ({exc}); "
                "re-apply its playbook"
            ) from None


def desired_from_plan(playbook: Playbook, plan: Plan) -> list[DesiredDeployment]:
    out = []
    for dep in playbook.deployments:
        initial = [r for r in plan.replicas if r.deployment == dep.name]
        spares = [r for r in (*plan.spares, *plan.backfill) if r.deployment == dep.name]
        if initial or spares:
            out.append(_desired(dep, initial, spares))
    return out


def _desired(
    dep: Deployment, initial: list[PlannedReplica], spares: list[PlannedReplica]
) -> DesiredDeployment:
    shape = (initial or spares)[0].shape
    profile = shape_profile(shape)
    sc = dep.scaling
    ttft_ms = dep.targets.ttft_ms.p99 or dep.targets.ttft_ms.p50
    if sc.signal == "ttft_slo" and not ttft_ms:
        raise LlmctlError(f"deployment {dep.name!r}: scaling.signal ttft_slo needs targets.ttft_ms (p50 or p99)")
    scaling = ScalingSpec(
        min_replicas=sc.min_replicas,
        max_replicas=sc.max_replicas or sc.initial_replicas,
        signal=sc.signal,
        target=sc.target,
        idle_timeout_s=sc.idle_timeout_s,
        ttft_target_s=ttft_ms / 1000 if ttft_ms else None,
        warm_pool=1 if shape.sleep_mode and sc.min_replicas == 0 else 0,
        down_window_s=sc.down_window_s,
        schedule=tuple(sorted((step.seconds, step.replicas) for step in sc.schedule)),
    )
    return DesiredDeployment(
        name=dep.name,
        workload=dep.workload,
        flavour=shape.flavour,
        route=dep.gateway.route,
        api_key_env=dep.gateway.api_key_env,
        scaling=scaling,
        cold_start_s=cold_start_time(profile).total_s,
        wake_s=wake_time(profile).total_s,
        sleep_mode=shape.sleep_mode,
        initial=len(initial),
        slots=tuple(Slot.of(r) for r in [*initial, *spares]),
        targets=dep.targets.model_dump(),
        backfill_for=dep.placement.backfill_for,
    )


def put_desired(store: Store, d: DesiredDeployment) -> None:
    data = d.to_json()
    put_deployment(store, d.name, data, hashlib.sha256(json.dumps(data).encode()).hexdigest()[:16])


def load_desired(store: Store) -> dict[str, DesiredDeployment]:
    return {name: DesiredDeployment.from_json(name, spec) for name, (_h, spec) in deployments(store).items()}
