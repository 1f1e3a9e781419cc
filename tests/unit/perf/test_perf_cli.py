"""`llmctl perf show` and `llmctl perf calibrate --csv` through the real Typer app."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from llmctl.cli.main import app
from llmctl.errors import LlmctlError
from llmctl.perf.calibrate import StepPoint, points_to_csv, predict
from llmctl.perf.profile import make_profile

NAME = "vllm/meta-llama/Llama-3.1-8B-Instruct/H100-SXM/bf16/tp1"
runner = CliRunner()


def test_show_text() -> None:
    result = runner.invoke(app, ["perf", "show", NAME, "--context", "2048"])
    assert result.exit_code == 0, result.output
    out = result.output
    for text in ("decode step vs batch", "max throughput", "KV capacity", "cold start", "wake from sleep",
                 "tokens/s vs batch", "█", "speculative decoding"):  # fmt: skip
        assert text in out, text
    assert "512" in out


def test_show_json_with_options_and_profile_file(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(f"profile: {NAME}\nfactors:\n  overhead_s: 0.004\n")
    args = ["perf", "show", "--engine", "vllm", "--model", "llama-3.1-8b", "--gpu", "H100-SXM", "--profile-file",
            str(path), "--no-spec", "--json"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["profile"] == NAME and data["factors"]["overhead_s"] == 0.004
    assert [r["batch"] for r in data["steps"]] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
    steps = [r["step_ms"] for r in data["steps"]]
    assert steps == sorted(steps) and steps[0] > 4.0  # the overhead from the file is in there
    assert data["memory"]["kv_capacity_tokens"] > 100_000
    assert data["max_throughput"]["batch"] == data["memory"]["max_batch_at_context"]
    cold = data["cold_start"]
    assert cold["local"]["total_s"] < cold["network"]["total_s"]
    assert "speculative" not in data
    # The file alone names the profile too.
    alone = runner.invoke(app, ["perf", "show", "--profile-file", str(path), "--json"])
    assert json.loads(alone.stdout)["profile"] == NAME


def test_show_errors_are_llmctl_errors() -> None:
    result = runner.invoke(app, ["perf", "show", "vllm/nope/H100-SXM/bf16/tp1"])
    assert isinstance(result.exception, LlmctlError)
    result = runner.invoke(app, ["perf", "show", "--model", "mistral-7b"])
    assert isinstance(result.exception, LlmctlError)


def test_calibrate_csv_writes_a_profile_the_other_commands_load(tmp_path: Path) -> None:
    truth = make_profile("vllm", "llama-3.1-8b", "H100-SXM")
    truth = truth.with_factors(truth.factors.with_overrides({"hbm_efficiency": 0.8, "overhead_s": 0.002}))
    grid = [StepPoint(b, 1024, 0, 1.0) for b in (1, 8, 64, 256)] + [
        StepPoint(0, 0, n, 1.0) for n in (512, 4096)
    ]
    points = [
        StepPoint(p.batch, p.context, p.prefill_tokens, t)
        for p, t in zip(grid, predict(truth, grid), strict=True)
    ]
    csv_path, out = tmp_path / "points.csv", tmp_path / "fitted.json"
    csv_path.write_text(points_to_csv(points))
    result = runner.invoke(app, ["perf", "calibrate", NAME, "--csv", str(csv_path), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "hbm_efficiency" in result.output and "mean" in result.output
    data = json.loads(out.read_text())
    assert abs(data["factors"]["hbm_efficiency"] - 0.8) < 0.02
    assert data["calibration"]["max_rel_error"] < 0.01
    shown = runner.invoke(app, ["perf", "show", "--profile-file", str(out), "--json"])
    assert json.loads(shown.stdout)["factors"]["overhead_s"] == data["factors"]["overhead_s"]
    as_yaml = tmp_path / "fitted.yaml"
    result = runner.invoke(
        app, ["perf", "calibrate", NAME, "--csv", str(csv_path), "-o", str(as_yaml), "--json"]
    )
    assert yaml.safe_load(as_yaml.read_text())["profile"] == NAME
    assert json.loads(result.stdout)["output"] == str(as_yaml)


def test_calibrate_bad_csv_names_file_line_and_column(tmp_path: Path) -> None:
    csv_path = tmp_path / "points.csv"
    csv_path.write_text("batch,context,prefill_tokens,step_time_s\n1,100,0,0.01\n2,100,0,fast\n")
    result = runner.invoke(
        app, ["perf", "calibrate", NAME, "--csv", str(csv_path), "-o", str(tmp_path / "o.yaml")]
    )
    assert isinstance(result.exception, LlmctlError)
    assert f"{csv_path}:3: column 'step_time_s'" in str(result.exception)
    neither = runner.invoke(app, ["perf", "calibrate", NAME])
    assert isinstance(neither.exception, LlmctlError)
