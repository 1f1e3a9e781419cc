"""The pool allocator (issue #18): property tests over random pools, tenants, holdings and demand, plus
readable scenarios. The simulation below is the model of a driver: grants start at once, a preempted replica
drains for one round and is gone in the next, and the allocator is simply called again."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmctl.pool import Allocation, Holding, PoolGpu, Reason, Refuse, Tenant, allocate

EXAMPLES = 300  # per property; a 4000-example run passed as well
TYPES = ("h100", "a100")


@dataclass(frozen=True)
class Case:
    pool: tuple[PoolGpu, ...]
    tenants: tuple[Tenant, ...]
    holdings: tuple[Holding, ...]
    demand: Mapping[str, int]


def gpus(host: str, n: int, gpu_type: str = "h100") -> list[PoolGpu]:
    return [PoolGpu(host, i, gpu_type) for i in range(n)]


@st.composite
def cases(draw: st.DrawFn, uniform: bool = False) -> Case:
    """Random but consistent input. `uniform`: one GPU type, one replica width that divides every host, so
    that packing can never be the reason a replica does not fit."""
    width = draw(st.sampled_from([1, 2, 4])) if uniform else 0
    pool: list[PoolGpu] = []
    for h in range(draw(st.integers(1, 4))):
        size = draw(st.integers(1, 8 // width)) * width if uniform else draw(st.integers(1, 8))
        pool += gpus(f"host{h}", size, "h100" if uniform else draw(st.sampled_from(TYPES)))
    tenants: list[Tenant] = []
    for i in range(draw(st.integers(1, 5))):
        lo = draw(st.integers(0, 3))
        tenants.append(
            Tenant(
                name=f"t{i}",
                priority=draw(st.integers(0, 3)),
                min_replicas=lo,
                max_replicas=lo + draw(st.integers(0, 4)),
                gpus_per_replica=width or draw(st.sampled_from([1, 1, 2, 4, 8])),
                gpu_type=None if uniform else draw(st.sampled_from([None, None, *TYPES])),
                backfill=draw(st.booleans()) and draw(st.booleans()),
                weight=draw(st.sampled_from([1.0, 2.0])),
            )
        )
    # Holdings: replicas placed where they fit, some already draining.
    taken: set[tuple[str, int]] = set()
    holdings: list[Holding] = []
    hosts = sorted({g.host for g in pool})
    for n in range(draw(st.integers(0, 10))):
        t = draw(st.sampled_from(tenants))
        host = draw(st.sampled_from(hosts))
        free = [g for g in pool if g.host == host and g.key not in taken and t.fits(g)]
        if len(free) >= t.gpus_per_replica:
            mine = tuple(draw(st.permutations(free))[: t.gpus_per_replica])
            taken |= {g.key for g in mine}
            holdings.append(Holding(t.name, f"{t.name}-h{n}", mine, draining=draw(st.integers(0, 4)) == 0))
    demand = {t.name: draw(st.integers(0, t.max_replicas + 2)) for t in tenants if draw(st.integers(0, 5))}
    return Case(tuple(pool), tuple(tenants), tuple(holdings), demand)


def step(case: Case, holdings: Sequence[Holding], serial: int) -> tuple[list[Holding], Allocation]:
    """One round: drains started last round are done, the preempted start draining, the granted start."""
    out = allocate(case.pool, case.tenants, holdings, case.demand)
    preempted = {(p.tenant, p.replica) for p in out.preemptions}
    nxt = [replace(h, draining=(h.tenant, h.replica) in preempted) for h in holdings if not h.draining]
    nxt += [Holding(g.tenant, f"{g.tenant}-g{serial}-{i}", g.gpus) for i, g in enumerate(out.grants)]
    return nxt, out


def rounds_bound(case: Case) -> int:
    return 3 * len(case.pool) + 10


def converge(case: Case) -> tuple[list[Holding], list[Allocation]]:
    """Run rounds until a call on a state with no drain under way changes nothing; fails the test if that
    takes more than `rounds_bound`. The last allocation in the trail is the one on the final state."""
    holdings, trail = list(case.holdings), []
    for r in range(rounds_bound(case)):
        nxt, out = step(case, holdings, r)
        trail.append(out)
        if not out.grants and not out.preemptions and not any(h.draining for h in holdings):
            return holdings, trail
        holdings = nxt
    raise AssertionError(f"no fixed point within {rounds_bound(case)} rounds")


def count(holdings: Sequence[Holding], tenant: str) -> int:
    return sum(1 for h in holdings if h.tenant == tenant and not h.draining)


def check_one_call(holdings: Sequence[Holding], out: Allocation) -> None:
    """Properties (1) and (4) for one call."""
    held = {g.key for h in holdings for g in h.gpus}
    placed = [g.key for d in out.grants for g in d.gpus] + [g.key for d in out.waits for g in d.gpus]
    assert len(placed) == len(set(placed)), "a GPU placed twice"
    granted = {g.key for d in out.grants for g in d.gpus}
    assert not granted & held, "a held (or draining) GPU granted"
    live = {(h.tenant, h.replica): h for h in holdings if not h.draining}
    victims = [(p.tenant, p.replica) for p in out.preemptions]
    assert len(victims) == len(set(victims))
    for v in victims:
        assert v in live, "preempted a draining or unknown replica"
        assert not {g.key for g in live[v].gpus} & granted, "a preempted replica's GPUs granted at once"
    for g in out.grants:
        assert len({x.host for x in g.gpus}) == 1


@settings(max_examples=EXAMPLES, deadline=None)
@given(cases())
def test_every_round_grants_each_gpu_once_and_preempts_only_live_replicas(case: Case) -> None:
    holdings = list(case.holdings)
    tenants = {t.name: t for t in case.tenants}
    for r in range(rounds_bound(case)):
        out = allocate(case.pool, case.tenants, holdings, case.demand)
        check_one_call(holdings, out)
        for g in out.grants:
            t = tenants[g.tenant]
            assert len(g.gpus) == t.gpus_per_replica and all(t.fits(x) for x in g.gpus)
        holdings, _ = step(case, holdings, r)


@settings(max_examples=EXAMPLES, deadline=None)
@given(cases(), st.randoms(use_true_random=False))
def test_same_input_same_output_whatever_the_order(case: Case, rnd: random.Random) -> None:
    out = allocate(case.pool, case.tenants, case.holdings, case.demand)
    assert allocate(case.pool, case.tenants, case.holdings, case.demand) == out
    pool, tenants, holdings = list(case.pool), list(case.tenants), list(case.holdings)
    rnd.shuffle(pool)
    rnd.shuffle(tenants)
    rnd.shuffle(holdings)
    assert allocate(pool, tenants, holdings, dict(case.demand)) == out


@settings(max_examples=EXAMPLES, deadline=None)
@given(cases())
def test_converges_within_a_bound_and_never_overshoots_a_target(case: Case) -> None:
    final, trail = converge(case)
    for t in case.tenants:
        before = count(case.holdings, t.name)
        assert count(final, t.name) <= max(t.target(case.demand), before)
        if count(final, t.name) < t.target(case.demand):
            last = [d for d in trail[-1].refusals if d.tenant == t.name]
            assert last and last[0].wanted == t.target(case.demand) - count(final, t.name)


def short_of_minimum_beside_a_richer_lower_rank(
    case: Case, final: Sequence[Holding]
) -> list[tuple[Tenant, Tenant]]:
    """Pairs (a, b): a below its minimum while b, ranked lower, is above its own."""
    return [
        (a, b)
        for a in case.tenants
        for b in case.tenants
        if count(final, a.name) < a.min_replicas and b.rank < a.rank and count(final, b.name) > b.min_replicas
    ]


@settings(max_examples=EXAMPLES, deadline=None)
@given(cases(uniform=True))
def test_no_minimum_broken_while_a_lower_priority_is_above_its_own(case: Case) -> None:
    final, _ = converge(case)
    assert not short_of_minimum_beside_a_richer_lower_rank(case, final)
    # And when the serving minimums fit at once (what the planner checks), every one of them is met. A
    # back-fill minimum is best effort: it comes after every serving tenant's target.
    serving = [t for t in case.tenants if not t.backfill]
    if sum(t.min_replicas for t in serving) * case.tenants[0].gpus_per_replica <= len(case.pool):
        assert all(count(final, t.name) >= t.min_replicas for t in serving)


@settings(max_examples=EXAMPLES, deadline=None)
@given(cases())
def test_a_minimum_is_broken_beside_a_richer_lower_rank_only_when_packing_leaves_no_room(case: Case) -> None:
    """Mixed shapes: the allocator never moves a replica, so a higher-ranked one may be in the way. Then no
    host may fit the short tenant's replica even with every lower-ranked replica there gone."""
    final, _ = converge(case)
    held = {g.key: h for h in final for g in h.gpus}
    rank = {t.name: t.rank for t in case.tenants}
    for a, _b in short_of_minimum_beside_a_richer_lower_rank(case, final):
        for host in {g.host for g in case.pool}:
            room = [
                g
                for g in case.pool
                if g.host == host and a.fits(g) and (g.key not in held or rank[held[g.key].tenant] < a.rank)
            ]
            assert len(room) < a.gpus_per_replica, f"{a.name} could have preempted on {host}"


@settings(max_examples=EXAMPLES, deadline=None)
@given(cases(uniform=True), st.data())
def test_raising_a_priority_never_lowers_what_a_tenant_ends_with(case: Case, data: st.DataObject) -> None:
    """With one replica width. With mixed widths the allocator, which never moves a replica, can lose to
    fragmentation: hypothesis found 11 GPUs on hosts of 6, 4 and 1, where a tenant of 2-GPU replicas raised
    to the top ended with 3 replicas instead of 4, because the 1-GPU replicas it now preceded were placed
    into the gaps it would have used. Repacking (moving replicas to defragment) is left for the pool's
    controller wiring."""
    i = data.draw(st.integers(0, len(case.tenants) - 1))
    up = data.draw(st.integers(1, 4))
    tenants = list(case.tenants)
    raised = replace(
        case,
        tenants=(*tenants[:i], replace(tenants[i], priority=tenants[i].priority + up), *tenants[i + 1 :]),
    )
    name = tenants[i].name
    assert count(converge(raised)[0], name) >= count(converge(case)[0], name)


# --- scenarios ---------------------------------------------------------------------------------------------


def run(case: Case, holdings: Sequence[Holding], serial: int = 0) -> tuple[list[Holding], Allocation]:
    nxt, out = step(case, holdings, serial)
    check_one_call(holdings, out)
    return nxt, out


def test_a_higher_priority_burst_preempts_the_others_extra_replicas_drained_first_and_gives_them_back() -> (
    None
):
    # One host of 8 GPUs: room for one tenant's peak (6) next to the other's minimum (1).
    pool = tuple(gpus("h0", 8))
    chat = Tenant("chat", priority=2, min_replicas=1, max_replicas=6)
    docs = Tenant("docs", priority=1, min_replicas=1, max_replicas=6)
    case = Case(pool, (chat, docs), (), {"chat": 1, "docs": 6})
    holdings, out = run(case, [])
    assert [g.tenant for g in out.grants] == ["chat", "docs", *["docs"] * 5]
    assert (count(holdings, "chat"), count(holdings, "docs")) == (1, 6)

    # chat bursts to 6: one GPU is free, four more come from docs' replicas above its minimum.
    case = replace(case, demand={"chat": 6, "docs": 6})
    holdings, out = run(case, holdings, 1)
    assert [g.tenant for g in out.grants] == ["chat"]
    assert len(out.preemptions) == 4
    assert {(p.tenant, p.for_tenant, p.reason) for p in out.preemptions} == {
        ("docs", "chat", Reason.PRIORITY)
    }
    assert len(out.waits) == 4  # the GPUs come after the drains, never at once
    assert [(r.tenant, r.wanted, r.reason) for r in out.refusals] == [("docs", 4, Reason.POOL_FULL)]
    # While docs drains, its GPUs are not free and nothing more is preempted.
    holdings, out = run(case, holdings, 2)
    assert not out.grants and not out.preemptions and len(out.waits) == 4
    # Once the drains are done, chat gets them; docs keeps its minimum.
    holdings, out = run(case, holdings, 3)
    assert [g.tenant for g in out.grants] == ["chat"] * 4
    assert (count(holdings, "chat"), count(holdings, "docs")) == (6, 2)

    # chat's burst is over: docs takes back chat's replicas above chat's target, drained first.
    case = replace(case, demand={"chat": 1, "docs": 6})
    holdings, out = run(case, holdings, 4)
    assert {(p.tenant, p.for_tenant, p.reason) for p in out.preemptions} == {
        ("chat", "docs", Reason.OVER_TARGET)
    }
    assert len(out.preemptions) == 4 and not out.grants
    holdings, out = run(case, holdings, 5)
    assert not out.grants and len(out.waits) == 4
    holdings, out = run(case, holdings, 6)
    assert [g.tenant for g in out.grants] == ["docs"] * 4
    assert (count(holdings, "chat"), count(holdings, "docs")) == (2, 6)
    _, out = run(case, holdings, 7)
    assert not out.decisions  # settled: chat's second replica is its own autoscaler's to scale down


def test_backfill_gives_way_first_whatever_its_priority() -> None:
    pool = tuple(gpus("h0", 4))
    batch = Tenant("batch", priority=9, max_replicas=4, backfill=True)
    low = Tenant("low", priority=0, min_replicas=1, max_replicas=2)
    high = Tenant("high", priority=5, max_replicas=2)
    holdings = [
        Holding("batch", "batch-0", pool[0:1]),
        Holding("batch", "batch-1", pool[1:2]),
        Holding("low", "low-0", pool[2:3]),
        Holding("low", "low-1", pool[3:4]),
    ]
    case = Case(pool, (batch, low, high), tuple(holdings), {"batch": 4, "low": 2, "high": 2})
    _, out = run(case, holdings)
    assert [(p.replica, p.reason) for p in out.preemptions] == [
        ("batch-1", Reason.BACKFILL_YIELDS),
        ("batch-0", Reason.BACKFILL_YIELDS),
    ]
    assert "gives way to high" in out.preemptions[0].detail


def test_backfill_never_preempts_a_serving_tenant() -> None:
    pool = tuple(gpus("h0", 2))
    batch = Tenant("batch", priority=9, max_replicas=2, backfill=True)
    idle = Tenant("idle", priority=0, max_replicas=2)
    holdings = [Holding("idle", "idle-0", pool[0:1]), Holding("idle", "idle-1", pool[1:2])]
    out = allocate(pool, [batch, idle], holdings, {"batch": 2, "idle": 0})
    assert not out.preemptions
    assert [(r.tenant, r.reason) for r in out.refusals] == [("batch", Reason.POOL_FULL)]


def test_a_replica_shape_no_host_can_hold_is_refused_no_fit() -> None:
    pool = (*gpus("h0", 4), *gpus("h1", 4), *gpus("h2", 8, "a100"))
    wide = Tenant("wide", min_replicas=1, max_replicas=1, gpus_per_replica=8, gpu_type="h100")
    out = allocate(pool, [wide], [], {})
    assert out.decisions == (
        Refuse(
            "wide",
            1,
            Reason.NO_FIT,
            "wide gets 0 of 1 replica(s): no host of the pool has 8 GPU(s) of type h100 for one replica",
        ),
    )


def test_a_replica_goes_on_one_host_best_fit_lowest_indices() -> None:
    pool = (*gpus("h0", 8), *gpus("h1", 4))
    holdings = [Holding("a", "a-0", (pool[8],))]  # h1 has 3 free: the best fit for a 2-GPU replica
    out = allocate(
        pool, [Tenant("a", max_replicas=3), Tenant("b", min_replicas=1, gpus_per_replica=2)], holdings, {}
    )
    assert [(g.tenant, [x.key for x in g.gpus]) for g in out.grants] == [("b", [("h1", 1), ("h1", 2)])]


def test_a_minimum_is_taken_only_for_a_higher_tenant_below_its_own() -> None:
    pool = tuple(gpus("h0", 2))
    high = Tenant("high", priority=2, min_replicas=2, max_replicas=2)
    low = Tenant("low", priority=1, min_replicas=2, max_replicas=2)
    holdings = [Holding("low", "low-0", pool[0:1]), Holding("low", "low-1", pool[1:2])]
    out = allocate(pool, [high, low], holdings, {})
    assert [(p.replica, p.reason) for p in out.preemptions] == [
        ("low-1", Reason.MIN_REPLICAS),
        ("low-0", Reason.MIN_REPLICAS),
    ]
    # An equal priority takes nothing that is within its peer's target.
    out = allocate(pool, [replace(high, priority=1), low], holdings, {})
    assert not out.preemptions and out.refusals[0].reason == Reason.POOL_FULL


def test_equal_priorities_share_by_shortfall_and_weight() -> None:
    pool = tuple(gpus("h0", 6))
    a, b = Tenant("a", max_replicas=6), Tenant("b", max_replicas=6, weight=2.0)
    out = allocate(pool, [a, b], [], {"a": 6, "b": 6})
    grants = [g.tenant for g in out.grants]
    assert grants.count("b") == 4 and grants.count("a") == 2  # b's shortfall counts double


@pytest.mark.parametrize(
    "holding",
    [
        Holding("a", "x", (PoolGpu("h0", 0, "h100"), PoolGpu("h1", 0, "h100"))),
        Holding("a", "x", (PoolGpu("h9", 0, "h100"),)),
        Holding("a", "x", (PoolGpu("h0", 0, "a100"),)),
    ],
)
def test_inconsistent_holdings_are_a_caller_bug(holding: Holding) -> None:
    with pytest.raises(ValueError):
        allocate([*gpus("h0", 2), *gpus("h1", 2)], [Tenant("a")], [holding], {})


def test_a_gpu_held_twice_is_a_caller_bug() -> None:
    pool = gpus("h0", 1)
    with pytest.raises(ValueError, match="held twice"):
        allocate(pool, [Tenant("a")], [Holding("a", "x", (pool[0],)), Holding("a", "y", (pool[0],))], {})
