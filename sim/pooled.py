"""Several deployments (tenants) on GPU pools, in SimPy: the simulated fleet of sim.cluster, whose every
replica also holds concrete pool GPUs, with the pool allocator (llmctl.pool) deciding each controller tick
who may scale up and whose replica makes room.

A tick runs, pool by pool, what the live controller runs (llmctl.control.controller): for every member the
driver's usual steps (sync, expire held requests, put drained replicas away, scrape, observe, its own
Autoscaler decides), then `sim.pool_glue.pool_moves`, which calls the reconcile core's pool tick (the
allocator: grants, preemptions, waits, refusals) and each member's `plan_deployment` with the pool's
moves; the driver only carries the actions out. A grant is a Start on the granted slot; a preempted
serving replica drains and stops, one serving nothing yet (starting, waking, asleep) stops at once. A
replica holds its slot's GPUs in every phase but stopped, asleep included (as live: the engine process
keeps its CUDA context there), so a wake needs no grant and a sleeper is the first thing the allocator
takes for another tenant (it is above its tenant's target).
Every tenant on a pool of its own, as large as its planned slots, is the separate-fleets baseline: the
allocator then never refuses or preempts, and the run is the plain simulator's (a test holds them equal).

Each slot of a tenant sits in one cold-start tier (llmctl.pool.tiers.Tier) at any time: RUNNING while a
replica is ready or draining, ASLEEP_IN_RAM asleep or waking from it, ON_DISK with no replica or starting
from disk (the playbook keeps weights on local disk); slot-seconds per tier are counted up to the
workload's end, and each scale-up by the tier it started from.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

import simpy

from llmctl.autoscale.types import Decision
from llmctl.pool import PoolGpu, Preempt, Refuse, Tenant
from llmctl.pool.step import pool_gpus
from llmctl.pool.tiers import Tier
from llmctl.reconcile.actions import Action, Start, Stop, Wake
from llmctl.reconcile.pool import member_of
from llmctl.spec.deployment import DesiredDeployment, ScalingSpec, Slot
from sim.cluster import ClusterSpec, SimResult, _Cluster, _Dep, _Replica, finish
from sim.outcome import FleetPoint
from sim.pool_glue import Row, pool_moves
from sim.workload import Arrival

_TIER_OF_PHASE = {
    "starting": Tier.ON_DISK,
    "waking": Tier.ASLEEP_IN_RAM,
    "sleeping": Tier.ASLEEP_IN_RAM,
    "ready": Tier.RUNNING,
    "draining": Tier.RUNNING,
}


@dataclass(frozen=True)
class SimPool:
    """A pool and its members as the live store holds them (pooled DesiredDeployments, whose slots are
    named as the simulator names its replicas: NAME-0, NAME-1, ...)."""

    name: str
    members: tuple[DesiredDeployment, ...]

    @property
    def tenants(self) -> list[Tenant]:
        return [member_of(d).tenant for d in self.members]

    @property
    def gpus(self) -> list[PoolGpu]:
        return pool_gpus([member_of(d) for d in self.members])


def pool_groups(
    name: str, count: int, per_host: int, width: int, gpu_type: str = ""
) -> list[tuple[PoolGpu, ...]]:
    """The aligned groups of `width` GPUs of a pool of `count` GPUs on hosts NAME-0, NAME-1, ... of
    `per_host` GPUs each (the last host may be smaller), as the planner cuts a pool into candidate slots."""
    gpus = [PoolGpu(f"{name}-{i // per_host}", i % per_host, gpu_type) for i in range(count)]
    groups = []
    for host in dict.fromkeys(g.host for g in gpus):
        mine = [g for g in gpus if g.host == host]
        groups += [tuple(mine[i : i + width]) for i in range(0, len(mine) - width + 1, width)]
    return groups


def pool_member(
    tenant: Tenant,
    pool: str,
    groups: Sequence[tuple[PoolGpu, ...]],
    template: DesiredDeployment | None = None,
) -> DesiredDeployment:
    """`tenant` as a pooled deployment of `pool` with one candidate slot per group, named NAME-i: a copy of
    `template` (the planned deployment it clones: engine, shape, policy) or, without one, a bare
    deployment (the pool tick reads only its name, replica range, priority, weight and slots)."""
    base = template.slots[0] if template is not None and template.slots else None
    slots = tuple(
        dataclasses.replace(base, name=f"{tenant.name}-{i}", host=g[0].host, gpus=tuple(x.index for x in g))
        if base is not None
        else Slot(f"{tenant.name}-{i}", g[0].host, "", tuple(x.index for x in g), 0, (), {}, "", "emulated")
        for i, g in enumerate(groups)
    )
    if template is None:
        scaling = ScalingSpec(tenant.min_replicas, tenant.max_replicas, "queue_depth", 8, 300)
        template = DesiredDeployment(
            tenant.name, "semi-online", "vllm", "least_outstanding", None, scaling, 0.0, 0.0, False, 0
        )
    return dataclasses.replace(
        template,
        name=tenant.name,
        scaling=dataclasses.replace(
            template.scaling, min_replicas=tenant.min_replicas, max_replicas=tenant.max_replicas
        ),
        initial=tenant.min_replicas,
        slots=slots,
        backfill_for=None,
        pool=pool,
        pool_priority=tenant.priority,
        pool_weight=tenant.weight,
    )


@dataclass
class PooledResult:
    result: SimResult
    pools: tuple[SimPool, ...]
    preemptions: list[tuple[float, Preempt]]
    refusals: list[tuple[float, Refuse]]  # ticks where a tenant got fewer replicas than it asked for
    tier_s: dict[str, dict[Tier, float]]  # tenant -> slot-seconds in each tier over the workload
    scale_ups: dict[str, Counter[Tier]]  # tenant -> replicas added, by the tier they came from
    offered: dict[str, int]
    unfinished: dict[str, int]
    held: dict[str, list[FleetPoint]]  # tenant -> GPUs held over time (asleep included)
    held_total: list[FleetPoint]
    decisions: list[tuple[float, Decision]] = field(default_factory=list)  # as carried out (cut to grants)


class _PooledCluster(_Cluster):
    def __init__(self, spec: ClusterSpec, env: simpy.Environment, pools: Sequence[SimPool], end_s: float):
        self.pools = tuple(pools)
        self.end_s = end_s
        self.tenants = {t.name: t for p in pools for t in p.tenants}
        self._hashes = {m.name: {s.name: s.spec_hash for s in m.slots} for p in pools for m in p.members}
        self.preemptions: list[tuple[float, Preempt]] = []
        self.refusals: list[tuple[float, Refuse]] = []
        self.tier_s: dict[str, dict[Tier, float]] = {
            d.name: dict.fromkeys(Tier, 0.0) for d in spec.deployments
        }
        self.scale_ups: dict[str, Counter[Tier]] = {d.name: Counter() for d in spec.deployments}
        self._tiers: dict[str, tuple[float, Counter[Tier]]] = {}
        # GPUs held (asleep included) over time, per tenant and in all: sim.cluster's timelines record
        # the paid GPUs, and add a point only when those change.
        self.held: dict[str, list[FleetPoint]] = {d.name: [] for d in spec.deployments}
        self.held_total: list[FleetPoint] = []
        self._cancelled: set[int] = set()  # id() of replicas stopped while starting or waking
        names = [m.name for p in pools for m in p.members]
        if sorted(names) != sorted(d.name for d in spec.deployments):
            raise ValueError("every deployment must be a member of exactly one pool")
        for p in pools:
            for m in p.members:
                d = next(d for d in spec.deployments if d.name == m.name)
                if [s.name for s in m.slots] != [f"{d.name}-{i}" for i in range(d.slots)]:
                    raise ValueError(f"{d.name}: its pool slots must be its {d.slots} simulated slots")
        super().__init__(spec, env)
        for p in self.pools:
            self._place_initial(p)

    def _place_initial(self, p: SimPool) -> None:
        """The rolled-out fleet: each member's initial replicas on the slots the pool tick grants them."""
        deps = [self.deps[m.name] for m in p.members]
        initial = {d.spec.name: Decision(d.spec.name, 0, len(d.replicas), "rolled out") for d in deps}
        moves = pool_moves(p.name, p.members, [], initial)
        for d in deps:
            slots = [a.slot for a in moves.actions[d.spec.name] if isinstance(a, Start)]
            if len(slots) < len(d.replicas):
                why = "; ".join(r.detail for r in moves.tick.step.allocation.refusals) or "too small"
                raise ValueError(
                    f"pool {p.name} ({len(p.gpus)} GPUs) cannot hold the {len(d.replicas)} initial"
                    f" replica(s) of {d.spec.name}: {why}"
                )
            for r, slot in zip(d.replicas, slots, strict=False):
                r.name, r.slot = slot, d.slot_names.index(slot)
            d.replicas.sort(key=lambda r: r.slot)
            self._changed(d)

    # --- tiers ---------------------------------------------------------------------------------------------
    def _changed(self, dep: _Dep) -> None:
        name, now = dep.spec.name, min(self.env.now, self.end_s)
        since, counts = self._tiers.get(name, (0.0, Counter()))
        for tier, n in counts.items():
            self.tier_s[name][tier] += n * max(0.0, now - since)
        tiers = Counter(_TIER_OF_PHASE[r.phase] for r in dep.replicas if r.phase in _TIER_OF_PHASE)
        cap = self.tenants[name].max_replicas if name in self.tenants else dep.spec.slots
        tiers[Tier.ON_DISK] += max(0, cap - sum(tiers.values()))
        self._tiers[name] = (now, tiers)
        held = sum(1 for r in dep.replicas if r.phase != "stopped")
        _hold(self.held[name], FleetPoint(self.env.now, held, held * dep.spec.gpus_per_replica, held))
        n = sum(tl[-1].replicas for tl in self.held.values() if tl)
        gpus = sum(tl[-1].gpus for tl in self.held.values() if tl)
        _hold(self.held_total, FleetPoint(self.env.now, n, gpus, n))
        super()._changed(dep)

    def close_tiers(self) -> None:
        for dep in self.deps.values():
            self._changed(dep)

    # --- the controller tick -------------------------------------------------------------------------------
    def controller(self) -> Generator[simpy.Event, Any, None]:
        while True:
            yield self.env.timeout(self.spec.scrape_interval_s)
            self._pooled_tick(self.env.now)

    def _pooled_tick(self, now: float) -> None:
        """As the live controller's tick: every member observed and decided first, then its pool's moves and
        each member's plan (sim.pool_glue), carried out member by member."""
        for p in self.pools:
            decisions: dict[str, Decision] = {}
            for m in p.members:
                dep = self.deps[m.name]
                self._sync(dep, now)
                dep.gateway.expire(now)
                self._put_away_drained(dep, now)
                dep.history.append((now, self._scrape(dep)))
                if dep.policy is None:
                    continue
                obs = self._observe(dep, now)
                self.observations.append((now, obs))
                decisions[m.name] = dep.policy.decide(obs, now)
            rows = [
                Row(r.name, m.name, r.phase, self._hashes[m.name][r.name], r.drain_then)
                for m in p.members
                for r in self.deps[m.name].replicas
            ]
            moves = pool_moves(p.name, p.members, rows, decisions)
            self.preemptions.extend((now, x) for x in moves.tick.step.preempts)
            self.refusals.extend(
                (now, r) for r in moves.tick.step.allocation.refusals if r.tenant in decisions
            )
            for m in p.members:
                d = decisions.get(m.name)
                if d is not None and d.changed:
                    self.decisions.append((now, d))
                if moves.actions[m.name]:
                    self._carry_out_pooled(self.deps[m.name], moves.actions[m.name], now)

    def _carry_out_pooled(self, dep: _Dep, actions: Sequence[Action], now: float) -> None:
        rest: list[Action] = []
        for a in actions:
            if isinstance(a, Wake | Start):
                self.scale_ups[dep.spec.name][
                    Tier.ASLEEP_IN_RAM if isinstance(a, Wake) else Tier.ON_DISK
                ] += 1
            if not isinstance(a, Stop):
                rest.append(a)
                continue
            # Preempted while it serves nothing (starting, waking or asleep): gone at once, GPUs free.
            self.actions.append((now, dep.spec.name, a))
            r = next((r for r in dep.replicas if r.name == a.replica), None)
            if r is not None:
                if r.phase in ("starting", "waking"):
                    self._cancelled.add(id(r))
                dep.replicas.remove(r)
        self._carry_out(dep, rest, now)

    def _become_ready(self, dep: _Dep, r: _Replica, delay: float) -> Generator[simpy.Event, Any, None]:
        yield self.env.timeout(delay)
        if id(r) in self._cancelled:
            self._cancelled.discard(id(r))
            return
        r.phase = "ready"
        r.model = self._model(dep.spec)
        self._changed(dep)
        dep.gateway.release(self.env.now, dep.ready, self.records)

    def open_by(self) -> dict[str, int]:
        return {
            n: len(d.gateway.held) + sum(r.model.in_flight for r in d.replicas if r.model)
            for n, d in self.deps.items()
        }


def _hold(timeline: list[FleetPoint], p: FleetPoint) -> None:
    if timeline and timeline[-1].gpus == p.gpus:
        return
    if timeline and timeline[-1].t_s == p.t_s:
        timeline[-1] = p
    else:
        timeline.append(p)


def simulate_pooled(
    spec: ClusterSpec,
    pools: Sequence[SimPool],
    arrivals: Sequence[Arrival],
    duration_s: float,
    progress: Callable[[float], None] | None = None,
) -> PooledResult:
    """sim.cluster.simulate with the tenants on `pools`: the workload ends at `duration_s`; the run goes on
    until every request has finished or `finish_within_s` more has passed."""
    end = duration_s
    env = simpy.Environment()
    c = _PooledCluster(spec, env, pools, end)
    env.process(c.arrivals(arrivals))
    env.process(c.controller())
    if spec.sample_interval_s:
        env.process(c.sampler(spec.sample_interval_s))
    steps = 20 if progress is not None else 1
    for i in range(1, steps + 1):
        env.run(until=end * i / steps)
        if progress is not None:
            progress(i / steps)
    c.close_tiers()
    result = finish(c, env, spec, end, len(arrivals))
    offered = Counter(a.deployment for a in arrivals)
    return PooledResult(
        result,
        tuple(pools),
        c.preemptions,
        c.refusals,
        c.tier_s,
        c.scale_ups,
        {n: offered.get(n, 0) for n in c.deps},
        c.open_by(),
        c.held,
        c.held_total,
        c.decisions,
    )


__all__ = ["PooledResult", "SimPool", "pool_groups", "pool_member", "simulate_pooled"]
