"""Tensor-parallel communication per link (issue #16): measured NCCL latency and bus bandwidth."""

from __future__ import annotations

import pytest

from llmctl.catalog.gpus import get_gpu, gpu_link
from llmctl.perf.comm import allreduce_latency, allreduce_time
from llmctl.perf.profile import make_profile


def test_links_follow_the_gpu_generation() -> None:
    assert gpu_link(get_gpu("H100-SXM")).name == "nvlink4-nvswitch"
    assert gpu_link(get_gpu("A100-80GB")).name == "nvlink3-nvswitch"
    assert gpu_link(get_gpu("L40S")).name == "pcie4"
    assert gpu_link(get_gpu("H100-PCIe")).name == "pcie5"


def test_default_factors_take_the_links_latency() -> None:
    h100 = make_profile("vllm", "meta-llama/Llama-3.1-8B-Instruct", "H100-SXM", tp=2)
    a100 = make_profile("vllm", "meta-llama/Llama-3.1-8B-Instruct", "A100-80GB", tp=2)
    assert h100.factors.allreduce_latency_s == pytest.approx(37.5e-6)
    assert a100.factors.allreduce_latency_s == pytest.approx(61.5e-6)
    # Two ranks pay the measured TP-2 share; a calibrated latency scales it.
    assert allreduce_latency(h100.gpu, 2, h100.factors) == pytest.approx(7e-6)
    assert allreduce_latency(h100.gpu, 8, h100.factors) == pytest.approx(37.5e-6)


def test_large_messages_are_bandwidth_bound_and_scale_with_tp() -> None:
    p = make_profile("vllm", "meta-llama/Llama-3.1-8B-Instruct", "H100-SXM", tp=8)
    big = 128 * 2**20
    t2, t8 = (allreduce_time(p.gpu, tp, big, p.factors) for tp in (2, 8))
    assert t8 > t2  # 2 (tp-1)/tp of the message crosses every link
    assert allreduce_time(p.gpu, 1, big, p.factors) == 0.0
    # comm_efficiency > 1 is allowed now that it scales a measured bus bandwidth.
    fast = make_profile(
        "vllm",
        "meta-llama/Llama-3.1-8B-Instruct",
        "H100-SXM",
        tp=8,
        factor_overrides={"comm_efficiency": 1.5},
    )
    assert allreduce_time(fast.gpu, 8, big, fast.factors) < t8


def test_fp8_pays_for_activation_quantisation_only_with_fp8_tensor_cores() -> None:
    from llmctl.perf.step_time import StepBatch, step_model

    def overhead(gpu: str, dtype: str) -> float:
        p = make_profile("vllm", "meta-llama/Llama-3.1-8B-Instruct", gpu, dtype)
        return step_model(p).breakdown(StepBatch(1, 512)).overhead_s

    assert overhead("H100-SXM", "fp8") > overhead("H100-SXM", "bf16")
    assert overhead("A100-80GB", "fp8") == pytest.approx(overhead("A100-80GB", "bf16"))


def test_kv_reads_are_costed_at_the_kv_dtype() -> None:
    from llmctl.perf.step_time import StepBatch, step_model

    bf16 = make_profile("vllm", "meta-llama/Llama-3.1-8B-Instruct", "H100-SXM", "fp8", kv_dtype="bf16")
    fp8 = make_profile("vllm", "meta-llama/Llama-3.1-8B-Instruct", "H100-SXM", "fp8", kv_dtype="fp8")
    long = StepBatch(64, 64 * 8192)
    assert step_model(fp8).breakdown(long).memory_s < 0.75 * step_model(bf16).breakdown(long).memory_s


def test_request_latency_is_outside_the_step() -> None:
    from llmctl.perf.step_time import step_model

    p = make_profile("sglang", "meta-llama/Llama-3.1-8B-Instruct", "H100-SXM")
    late = make_profile(
        "sglang", "meta-llama/Llama-3.1-8B-Instruct", "H100-SXM", factor_overrides={"request_latency_s": 0.5}
    )
    assert p.factors.request_latency_s > 0
    assert step_model(late).decode(8, 8 * 1024) == step_model(p).decode(8, 8 * 1024)
