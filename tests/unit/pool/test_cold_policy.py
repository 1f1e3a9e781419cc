"""The cold-start tier policy (issue #18): the cheapest rung that meets the TTFT target, warm pools per tier
when they cost less than the misses they avoid, within the hosts' bounds; decisions as data with reasons."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmctl.autoscale.types import Decision
from llmctl.catalog.gpu_table import GiB
from llmctl.config.playbook import Percentiles, Targets
from llmctl.perf.cold_start import TierHoldings, tier_holdings
from llmctl.perf.profile import Profile, make_profile
from llmctl.pool.cold_policy import (
    ColdTarget,
    Rung,
    ScaleUps,
    TierPool,
    decide,
    rungs_for,
    scale_ups_from,
    ttft_target_s,
)
from llmctl.pool.residency import HostRoom, Resident, check
from llmctl.pool.tiers import SlotTier, Tier

EXAMPLES = 300
LLAMA_8B = "meta-llama/Llama-3.1-8B-Instruct"
ROOMY = (HostRoom("big", 1e18, tuple(range(64)), 1e18),)  # bounds that never bind


@pytest.fixture
def llama8b() -> Profile:
    return make_profile("vllm", LLAMA_8B, "H100-SXM", "bf16", 1)


def hosts(*ram_gib: float, gpus: int = 4) -> tuple[HostRoom, ...]:
    return tuple(HostRoom(f"h{i}", r * GiB, tuple(range(gpus)), 80 * GiB) for i, r in enumerate(ram_gib, 1))


# --- readable scenarios ---------------------------------------------------------------------------------


def test_keeps_one_slot_asleep_in_ram_when_that_meets_the_target(llama8b: Profile) -> None:
    d = decide("chat", LLAMA_8B, rungs_for(llama8b), ColdTarget(2.0), ScaleUps(6, 1, 2.0), hosts(256))
    assert [(p.tier, p.count) for p in d.pools] == [(Tier.ASLEEP_IN_RAM, 1)]
    assert d.meets_target and d.slots == (SlotTier("h1", (0,), LLAMA_8B, Tier.ASLEEP_IN_RAM, "chat"),)
    # 2.5 GiB of residue on an 80 GiB, $2.50/h H100; 6 events/h x 2 req/s x (50.2 s - 2 s) misses avoided.
    assert d.cost_per_hour == pytest.approx(2.5 * 2.49 / 80, rel=0.02)
    assert d.reason.startswith(
        "keep 1 slot asleep in RAM (level 1): wake 0.8 s <= TTFT budget 2.0 s, costs $0.08/h"
    )
    assert "vs expected SLO misses 578/h avoided" in d.reason


def test_a_looser_target_takes_the_cheaper_level_2_and_no_pool_when_a_start_will_do(llama8b: Profile) -> None:
    rungs = rungs_for(llama8b)
    tight = decide("chat", LLAMA_8B, rungs, ColdTarget(5.0), ScaleUps(6, 2), hosts(256))
    # Level 1 and level 2 keep the same GPU residue, so they cost the same: the lower tier wins the tie
    # (it holds 15 GiB less host RAM).
    assert [(p.tier, p.count) for p in tight.pools] == [(Tier.ASLEEP_DISCARDED, 2)]
    loose = decide("chat", LLAMA_8B, rungs, ColdTarget(60.0), ScaleUps(6, 2), hosts(256))
    assert [(p.tier, p.count) for p in loose.pools] == [(Tier.ON_DISK, 2)] and loose.slots == ()
    assert loose.cost_per_hour == 0 and loose.reason.startswith(
        "2 spares from weights on local disk: start 50.2 s"
    )


def test_level_1_beyond_host_ram_is_refused_and_the_rest_sleep_at_level_2(llama8b: Profile) -> None:
    # 64 GiB host, 57.6 GiB after headroom: three level-1 Llama-8B sleepers (17 GiB each), not four.
    d = decide("chat", LLAMA_8B, rungs_for(llama8b), ColdTarget(1.5), ScaleUps(6, 4), hosts(64))
    assert d.count(Tier.ASLEEP_IN_RAM) == 3
    # The fourth: level 2 (3.9 s) misses a 1.5 s budget, so the target takes a running spare.
    assert d.count(Tier.RUNNING) == 1 and d.meets_target
    assert [r.tier for r in d.refusals] == [Tier.ASLEEP_IN_RAM]
    assert "needs 17.0 GiB of host RAM on h1, 6.7 GiB free" in d.reason
    assert check(hosts(64)[0], [Resident(s, _holding(s)) for s in d.slots]) == ()


def test_without_enforce_a_running_spare_is_turned_down_when_misses_cost_less(llama8b: Profile) -> None:
    rungs = rungs_for(llama8b)
    d = decide("chat", LLAMA_8B, rungs, ColdTarget(0.5, enforce=False), ScaleUps(4, 1, 2.0), hosts(256))
    assert [p.tier for p in d.pools] == [Tier.ASLEEP_IN_RAM] and not d.meets_target
    assert [r.tier for r in d.rejected] == [Tier.RUNNING]
    assert (
        "not running: $2.42/h more a slot than asleep in RAM (level 1) to avoid 2.5/h more misses" in d.reason
    )
    # Enforced, the same target takes the running spare.
    enforced = decide("chat", LLAMA_8B, rungs, ColdTarget(0.5), ScaleUps(4, 1, 2.0), hosts(256))
    assert [p.tier for p in enforced.pools] == [Tier.RUNNING] and enforced.meets_target


def test_the_floor_is_never_undercut_and_a_warm_compile_cache_is_free(llama8b: Profile) -> None:
    rungs = rungs_for(llama8b)
    # 40 s: a start with a warm compile cache (38.2 s) meets it, a start from disk (50.2 s) does not.
    d = decide("chat", LLAMA_8B, rungs, ColdTarget(40.0), ScaleUps(1, 1), hosts(256))
    assert [p.tier for p in d.pools] == [Tier.COMPILE_WARM] and d.cost_per_hour == 0
    floored = decide(
        "chat", LLAMA_8B, rungs, ColdTarget(40.0), ScaleUps(1, 1), hosts(256), floor=Tier.COMPILE_WARM
    )
    assert "1 spare from compile cache warm" in floored.reason
    with pytest.raises(ValueError, match="floor"):
        decide("chat", LLAMA_8B, rungs, ColdTarget(1.0), ScaleUps(1, 1), hosts(256), floor=Tier.ASLEEP_IN_RAM)


def test_a_host_already_full_of_other_models_sleepers(llama8b: Profile) -> None:
    rungs = {r.tier: r for r in rungs_for(llama8b)}
    level1 = rungs[Tier.ASLEEP_IN_RAM].holdings
    others = [
        Resident(SlotTier("h1", (i,), f"other-{i}", Tier.ASLEEP_IN_RAM, f"o{i}"), level1) for i in range(3)
    ]
    d = decide(
        "chat", LLAMA_8B, tuple(rungs.values()), ColdTarget(2.0), ScaleUps(6, 1), hosts(64), residents=others
    )
    assert d.count(Tier.ASLEEP_IN_RAM) == 0 and d.count(Tier.RUNNING) == 1
    assert check(hosts(64)[0], [*others, *(Resident(s, _holding(s)) for s in d.slots)]) == ()


def test_scale_ups_from_the_autoscalers_history_and_the_target_from_the_playbook() -> None:
    history = [
        Decision("chat", 1, 3, "queue"),
        Decision("chat", 3, 3, "hold"),
        Decision("chat", 3, 2, "idle"),
        Decision("chat", 2, 3, "queue"),
    ]
    ups = scale_ups_from(history, window_s=1800, requests_per_second=4.0)
    assert (ups.per_hour, ups.replicas, ups.requests_per_second) == (4.0, 2, 4.0)
    assert ttft_target_s(Targets(ttft_ms=Percentiles(p50=150, p99=500))) == 0.5
    assert ttft_target_s(Targets(ttft_ms=Percentiles(p50=150))) == 0.15
    assert ttft_target_s(Targets()) is None
    with pytest.raises(ValueError):
        scale_ups_from(history, window_s=0)


def _holding(slot: SlotTier) -> TierHoldings:
    return tier_holdings(make_profile("vllm", LLAMA_8B, "H100-SXM", "bf16", 1), slot.tier)


# --- properties over random ladders ---------------------------------------------------------------------


@st.composite
def ladders(draw: st.DrawFn) -> tuple[Rung, ...]:
    times = [*sorted(draw(st.lists(st.floats(0, 500), min_size=5, max_size=5)), reverse=True), 0.0]
    out = []
    for tier, t in zip(Tier, times, strict=True):
        gpu = draw(st.floats(0, 90 * GiB)) if tier.has_process else 0.0
        ram = draw(st.floats(0, 100 * GiB)) if tier.has_process else 0.0
        held = TierHoldings(tier, draw(st.sampled_from([1, 2])), gpu, ram, 0.0, tier is Tier.RUNNING)
        # Few distinct prices, so that ties (level 1 and level 2 keep the same GPU residue) come up.
        cost = 0.0 if tier <= Tier.ON_DISK else draw(st.sampled_from([0.0, 0.08, 2.5]) | st.floats(0, 20))
        out.append(Rung(tier, t, held, cost))
    return tuple(out)


TARGETS = st.builds(
    ColdTarget, ttft_s=st.floats(0, 600), warm_ttft_s=st.floats(0, 2), miss_cost=st.floats(0, 1)
)
UPS = st.builds(
    ScaleUps, per_hour=st.floats(0, 100), replicas=st.integers(0, 6), requests_per_second=st.floats(0, 50)
)


def _per_spare(pools: Sequence[TierPool]) -> list[Tier]:
    return [p.tier for p in pools for _ in range(p.count)]


@settings(max_examples=EXAMPLES, deadline=None)
@given(rungs=ladders(), target=TARGETS, ups=UPS)
def test_the_chosen_rung_meets_the_target_whenever_one_does_and_is_the_cheapest(
    rungs: tuple[Rung, ...], target: ColdTarget, ups: ScaleUps
) -> None:
    d = decide("dep", "m", rungs, target, ups, ROOMY)
    assert sum(p.count for p in d.pools) == ups.replicas
    candidates = [r for r in rungs if r.tier >= Tier.ON_DISK]
    meeting = [r for r in candidates if r.to_running_s <= target.budget_s]
    for p in d.pools:
        if meeting:
            assert p.meets_target
            cheapest = min(r.cost_per_hour for r in meeting)
            assert p.cost_per_hour == pytest.approx(cheapest * p.count)
            assert p.tier == min(r.tier for r in meeting if r.cost_per_hour == cheapest)


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    rungs=ladders(),
    target=TARGETS.map(lambda t: ColdTarget(t.ttft_s, t.warm_ttft_s, t.miss_cost, False)),
    ups=UPS,
)
def test_without_enforce_each_spare_minimises_holding_plus_misses(
    rungs: tuple[Rung, ...], target: ColdTarget, ups: ScaleUps
) -> None:
    d = decide("dep", "m", rungs, target, ups, ROOMY)

    def total(r: Rung) -> float:
        over = max(0.0, r.to_running_s - target.budget_s)
        return r.cost_per_hour + target.miss_cost * ups.per_hour * ups.requests_per_second * over

    best = min(total(r) for r in rungs if r.tier >= Tier.ON_DISK)
    by_tier = {r.tier: r for r in rungs}
    for tier in _per_spare(d.pools):
        assert total(by_tier[tier]) == pytest.approx(best, rel=1e-9, abs=1e-9)


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    rungs=ladders(),
    target=TARGETS,
    ups=UPS,
    rams=st.lists(st.floats(4, 512), min_size=1, max_size=3),
    gpus=st.integers(1, 8),
)
def test_co_residency_bounds_are_never_exceeded_and_decisions_are_deterministic(
    rungs: tuple[Rung, ...], target: ColdTarget, ups: ScaleUps, rams: list[float], gpus: int
) -> None:
    rooms = hosts(*rams, gpus=gpus)
    d = decide("dep", "m", rungs, target, ups, rooms)
    by_tier = {r.tier: r.holdings for r in rungs}
    residents = [Resident(s, by_tier[s.tier]) for s in d.slots]
    for room in rooms:
        assert check(room, residents) == ()
    assert sum(p.count for p in d.pools) == ups.replicas  # the floor always takes what nothing else can
    assert decide("dep", "m", rungs, target, ups, rooms) == d
    assert decide("dep", "m", tuple(reversed(rungs)), target, ups, tuple(reversed(rooms))) == d
