"""Start-up of the emulated engine without a process: settings from the environment, the memory checks and
the lines and moments at which each engine gives up (recognised by llmctl.engines.startup_errors)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmctl.engines.emulator.config import ConfigError, parse_config
from llmctl.engines.emulator.startup import StartupError, prepare
from llmctl.engines.startup_errors import recognise
from llmctl.perf.cold_start import cold_start_time


def failure(flavour: str, args: list[str]) -> StartupError:
    with pytest.raises(StartupError) as caught:
        prepare(parse_config(flavour, args, {}))
    return caught.value


@pytest.mark.parametrize(
    ("flavour", "args", "kind"),
    [
        ("vllm", ["meta-llama/Llama-3.1-70B-Instruct"], "weights_out_of_memory"),
        ("sglang", ["--model-path", "meta-llama/Llama-3.1-70B-Instruct"], "weights_out_of_memory"),
        (
            "vllm",
            ["meta-llama/Llama-3.1-8B-Instruct", "--gpu-memory-utilization", "0.15"],
            "kv_cache_too_small",
        ),
        (
            "sglang",
            ["--model-path", "Qwen/Qwen3-8B", "--mem-fraction-static", "0.15"],
            "sglang_not_enough_memory",
        ),
        (
            "vllm",
            [
                "meta-llama/Llama-3.1-8B-Instruct",
                "--max-model-len",
                "131072",
                "--gpu-memory-utilization",
                "0.3",
            ],
            "kv_cache_too_small",
        ),
    ],
)
def test_memory_failures_print_lines_the_recogniser_knows(flavour: str, args: list[str], kind: str) -> None:
    exc = failure(flavour, args)
    found = recognise("\n".join(exc.lines))
    assert found is not None and found.kind == kind, exc.lines


def test_failures_come_when_the_engine_would_reach_them() -> None:
    oom = failure("vllm", ["meta-llama/Llama-3.1-70B-Instruct"])
    kv = failure(
        "vllm",
        ["meta-llama/Llama-3.1-8B-Instruct", "--max-model-len", "131072", "--gpu-memory-utilization", "0.3"],
    )
    config = parse_config("vllm", ["meta-llama/Llama-3.1-8B-Instruct"], {})
    full = cold_start_time(prepare(config).profile).total_s
    # Out of memory part-way through loading; the KV check after loading and profiling; both before ready.
    assert oom.after_s > 0 and 0 < kv.after_s < full


def test_a_tp_size_the_model_cannot_split_fails_before_loading() -> None:
    exc = failure("vllm", ["meta-llama/Llama-3.1-8B-Instruct", "--tensor-parallel-size", "3"])
    assert exc.after_s == 0 and any(line.startswith("ValueError: ") for line in exc.lines)


def test_sglang_with_eagle3_defaults_to_48_running_requests() -> None:
    args = ["--model-path", "meta-llama/Llama-3.1-8B-Instruct", "--speculative-algorithm", "EAGLE3"]
    args += ["--speculative-draft-model-path", "d", "--speculative-num-steps", "3"]
    config = parse_config("sglang", args, {})
    assert config.max_seqs == 48 and config.draft_tokens == 3 and config.draft_params > 0


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"LLMCTL_EMULATED_GPU": "TPU-v5"}, "unknown GPU type"),
        ({"LLMCTL_EMULATOR_TIME_SCALE": "fast"}, "finite number >= 0"),
        ({"LLMCTL_EMULATOR_TIME_SCALE": "-1"}, "finite number >= 0"),
    ],
)
def test_bad_environment_is_a_config_error(env: dict[str, str], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        parse_config("vllm", ["meta-llama/Llama-3.1-8B-Instruct"], env)


def test_environment_and_engine_defaults() -> None:
    vllm = parse_config("vllm", ["meta-llama/Llama-3.1-8B-Instruct", "--max-model-len", "32K"], {})
    assert (vllm.gpu, vllm.time_scale, vllm.port, vllm.max_model_len, vllm.memory_fraction) == (
        "H100-SXM",
        1.0,
        8000,
        32768,
        0.92,
    )
    sglang = parse_config("sglang", ["--model-path", "Qwen/Qwen3-8B"], {"LLMCTL_EMULATED_GPU": "h200"})
    assert (sglang.gpu, sglang.host, sglang.port, sglang.metrics) == ("H200", "127.0.0.1", 30000, False)


def test_a_cpu_device_takes_vllms_cpu_scheduler_defaults() -> None:
    # vLLM's API server on the CPU platform defaults to 2048 batched tokens and 128 sequences, not the GPU's.
    cpu = parse_config("vllm", ["Qwen/Qwen3-8B"], {"LLMCTL_EMULATED_GPU": "CPU-x86-AVX512-16c"})
    assert (cpu.max_batched_tokens, cpu.max_seqs) == (2048, 128)
    given = parse_config(
        "vllm",
        ["Qwen/Qwen3-8B", "--max-num-batched-tokens", "4096"],
        {"LLMCTL_EMULATED_GPU": "CPU-x86-AVX512-16c"},
    )
    assert given.max_batched_tokens == 4096


def test_a_calibrated_profile_file_times_the_steps(tmp_path: Path) -> None:
    path = tmp_path / "profile.yaml"
    path.write_text(
        "profile: vllm/Qwen/Qwen3-8B/CPU-x86-AVX512-16c/bf16/tp1\n"
        "factors: {compute_efficiency: 0.03, overhead_s: 0.009}\n",
        encoding="utf-8",
    )
    env = {"LLMCTL_EMULATED_GPU": "CPU-x86-AVX512-16c", "LLMCTL_EMULATOR_PROFILE": str(path)}
    replica = prepare(parse_config("vllm", ["Qwen/Qwen3-8B"], env))
    assert (replica.profile.factors.compute_efficiency, replica.profile.factors.overhead_s) == (0.03, 0.009)
    plain = prepare(parse_config("vllm", ["Qwen/Qwen3-8B"], {"LLMCTL_EMULATED_GPU": "CPU-x86-AVX512-16c"}))
    assert plain.profile.factors.compute_efficiency != 0.03
    with pytest.raises(ConfigError, match="LLMCTL_EMULATOR_PROFILE"):
        parse_config("vllm", ["Qwen/Qwen3-8B"], {"LLMCTL_EMULATOR_PROFILE": str(tmp_path / "missing.yaml")})
