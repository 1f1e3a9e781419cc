"""GPU memory budget of one replica: weights, KV cache and overheads per tensor-parallel rank.

This is the one place that says how many KV-cache tokens fit; the planner's memory fit, the emulated engine's
KV limit and the simulator's preemption all call `memory_fit`.

On a CPU host (vLLM's CPU backend) the KV cache is not a share of the device: it is an explicit size in
whole GiB (VLLM_CPU_KVCACHE_SPACE), what is left of host memory after headroom for the OS and the API server,
the weights, the activations and the engine's own overhead (`cpu_kv_cache_bytes`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from llmctl.catalog.gpus import GPU, GiB
from llmctl.catalog.models import Model

Dtype = Literal["bf16", "fp8"]
DTYPE_BYTES: dict[str, float] = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0}

# Memory the engine needs outside weights and KV, per rank. Sources: vLLM's start-up log reports
# "non_torch_memory" (CUDA context, NCCL buffers) of about 0.5-1.5 GiB and CUDA-graph memory of 0.3-1 GiB on
# H100 (vLLM docs, "Memory profiling"); SGLang reserves a similar amount outside --mem-fraction-static.
FIXED_OVERHEAD_BYTES = 1.5 * GiB
# Peak activation memory of the profiling forward pass scales with the tokens of one step: hidden states,
# the gated-MLP intermediate (gate+up) and attention workspace, in bf16.
ACTIVATION_BYTES_PER_TOKEN_FACTOR = 2.0
# Host memory a CPU replica leaves to everything else: the OS and page cache, the API server process (it
# tokenises and detokenises, ~0.5-1 GiB RSS), sshd, the controller's probes. 2 GiB covers that on a small
# VM; on large hosts a fixed amount is too little, because other processes and the kernel's own structures
# grow with the machine, and the engine fails at start-up when the node's free memory falls short. So keep
# 2 GiB or 10% of host memory, whichever is larger.
CPU_HEADROOM_MIN_BYTES = 2 * GiB
CPU_HEADROOM_FRACTION = 0.10


def cpu_headroom_bytes(host_memory: float) -> float:
    """Host memory a CPU replica must leave free (OS, API server, page cache)."""
    return max(CPU_HEADROOM_MIN_BYTES, CPU_HEADROOM_FRACTION * host_memory)


def cpu_kv_cache_bytes(host_memory: float, needed_without_kv: float) -> int:
    """The KV cache a CPU replica can have, in bytes of whole GiB (VLLM_CPU_KVCACHE_SPACE is an integer
    number of GiB): host memory less the headroom and what the engine needs besides KV, rounded down;
    0 when not even 1 GiB is left."""
    free = host_memory - cpu_headroom_bytes(host_memory) - needed_without_kv
    return int(free // GiB) * GiB if free >= GiB else 0


@dataclass(frozen=True)
class MemoryFit:
    """Per-rank memory budget (bytes) and the KV-cache capacity it leaves, in tokens for the whole replica."""

    gpu_memory: float
    budget: float  # gpu_memory * memory_fraction
    weights: float  # per rank, draft model included
    activations: float
    overhead: float
    kv_bytes_per_token: float  # per rank
    kv_capacity_tokens: int  # tokens of KV cache the replica holds (every rank holds its share of each token)

    @property
    def kv_bytes(self) -> float:
        return max(0.0, self.budget - self.weights - self.activations - self.overhead)

    @property
    def fits(self) -> bool:
        return self.kv_capacity_tokens > 0

    @property
    def needed_without_kv(self) -> float:
        return self.weights + self.activations + self.overhead


def weight_bytes(model: Model, dtype: str) -> float:
    """Bytes of all weights of the model at this dtype (FP8 quantises every weight: exactly half of BF16).

    A pre-quantised checkpoint is loaded as it is: its own size, whatever `dtype` the compute runs in. A known
    checkpoint size (the safetensors index) scales from its dtype to the serving dtype."""
    if model.quantization is not None and model.checkpoint_bytes is not None:
        return model.checkpoint_bytes
    if model.checkpoint_bytes is not None:
        return model.checkpoint_bytes * DTYPE_BYTES[dtype] / model.checkpoint_dtype_bytes
    return model.num_params * DTYPE_BYTES[dtype]


def kv_heads_per_rank(model: Model, tp: int) -> float:
    # With more ranks than KV heads the engines replicate heads, so each rank still holds at least one.
    return max(1.0, model.num_kv_heads / tp)


def kv_bytes_per_token(model: Model, kv_dtype: str, tp: int, context: int | None = None) -> float:
    """KV-cache bytes one token occupies on each rank (keys and values, every layer).

    MLA (DeepSeek) caches one latent per layer, and engines replicate it on every TP rank. Sliding-window
    layers hold at most `sliding_window` tokens of a sequence: for sequences of `context` tokens they cost
    window/context of a full layer per token; without a context they are counted as full layers (safe side)."""
    if model.kv_latent_dim:
        per_layer = model.kv_latent_dim * DTYPE_BYTES[kv_dtype]
    else:
        per_layer = 2 * kv_heads_per_rank(model, tp) * model.head_dim * DTYPE_BYTES[kv_dtype]
    sliding = model.sliding_layers if model.sliding_window else 0
    share = min(1.0, model.sliding_window / context) if sliding and context else 1.0
    return per_layer * ((model.num_layers - sliding) + sliding * share)


def activation_bytes(model: Model, step_tokens: int, tp: int) -> float:
    per_token = (model.hidden_size + 2 * model.intermediate_size / tp) * DTYPE_BYTES["bf16"]
    return ACTIVATION_BYTES_PER_TOKEN_FACTOR * step_tokens * per_token


def memory_fit(
    model: Model,
    gpu: GPU,
    *,
    tp: int,
    weight_dtype: str,
    kv_dtype: str,
    memory_fraction: float,
    step_tokens: int = 8192,
    draft_params: float = 0.0,
    kv_cache_bytes: float | None = None,
    context: int | None = None,
) -> MemoryFit:
    """How the memory of one rank splits between weights, activations, overhead and KV cache.

    `kv_cache_bytes` fixes the KV cache's size instead of taking what `memory_fraction` leaves (vLLM's
    --kv-cache-memory-bytes, VLLM_CPU_KVCACHE_SPACE); on a CPU device it defaults to `cpu_kv_cache_bytes`
    and `memory_fraction` is not read. The budget is then exactly what the replica uses. `context` is the
    sequence length the KV capacity is counted for (it matters only to sliding-window layers)."""
    weights = (weight_bytes(model, weight_dtype) + draft_params * DTYPE_BYTES["bf16"]) / tp
    acts = activation_bytes(model, step_tokens, tp)
    per_token = kv_bytes_per_token(model, kv_dtype, tp, context)
    if kv_cache_bytes is None and gpu.is_cpu:
        kv_cache_bytes = cpu_kv_cache_bytes(gpu.memory_bytes, weights + acts + FIXED_OVERHEAD_BYTES)
    if kv_cache_bytes is not None:
        kv = max(0.0, float(kv_cache_bytes))
        budget = weights + acts + FIXED_OVERHEAD_BYTES + kv
        free = kv
    else:
        budget = gpu.memory_bytes * memory_fraction
        free = budget - weights - acts - FIXED_OVERHEAD_BYTES
    capacity = int(free // per_token) if free > 0 else 0
    return MemoryFit(
        gpu_memory=float(gpu.memory_bytes),
        budget=budget,
        weights=weights,
        activations=acts,
        overhead=FIXED_OVERHEAD_BYTES,
        kv_bytes_per_token=per_token,
        kv_capacity_tokens=capacity,
    )
