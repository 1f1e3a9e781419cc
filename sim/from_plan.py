"""A simulated fleet from a playbook planned on an inventory: the same planner, desired state and policies
as `llmctl apply` and the controller, so the simulation runs what a rollout would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sim.backfill import BackfillSpec
from sim.cluster import ClusterSpec, DeploymentSim
from sim.replica import EngineShape


def cluster_from_plan(playbook: str | Path, inventory: str | Path, **options: Any) -> ClusterSpec:
    """A ClusterSpec for a playbook planned on an inventory: each deployment's replica shape (engine, model,
    GPU, TP, FP8, EAGLE-3, KV capacity, scheduler limits) from the planner, its policy, cold-start and wake
    times from its desired state, the GPU price from the inventory. `options` go to ClusterSpec."""
    from llmctl.config.inventory import Inventory, load_inventory
    from llmctl.engines.emulator.timing import step_timer
    from llmctl.perf.speculative import SpecConfig
    from llmctl.planner.shape import shape_draft_params, shape_profile
    from llmctl.planning import plan_and_desired

    inv = inventory if isinstance(inventory, Inventory) else load_inventory(inventory)
    _plan, desired = plan_and_desired(playbook, inv)
    hosts = {h.name: h for h in inv.hosts}
    lenders: dict[str, BackfillSpec] = {}  # owner -> the deployment back-filling its spare slots
    for dd in desired:
        borrowed = [slot.shape for slot in dd.slots if slot.shape is not None]
        if dd.backfill_for and borrowed:
            gpus = len(dd.slots[0].gpus)
            lenders[dd.backfill_for] = BackfillSpec(
                dd.name, dd.cold_start_s, borrowed[0].est_tokens_per_s, gpus
            )
    out = []
    for dd in desired:
        if dd.backfill_for:
            continue  # no traffic of its own: it shows as what its lender's idle slots recover
        slot = dd.slots[0]  # the desired state, typed: every slot of a deployment has one shape
        shape = slot.shape
        if shape is None:
            raise ValueError(f"deployment {dd.name!r}: its slots carry no shape")
        # From the Model the slot carries: a local model path is not in the catalog.
        profile = shape_profile(shape)
        draft = shape_draft_params(shape)
        engine = EngineShape(
            step_timer(profile, SpecConfig(draft_params=draft) if draft else None),
            shape.kv_capacity_tokens,
            shape.max_num_seqs,
            shape.max_batched_tokens,
            shape.max_context,
            profile.factors.request_latency_s,
        )
        price = hosts[slot.host].gpu_price if slot.host in hosts else None
        out.append(
            DeploymentSim(
                name=dd.name,
                engine=engine,
                gpus_per_replica=len(slot.gpus) or shape.tp,
                initial_replicas=dd.initial,
                max_replicas=len(dd.slots),
                autoscaler=dd.autoscaler if dd.scaling.autoscaled else None,
                cold_start_s=dd.cold_start_s,
                wake_s=dd.wake_s,
                sleep_mode=dd.sleep_mode,
                route=dd.route,
                price_per_gpu_hour=price if price is not None else float("nan"),
                backfill=lenders.get(dd.name),
            )
        )
    return ClusterSpec(tuple(out), **options)
