"""GPU pools in the reconcile core: desired deployments and replica rows -> the pool step's inputs, and its
decisions -> the actions each member carries out this tick. Pure, like the rest of the core: the live
controller and the simulator both call `pool_tick` and carry out what it returns.

A grant becomes a Start on the member's slot over the granted GPUs; a preemption becomes a Drain (then stop)
of a serving replica, or a Stop of one that serves nothing yet (starting, asleep, backing off). A member's
own autoscaler still sizes it: its wakes and scale-downs are carried out as for any deployment, but it never
starts a replica itself: the pool decides where (llmctl.reconcile.plan).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from llmctl.pool import Demand, PoolDecision, PoolGpu, Preempt, Tenant
from llmctl.pool.step import Member, Occupant, PoolStep, holdings_of, pool_gpus, pool_step
from llmctl.reconcile.actions import Action, Drain, Start, Stop
from llmctl.reconcile.phase import Phase, parse
from llmctl.spec.deployment import DesiredDeployment

# A replica that holds no GPU: its pool GPUs are free again.
RELEASED = (Phase.STOPPED,)
# On its way out: it still holds its GPUs, which are promised to whoever waits for them.
LEAVING = (Phase.DRAINING, Phase.STOPPING)


class PoolReplica(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def deployment(self) -> str: ...

    @property
    def phase(self) -> str: ...


@dataclass(frozen=True)
class PoolTick:
    """One pool's step: the decisions (each one an event) and each member's actions."""

    pool: str
    step: PoolStep
    actions: Mapping[str, list[Action]] = field(default_factory=dict)

    @property
    def decisions(self) -> tuple[PoolDecision, ...]:
        return self.step.allocation.decisions


def slot_gpus(dep: DesiredDeployment) -> dict[str, tuple[PoolGpu, ...]]:
    return {
        s.name: tuple(sorted(PoolGpu(s.host, g, s.shape.gpu_type if s.shape else "") for g in s.gpus))
        for s in dep.slots
    }


def member_of(dep: DesiredDeployment) -> Member:
    slots = slot_gpus(dep)
    types = {g.gpu_type for gpus in slots.values() for g in gpus}
    width = max((len(g) for g in slots.values()), default=1)
    tenant = Tenant(
        dep.name,
        priority=dep.pool_priority,
        min_replicas=dep.scaling.min_replicas,
        max_replicas=max(dep.scaling.max_replicas, dep.scaling.min_replicas),
        gpus_per_replica=width,
        gpu_type=types.pop() if len(types) == 1 else None,
        backfill=dep.workload == "offline",
        weight=dep.pool_weight,
    )
    return Member(tenant, slots)


def pools_of(desired: Iterable[DesiredDeployment]) -> dict[str, list[DesiredDeployment]]:
    """Pool name -> its deployments in the store, stopped and removed ones too (their replicas still hold
    GPUs until they are gone), in name order."""
    out: dict[str, list[DesiredDeployment]] = {}
    for d in sorted(desired, key=lambda d: d.name):
        if d.pool:
            out.setdefault(d.pool, []).append(d)
    return out


def occupants(deps: Sequence[DesiredDeployment], rows: Iterable[PoolReplica]) -> list[Occupant]:
    """The pool deployments' replicas as the pool step sees them, GPUs from their slots."""
    by_name = {d.name: slot_gpus(d) for d in deps}
    out = []
    for r in sorted(rows, key=lambda r: (r.deployment, r.name)):
        slots = by_name.get(r.deployment)
        if slots is None or r.name not in slots:
            continue
        phase = parse(r.phase)
        out.append(Occupant(r.deployment, r.name, phase not in RELEASED, phase in LEAVING, slots[r.name]))
    return out


def pool_tick(
    pool: str, deps: Sequence[DesiredDeployment], rows: Sequence[PoolReplica], demand: Demand
) -> PoolTick:
    """The pool's decisions now and the actions that carry them out. `deps` are the pool's deployments
    (pools_of), `rows` the fleet's replicas, `demand` each member's autoscaler target."""
    members = [member_of(d) for d in deps if not d.stopped and not d.removed]
    step = pool_step(members, occupants(deps, rows), demand)
    phases = {r.name: parse(r.phase) for r in rows}
    actions: dict[str, list[Action]] = {}
    for s in step.starts:
        actions.setdefault(s.grant.tenant, []).append(Start(s.slot, f"pool {pool}: {s.grant.detail}"))
    for p in step.preempts:
        actions.setdefault(p.tenant, []).append(_preempt_action(pool, p, phases.get(p.replica)))
    return PoolTick(pool, step, actions)


def _preempt_action(pool: str, p: Preempt, phase: Phase | None) -> Action:
    why = f"pool {pool}: preempted for {p.for_tenant} ({p.reason}): {p.detail}"
    return Drain(p.replica, "stop", why) if phase == Phase.READY else Stop(p.replica, why)


@dataclass(frozen=True)
class GpuHolder:
    """One pool GPU and who holds it now (replica "" when it is free: the pool's spare)."""

    pool: str
    gpu: PoolGpu
    deployment: str = ""
    replica: str = ""
    phase: str = ""


def pool_holdings(desired: Iterable[DesiredDeployment], rows: Sequence[PoolReplica]) -> list[GpuHolder]:
    """Every pool GPU with its holder, for `llmctl status` (derived from the rows, as the pool step does)."""
    out: list[GpuHolder] = []
    phases = {r.name: r.phase for r in rows}
    for pool, deps in pools_of(desired).items():
        members = [member_of(d) for d in deps]
        held = {g: h for h in holdings_of(members, occupants(deps, rows)) for g in h.gpus}
        for g in pool_gpus(members):
            h = held.get(g)
            out.append(
                GpuHolder(pool, g, h.tenant, h.replica, phases[h.replica]) if h else GpuHolder(pool, g)
            )
    return out
