"""One pool step, shared by both drivers (the live controller and the simulator): what the pool's members
hold now and what their autoscalers want -> the allocator's decisions, each grant tied to the member's slot
on exactly those GPUs. Pure: the same members, holdings and demand give the same step, so a driver that
crashed and restarted simply calls it again on what its replica rows say.

A member's slots are the planner's candidate placements on the pool (llmctl.planner.pool): one per group of
`gpus_per_replica` GPUs, aligned, on each host. Members of one pool share one replica width, so every
holding is one whole group, the allocator's lowest free GPUs on a host are always one whole group too, and
every grant has its slot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from llmctl.pool.allocator import allocate
from llmctl.pool.types import Allocation, Demand, Grant, Holding, PoolGpu, Preempt, Tenant

__all__ = ["Member", "Occupant", "PoolStep", "SlotGrant", "holdings_of", "pool_gpus", "pool_step"]


@dataclass(frozen=True)
class Member:
    """A deployment that draws from the pool: its tenant terms and its candidate slots (name -> GPUs)."""

    tenant: Tenant
    slots: Mapping[str, tuple[PoolGpu, ...]]


@dataclass(frozen=True)
class Occupant:
    """A replica as its driver sees it: `holds` its slot's GPUs (any phase but gone or stopped), `draining`
    (on its way out: drained or stopping). `gpus`, when the driver knows them (a live replica row), say
    where it really runs; else its member slot's GPUs are used."""

    deployment: str
    replica: str
    holds: bool
    draining: bool = False
    gpus: tuple[PoolGpu, ...] | None = None


@dataclass(frozen=True)
class SlotGrant:
    """A grant and the slot of its tenant that sits on exactly its GPUs (start the replica there)."""

    slot: str
    grant: Grant


@dataclass(frozen=True)
class PoolStep:
    allocation: Allocation
    starts: tuple[SlotGrant, ...] = ()
    preempts: tuple[Preempt, ...] = ()
    # Grants no free slot of the tenant matches: not carried out (the planner's groups and the allocator
    # disagree, which uniform widths rule out; kept visible rather than silently dropped).
    unplaced: tuple[Grant, ...] = ()


def pool_gpus(members: Sequence[Member]) -> list[PoolGpu]:
    """The pool as its members' slots cover it: every GPU some member may run on."""
    return sorted({g for m in members for gpus in m.slots.values() for g in gpus})


def holdings_of(members: Sequence[Member], occupants: Sequence[Occupant]) -> list[Holding]:
    """Who holds which pool GPUs now, derived from the replicas alone. GPUs outside the pool are left out;
    a GPU two replicas claim (a stale row) goes to the first, so one bad row cannot stop every tick."""
    slots = {m.tenant.name: m.slots for m in members}
    pool = set(pool_gpus(members))
    taken: set[PoolGpu] = set()
    out: list[Holding] = []
    for o in occupants:
        if not o.holds:
            continue
        gpus = o.gpus if o.gpus is not None else slots.get(o.deployment, {}).get(o.replica, ())
        mine = tuple(g for g in gpus if g in pool and g not in taken)
        if not mine or len({g.host for g in mine}) > 1:
            continue
        taken.update(mine)
        out.append(Holding(o.deployment, o.replica, mine, o.draining))
    return out


def pool_step(members: Sequence[Member], occupants: Sequence[Occupant], demand: Demand) -> PoolStep:
    """This tick's allocation of the pool the members cover, each grant matched to a free slot."""
    held = holdings_of(members, occupants)
    allocation = allocate(pool_gpus(members), [m.tenant for m in members], held, demand)
    busy = {(o.deployment, o.replica) for o in occupants if o.holds}
    by_name = {m.tenant.name: m for m in members}
    starts: list[SlotGrant] = []
    unplaced: list[Grant] = []
    for g in allocation.grants:
        slots = by_name[g.tenant].slots
        slot = next((n for n, gpus in slots.items() if gpus == g.gpus and (g.tenant, n) not in busy), None)
        if slot is None:
            unplaced.append(g)
            continue
        busy.add((g.tenant, slot))
        starts.append(SlotGrant(slot, g))
    return PoolStep(allocation, tuple(starts), tuple(allocation.preemptions), tuple(unplaced))
