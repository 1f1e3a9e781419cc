"""The GPU pools as the dashboard shows them (issue #18): each pool's GPUs and who holds each, its members
(priority, bounds, what they hold), its free GPUs, who sleeps where, and its latest decisions as events.

Derived, not recorded: pool membership comes from the desired deployments (`placement.pool`), holdings from
the replica rows, with the functions the controller's pool step and `llmctl status` derive them with
(llmctl.reconcile.pool, llmctl.pool.step), so the three never disagree about who holds a GPU. A pool's events
are those whose typed data names it (llmctl.control.pools.event_of); their words are never parsed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from llmctl.pool import Tenant
from llmctl.pool.step import holdings_of, pool_gpus
from llmctl.reconcile.phase import Phase
from llmctl.reconcile.pool import PoolReplica, member_of, occupants, pools_of
from llmctl.spec.deployment import DesiredDeployment
from llmctl.state.records import Event

EVENTS_PER_POOL = 20  # the latest decisions kept per pool (the events screen has them all)
POOL_EVENT_PREFIX = "pool-"  # pool-grant, pool-preempt, pool-wait, pool-refuse, pool-unplaced


@dataclass(frozen=True)
class PoolSeat:
    """One GPU of a pool and the replica holding it now (replica "" when it is free: the pool's spare).
    A sleeping replica still holds its GPU (its process keeps a CUDA context there)."""

    pool: str
    host: str
    index: int
    deployment: str = ""
    replica: str = ""
    phase: str = ""

    @property
    def key(self) -> str:
        return f"{self.host}:{self.index}"

    @property
    def asleep(self) -> bool:
        return self.phase == Phase.SLEEPING


@dataclass(frozen=True)
class PoolMemberView:
    """A deployment drawing from the pool, with its terms and what its replicas hold now."""

    name: str
    priority: int
    weight: float
    min_replicas: int
    max_replicas: int
    backfill: bool  # offline work: ranks below every serving member whatever its priority
    tenant: bool  # False once stopped or removed: its replicas keep their GPUs until gone, it gets no more
    replicas: tuple[str, ...]  # those holding pool GPUs, asleep ones included
    gpus: int  # pool GPUs they hold
    asleep: int  # of `replicas`, how many sleep


@dataclass(frozen=True)
class Sleeper:
    """A replica asleep on pool GPUs. The replica row has no sleep level, so none is claimed here."""

    replica: str
    deployment: str
    gpus: tuple[str, ...]  # host:index


@dataclass(frozen=True)
class PoolView:
    name: str
    seats: tuple[PoolSeat, ...]  # in host, index order
    members: tuple[PoolMemberView, ...]  # who wins first: serving before back-fill, higher priority first
    events: tuple[Event, ...] = ()  # the latest EVENTS_PER_POOL naming this pool, oldest first

    @property
    def held(self) -> int:
        return sum(1 for s in self.seats if s.replica)

    @property
    def free(self) -> tuple[str, ...]:
        return tuple(s.key for s in self.seats if not s.replica)

    @property
    def hosts(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.host for s in self.seats))

    @property
    def asleep(self) -> tuple[Sleeper, ...]:
        by_replica: dict[str, list[PoolSeat]] = {}
        for s in self.seats:
            if s.asleep:
                by_replica.setdefault(s.replica, []).append(s)
        return tuple(
            Sleeper(name, seats[0].deployment, tuple(s.key for s in seats))
            for name, seats in by_replica.items()
        )

    def seat(self, host: str, index: int) -> PoolSeat | None:
        return next((s for s in self.seats if s.host == host and s.index == index), None)


def is_pool_event(e: Event) -> bool:
    """A pool decision: its kind says so and its typed data names the pool."""
    return e.kind.startswith(POOL_EVENT_PREFIX) and isinstance(e.data.get("pool"), str)


def pool_views(
    desired: Iterable[DesiredDeployment],
    rows: Sequence[PoolReplica],
    events: Sequence[Event] = (),
    limit: int = EVENTS_PER_POOL,
) -> tuple[PoolView, ...]:
    """Every pool named by a desired deployment, in name order, with its latest `limit` decisions (`events`
    in id order, as the store gives them); () for a fleet without pools."""
    pools = pools_of(desired)
    if not pools:
        return ()
    decisions: dict[str, list[Event]] = {}
    for e in events:
        if is_pool_event(e):
            decisions.setdefault(str(e.data["pool"]), []).append(e)
    phases = {r.name: r.phase for r in rows}
    return tuple(
        _pool(name, pools[name], rows, phases, decisions.get(name, [])[-limit:] if limit > 0 else [])
        for name in sorted(pools)
    )


def _pool(
    name: str,
    deps: Sequence[DesiredDeployment],
    rows: Sequence[PoolReplica],
    phases: dict[str, str],
    events: list[Event],
) -> PoolView:
    # As llmctl.reconcile.pool.pool_holdings derives them (stopped members' replicas hold until gone), with
    # the members' terms kept rather than computed twice: a pool's candidate slots are many.
    members = [member_of(d) for d in deps]
    held = {g: h for h in holdings_of(members, occupants(deps, rows)) for g in h.gpus}
    seats = tuple(
        PoolSeat(name, g.host, g.index, h.tenant, h.replica, phases.get(h.replica, ""))
        if (h := held.get(g))
        else PoolSeat(name, g.host, g.index)
        for g in pool_gpus(members)
    )
    views = sorted(
        (_member(d, m.tenant, seats) for d, m in zip(deps, members, strict=True)),
        key=lambda m: (m.backfill, -m.priority, m.name),
    )
    return PoolView(name, seats, tuple(views), tuple(events))


def _member(dep: DesiredDeployment, tenant: Tenant, seats: Sequence[PoolSeat]) -> PoolMemberView:
    held = [s for s in seats if s.deployment == dep.name]
    return PoolMemberView(
        name=dep.name,
        priority=tenant.priority,
        weight=tenant.weight,
        min_replicas=tenant.min_replicas,
        max_replicas=tenant.max_replicas,
        backfill=tenant.backfill,
        tenant=not dep.stopped and not dep.removed,
        replicas=tuple(dict.fromkeys(s.replica for s in held)),
        gpus=len(held),
        asleep=len({s.replica for s in held if s.asleep}),
    )
