"""Held-out loads (llmctl.bench.heldout): how they are built, what the simulator predicts for them on an engine
whose step time is known in closed form, and how a prediction is judged against the issue's targets."""

from __future__ import annotations

import numpy as np
import pytest

from llmctl.bench.heldout import (
    TARGETS,
    Row,
    capacity_req_s,
    compare,
    poisson_load,
    simulate_schedule,
    summarise_records,
    trace_load,
    trace_slice,
)
from llmctl.bench.heldout_report import markdown_table, verdicts
from llmctl.bench.load import Scheduled
from llmctl.errors import LlmctlError
from llmctl.perf.step_time import StepBatch
from sim.replica import EngineShape
from sim.workload.traces import Trace

PER_TOKEN_S = 0.01


class PerToken:
    """A compute-bound engine (what vLLM's CPU backend is on a small host): every token of a step, prefilled
    or decoded, costs the same."""

    def step(self, batch: StepBatch) -> float:
        return PER_TOKEN_S * (batch.prefill_tokens + batch.decode_seqs)


def engine(max_seqs: int = 8, budget: int = 2048) -> EngineShape:
    return EngineShape(PerToken(), 100_000, max_seqs, budget, 2048)


def toy_trace() -> Trace:
    t = np.array([0.0, 1.0, 1.5, 4.0, 10.0])
    return Trace("toy", t, np.array([1000, 2000, 500, 1500, 4000]), np.array([100, 400, 10, 0, 50]))


def test_one_request_takes_its_prefill_then_one_step_per_token() -> None:
    records = simulate_schedule(engine(), [Scheduled(2.0, 10, 5)])
    (r,) = records
    assert r.ttft_s == pytest.approx(10 * PER_TOKEN_S)
    assert r.e2e_s == pytest.approx((10 + 4) * PER_TOKEN_S)


def test_capacity_of_a_compute_bound_engine_is_one_over_its_tokens() -> None:
    # Every token costs the same however it is batched, so a backlog drains at 1 / (tokens x cost) req/s.
    assert capacity_req_s(engine(), [(40, 40)]) == pytest.approx(1 / (80 * PER_TOKEN_S), rel=0.02)
    mixed = capacity_req_s(engine(), [(20, 20), (60, 60)])
    assert mixed == pytest.approx(1 / (80 * PER_TOKEN_S), rel=0.03)
    with pytest.raises(ValueError):
        capacity_req_s(engine(), [])


def test_poisson_load_is_a_fixed_count_at_a_share_of_capacity() -> None:
    load = poisson_load("poisson-high", 0.8, 0.5, 400, 48, 32, seed=3)
    assert load.rate_req_s == pytest.approx(0.4) and "0.400 req/s" in load.kind
    assert len(load.schedule) == 400 and load.duration_s == pytest.approx(1000.0, rel=0.1)
    times = np.array([s.at_s for s in load.schedule])
    gaps = np.diff(times)
    assert (gaps > 0).all() and gaps.mean() == pytest.approx(2.5, rel=0.1)
    assert np.std(gaps) / gaps.mean() == pytest.approx(1.0, rel=0.15)  # exponential: cv 1
    assert all((s.prompt_tokens, s.output_tokens) == (48, 32) for s in load.schedule)
    assert load.schedule == poisson_load("poisson-high", 0.8, 0.5, 400, 48, 32, seed=3).schedule  # seeded
    assert times[-1] < load.duration_s


def test_trace_slice_scales_lengths_by_one_factor_and_keeps_limits() -> None:
    rows = trace_slice(toy_trace(), 4, mean_prompt=50.0, max_context=128, start=1)
    assert [r[0] for r in rows] == [0.0, 0.5, 3.0, 9.0]  # seconds after the slice's first request
    prompts = [r[1] for r in rows]
    assert np.mean(prompts) == pytest.approx(50.0, abs=1)  # 2000, 500, 1500, 4000 -> x 1/40
    assert prompts[:3] == [50, 12, 38]
    outputs = [r[2] for r in rows]
    assert outputs[:3] == [10, 2, 2]  # 400 / 40; 10 / 40 and 0 raised to two tokens (one gap for ITL)
    assert all(p + o <= 128 for _, p, o in rows)  # 4000 / 40 = 100 prompt + 2 fits; clipped where not
    clipped = trace_slice(toy_trace(), 5, mean_prompt=100.0, max_context=64)
    assert all(p + o <= 64 and o <= 32 for _, p, o in clipped)
    with pytest.raises(ValueError, match="not all in the trace"):
        trace_slice(toy_trace(), 3, 50.0, 128, start=3)


def test_trace_load_squeezes_the_clock_to_the_rate_and_keeps_the_gaps() -> None:
    rows = [(0.0, 10, 2), (1.0, 10, 2), (3.0, 10, 2), (4.0, 10, 2)]
    load = trace_load("azure-slice", 0.5, 1.0, rows, duration_s=8.0)
    times = [s.at_s for s in load.schedule]
    assert times[0] == 0.0 and times[-1] == pytest.approx(6.0)  # 8 s x 3/4: the mean gap is 8/4 s
    assert np.diff(times) / np.diff(times)[0] == pytest.approx([1.0, 2.0, 1.0])
    assert load.rate_req_s == pytest.approx(0.5)


def test_summarised_records_count_throughput_from_the_loads_start() -> None:
    records = simulate_schedule(engine(), [Scheduled(0.0, 10, 11), Scheduled(5.0, 10, 11)])
    s = summarise_records(records)
    end = 5.0 + 20 * PER_TOKEN_S
    assert s["wall_s"] == pytest.approx(end)
    assert s["output_tokens_per_s"] == pytest.approx(22 / end)
    assert s["itl_s"]["p50"] == pytest.approx(PER_TOKEN_S)  # type: ignore[index]


def test_queueing_shows_in_the_prediction() -> None:
    # Two requests at once on a one-sequence engine: the second waits for the first to finish.
    records = simulate_schedule(engine(max_seqs=1), [Scheduled(0.0, 10, 11), Scheduled(0.0, 10, 11)])
    ttfts = sorted(r.ttft_s for r in records)
    assert ttfts[1] == pytest.approx(ttfts[0] + 20 * PER_TOKEN_S)


def test_compare_judges_each_percentile_by_its_own_target() -> None:
    measured = {
        "ttft_s": {"p50": 1.0, "p90": 2.0},
        "itl_s": {"p50": 0.1, "p90": 0.2},
        "e2e_s": {"p50": 5.0, "p90": 8.0},
        "output_tokens_per_s": 10.0,
    }
    predicted = {
        "ttft_s": {"p50": 1.14, "p90": 2.6},  # +14% passes p50's 15%; +30% misses p90's 25%
        "itl_s": {"p50": 0.084, "p90": 0.16},  # -16% misses; -20% passes
        "e2e_s": {"p50": 5.0, "p90": 8.0},
        "output_tokens_per_s": 10.9,  # +9% passes the 10% throughput target
    }
    rows = {r.metric: r for r in compare("x", measured, predicted)}
    assert [m for m, r in rows.items() if not r.passed] == ["ttft_s p90", "itl_s p50"]
    assert rows["throughput"].target == TARGETS["throughput"] and rows["throughput"].ratio == pytest.approx(
        1.09
    )
    assert verdicts(list(rows.values())) == {"p50": (2, 3), "p90": (2, 3), "throughput": (1, 1)}
    table = markdown_table(list(rows.values()))
    assert "| x | TTFT p90 | 2000 ms | 2600 ms | 1.30 | ±25% | **miss** |" in table
    assert "| x | throughput | 10.0 tok/s | 10.9 tok/s | 1.09 | ±10% | pass |" in table


def test_a_row_with_nothing_measured_fails() -> None:
    assert not Row("x", "ttft_s p50", 0.0, 1.0, 0.15).passed
    assert not Row("x", "ttft_s p50", float("nan"), 1.0, 0.15).passed


def test_the_cli_builds_three_loads_at_their_shares_of_the_predicted_capacity() -> None:
    from pathlib import Path

    from llmctl.cli.perf_heldout import DEFAULT_TRACE, build_loads

    loads, capacity = build_loads(
        engine(max_seqs=16),
        ["poisson-light", "poisson-high", "azure-slice"],
        prompt=48,
        output=48,
        light=0.3,
        high=0.8,
        trace_share=0.6,
        trace=DEFAULT_TRACE,
        trace_start=0,
        trace_mean_prompt=64.0,
        requests=20,
        seed=1,
    )
    by_name = {load.name: load for load in loads}
    assert list(by_name) == ["poisson-light", "poisson-high", "azure-slice"]
    assert capacity["poisson-light"] == pytest.approx(1 / (96 * PER_TOKEN_S), rel=0.03)
    assert by_name["poisson-high"].rate_req_s / by_name["poisson-light"].rate_req_s == pytest.approx(
        0.8 / 0.3
    )
    azure = by_name["azure-slice"]
    assert len(azure.schedule) == 20 and azure.rate_req_s == pytest.approx(0.6 * capacity["azure-slice"])
    assert np.mean([s.prompt_tokens for s in azure.schedule]) == pytest.approx(64, abs=1)
    assert all(s.prompt_tokens + s.output_tokens <= 2048 for s in azure.schedule)
    # Distinct shapes from the Poisson loads': the trace's own length mix.
    assert len({(s.prompt_tokens, s.output_tokens) for s in azure.schedule}) > 5
    with pytest.raises(LlmctlError, match="no such file"):
        build_loads(
            engine(), ["azure-slice"], prompt=1, output=2, light=0.3, high=0.8, trace_share=0.6,
            trace=Path("/nonexistent.csv"), trace_start=0, trace_mean_prompt=64.0, requests=4, seed=1,
        )  # fmt: skip


def test_the_cli_refuses_an_unknown_load() -> None:
    from typer.testing import CliRunner

    from llmctl.cli.main import app

    out = CliRunner().invoke(
        app, ["perf", "heldout", "--url", "http://127.0.0.1:9", "--model", "m", "--profile-file", "p.yaml",
              "--loads", "poisson-light,bogus"],
    )  # fmt: skip
    assert out.exit_code != 0
    assert isinstance(out.exception, LlmctlError) and "--loads: unknown bogus" in str(out.exception)
