"""Profiles: names, catalog resolution, capacity via memory_fit, profile files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmctl.bench.profile_file import load_profile_file, resolve_named_profile, write_profile_file
from llmctl.errors import LlmctlError
from llmctl.perf.capacity import kv_capacity_tokens, max_batch, max_throughput, sweep
from llmctl.perf.memory import memory_fit
from llmctl.perf.profile import Profile, make_profile, parse_profile_name, resolve_profile


def test_profile_name_round_trips() -> None:
    name = "vllm/meta-llama/Llama-3.1-8B-Instruct/H100-SXM/fp8/tp2"
    assert parse_profile_name(name) == ("vllm", "meta-llama/Llama-3.1-8B-Instruct", "H100-SXM", "fp8", 2)
    p = resolve_profile(name)
    assert p.name == name and p.tp == 2 and p.dtype == "fp8" and p.memory_fraction == 0.90
    assert resolve_profile("sglang/qwen3-8b/H100/bf16/tp1").name == "sglang/Qwen/Qwen3-8B/H100-SXM/bf16/tp1"


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("vllm/llama", "expected engine/model/gpu/dtype/tpN"),
        ("tgi/mistral-7b/H100-SXM/bf16/tp1", "unknown engine"),
        ("vllm/no-such-model/H100-SXM/bf16/tp1", "unknown model"),
        ("vllm/mistral-7b/H100-SXM/int4/tp1", "unknown dtype"),
        ("vllm/mistral-7b/H100-SXM/bf16/tp3", "power of two"),
        ("vllm/mistral-7b/TPU/bf16/tp1", "unknown GPU"),
    ],
)
def test_bad_profiles_say_why(name: str, problem: str) -> None:
    with pytest.raises(LlmctlError, match=problem):
        resolve_profile(name)


def test_kv_capacity_is_memory_fit(llama8b: Profile) -> None:
    expected = memory_fit(
        llama8b.model, llama8b.gpu, tp=1, weight_dtype="bf16", kv_dtype="bf16", memory_fraction=0.9
    ).kv_capacity_tokens
    assert kv_capacity_tokens(llama8b) == expected > 100_000
    assert max_batch(llama8b, 1000) == expected // 1000
    assert max_batch(llama8b, 1000, max_seqs=64) == 64


def test_max_throughput_is_at_the_largest_batch_that_fits(llama8b: Profile) -> None:
    best = max_throughput(llama8b, 1024)
    assert best is not None and best.batch == kv_capacity_tokens(llama8b) // 1024
    fitting = [p for p in sweep(llama8b, 1024) if p.fits]
    assert all(p.tokens_per_s < best.tokens_per_s for p in fitting)
    too_big = make_profile("vllm", "meta-llama/Llama-3.1-70B-Instruct", "L4", "bf16", 1)
    assert max_throughput(too_big, 1024) is None


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_profile_file_round_trip(tmp_path: Path, llama8b: Profile, suffix: str) -> None:
    tuned = llama8b.with_factors(llama8b.factors.with_overrides({"hbm_efficiency": 0.77, "overhead_s": 2e-3}))
    path = tmp_path / f"profile{suffix}"
    write_profile_file(path, tuned)
    assert load_profile_file(path) == tuned


def test_profile_file_without_keys_uses_the_base(tmp_path: Path, llama8b: Profile) -> None:
    path = tmp_path / "factors.yaml"
    path.write_text("factors:\n  compute_efficiency: 0.5\n")
    loaded = load_profile_file(path, base=llama8b)
    assert loaded.name == llama8b.name and loaded.factors.compute_efficiency == 0.5
    with pytest.raises(LlmctlError, match="missing 'profile'"):
        load_profile_file(path)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"profile": "vllm/mistral-7b/H100-SXM/bf16/tp1", "factors": {"warp": 1}}', "factors.warp: unknown"),
        (
            '{"profile": "vllm/mistral-7b/H100-SXM/bf16/tp1", "factors": {"hbm_efficiency": 3}}',
            "physical range",
        ),
        (
            '{"profile": "vllm/mistral-7b/H100-SXM/bf16/tp1", "factors": {"overhead_s": "x"}}',
            "expected a number",
        ),
        ('{"profile": "vllm/nope/H100-SXM/bf16/tp1"}', "unknown model"),
        ("[1, 2", "invalid JSON"),
        ('{"profile": "vllm/mistral-7b/H100-SXM/bf16/tp1", "factor": {}}', "unknown key"),
    ],
)
def test_bad_profile_files_name_the_file(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(LlmctlError, match=problem) as info:
        load_profile_file(path)
    assert str(path) in str(info.value)
    json.dumps(str(info.value))


def test_profile_file_of_a_local_model_directory(tmp_path: Path) -> None:
    # Calibrating a model served from a directory names the profile by its path, which the catalog does not
    # know: loading the file reads the model from that directory's config.json.
    model = tmp_path / "small"
    model.mkdir()
    config = {
        "num_hidden_layers": 4, "hidden_size": 256, "num_attention_heads": 4, "num_key_value_heads": 2,
        "head_dim": 64, "intermediate_size": 512, "vocab_size": 512, "max_position_embeddings": 2048,
    }  # fmt: skip
    (model / "config.json").write_text(json.dumps(config), encoding="utf-8")
    profile = resolve_named_profile(f"vllm/{model}/CPU-x86-AVX512-2c/bf16/tp1")
    tuned = profile.with_factors(profile.factors.with_overrides({"compute_efficiency": 0.03}))
    path = tmp_path / "profile.yaml"
    write_profile_file(path, tuned)
    loaded = load_profile_file(path)
    assert loaded.name == tuned.name and loaded.model.num_layers == 4
    assert loaded.factors == tuned.factors
