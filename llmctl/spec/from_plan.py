"""The desired state built from a plan: a playbook planned on an inventory becomes one DesiredDeployment per
deployment, its slots in order (the initial replicas, then spare placements and back-fill slots)."""

from __future__ import annotations

import hashlib
import json

from llmctl.config.playbook import Deployment, Playbook
from llmctl.errors import LlmctlError
from llmctl.planner import Plan, PlannedReplica
from llmctl.planner.lora import lora_plan
from llmctl.planner.shape import startup_costs
from llmctl.spec.deployment import AdapterSpec, DesiredDeployment, ScalingSpec, Slot


def spec_hash(r: PlannedReplica) -> str:
    data = json.dumps([r.host, r.gpu_indices, r.port, r.argv, sorted(r.env.items())], sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def slot_of(r: PlannedReplica) -> Slot:
    """The slot a planned replica runs in."""
    return Slot(
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
        r.shape,
    )


def desired_from_plan(playbook: Playbook, plan: Plan) -> list[DesiredDeployment]:
    out = []
    for dep in playbook.deployments:
        initial = [r for r in plan.replicas if r.deployment == dep.name]
        spares = [r for r in (*plan.spares, *plan.backfill, *plan.pooled) if r.deployment == dep.name]
        if initial or spares:
            out.append(_desired(dep, initial, spares))
    return out


def _desired(
    dep: Deployment, initial: list[PlannedReplica], spares: list[PlannedReplica]
) -> DesiredDeployment:
    shape = (initial or spares)[0].shape
    cold_s, wake_s = startup_costs(shape)
    sc = dep.scaling
    ttft_ms = dep.targets.ttft_ms.p99 or dep.targets.ttft_ms.p50
    if sc.signal == "ttft_slo" and not ttft_ms:
        raise LlmctlError(
            f"deployment {dep.name!r}: scaling.signal ttft_slo needs targets.ttft_ms (p50 or p99)"
        )
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
        cold_start_s=cold_s,
        wake_s=wake_s,
        sleep_mode=shape.sleep_mode,
        initial=len(initial),
        slots=tuple(slot_of(r) for r in [*initial, *spares]),
        targets=dep.targets.model_dump(),
        backfill_for=dep.placement.backfill_for,
        pool=dep.placement.pool,
        pool_priority=dep.placement.priority,
        pool_weight=dep.placement.weight,
        adapters=tuple(AdapterSpec(a.name, a.path, a.preload) for a in dep.adapters),
        adapter_slots=lora.max_loras if (lora := lora_plan(dep)) else 0,
    )
