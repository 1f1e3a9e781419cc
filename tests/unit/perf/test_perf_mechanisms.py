"""Mechanisms issue #16 added to the step model: the fixed cost split into CPU work and per-layer kernels,
MoE kernel efficiency, the engines' own all-reduce, per-TP bus bandwidth and older engine releases."""

from __future__ import annotations

import pytest

from llmctl.bench.fidelity_data import load_published
from llmctl.catalog.gpus import get_gpu
from llmctl.perf.comm import allreduce_time, engine_allreduce_latency
from llmctl.perf.factors import release_overrides
from llmctl.perf.fidelity import _offline_batch, engine_release, point_profile, predict
from llmctl.perf.profile import make_profile
from llmctl.perf.step_time import StepBatch, step_model

MIXTRAL = "mistralai/Mixtral-8x7B-Instruct-v0.1"


def test_cpu_step_is_the_fixed_cpu_cost_plus_per_sequence_work() -> None:
    """Vidur's CPU profile (0.84 ms + 42 us per sequence) is what the CPU part predicts; the fixed GPU
    kernels of a step are no longer counted as CPU time."""
    rows = [p for p in load_published() if p.metric == "cpu_step_ms"]
    assert len(rows) == 2
    for p in rows:
        assert predict(p) == pytest.approx(p.value, rel=0.05), p.id


def test_fixed_step_cost_grows_with_the_layers() -> None:
    small = make_profile("vllm", "meta-llama/Llama-3.1-8B-Instruct", "H100-SXM", tp=8)
    big = make_profile("vllm", "meta-llama/Llama-3.1-70B-Instruct", "H100-SXM", tp=8)
    f = small.factors
    one = StepBatch(1, 512)
    extra = step_model(big).breakdown(one).overhead_s - step_model(small).breakdown(one).overhead_s
    assert extra == pytest.approx((80 - 32) * f.layer_overhead_s, abs=1e-9)
    # An 8B model keeps about the 1.5 ms fixed step it had before the split (1.37 ms).
    assert f.overhead_s + 32 * f.layer_overhead_s == pytest.approx(1.5e-3, rel=0.1)


def test_moe_experts_stream_at_the_fused_kernels_efficiency() -> None:
    fused = make_profile("vllm", MIXTRAL, "H100-SXM", tp=2)
    ideal = make_profile(
        "vllm",
        MIXTRAL,
        "H100-SXM",
        tp=2,
        factor_overrides={"moe_hbm_efficiency": 1.0, "moe_compute_efficiency": 1.0},
    )
    mf, mi = step_model(fused), step_model(ideal)
    batch = StepBatch(64, 64 * 512)
    assert mf.weight_bytes_read(64) == mi.weight_bytes_read(64)  # same bytes, read more slowly
    dense = mi.weight_bytes_read(0)
    experts = mi.weight_bytes_read(64) - dense
    slower = mf.breakdown(batch).memory_s - mi.breakdown(batch).memory_s
    rate = fused.gpu.hbm_bandwidth * fused.factors.hbm_efficiency
    assert slower == pytest.approx(experts * (1 / fused.factors.moe_hbm_efficiency - 1) / rate, rel=1e-9)
    prefill = StepBatch(prefill_tokens=8192, prefill_seqs=8, prefill_attention_pairs=0.0)
    assert mf.breakdown(prefill).compute_s > mi.breakdown(prefill).compute_s


def test_engines_all_reduce_with_their_own_kernel_on_nvlink_only() -> None:
    h100 = make_profile("vllm", "meta-llama/Llama-3.1-70B-Instruct", "H100-SXM", tp=8)
    f = h100.factors
    assert engine_allreduce_latency(h100.gpu, 8, f) == pytest.approx(f.custom_allreduce_latency_s)
    assert engine_allreduce_latency(h100.gpu, 2, f) == pytest.approx(7e-6)  # NCCL is faster at TP 2
    nccl = h100.factors.with_overrides({"custom_allreduce_latency_s": 0.0})
    assert engine_allreduce_latency(h100.gpu, 8, nccl) == pytest.approx(37.5e-6)
    pcie = make_profile("vllm", "meta-llama/Llama-3.1-8B-Instruct", "L40S", tp=4)
    assert pcie.factors.custom_allreduce_latency_s == 0.0


def test_bus_bandwidth_is_the_measured_one_for_each_tp_degree() -> None:
    """Vidur h100_dgx: 128 MiB all-reduces take 245 / 318 / 322 us at TP 2 / 4 / 8."""
    gpu = get_gpu("H100-SXM")
    f = make_profile("vllm", "meta-llama/Llama-3.1-8B-Instruct", "H100-SXM", tp=8).factors
    for tp, measured in ((2, 245e-6), (4, 318e-6), (8, 322e-6)):
        assert allreduce_time(gpu, tp, 128 * 2**20, f) == pytest.approx(measured, rel=0.02), tp


@pytest.mark.parametrize(
    ("text", "version", "month"),
    [
        ("sglang 0.3.0", (0, 3, 0), None),
        ("vllm/vllm-openai:v0.8.5", (0, 8, 5), None),
        ("vLLM main (2024-01, fused MoE PR)", None, (2024, 1)),
        ("SGLang docs (2025)", None, (2025, 1)),
        ("vLLM 0.2-0.3 era (vidur profiler, early 2024)", None, (2024, 1)),
    ],
)
def test_engine_release_is_read_from_the_row(
    text: str, version: tuple[int, ...] | None, month: tuple[int, int] | None
) -> None:
    assert engine_release(text) == (version, month)


def test_older_releases_run_without_later_features() -> None:
    assert release_overrides("vllm", month=(2024, 1)) == {"custom_allreduce_latency_s": 0.0}
    assert release_overrides("vllm", version=(0, 3, 0)) == {}
    assert release_overrides("vllm") == {}
    old_sglang = release_overrides("sglang", version=(0, 3, 0))
    vllm = make_profile("vllm", "meta-llama/Llama-3.1-8B-Instruct", "H100-SXM").factors
    assert old_sglang == {"overhead_s": vllm.overhead_s}
    assert release_overrides("sglang", month=(2025, 3)) == {}
    # The published rows get them: the Jan-2024 Mixtral rows predate vLLM's custom all-reduce.
    mixtral = next(p for p in load_published() if p.id == "vllm2542-mixtral-h100-tp8-bs1")
    assert point_profile(mixtral).factors.custom_allreduce_latency_s == 0.0
    assert (
        point_profile(mixtral, {"custom_allreduce_latency_s": 1e-5}).factors.custom_allreduce_latency_s
        == 1e-5
    )


def test_a_batch_of_prompts_prefills_as_separate_causal_sequences() -> None:
    """benchmark_latency prefills `batch` prompts in one step: their attention is batch x L(L+1)/2 pairs,
    not the (batch L)^2 / 2 of one long sequence."""
    bs64 = next(p for p in load_published() if p.id == "vllm3240-mixtral-a100-tp2-bs64")
    model = step_model(point_profile(bs64))
    prompt, out, batch = bs64.input_len or 0, bs64.output_len or 0, bs64.batch or 0
    decode = sum(model.decode(batch, batch * (prompt + i)) for i in range(1, out))
    # Mixtral's 32768-token budget fits 32 prompts per step: two steps of 32 separate prompts.
    step = model.step(
        StepBatch(
            prefill_tokens=32 * prompt,
            prefill_seqs=32,
            prefill_attention_pairs=32 * prompt * (prompt + 1) / 2,
        )
    )
    assert predict(bs64) == pytest.approx(decode + 2 * step, rel=1e-9)
    one_chunk = model.step(StepBatch(prefill_tokens=32 * prompt, prefill_seqs=32))
    assert one_chunk > step


def test_offline_sglang_prefills_apart_from_decode_and_vllm_mixes_them() -> None:
    rows = {p.id: p for p in load_published()}
    for pid, mixed in (("sglang060-8b-a100-offline", False), ("vllm25915-qwen3-8b-bf16-v0.10.2", True)):
        p = rows[pid]
        model = step_model(point_profile(p))
        prompt, out = p.input_len or 0, p.output_len or 0
        batch = _offline_batch(point_profile(p), p, prompt + out // 2)
        ctx = batch * (prompt + out // 2)
        arriving = batch / out
        new = StepBatch(
            prefill_tokens=round(arriving * prompt),
            prefill_seqs=max(1, round(arriving)),
            prefill_attention_pairs=arriving * prompt * (prompt + 1) / 2,
        )
        together = model.step(
            StepBatch(
                batch,
                ctx,
                new.prefill_tokens,
                new.prefill_seqs,
                prefill_attention_pairs=new.prefill_attention_pairs,
            )
        )
        apart = model.step(StepBatch(batch, ctx)) + model.step(new)
        assert predict(p) == pytest.approx(batch / (together if mixed else apart), rel=1e-9), pid
        assert apart > together
