"""The emulated engine's scheduler: queueing, KV limits, preemption, token conservation, perf-model timing."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from llmctl.engines.emulator.core import Scheduler
from llmctl.engines.emulator.timing import step_timer
from llmctl.perf.profile import make_profile
from llmctl.perf.speculative import SpecConfig, spec_step_time
from llmctl.perf.step_time import StepBatch, step_model

MODEL = step_model(make_profile("vllm", "meta-llama/Llama-3.1-8B-Instruct", "H100-SXM"))


def run(s: Scheduler, limit: int = 100_000) -> tuple[dict[str, int], list[float], dict[str, int]]:
    """Step until idle; returns tokens emitted per request, step durations and the step of each finish."""
    tokens: dict[str, int] = {}
    durations: list[float] = []
    finished_at: dict[str, int] = {}
    for i in range(limit):
        if not s.has_work:
            break
        r = s.step()
        assert r.duration_s > 0 or r.preempted
        durations.append(r.duration_s)
        for sid, n in r.emitted.items():
            tokens[sid] = tokens.get(sid, 0) + n
        for sid in r.finished:
            assert sid not in finished_at
            finished_at[sid] = i
        assert len(s.running) <= s.max_seqs and s.kv_used <= s.capacity
    return tokens, durations, finished_at


def test_every_request_gets_exactly_its_tokens_and_queues_past_max_seqs() -> None:
    s = Scheduler(MODEL, kv_capacity_tokens=100_000, max_seqs=4, max_batched_tokens=8192)
    for i in range(10):
        s.add(f"r{i}", 100, 20)
    first = s.step()
    assert len(s.running) == 4 and len(s.waiting) == 6
    assert set(first.first_token) == {"r0", "r1", "r2", "r3"}  # the prefill step samples their first token
    tokens, _, finished = run(s)
    for sid, n in first.emitted.items():
        tokens[sid] += n
    assert tokens == {f"r{i}": 20 for i in range(10)}
    assert finished["r9"] > finished["r3"]  # queued requests finish later


def test_step_duration_is_the_performance_model() -> None:
    s = Scheduler(MODEL, kv_capacity_tokens=100_000, max_seqs=8, max_batched_tokens=4096)
    s.add("a", 1000, 5)
    r = s.step()
    assert r.duration_s == MODEL.step(StepBatch(prefill_tokens=1000, prefill_seqs=1))
    r2 = s.step()
    assert r2.batch == StepBatch(decode_seqs=1, decode_context_tokens=1000)
    assert r2.duration_s == MODEL.step(r2.batch)


def test_chunked_prefill_respects_the_token_budget() -> None:
    s = Scheduler(MODEL, kv_capacity_tokens=100_000, max_seqs=8, max_batched_tokens=512)
    s.add("long", 1300, 3)
    sizes = []
    while "long" not in s.step().first_token:
        sizes.append(s.running[0].computed)
    assert sizes == [512, 1024]


def test_kv_limit_blocks_admission_and_preempts_on_growth() -> None:
    s = Scheduler(MODEL, kv_capacity_tokens=300, max_seqs=8, max_batched_tokens=4096)
    s.add("a", 100, 150)
    s.add("b", 100, 150)
    s.add("c", 100, 150)  # fits now, but the three cannot all grow to 250 tokens
    tokens, _, _ = run(s)
    assert s.preemptions > 0
    assert tokens == {"a": 150, "b": 150, "c": 150}


def test_more_load_means_slower_tokens() -> None:
    def mean_step(n: int) -> float:
        s = Scheduler(MODEL, kv_capacity_tokens=400_000, max_seqs=512, max_batched_tokens=16384)
        for i in range(n):
            s.add(str(i), 512, 64)
        _, durations, _ = run(s)
        return sum(durations[1:]) / len(durations[1:])

    assert mean_step(1) < mean_step(64) < mean_step(256)


requests = st.lists(st.tuples(st.integers(1, 300), st.integers(1, 60)), min_size=1, max_size=25)


@settings(max_examples=80, deadline=None)
@given(requests, st.integers(400, 2000), st.integers(1, 16), st.integers(16, 1024))
def test_tokens_conserved_and_limits_hold(
    reqs: list[tuple[int, int]], capacity: int, max_seqs: int, budget: int
) -> None:
    s = Scheduler(MODEL, kv_capacity_tokens=capacity, max_seqs=max_seqs, max_batched_tokens=budget)
    for i, (p, o) in enumerate(reqs):
        s.add(str(i), p, o)
    tokens, _, finished = run(s)
    assert not s.has_work
    assert set(finished) == {str(i) for i in range(len(reqs))}
    # Exactly max_tokens each: a preempted sequence is recomputed, its emitted tokens are not sent again.
    assert tokens == {str(i): o for i, (_, o) in enumerate(reqs)}


def test_half_prefilled_prompts_keep_their_room() -> None:
    # A prompt being prefilled in chunks holds all of its room: the next one waits although only 128 tokens
    # of the first have been computed.
    s = Scheduler(MODEL, kv_capacity_tokens=1000, max_seqs=8, max_batched_tokens=128)
    s.add("a", 600, 4)
    s.add("b", 600, 4)
    s.step()
    assert s.num_running == 1 and s.num_waiting == 1 and s.kv_used == 600
    tokens, _, _ = run(s)
    assert tokens["b"] == 4 and not s.has_work


def test_kv_usage_and_counts_follow_the_state() -> None:
    s = Scheduler(MODEL, kv_capacity_tokens=1000, max_seqs=1, max_batched_tokens=4096)
    s.add("a", 250, 2)
    s.add("b", 100, 2)
    assert (s.num_running, s.num_waiting, s.kv_usage) == (0, 2, 0.0)
    s.step()
    assert (s.num_running, s.num_waiting, s.kv_usage) == (1, 1, 0.25)


def test_eagle3_decode_steps_cost_the_speculative_time_per_token() -> None:
    profile = make_profile("sglang", "meta-llama/Llama-3.1-8B-Instruct", "H100-SXM")
    spec = SpecConfig(draft_params=0.5e9, num_draft_tokens=3)
    timer = step_timer(profile, spec)
    s = Scheduler(timer, kv_capacity_tokens=100_000, max_seqs=8, max_batched_tokens=4096)
    s.add("a", 1000, 3)
    assert s.step().duration_s == step_model(profile).prefill(1000)  # prefill runs without drafts
    decode = s.step()
    assert decode.duration_s == spec_step_time(profile, spec, 1, 1000).per_token_s
    assert decode.duration_s < step_model(profile).decode(1, 1000)  # at batch 1 EAGLE-3 pays off


def test_abort_frees_the_slot_for_the_next_request() -> None:
    s = Scheduler(MODEL, kv_capacity_tokens=1000, max_seqs=1, max_batched_tokens=4096)
    s.add("a", 100, 50)
    s.add("b", 100, 2)
    s.step()
    assert s.abort("a") and not s.abort("a") and s.kv_used == 0
    assert s.step().first_token == ("b",)
    assert s.abort("b") and not s.has_work


def test_scheduled_names_each_admission_including_after_a_preemption() -> None:
    """vLLM's queue time ends, and its prefill time starts, when a request is first scheduled: the step says
    which requests it admitted."""
    s = Scheduler(MODEL, kv_capacity_tokens=300, max_seqs=1, max_batched_tokens=4096)
    s.add("a", 100, 2)
    s.add("b", 100, 2)
    assert s.step().scheduled == ("a",)  # b waits behind the running cap
    assert s.step().scheduled == ()
    assert s.step().scheduled == ("b",)
    s = Scheduler(MODEL, kv_capacity_tokens=300, max_seqs=8, max_batched_tokens=4096)
    for sid in "abc":
        s.add(sid, 100, 150)
    admissions: list[str] = []
    while s.has_work:
        admissions += s.step().scheduled
    assert s.preemptions > 0 and len(admissions) == 3 + s.preemptions  # a preempted request is admitted again
