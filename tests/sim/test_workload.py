"""Workload generators and trace loaders: the published trace figures, rates of each process, replay scaling,
determinism, and errors that name the file and line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from llmctl.config.source import parse_yaml
from llmctl.errors import ConfigError, ConfigErrors
from sim.workload import (
    Arrival,
    diurnal_curve,
    generate,
    load_azure,
    load_mooncake,
    load_trace,
    mmpp_times,
    parse_workload,
    poisson_times,
    replay_indices,
    thinned_times,
)

SHIPPED = Path(__file__).resolve().parents[2] / "sim" / "traces"
AZURE_CONV = SHIPPED / "AzureLLMInferenceTrace_conv.csv"
# The other public traces are read from ../shared/traces beside the checkout when it is there.
TRACES = Path(__file__).resolve().parents[3] / "shared" / "traces"

# The table of ../shared/traces/README.md: rows, span s, mean req/s, peak/avg over 1/10/60/300 s bins,
# mean input and output tokens.
README_FIGURES = {
    "AzureLLMInferenceTrace_conv.csv": (19_366, 3502, 5.53, (2.89, 1.78, 1.54, 1.39), 1155, 211),
    "AzureLLMInferenceTrace_code.csv": (8_819, 3436, 2.57, (26.1, 12.8, 4.16, 1.63), 2048, 28),
    "mooncake_conversation_trace.jsonl": (12_031, 3537, 3.40, (8.23, 1.97, 1.21, 1.10), 12035, 343),
    "mooncake_synthetic_trace.jsonl": (3_993, 1022, 3.91, (3.33, 1.42, 1.23, 1.22), 15325, 149),
}


def _sig3(x: float) -> float:
    return float(f"{x:.3g}")


@pytest.mark.parametrize("name", sorted(README_FIGURES))
def test_loaders_reproduce_the_published_trace_figures(name: str) -> None:
    rows, span, rate, peaks, mean_in, mean_out = README_FIGURES[name]
    path = next((d / name for d in (SHIPPED, TRACES) if (d / name).exists()), None)
    if path is None:
        pytest.skip(f"{name} is neither shipped nor in ../shared/traces")
    trace = load_trace(str(path))
    assert trace.t_s.size == rows
    assert round(trace.span_s) == span
    assert round(trace.mean_rate, 2) == rate
    assert tuple(_sig3(trace.peak_to_average(b)) for b in (1, 10, 60, 300)) == peaks
    assert (round(float(trace.prompts.mean())), round(float(trace.outputs.mean()))) == (mean_in, mean_out)
    assert trace.t_s[0] == 0 and np.all(np.diff(trace.t_s) >= 0)
    if name.startswith("mooncake"):
        assert trace.blocks is not None and len(trace.blocks) == rows


def test_poisson_rate_and_determinism() -> None:
    a = poisson_times(np.random.default_rng(1), 50.0, 200.0)
    b = poisson_times(np.random.default_rng(1), 50.0, 200.0)
    assert np.array_equal(a, b)
    # 10,000 expected: the count is within 4 standard deviations (100).
    assert abs(a.size - 10_000) < 400
    gaps = np.diff(a)
    assert gaps.mean() == pytest.approx(1 / 50, rel=0.05) and gaps.std() == pytest.approx(1 / 50, rel=0.05)


def test_thinning_follows_the_rate_curve() -> None:
    curve = diurnal_curve(mean=20.0, amplitude=0.8, period_s=1000.0, peak_at_s=250.0)
    t = thinned_times(np.random.default_rng(2), curve, 36.0, 1000.0)
    assert t.size == pytest.approx(20_000, rel=0.03)
    # The busiest quarter (around the peak) carries mean * (1 + amplitude * 2 sqrt(2) / pi) / 4 of the requests.
    peak_quarter = np.count_nonzero((t >= 125) & (t < 375))
    assert peak_quarter == pytest.approx(20 * 250 * (1 + 0.8 * 2 * np.sqrt(2) / np.pi), rel=0.05)
    with pytest.raises(ValueError):
        thinned_times(np.random.default_rng(2), curve, 10.0, 100.0)


def test_mmpp_mean_rate_is_the_time_weighted_mean() -> None:
    t = mmpp_times(np.random.default_rng(3), [2.0, 40.0], [90.0, 10.0], 200_000.0)
    assert t.size / 200_000 == pytest.approx((2 * 90 + 40 * 10) / 100, rel=0.08)
    counts = np.bincount((t // 10).astype(int))
    assert counts.var() / counts.mean() > 5  # bursty: far over-dispersed against Poisson (ratio 1)


def test_replay_rate_scaling_thin_and_compress() -> None:
    trace = load_azure(AZURE_CONV)
    rng = np.random.default_rng(4)
    t1, rows1 = replay_indices(trace, rng, 3000.0)
    assert np.array_equal(t1, trace.t_s[trace.t_s < 3000]) and np.array_equal(rows1, np.arange(t1.size))
    half, _ = replay_indices(trace, rng, 3000.0, rate_scale=0.5)
    assert half.size == pytest.approx(t1.size / 2, rel=0.05)
    triple, _ = replay_indices(trace, rng, 3000.0, rate_scale=3.0)
    assert triple.size == pytest.approx(3 * t1.size, rel=0.03) and np.all(np.diff(triple) >= 0)
    fast, _ = replay_indices(trace, rng, 1000.0, rate_scale=3.0, rate_mode="compress")
    assert np.allclose(fast, trace.t_s[: fast.size] / 3)
    slow, _ = replay_indices(trace, rng, 3000.0, time_scale=2.0)
    assert np.allclose(slow, trace.t_s[: slow.size] * 2)
    looped, rows = replay_indices(trace, rng, 8000.0)  # longer than the trace: it loops
    assert (
        looped.size == pytest.approx(trace.t_s.size * 8000 / 3502, rel=0.05) and rows.max() < trace.t_s.size
    )


def test_generate_is_seeded_and_mixes_deployments(tmp_path: Path) -> None:
    spec = parse_workload(
        {
            "kind": "mix",
            "parts": [
                {
                    "kind": "poisson",
                    "rate": 5,
                    "deployment": "chat",
                    "lengths": {"kind": "fixed", "prompt": 100, "output": 20},
                },
                {
                    "kind": "step",
                    "steps": [{"at_s": 0, "rate": 1}, {"at_s": 50, "rate": 10}],
                    "deployment": "batch",
                },
                {
                    "kind": "ramp",
                    "start_rate": 0,
                    "end_rate": 4,
                    "ramp_s": 100,
                    "deployment": "chat",
                    "lengths": {"kind": "lognormal", "prompt_median": 500, "output_median": 100},
                },
            ],
        }
    )
    a, b = generate(spec, 100.0, seed=7), generate(spec, 100.0, seed=7)
    assert a == b and a != generate(spec, 100.0, seed=8)
    assert [x.t_s for x in a] == sorted(x.t_s for x in a) and all(0 <= x.t_s < 100 for x in a)
    assert {x.deployment for x in a} == {"chat", "batch"}
    batch = [x for x in a if x.deployment == "batch"]
    assert sum(x.t_s < 50 for x in batch) < sum(x.t_s >= 50 for x in batch)
    assert all(isinstance(x, Arrival) and x.prompt_tokens >= 1 and x.output_tokens >= 1 for x in a)


def test_trace_workload_spec_with_lengths_blocks_and_a_daily_cycle(tmp_path: Path) -> None:
    # A Mooncake-format trace at 3.4 req/s (the conversation trace's rate) with shared prefix blocks.
    rng = np.random.default_rng(9)
    times_ms = np.cumsum(rng.exponential(1000 / 3.4, 8000)).astype(int)
    lines = [
        json.dumps(
            {"timestamp": int(t), "input_length": 1024, "output_length": 64, "hash_ids": [0, 1, int(i)]}
        )
        for i, t in enumerate(times_ms[times_ms < 2_100_000])
    ]
    (tmp_path / "mooncake.jsonl").write_text("\n".join(lines) + "\n")
    spec = parse_workload(
        {
            "kind": "trace",
            "path": "mooncake.jsonl",
            "deployment": "chat",
            "rate_scale": 2,
            "diurnal": {"amplitude": 1.0, "period_s": 2000, "peak_at_s": 0},
        }
    )
    arrivals = generate(spec, 2000.0, seed=1, base_dir=tmp_path)
    assert all(x.blocks for x in arrivals) and {x.deployment for x in arrivals} == {"chat"}
    # rate 2 x 3.4 req/s, thinned by (1 + cos) / 2: mean halves, the trough is nearly empty.
    assert len(arrivals) == pytest.approx(2 * 3.4 * 2000 / 2, rel=0.1)
    trough = sum(900 <= x.t_s < 1100 for x in arrivals)
    assert trough < 0.05 * len(arrivals)
    resampled = parse_workload(
        {"kind": "poisson", "rate": 3, "lengths": {"kind": "trace", "path": str(AZURE_CONV)}}
    )
    lengths = {(x.prompt_tokens, x.output_tokens) for x in generate(resampled, 100.0, seed=2)}
    trace = load_azure(AZURE_CONV)
    assert lengths <= set(zip(trace.prompts.tolist(), np.maximum(trace.outputs, 1).tolist(), strict=True))


def test_bad_trace_files_name_the_file_and_line(tmp_path: Path) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,374,44\n2023-11-16 x,1,2\n"
    )
    with pytest.raises(ConfigError) as err:
        load_azure(csv)
    assert err.value.file == str(csv) and err.value.line == 3
    jsonl = tmp_path / "bad.jsonl"
    jsonl.write_text('{"timestamp": 0, "input_length": 5, "output_length": 1}\n{"timestamp": 1}\n')
    with pytest.raises(ConfigError) as err:
        load_mooncake(jsonl)
    assert err.value.line == 2 and "bad.jsonl:2" in str(err.value)


def test_spec_errors_name_the_scenario_line() -> None:
    text = "duration_s: 60\nworkload:\n  kind: poisson\n  rate: -3\n"
    data, lines = parse_yaml(text, "scenario.yaml")
    with pytest.raises(ConfigErrors) as errs:
        parse_workload(data["workload"], lines, prefix=("workload",))
    assert str(errs.value) == "scenario.yaml:4: workload.rate: Input should be greater than 0"
    text = "workload:\n  kind: mix\n  parts:\n    - kind: poisson\n      rate: 1\n    - kind: mmpp\n      ratez: [1]\n"
    data, lines = parse_yaml(text, "s.yaml")
    with pytest.raises(ConfigErrors) as errs:
        parse_workload(data["workload"], lines, prefix=("workload",))
    assert "s.yaml:7: workload.parts[1].ratez: unknown field" in str(errs.value)
    with pytest.raises(ValidationError):
        parse_workload({"kind": "nope"})
    with pytest.raises(ValidationError):
        parse_workload({"kind": "mmpp", "rates": [1, 2], "mean_sojourn_s": [1]})
