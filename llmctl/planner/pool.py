"""GPU pools in the plan: the GPUs of an inventory group (or `all` hosts) left after every deployment placed
the usual way, shared by the deployments that name the pool in `placement.pool`. Pure.

The planner checks what must hold at any time: each member's replica shape fits the pool's GPUs (memory, GPU
type), and every member's minimum fits at once (the allocator asked with demand = minimums). It does not fix
which GPUs each member runs on: it gives each member one candidate slot per aligned group of its replica
width on each host, and the controller's pool step (llmctl.pool.step) grants GPUs at run time. Members of a
pool share one replica width, which keeps every holding a whole group (see llmctl.pool.step).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from llmctl.catalog.gpus import GPU
from llmctl.catalog.models import Model
from llmctl.config.inventory import Inventory
from llmctl.config.playbook import Deployment, Playbook
from llmctl.errors import ConfigError
from llmctl.planner.placement import HostState, eligible, selected
from llmctl.planner.shape import DoesNotFit
from llmctl.planner.types import PlannedReplica, PoolMember, PoolPlan, Shape
from llmctl.pool import PoolGpu, Refuse, Tenant, allocate

ShapeOf = Callable[[Deployment, Model, GPU, int], Shape]
# (deployment, its index, replica index, shape, host, GPU indices, port) -> the planned replica
ReplicaOf = Callable[[Deployment, int, int, Shape, HostState, tuple[int, ...], int], PlannedReplica]
ErrorAt = Callable[[tuple[str | int, ...], str], ConfigError]
PortOf = Callable[[HostState, Shape], int]


@dataclass(frozen=True)
class PooledPlan:
    slots: tuple[PlannedReplica, ...]
    pools: tuple[PoolPlan, ...]
    warnings: tuple[str, ...]


def pool_hosts(states: list[HostState], name: str) -> list[HostState]:
    return selected(states, None if name == "all" else name, ())


def plan_pools(
    playbook: Playbook,
    inventory: Inventory,
    states: list[HostState],
    models: Mapping[str, Model],
    shape_of: ShapeOf,
    replica_of: ReplicaOf,
    port_of: PortOf,
    error: ErrorAt,
) -> PooledPlan:
    """Every pool's candidate slots and its summary; `states` already hold the non-pooled replicas."""
    names = list(dict.fromkeys(d.placement.pool for d in playbook.deployments if d.placement.pool))
    slots: list[PlannedReplica] = []
    pools: list[PoolPlan] = []
    warnings: list[str] = []
    for name in names:
        members = [(i, d) for i, d in enumerate(playbook.deployments) if d.placement.pool == name]
        hosts = pool_hosts(states, name)
        free = {
            (st.host.name, s.index): s.gpu.name for st in hosts for s in st.slots if s.index not in st.used
        }
        planned: list[PoolMember] = []
        width: tuple[str, int] | None = None
        for d_index, dep in members:
            mine, tp, gpu_type = _member_slots(
                dep, d_index, models[dep.model], hosts, inventory, shape_of, replica_of, port_of, error
            )
            if width is not None and tp != width[1]:
                raise error(
                    ("deployments", d_index, "placement", "pool"),
                    f"pool {name!r}: {dep.name} replicas take {tp} GPU(s), {width[0]}'s take {width[1]}; the "
                    "members of a pool share one replica width (set serving.tensor_parallel)",
                )
            width = width or (dep.name, tp)
            slots.extend(mine)
            top = dep.scaling.max_replicas or dep.scaling.initial_replicas
            planned.append(
                PoolMember(
                    dep.name, dep.placement.priority, dep.placement.weight, dep.scaling.min_replicas,
                    max(top, dep.scaling.min_replicas), tp, gpu_type, dep.workload == "offline", len(mine),
                )
            )  # fmt: skip
            if top > len(mine):
                warnings.append(
                    f"{dep.name}: pool {name!r} has room for {len(mine)} of its replicas; max_replicas asks {top}"
                )
        pool = PoolPlan(name, tuple((h, i, t) for (h, i), t in sorted(free.items())), tuple(planned))
        _check_minimums(pool, {d.name: i for i, d in members}, error)
        pools.append(pool)
    return PooledPlan(tuple(slots), tuple(pools), tuple(warnings))


def tenant_of(m: PoolMember) -> Tenant:
    return Tenant(
        m.deployment, m.priority, m.min_replicas, m.max_replicas, m.gpus_per_replica, m.gpu_type, m.backfill,
        m.weight,
    )  # fmt: skip


def _check_minimums(pool: PoolPlan, index: dict[str, int], error: ErrorAt) -> None:
    """Every member's minimum at once: what the allocator grants with demand = minimums, and no refusal."""
    gpus = [PoolGpu(h, i, t) for h, i, t in pool.gpus]
    tenants = [tenant_of(m) for m in pool.members]
    got = allocate(gpus, tenants, [], {m.deployment: m.min_replicas for m in pool.members})
    refused: list[Refuse] = [r for r in got.refusals if r.wanted > 0]
    if refused:
        r = refused[0]
        raise error(
            ("deployments", index[r.tenant], "scaling", "min_replicas"),
            f"pool {pool.name!r}: the members' minimums do not fit at once ({pool.minimum_gpus} GPU(s) wanted,"
            f" {len(gpus)} in the pool): {r.detail}",
        )


def _member_slots(
    dep: Deployment,
    d_index: int,
    model: Model,
    hosts: list[HostState],
    inventory: Inventory,
    shape_of: ShapeOf,
    replica_of: ReplicaOf,
    port_of: PortOf,
    error: ErrorAt,
) -> tuple[list[PlannedReplica], int, str | None]:
    """One candidate slot per aligned group of free pool GPUs the member's shape fits; its width and type."""
    name = dep.placement.pool or ""
    where = ("deployments", d_index, "placement", "pool")
    groups = sorted({g for h in inventory.hosts for g in h.groups})
    if name != "all" and name not in groups:
        raise error(
            where, f"no inventory group named {name!r} in {inventory.file} (groups: {', '.join(groups) or 'none'};"
            " or 'all' for the whole fleet)",
        )  # fmt: skip
    candidates = eligible(hosts, None, (), dep.placement.gpu_type)
    if not candidates:
        kind = f"{dep.placement.gpu_type} GPUs" if dep.placement.gpu_type else "GPUs"
        raise error(where, f"no host of pool {name!r} has {kind}")
    out: list[PlannedReplica] = []
    misfits: dict[str, tuple[str | int, ...]] = {}
    tps: set[int] = set()
    types: set[str] = set()
    for state, gpu in candidates:
        try:
            shape = shape_of(dep, model, gpu, state.count(gpu.name))
        except DoesNotFit as exc:
            misfits[str(exc)] = exc.field
            continue
        free = state.free(gpu.name)
        for start in range(0, len(free) - shape.tp + 1, shape.tp):
            gpus = tuple(free[start : start + shape.tp])
            port = port_of(state, shape)
            out.append(replica_of(dep, d_index, len(out), shape, state, gpus, port))
            tps.add(shape.tp)
            types.add(gpu.name)
    if not out:
        if misfits:
            problem, field = next(iter(misfits.items()))
            raise error(("deployments", d_index, *field) if field and len(misfits) == 1 else where, problem)
        raise error(where, f"pool {name!r} has no GPUs left after the deployments placed outside it")
    if len(tps) > 1:
        raise error(
            where, f"replicas would take {sorted(tps)} GPUs on different hosts of pool {name!r}; set "
            "serving.tensor_parallel so that one width fits all",
        )  # fmt: skip
    gpu_type = dep.placement.gpu_type or (next(iter(types)) if len(types) == 1 else None)
    return out, tps.pop(), gpu_type
