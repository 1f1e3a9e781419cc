"""`llmctl plan` on models from the Hub (a seeded cache, no network): the 405B, a 235B MoE and gpt-oss-120b on
an 8x H100 host, at TP 8: a plan, or a does-not-fit reason that says what would fit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llmctl.errors import ConfigError, PlanError
from llmctl.planning import plan_files

H100 = "hosts:\n  a: {address: 10.0.0.1, gpus: {type: H100-SXM, count: 8}}\n"


def _files(tmp_path: Path, model: str, serving: str = "tensor_parallel: 8") -> tuple[Path, Path]:
    pb, inv = tmp_path / "pb.yaml", tmp_path / "inv.yaml"
    pb.write_text(
        f"deployments:\n  - name: big\n    model: {model}\n    workload: online\n    engine: vllm\n"
        f"    serving: {{{serving}}}\n"
    )
    inv.write_text(H100)
    return pb, inv


def _decision(plan: Any, what: str) -> str:
    return next(f"{d.choice}: {d.reason}" for d in plan.replicas[0].shape.decisions if d.what == what)


def test_405b_plans_at_tp8_in_fp8(seed_hub: Any, tmp_path: Path) -> None:
    seed_hub("meta-llama/Llama-3.1-405B-Instruct", "meta-llama__Meta-Llama-3.1-405B")
    plan = plan_files(*_files(tmp_path, "meta-llama/Llama-3.1-405B-Instruct"))
    shape = plan.replicas[0].shape
    assert (shape.tp, shape.quantization) == (8, "fp8")  # 811 GB of bf16 cannot fit 8 x 80 GB; FP8 does
    assert "--quantization" in plan.replicas[0].argv
    assert shape.weights_gib_per_gpu == pytest.approx(405.85e9 / 8 / 2**30, rel=0.02)


def test_405b_in_bf16_does_not_fit_and_says_so(seed_hub: Any, tmp_path: Path) -> None:
    seed_hub("meta-llama/Llama-3.1-405B-Instruct", "meta-llama__Meta-Llama-3.1-405B")
    with pytest.raises(PlanError) as info:
        plan_files(
            *_files(tmp_path, "meta-llama/Llama-3.1-405B-Instruct", "tensor_parallel: 8, quantization: none")
        )
    text = str(info.value)
    assert "does not fit on H100-SXM" in text and "best try: TP 8, bf16 weights" in text
    assert "quantization: fp8" in text  # what would fit


def test_qwen3_235b_moe_plans_at_tp8(seed_hub: Any, tmp_path: Path) -> None:
    seed_hub("Qwen/Qwen3-235B-A22B", "Qwen__Qwen3-235B-A22B")
    plan = plan_files(*_files(tmp_path, "Qwen/Qwen3-235B-A22B"))
    shape = plan.replicas[0].shape
    assert shape.tp == 8 and shape.model_spec.is_moe and shape.est_tokens_per_s > 0


def test_pre_quantised_fp8_checkpoint_gets_no_quantization_flag(seed_hub: Any, tmp_path: Path) -> None:
    seed_hub("Qwen/Qwen3-235B-A22B-FP8", "Qwen__Qwen3-235B-A22B-FP8", total_size=236_000_000_000)
    plan = plan_files(*_files(tmp_path, "Qwen/Qwen3-235B-A22B-FP8"))
    replica = plan.replicas[0]
    assert replica.shape.quantization == "none" and "--quantization" not in replica.argv
    assert replica.shape.weights_gib_per_gpu == pytest.approx(236e9 / 8 / 2**30)
    assert "pre-quantised checkpoint" in _decision(plan, "weights")


def test_gpt_oss_120b_plans_at_tp8_from_its_mxfp4_checkpoint(seed_hub: Any, tmp_path: Path) -> None:
    seed_hub("openai/gpt-oss-120b", "openai__gpt-oss-120b")
    plan = plan_files(*_files(tmp_path, "openai/gpt-oss-120b"))
    replica = plan.replicas[0]
    assert replica.shape.tp == 8 and "--quantization" not in replica.argv
    assert "mxfp4" in _decision(plan, "weights")
    assert replica.shape.weights_gib_per_gpu == pytest.approx(60.8 / 8, rel=0.02)


def test_fp8_asked_of_a_pre_quantised_checkpoint_is_refused(seed_hub: Any, tmp_path: Path) -> None:
    seed_hub("openai/gpt-oss-120b", "openai__gpt-oss-120b")
    with pytest.raises(ConfigError, match="pre-quantised mxfp4 checkpoint") as info:
        plan_files(*_files(tmp_path, "openai/gpt-oss-120b", "tensor_parallel: 8, quantization: fp8"))
    assert info.value.line == 6 and info.value.field == "deployments[0].serving.quantization"
