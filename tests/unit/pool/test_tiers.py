"""Cold-start tiers as data (issue #18): the ladder, slot records, co-residency bounds and the move a
granted slot makes from its tier."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmctl.catalog.gpu_table import GiB
from llmctl.perf.cold_start import TierHoldings, tier_holdings, tier_ladder
from llmctl.perf.profile import Profile, make_profile
from llmctl.pool.residency import HostRoom, Limit, Overflow, Resident, check, place, ram_free, room_from_facts
from llmctl.pool.tiers import SlotTier, Tier
from llmctl.pool.transitions import Move, move_for, reconcile_kind, sleep_call

LLAMA_8B = "meta-llama/Llama-3.1-8B-Instruct"


@pytest.fixture
def llama8b() -> Profile:
    return make_profile("vllm", LLAMA_8B, "H100-SXM", "bf16", 1)


def test_the_ladder_order_and_sleep_levels() -> None:
    assert [t.name for t in sorted(Tier)] == [
        "ABSENT",
        "ON_DISK",
        "COMPILE_WARM",
        "ASLEEP_DISCARDED",
        "ASLEEP_IN_RAM",
        "RUNNING",
    ]
    assert Tier.ASLEEP_IN_RAM.sleep_level == 1 and Tier.ASLEEP_DISCARDED.sleep_level == 2
    assert Tier.RUNNING.sleep_level is None and not Tier.RUNNING.asleep and Tier.RUNNING.has_process
    assert not Tier.COMPILE_WARM.has_process


def test_slot_tier_validates_and_moves() -> None:
    slot = SlotTier("h1", (0, 1), "m", Tier.ASLEEP_IN_RAM, "chat")
    assert slot.gpu_keys == (("h1", 0), ("h1", 1))
    assert slot.at(Tier.RUNNING) == SlotTier("h1", (0, 1), "m", Tier.RUNNING, "chat")
    assert SlotTier("h1", (), "m", Tier.ON_DISK).gpus == ()
    with pytest.raises(ValueError, match="needs its GPUs"):
        SlotTier("h1", (), "m", Tier.ASLEEP_DISCARDED)
    with pytest.raises(ValueError, match="repeat"):
        SlotTier("h1", (0, 0), "m", Tier.RUNNING)
    with pytest.raises(ValueError, match="host"):
        SlotTier("", (0,), "m", Tier.RUNNING)


# --- co-residency ---------------------------------------------------------------------------------------


def room(ram_gib: float = 64, gpus: int = 2, gpu_gib: float = 80) -> HostRoom:
    return HostRoom("h1", ram_gib * GiB, tuple(range(gpus)), gpu_gib * GiB)


def test_level_1_is_refused_beyond_host_ram_and_says_why(llama8b: Profile) -> None:
    # 64 GiB host: 57.6 GiB after the 10% headroom; each level-1 sleeper of Llama-8B holds 17 GiB.
    level1 = tier_holdings(llama8b, Tier.ASLEEP_IN_RAM)
    r = room(64, gpus=8)
    held: list[Resident] = []
    for model in ("a", "b", "c"):
        got = place(r, held, model, model, level1)
        assert isinstance(got, SlotTier)
        held.append(Resident(got, level1))
    refused = place(r, held, "d", "d", level1)
    assert isinstance(refused, Overflow) and refused.limit is Limit.HOST_RAM
    assert "needs 17.0 GiB of host RAM on h1, 6.7 GiB free" in refused.detail
    # Level 2 keeps only the engine process in RAM: a fourth model still sleeps there.
    level2 = tier_holdings(llama8b, Tier.ASLEEP_DISCARDED)
    assert isinstance(place(r, held, "d", "d", level2), SlotTier)


def test_several_models_sleep_on_one_gpu_but_one_deployment_spreads(llama8b: Profile) -> None:
    level2 = tier_holdings(llama8b, Tier.ASLEEP_DISCARDED)
    r = room(512, gpus=1)
    held: list[Resident] = []
    for model in ("a", "b", "c", "d"):
        got = place(r, held, model, model, level2)
        assert isinstance(got, SlotTier) and got.gpus == (0,)
        held.append(Resident(got, level2))
    assert check(r, held) == ()
    again = place(r, held, "a", "a", level2)
    assert isinstance(again, Overflow) and again.limit is Limit.SAME_DEPLOYMENT
    # A running replica takes 90% of the GPU; the four residues (2.5 GiB each) no longer fit beside it.
    running = tier_holdings(llama8b, Tier.RUNNING)
    busy = place(r, held, "e", "e", running)
    assert isinstance(busy, Overflow) and busy.limit is Limit.GPU_MEMORY


def test_check_reports_what_breaks_a_bound(llama8b: Profile) -> None:
    running = tier_holdings(llama8b, Tier.RUNNING)
    level1 = tier_holdings(llama8b, Tier.ASLEEP_IN_RAM)
    r = room(16, gpus=1)  # 14.4 GiB after headroom; the three hold 21 GiB
    held = [
        Resident(SlotTier("h1", (0,), "a", Tier.RUNNING), running),
        Resident(SlotTier("h1", (0,), "b", Tier.RUNNING), running),
        Resident(SlotTier("h1", (0,), "c", Tier.ASLEEP_IN_RAM), level1),
    ]
    limits = {o.limit for o in check(r, held)}
    assert limits == {Limit.HOST_RAM, Limit.GPU_MEMORY, Limit.GPU_BUSY}


HOLDINGS = st.builds(
    TierHoldings,
    tier=st.sampled_from([Tier.ASLEEP_DISCARDED, Tier.ASLEEP_IN_RAM, Tier.RUNNING]),
    gpus=st.sampled_from([1, 2, 4]),
    gpu_bytes=st.floats(0, 90 * GiB),
    host_ram_bytes=st.floats(0, 200 * GiB),
    disk_bytes=st.just(0.0),
).map(
    lambda h: TierHoldings(
        h.tier, h.gpus, h.gpu_bytes, h.host_ram_bytes, h.disk_bytes, h.tier is Tier.RUNNING
    )
)


@settings(max_examples=300, deadline=None)
@given(
    ram_gib=st.floats(4, 1024),
    gpus=st.integers(1, 8),
    gpu_gib=st.floats(16, 192),
    asks=st.lists(st.tuples(st.sampled_from("abcd"), HOLDINGS), max_size=25),
)
def test_placement_never_exceeds_a_bound(
    ram_gib: float, gpus: int, gpu_gib: float, asks: list[tuple[str, TierHoldings]]
) -> None:
    r = room(ram_gib, gpus, gpu_gib)
    held: list[Resident] = []
    for model, holdings in asks:
        got = place(r, held, model, model, holdings)
        if isinstance(got, SlotTier):
            held.append(Resident(got, holdings))
        assert check(r, held) == ()
    assert ram_free(r, held) >= 0
    for dep in "abcd":
        groups = [set(x.slot.gpus) for x in held if x.slot.deployment == dep]
        assert all(not (g & h) for i, g in enumerate(groups) for h in groups[i + 1 :])


# --- the move a granted slot makes ----------------------------------------------------------------------


def test_each_tier_maps_to_its_reconcile_move(llama8b: Profile) -> None:
    ladder = tier_ladder(llama8b)
    moves = {t: move_for(SlotTier("h1", (0,), "m", t), ladder) for t in Tier}
    assert {t: m.move for t, m in moves.items()} == {
        Tier.ABSENT: Move.FETCH_START,
        Tier.ON_DISK: Move.START,
        Tier.COMPILE_WARM: Move.START,
        Tier.ASLEEP_DISCARDED: Move.WAKE_RELOAD,
        Tier.ASLEEP_IN_RAM: Move.WAKE,
        Tier.RUNNING: Move.NONE,
    }
    assert moves[Tier.ASLEEP_DISCARDED].calls[0] == "POST /wake_up"
    assert "reload_weights" in moves[Tier.ASLEEP_DISCARDED].calls[1]
    assert moves[Tier.ASLEEP_IN_RAM].expected_s == pytest.approx(ladder[Tier.ASLEEP_IN_RAM].total_s)
    assert reconcile_kind(Move.WAKE_RELOAD) == ("wake",) and reconcile_kind(Move.RESTART) == ("stop", "start")
    assert sleep_call("vllm", Tier.ASLEEP_DISCARDED) == "POST /sleep?level=2"
    assert sleep_call("sglang", Tier.ASLEEP_IN_RAM) == "POST /release_memory_occupation"
    with pytest.raises(ValueError):
        sleep_call("vllm", Tier.RUNNING)


def test_a_sleeper_slower_than_a_fresh_start_is_restarted(llama8b: Profile) -> None:
    from dataclasses import replace

    slow = replace(llama8b, cold_start=replace(llama8b.cold_start, reload_fixed_s=1000.0))
    ladder = tier_ladder(slow)
    assert ladder[Tier.ASLEEP_DISCARDED].via is Tier.COMPILE_WARM
    m = move_for(SlotTier("h1", (0,), "m", Tier.ASLEEP_DISCARDED), ladder)
    assert m.move is Move.RESTART and "faster than waking" in m.reason


def test_a_hosts_room_comes_from_its_facts() -> None:
    from llmctl.planner.placement import HostResources

    facts = HostResources(
        gpus=((1, "H100"), (0, "H100")), memory_mib=65536, gpu_memory_mib={0: 81559, 1: 81000}
    )
    r = room_from_facts("h1", facts, 80 * GiB)
    assert (r.ram_bytes, r.gpus, r.gpu_memory_bytes) == (64 * GiB, (0, 1), 81000 * 2**20)
    assert r.ram_budget == pytest.approx(64 * GiB * 0.9)
    assert (
        room_from_facts("h1", HostResources(gpus=((0, "H100"),), memory_mib=1024), 80 * GiB).gpu_memory_bytes
        == 80 * GiB
    )
    with pytest.raises(ValueError, match="memory is unknown"):
        room_from_facts("h1", HostResources(gpus=((0, "H100"),)), 80 * GiB)
