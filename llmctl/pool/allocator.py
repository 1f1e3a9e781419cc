"""The pool allocator: several deployments (tenants) draw replicas from one pool of GPUs. Each tenant's
autoscaler says how many replicas it wants (`Demand`); `allocate` says, as data with reasons, which GPUs each
one gets now (Grant), which replicas must make room (Preempt: drain, then stop), which replicas wait for such
a drain (Wait) and who gets less than it asked for (Refuse). Pure and stateless: the same pool, tenants,
holdings and demand give the same decisions, so every tick can simply call it again.

Rules, in the order they are applied:
1. Rank. A serving tenant outranks every back-fill (offline) tenant; then the higher priority wins; ties are
   broken by name so that the answer never depends on input order.
2. Minimums first: serving tenants in rank order each get replicas up to `min_replicas`. Then the rest, one
   replica at a time, toward each tenant's target (its demand clamped to [min, max]; no demand: its
   minimum): the highest priority first, among equals the largest shortfall relative to target (times
   `weight`), then name. Minimums come first so that a high-priority burst can never starve a lower tenant
   below its floor, which the planner promised fits. Back-fill tenants follow, the same way, with what is
   left: even a back-fill minimum comes after every serving tenant's target.
3. Placement. A replica's GPUs are all on one host and of the tenant's `gpu_type`. GPUs free now come first,
   on the host with the fewest free GPUs that still fits (best fit keeps large holes for wide replicas),
   lowest indices first. Otherwise the replica may be placed on GPUs that are still draining (Wait): a
   draining holding's GPUs are never free, and counting them as promised stops a slow drain from causing a
   fresh preemption every tick.
4. Preemption, only when nothing free or draining fits. On the host that needs the mildest victims (then
   the fewest, then the fewest GPUs freed, then host name), victims are taken in this order:
   a. back-fill replicas, whenever a serving tenant needs GPUs (back-fill always gives way first);
   b. replicas of a tenant above its own target (nobody loses what it asked for);
   c. replicas of a lower-ranked tenant, while it stays at or above its minimum;
   c'. only for a tenant below its own minimum: any tenant's replicas above that tenant's minimum, even a
       higher-ranked one's (minimums come before anyone's extras, as in rule 2: extras granted while
       the short tenant was down must not keep it below its floor for good);
   d. only for a tenant below its own minimum: a lower-ranked tenant's minimum replicas.
   Within a kind the lowest rank goes first. Nothing else is ever taken: beyond c', no replica of an equal
   or higher-ranked tenant within its target, and never a serving tenant's replica for back-fill work. A
   preempted replica is drained and then stopped; its GPUs are granted in a later call, once it is gone.
5. Whatever still does not fit is refused: NO_FIT when no host of the pool could ever hold one replica of
   that shape, POOL_FULL otherwise.

Why rule 4d keeps minimums safe: a tenant's minimum is only taken for a higher-ranked tenant that is below
its own, and only after every above-minimum replica on that host. So once the allocator has
settled, no tenant is below its minimum while a lower-ranked tenant is above its own, unless no host could
fit the short tenant's replica even after removing every lower-ranked replica there (a higher-ranked
replica is in the way; the allocator never moves a replica to defragment).

Over-target replicas nobody needs are left alone: scaling a deployment down is its own autoscaler's and
reconcile core's job (llmctl.reconcile.actions). Holdings of a deployment the allocator does not know keep
their GPUs and are never preempted (it is being removed; its own stop frees them).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

from llmctl.pool.types import (
    Allocation,
    Demand,
    Grant,
    Holding,
    PoolDecision,
    PoolGpu,
    Preempt,
    Reason,
    Refuse,
    Tenant,
    Wait,
)

__all__ = ["allocate"]


class _Gpu(Enum):
    FREE = "free"
    PENDING = "pending"  # draining (or preempted in this call): free once the drain is done
    HELD = "held"
    CLAIMED = "claimed"  # placed in this call (granted, or waiting for a drain)


class _Book:
    """The pool as one call sees it, updated as decisions are made (local to `allocate`)."""

    def __init__(
        self, pool: Sequence[PoolGpu], tenants: Sequence[Tenant], holdings: Sequence[Holding], demand: Demand
    ) -> None:
        self.tenants = {t.name: t for t in tenants}
        if len(self.tenants) != len(tenants):
            raise ValueError("tenant names must be unique")
        self.by_host: dict[str, list[PoolGpu]] = {}
        for g in sorted(pool):
            self.by_host.setdefault(g.host, []).append(g)
        self.state = {g.key: _Gpu.FREE for g in pool}
        if len(self.state) != len(pool):
            raise ValueError("a pool GPU is listed twice")
        known = {g.key: g for g in pool}
        self.live: list[Holding] = []
        self.count = {t.name: 0 for t in tenants}
        for h in holdings:
            if len({g.host for g in h.gpus}) > 1:
                raise ValueError(f"{h.replica}: a replica's GPUs must be on one host")
            for g in h.gpus:
                if known.get(g.key) != g:
                    raise ValueError(f"{h.replica}: {g} is not a GPU of the pool")
                if self.state[g.key] != _Gpu.FREE:
                    raise ValueError(f"{h.replica}: {g} is held twice")
                self.state[g.key] = _Gpu.PENDING if h.draining else _Gpu.HELD
            if not h.draining:
                self.live.append(h)
                if h.tenant in self.count:
                    self.count[h.tenant] += 1
        self.target = {t.name: t.target(demand) for t in tenants}

    def gpus(self, t: Tenant, host: str, *states: _Gpu) -> list[PoolGpu]:
        return [g for g in self.by_host[host] if t.fits(g) and self.state[g.key] in states]

    def claim(self, gpus: Sequence[PoolGpu], tenant: str) -> None:
        for g in gpus:
            self.state[g.key] = _Gpu.CLAIMED
        self.count[tenant] += 1

    def shortfall(self, t: Tenant) -> float:
        target = self.target[t.name]
        return (target - self.count[t.name]) / target * t.weight if target else 0.0


def allocate(
    pool: Sequence[PoolGpu], tenants: Sequence[Tenant], holdings: Sequence[Holding], demand: Demand
) -> Allocation:
    """Decide who gets the pool's GPUs now (the rules are in the module docstring)."""
    book = _Book(pool, tenants, holdings, demand)
    out: list[PoolDecision] = []
    blocked: dict[str, Reason] = {}
    ranked = sorted(tenants, key=lambda t: (-t.rank[0], -t.rank[1], t.name))
    # Serving tenants reach their targets before back-fill gets even its minimum: were it the other way,
    # back-fill would take the GPUs a serving tenant just freed by preempting back-fill, round after round.
    for tier in ([t for t in ranked if not t.backfill], [t for t in ranked if t.backfill]):
        for t in tier:
            while t.name not in blocked and book.count[t.name] < t.min_replicas:
                _place_one(book, t, Reason.MIN_REPLICAS, out, blocked)
        while True:
            wanting = [t for t in tier if t.name not in blocked and book.count[t.name] < book.target[t.name]]
            if not wanting:
                break
            # `tier` is in rank-then-name order and min() keeps the first of equals.
            t = min(wanting, key=lambda t: (-t.rank[1], -book.shortfall(t)))
            _place_one(book, t, Reason.TARGET, out, blocked)
    for t in ranked:
        if t.name in blocked:
            out.append(_refusal(book, t, blocked[t.name]))
    return Allocation(tuple(out))


def _place_one(
    book: _Book, t: Tenant, phase: Reason, out: list[PoolDecision], blocked: dict[str, Reason]
) -> None:
    """Place one more replica of `t` (rule 3, else 4), or mark it blocked (rule 5)."""
    need = t.gpus_per_replica
    usable = [h for h, gs in book.by_host.items() if sum(1 for g in gs if t.fits(g)) >= need]
    if not usable:
        blocked[t.name] = Reason.NO_FIT
        return
    free = {h: book.gpus(t, h, _Gpu.FREE) for h in usable}
    fits_now = [h for h in usable if len(free[h]) >= need]
    if fits_now:
        host = min(fits_now, key=lambda h: (len(free[h]), h))
        gpus = tuple(free[host][:need])
        book.claim(gpus, t.name)
        out.append(Grant(t.name, gpus, phase, _grant_words(book, t, phase)))
        return
    soon = {h: book.gpus(t, h, _Gpu.FREE, _Gpu.PENDING) for h in usable}
    fits_soon = [h for h in usable if len(soon[h]) >= need]
    if not fits_soon:
        plans = [(p[0], h, p[1]) for h in usable if (p := _victims(book, t, h, phase, len(soon[h])))]
        if not plans:
            blocked[t.name] = Reason.POOL_FULL
            return
        _, host, victims = min(plans, key=lambda p: (p[0], p[1]))
        for v, why in victims:
            book.live.remove(v)
            book.count[v.tenant] -= 1
            for g in v.gpus:
                book.state[g.key] = _Gpu.PENDING
            out.append(Preempt(v.tenant, v.replica, t.name, why, _preempt_words(book, t, v.tenant, why)))
        fits_soon = [host]
    host = min(fits_soon, key=lambda h: (len(book.gpus(t, h, _Gpu.FREE, _Gpu.PENDING)), h))
    # Draining GPUs first: free ones left out stay free for whoever fits on them now.
    gpus = tuple(sorted((book.gpus(t, host, _Gpu.PENDING) + book.gpus(t, host, _Gpu.FREE))[:need]))
    draining = sum(1 for g in gpus if book.state[g.key] == _Gpu.PENDING)
    book.claim(gpus, t.name)
    words = f"{t.name} waits for {draining} GPU(s) on {host} to finish draining"
    out.append(Wait(t.name, gpus, Reason.DRAINING, words))


def _victims(
    book: _Book, t: Tenant, host: str, phase: Reason, have: int
) -> tuple[tuple[int, int, int], list[tuple[Holding, Reason]]] | None:
    """The replicas on `host` to preempt so that one replica of `t` fits there (rule 4), and what that
    costs (the worst kind taken, how many, GPUs freed); None if the allowed victims are not enough."""
    missing = t.gpus_per_replica - have
    counts = dict(book.count)
    # Highest replica name first among equals, as the reconcile core scales down its highest slots.
    cands = sorted(
        (h for h in book.live if h.host == host and h.tenant in book.tenants and h.tenant != t.name),
        key=lambda h: (h.replica, h.tenant),
        reverse=True,
    )
    chosen: list[tuple[Holding, Reason]] = []
    freed = worst = 0
    while freed < missing:
        best: tuple[tuple[int, tuple[int, int], int], Holding, Reason] | None = None
        for h in cands:
            useful = sum(1 for g in h.gpus if t.fits(g))
            kind = _why(book, t, book.tenants[h.tenant], counts, phase) if useful else None
            if kind is None:
                continue
            key = (kind[0], book.tenants[h.tenant].rank, -useful)
            if best is None or key < best[0]:
                best = (key, h, kind[1])
        if best is None:
            return None
        (worst_here, _, _), h, why = best
        cands.remove(h)
        chosen.append((h, why))
        counts[h.tenant] -= 1
        freed += sum(1 for g in h.gpus if t.fits(g))
        worst = max(worst, worst_here)
    return (worst, len(chosen), freed), chosen


def _why(
    book: _Book, needer: Tenant, victim: Tenant, counts: dict[str, int], phase: Reason
) -> tuple[int, Reason] | None:
    """May `needer` take one replica of `victim` now (rule 4), as which kind (lower is taken first) and why;
    `counts` are as if the victims chosen so far were gone."""
    if victim.backfill and not needer.backfill:
        return (1, Reason.BACKFILL_YIELDS)
    if needer.backfill and not victim.backfill:
        return None
    if counts[victim.name] > book.target[victim.name]:
        return (2, Reason.OVER_TARGET)
    short = phase == Reason.MIN_REPLICAS
    if counts[victim.name] > victim.min_replicas:
        if victim.rank < needer.rank:
            return (3, Reason.PRIORITY)
        if short:
            return (4, Reason.MIN_REPLICAS)
    if short and victim.rank < needer.rank:
        return (5, Reason.MIN_REPLICAS)
    return None


def _grant_words(book: _Book, t: Tenant, phase: Reason) -> str:
    n = book.count[t.name]
    if phase == Reason.MIN_REPLICAS:
        return f"{t.name} replica {n} of its minimum {t.min_replicas}"
    return f"{t.name} replica {n} toward its target {book.target[t.name]}"


def _preempt_words(book: _Book, needer: Tenant, victim: str, why: Reason) -> str:
    v = book.tenants[victim]
    if why == Reason.BACKFILL_YIELDS:
        return f"back-fill {victim} gives way to {needer.name}"
    if why == Reason.OVER_TARGET:
        return f"{victim} is above its target {book.target[victim]}; {needer.name} needs the GPUs"
    if why == Reason.PRIORITY:
        return (
            f"{needer.name} (priority {needer.priority}) outranks {victim} (priority {v.priority}), "
            f"which keeps its minimum {v.min_replicas}"
        )
    if v.rank >= needer.rank:
        return f"{needer.name} is below its minimum {needer.min_replicas}; {victim} is above its own"
    return f"{needer.name} is below its minimum {needer.min_replicas}; {victim} ranks lower"


def _refusal(book: _Book, t: Tenant, why: Reason) -> Refuse:
    n, target = book.count[t.name], book.target[t.name]
    shape = f"{t.gpus_per_replica} GPU(s)" + (f" of type {t.gpu_type}" if t.gpu_type else "")
    short = f"; below its minimum ({n} of {t.min_replicas})" if n < t.min_replicas else ""
    if why == Reason.NO_FIT:
        words = f"no host of the pool has {shape} for one replica"
    else:
        words = f"no {shape} free on one host, and nothing may be preempted for it{short}"
    return Refuse(t.name, target - n, why, f"{t.name} gets {n} of {target} replica(s): {words}")
