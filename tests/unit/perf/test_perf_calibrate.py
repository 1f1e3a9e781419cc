"""Calibration: recover known factors from noisy synthetic points; CSV errors name file, line, column."""

from __future__ import annotations

import numpy as np
import pytest

from llmctl.errors import LlmctlError
from llmctl.perf.calibrate import (
    BenchmarkLevel,
    StepPoint,
    fit_factors,
    parse_points_csv,
    points_from_benchmark,
    points_to_csv,
    predict,
)
from llmctl.perf.profile import Profile, make_profile

TRUE_FACTORS = {
    "hbm_efficiency": 0.78,
    "compute_efficiency": 0.55,
    "overhead_s": 2.2e-3,
    "comm_efficiency": 0.6,
}


def _grid() -> list[StepPoint]:
    decode = [StepPoint(b, c, 0, 1.0) for b in (1, 4, 16, 64, 256, 512) for c in (256, 2048)]
    prefill = [StepPoint(0, 0, n, 1.0) for n in (256, 1024, 4096, 8192)]
    mixed = [StepPoint(32, 1024, 2048, 1.0)]
    return decode + prefill + mixed


@pytest.mark.parametrize("tp", [1, 2])
def test_fit_recovers_known_factors(tp: int) -> None:
    truth = make_profile("vllm", "meta-llama/Llama-3.1-8B-Instruct", "H100-SXM", "bf16", tp)
    wanted = {k: v for k, v in TRUE_FACTORS.items() if tp > 1 or k != "comm_efficiency"}
    truth = truth.with_factors(truth.factors.with_overrides(wanted))
    rng = np.random.default_rng(7)
    grid = _grid()
    measured = [
        StepPoint(p.batch, p.context, p.prefill_tokens, t * (1 + rng.normal(0, 0.01)))
        for p, t in zip(grid, predict(truth, grid), strict=True)
    ]
    start = make_profile("vllm", "meta-llama/Llama-3.1-8B-Instruct", "H100-SXM", "bf16", tp)
    result = fit_factors(start, measured)
    assert set(result.fitted) == set(wanted)
    for name, value in wanted.items():
        assert result.fitted[name] == pytest.approx(value, rel=0.1), name
    assert result.mean_rel_error < 0.02 and result.max_rel_error < 0.05
    assert result.profile.factors.hbm_efficiency == result.fitted["hbm_efficiency"]


def test_fit_stays_within_physical_bounds(llama8b: Profile) -> None:
    # Steps faster than the datasheet allows can only push efficiencies to their upper bound.
    points = [StepPoint(1, 128, 0, 1e-4), StepPoint(0, 0, 4096, 1e-4), StepPoint(8, 128, 0, 1e-4)]
    result = fit_factors(llama8b, points)
    assert all(v <= 1.0 for k, v in result.fitted.items() if k.endswith("efficiency"))
    assert result.fitted["overhead_s"] >= 0


def test_csv_round_trip() -> None:
    points = [StepPoint(1, 512, 0, 0.0071), StepPoint(0, 0, 2048, 0.05)]
    assert parse_points_csv(points_to_csv(points), "x.csv") == points


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("batch,context,step_time_s\n1,2,0.1\n", r"points\.csv:1: missing column\(s\) prefill_tokens"),
        (
            "batch,context,prefill_tokens,step_time_s\n1,2,0,0.1\n4,abc,0,0.2\n",
            r"points\.csv:3: column 'context'",
        ),
        ("batch,context,prefill_tokens,step_time_s\n1,2,0,\n", r"points\.csv:2: column 'step_time_s'"),
        ("batch,context,prefill_tokens,step_time_s\n1.5,2,0,0.1\n", r"points\.csv:2: column 'batch'.*whole"),
        ("batch,context,prefill_tokens,step_time_s\n0,0,0,0.1\n", r"points\.csv:2: a step needs"),
        ("batch,context,prefill_tokens,step_time_s\n", r"points\.csv: no data rows"),
    ],
)
def test_bad_csv_names_file_line_and_column(text: str, where: str) -> None:
    with pytest.raises(LlmctlError, match=where):
        parse_points_csv(text, "points.csv")


def test_benchmark_levels_become_step_points() -> None:
    levels = [BenchmarkLevel(1, 512, 128, 0.030, 0.0068), BenchmarkLevel(8, 512, 128, 0.090, 0.0072)]
    assert points_from_benchmark(levels) == [
        StepPoint(1, 576, 0, 0.0068),
        StepPoint(0, 0, 512, 0.030),
        StepPoint(8, 576, 0, 0.0072),
    ]


def test_fit_needs_enough_points(llama8b: Profile) -> None:
    with pytest.raises(LlmctlError, match="at least 3 points"):
        fit_factors(llama8b, [StepPoint(1, 1, 0, 0.01)])
    with pytest.raises(LlmctlError, match="unknown factor"):
        fit_factors(llama8b, [StepPoint(1, 1, 0, 0.01)], ["speed"])
