"""The shared pool step: grants land on the member slot over exactly the granted GPUs, holdings come from the
replicas alone (so a re-run after a crash, or the next tick, repeats nothing already done), and a preemption
plays out as drain -> wait -> grant on the freed GPUs. Hypothesis: for any replicas of uniform width, every
grant has its slot and no GPU is granted while held."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from llmctl.pool import PoolGpu, Reason, Tenant
from llmctl.pool.step import Member, Occupant, holdings_of, pool_step


def gpus(host: str, *idx: int) -> tuple[PoolGpu, ...]:
    return tuple(PoolGpu(host, i, "H100") for i in idx)


def member(name: str, priority: int = 0, lo: int = 1, hi: int = 2, width: int = 1, hosts: int = 1) -> Member:
    slots = {}
    for h in range(hosts):
        for k in range(4 // width):
            slots[f"{name}-{len(slots)}"] = gpus(f"h{h}", *range(k * width, (k + 1) * width))
    return Member(Tenant(name, priority, lo, hi, width, "H100"), slots)


A, B = member("a", priority=1, hi=3), member("b", priority=2)


def test_grants_go_to_the_slot_over_their_gpus_and_are_not_repeated_once_started() -> None:
    step = pool_step([A, B], [], {"a": 2, "b": 1})
    assert [(s.grant.tenant, s.slot, s.grant.reason) for s in step.starts] == [
        ("b", "b-0", Reason.MIN_REPLICAS),
        ("a", "a-1", Reason.MIN_REPLICAS),
        ("a", "a-2", Reason.TARGET),
    ]
    started = [Occupant(s.grant.tenant, s.slot, holds=True) for s in step.starts]
    assert pool_step([A, B], started, {"a": 2, "b": 1}).allocation.decisions == ()


def test_a_preemption_drains_then_the_freed_gpus_are_granted() -> None:
    full = [Occupant("b", "b-0", True), Occupant("a", "a-1", True), Occupant("a", "a-2", True),
            Occupant("a", "a-3", True)]  # fmt: skip
    first = pool_step([A, B], full, {"a": 3, "b": 2})
    assert [(p.replica, p.for_tenant, p.reason) for p in first.preempts] == [("a-3", "b", Reason.PRIORITY)]
    assert first.starts == ()
    draining = [*full[:3], Occupant("a", "a-3", True, draining=True)]
    second = pool_step([A, B], draining, {"a": 3, "b": 2})
    assert second.preempts == () and second.starts == ()
    assert [(w.tenant, w.reason) for w in second.allocation.waits] == [("b", Reason.DRAINING)]
    gone = full[:3]
    third = pool_step([A, B], gone, {"a": 3, "b": 2})
    assert [(s.slot, s.grant.gpus) for s in third.starts] == [("b-3", gpus("h0", 3))]


def test_a_stale_row_claiming_held_gpus_and_gpus_outside_the_pool_do_not_break_the_step() -> None:
    occupants = [
        Occupant("a", "a-0", True),
        Occupant("b", "b-0", True),  # the same GPU as a-0: a stale row
        Occupant("x", "x-0", True, gpus=gpus("elsewhere", 0)),
        Occupant("a", "a-1", False),  # stopped: holds nothing
    ]
    held = holdings_of([A, B], occupants)
    assert [(h.replica, h.gpus) for h in held] == [("a-0", gpus("h0", 0))]
    step = pool_step([A, B], occupants, {"a": 1, "b": 1})
    assert [(s.grant.tenant, s.slot) for s in step.starts] == [("b", "b-1")]


def test_a_grant_no_slot_matches_is_kept_visible_not_started() -> None:
    narrow = Member(A.tenant, {"a-0": gpus("h0", 0)})  # the pool has GPUs this member has no slot on
    other = Member(Tenant("b", 2, 0, 2, 1, "H100"), {"b-0": gpus("h0", 0), "b-1": gpus("h0", 1)})
    step = pool_step([narrow, other], [Occupant("a", "a-0", True)], {"a": 2, "b": 0})
    assert [(g.tenant, g.gpus) for g in step.unplaced] == [("a", gpus("h0", 1))]
    assert step.starts == ()


@given(
    width=st.sampled_from([1, 2, 4]),
    demand=st.tuples(st.integers(0, 6), st.integers(0, 6), st.integers(0, 6)),
    held=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 7), st.booleans()), max_size=12),
)
def test_every_grant_has_its_slot_and_no_held_gpu_is_granted(
    width: int, demand: tuple[int, int, int], held: list[tuple[int, int, bool]]
) -> None:
    members = [
        member(n, priority=p, lo=0, hi=8, width=width, hosts=2) for n, p in (("a", 0), ("b", 1), ("c", 1))
    ]
    occupants = [
        Occupant(members[m].tenant.name, f"{members[m].tenant.name}-{k % len(members[m].slots)}", True, d)
        for m, k, d in held
    ]
    step = pool_step(members, occupants, dict(zip("abc", demand, strict=True)))
    assert step.unplaced == ()
    taken = {g for h in holdings_of(members, occupants) for g in h.gpus}
    granted = [g for s in step.starts for g in s.grant.gpus]
    assert not taken & set(granted) and len(granted) == len(set(granted))
    for s in step.starts:
        assert {m.tenant.name: m for m in members}[s.grant.tenant].slots[s.slot] == s.grant.gpus
