"""Playbook overrides: mapping -> argv tokens, and merging into a generated argv without duplicates."""

from __future__ import annotations

import json

import pytest

from llmctl.engines.flagspec import apply_overrides, merge_argv, overrides_to_argv
from llmctl.engines.snapshots import load_flagspec

VLLM = load_flagspec("vllm")
SGLANG = load_flagspec("sglang")


def test_overrides_to_argv_value_kinds() -> None:
    argv = overrides_to_argv(
        {
            "--max-num-seqs": 512,
            "--gpu-memory-utilization": 0.9,
            "--enable-prefix-caching": True,
            "--enforce-eager": False,
            "--cudagraph-capture-sizes": [1, 2, 4],
            "--speculative-config": {"method": "eagle3", "num_speculative_tokens": 3},
            "--served-model-name": "chat",
            "--api-key": None,
        }
    )
    assert argv == [
        "--max-num-seqs", "512",
        "--gpu-memory-utilization", "0.9",
        "--enable-prefix-caching",
        "--cudagraph-capture-sizes", "1", "2", "4",
        "--speculative-config", '{"method":"eagle3","num_speculative_tokens":3}',
        "--served-model-name", "chat",
    ]  # fmt: skip
    assert VLLM.validate(["m", *argv]) == []


def test_false_uses_the_engines_negation_when_given_a_spec() -> None:
    assert overrides_to_argv({"--enforce-eager": False}, VLLM) == ["--no-enforce-eager"]
    assert overrides_to_argv({"--enable-prefix-caching": False}, VLLM) == ["--disable-prefix-caching"]
    assert overrides_to_argv({"--disable-prefix-caching": False}, VLLM) == ["--enable-prefix-caching"]
    assert overrides_to_argv({"--enable-metrics": False}, SGLANG) == []  # SGLang: store_true only
    assert overrides_to_argv({"--enable-tf32-matmul": False}, SGLANG) == ["--no-enable-tf32-matmul"]


def test_overrides_refuse_non_flags_and_odd_values() -> None:
    with pytest.raises(ValueError, match="not a flag"):
        overrides_to_argv({"max-num-seqs": 4})
    with pytest.raises(ValueError, match="cannot pass"):
        overrides_to_argv({"--x": {"a": object()}})


def test_merge_replaces_in_place_matching_aliases() -> None:
    base = ["m", "-tp", "2", "--max-num-seqs", "256", "--port", "8000"]
    merged = merge_argv(VLLM, base, ["--tensor-parallel-size", "4", "--enforce-eager"])
    assert merged == [
        "m",
        "--tensor-parallel-size",
        "4",
        "--max-num-seqs",
        "256",
        "--port",
        "8000",
        "--enforce-eager",
    ]


def test_merge_switch_pairs_share_a_dest() -> None:
    merged = merge_argv(VLLM, ["m", "--enable-prefix-caching"], ["--disable-prefix-caching"])
    assert merged == ["m", "--disable-prefix-caching"]


def test_merge_drops_every_base_duplicate_and_handles_equals_form() -> None:
    merged = merge_argv(SGLANG, ["--model-path", "m", "--tp-size=2", "--tp-size", "8"], ["--tp-size", "4"])
    assert merged == ["--model-path", "m", "--tp-size", "4"]


def test_merge_lists_and_append_actions() -> None:
    base = ["m", "--cudagraph-capture-sizes", "1", "2", "--middleware", "a", "--middleware", "b"]
    merged = merge_argv(VLLM, base, ["--middleware", "c", "--cudagraph-capture-sizes", "8"])
    assert merged == ["m", "--cudagraph-capture-sizes", "8", "--middleware", "c"]


def test_merge_folds_dotted_keys_into_existing_json() -> None:
    spec_json = '{"method":"eagle3","model":"draft","num_speculative_tokens":3}'
    merged = merge_argv(
        VLLM, ["m", "--speculative-config", spec_json], ["--speculative-config.num_speculative_tokens", "5"]
    )
    assert merged[:2] == ["m", "--speculative-config"]
    assert json.loads(merged[2]) == {"method": "eagle3", "model": "draft", "num_speculative_tokens": 5}
    assert len(merged) == 3
    assert VLLM.validate(merged) == []


def test_merge_whole_json_replaces_dotted_keys() -> None:
    base = ["m", "--speculative-config.method", "eagle3", "--speculative-config.model", "d"]
    merged = merge_argv(VLLM, base, ["--speculative-config", '{"method":"ngram"}'])
    assert merged == ["m", "--speculative-config", '{"method":"ngram"}']


def test_merge_positional_model_and_unknown_flags() -> None:
    assert merge_argv(VLLM, ["a", "--port", "1"], ["b"]) == ["b", "--port", "1"]
    assert merge_argv(VLLM, ["a", "--future-flag", "x"], ["--future-flag", "y"]) == [
        "a",
        "--future-flag",
        "y",
    ]


def test_apply_overrides_false_removes_switch_without_negation() -> None:
    base = ["--model-path", "m", "--enable-metrics", "--tp-size", "2"]
    merged = apply_overrides(SGLANG, base, {"--enable-metrics": False, "--tp-size": 4, "--host": "0.0.0.0"})
    assert merged == ["--model-path", "m", "--tp-size", "4", "--host", "0.0.0.0"]
    merged = apply_overrides(VLLM, ["m", "--enforce-eager"], {"--enforce-eager": False})
    assert merged == ["m", "--no-enforce-eager"]
