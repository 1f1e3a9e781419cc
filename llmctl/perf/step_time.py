"""Time of one continuous-batching engine iteration, from first principles.

Per tensor-parallel rank, a step streams the weights (only the experts the batch touches, for MoE), reads
the KV cache of every running sequence and moves activations through HBM; it does the linear-layer and
attention FLOPs on the tensor cores; with TP > 1 it all-reduces the hidden states twice per layer; and it
pays a fixed per-iteration overhead. The roofline combines memory and compute time smoothly and never
below their maximum; communication and overhead are added because engines do not overlap them.

Two kinds of caller: the emulated engine asks for one iteration given its sequences (`iteration_time`);
the simulator evaluates millions of steps and wants O(1) calls on aggregates with no allocation
(`StepModel.decode`, `decode_step_time`). `step_model(profile)` builds the constants once per profile.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from llmctl.perf.comm import allreduce_bus_bandwidth, engine_allreduce_latency
from llmctl.perf.memory import DTYPE_BYTES, kv_bytes_per_token, weight_bytes
from llmctl.perf.profile import Profile

# Bytes of activations each token moves through HBM per layer, in units of (hidden + intermediate/tp)
# bf16 elements: residual stream, QKV, attention output and gated-MLP intermediate read and written once
# each by fused kernels. A modelling estimate; it matters only in prefill, which is compute-bound anyway.
ACTIVATION_TRAFFIC_ELEMENTS = 4.0
# GEMMs of a decoder layer whose input a W8A8 FP8 model quantises: QKV, attention output, gate/up, down.
FP8_QUANTISED_GEMMS_PER_LAYER = 4


def smooth_max(a: float, b: float, p: float) -> float:
    """(a^p + b^p)^(1/p): never below max(a, b), at most 2^(1/p) above it (where a == b)."""
    hi = max(a, b)
    if hi <= 0.0:
        return 0.0
    return hi * float(((a / hi) ** p + (b / hi) ** p) ** (1.0 / p))


@dataclass(frozen=True)
class StepBatch:
    """What one engine iteration processes, as aggregates (cheap to build for any batch size).

    decode_seqs: sequences generating this step; decode_context_tokens: sum of their context lengths.
    query_tokens: tokens per decode sequence this step (1 normally, k+1 when verifying k drafts).
    prefill_tokens: new prompt tokens (chunked prefill), prefill_seqs: how many sequences they belong to,
    prefill_context_tokens: KV already cached for those sequences (earlier chunks or prefix-cache hits).
    prefill_attention_pairs: query x key pairs of the prefill attention; None = one causal chunk.
    """

    decode_seqs: int = 0
    decode_context_tokens: int = 0
    prefill_tokens: int = 0
    prefill_seqs: int = 0
    prefill_context_tokens: int = 0
    query_tokens: int = 1
    prefill_attention_pairs: float | None = None

    @classmethod
    def from_sequences(
        cls, decode_contexts: Iterable[int], prefill_chunks: Iterable[tuple[int, int]] = ()
    ) -> StepBatch:
        """From per-sequence data: each decode context length, and (new_tokens, cached_tokens) per chunk."""
        contexts = list(decode_contexts)
        chunks = list(prefill_chunks)
        return cls(
            decode_seqs=len(contexts),
            decode_context_tokens=sum(contexts),
            prefill_tokens=sum(n for n, _ in chunks),
            prefill_seqs=len(chunks),
            prefill_context_tokens=sum(p for _, p in chunks),
            prefill_attention_pairs=sum(n * (p + (n + 1) / 2) for n, p in chunks),
        )


@dataclass(frozen=True)
class StepTime:
    """Breakdown of one step in seconds. total_s = roofline_s + comm_s + overhead_s."""

    memory_s: float
    compute_s: float
    roofline_s: float  # smooth max of memory_s and compute_s
    comm_s: float
    overhead_s: float

    @property
    def total_s(self) -> float:
        return self.roofline_s + self.comm_s + self.overhead_s

    @property
    def bound(self) -> str:
        return "memory" if self.memory_s >= self.compute_s else "compute"


class StepModel:
    """Per-profile constants of the step-time model; every method is O(1) float arithmetic."""

    __slots__ = (
        "_act_bytes_per_token",
        "_allreduce_bytes_per_token",
        "_attn_flops_per_pair",
        "_attn_rate",
        "_comm_latency",
        "_comm_rate",
        "_dense_weight_bytes",
        "_expert_bytes",
        "_expert_penalty",
        "_experts",
        "_experts_per_token",
        "_hbm_rate",
        "_kv_bytes_per_token",
        "_linear_flops",
        "_linear_rate",
        "_lm_head_flops",
        "_overhead",
        "_per_seq",
        "_sharpness",
        "profile",
    )

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        m, g, f, tp = profile.model, profile.gpu, profile.factors, profile.tp
        # Bytes per weight streamed: the serving dtype's, or a pre-quantised checkpoint's own (int4, MXFP4).
        wbytes = weight_bytes(m, profile.dtype) / m.num_params
        embed = float(m.vocab_size * m.hidden_size)
        # Catalog models have untied embeddings: the input table is only indexed (a few rows per step, no
        # FLOPs), while the LM head is a full GEMM, run only for tokens that are sampled.
        if m.is_moe:
            expert_total = (
                (m.num_params - m.params_per_token) * m.num_experts / (m.num_experts - m.experts_per_token)
            )
            shared = m.num_params - expert_total
            self._expert_bytes = expert_total / m.num_experts * wbytes / tp
            expert_flops = 2.0 * m.experts_per_token * expert_total / m.num_experts / tp
        else:
            shared = m.num_params
            self._expert_bytes = 0.0
            expert_flops = 0.0
        self._experts = float(m.num_experts)
        self._experts_per_token = float(m.experts_per_token)
        self._dense_weight_bytes = (shared - embed) * wbytes / tp
        self._kv_bytes_per_token = kv_bytes_per_token(m, profile.kv_dtype, tp)
        self._act_bytes_per_token = (
            ACTIVATION_TRAFFIC_ELEMENTS
            * (m.hidden_size + m.intermediate_size / tp)
            * DTYPE_BYTES["bf16"]
            * m.num_layers
        )
        # Fused MoE kernels stream the experts and run their GEMMs below the dense kernels' rates: the expert
        # FLOPs count 1/moe_compute_efficiency times here, the expert bytes 1/moe_hbm_efficiency times (below).
        self._linear_flops = 2.0 * (m.params_per_token - 2.0 * embed) / tp + expert_flops * (
            1.0 / f.moe_compute_efficiency - 1.0
        )
        self._expert_penalty = 1.0 / f.moe_hbm_efficiency - 1.0
        self._lm_head_flops = 2.0 * embed / tp
        # QK^T and PV: 2 FLOPs per multiply-add each, per head, per query/key pair.
        heads_per_rank = m.num_attention_heads / tp
        self._attn_flops_per_pair = 4.0 * m.num_layers * heads_per_rank * m.head_dim
        # Without FP8 tensor cores (A100) FP8 checkpoints run as weight-only FP8 (Marlin), compute in BF16.
        peak = g.fp8_flops if (profile.dtype == "fp8" and g.fp8_flops is not None) else g.bf16_flops
        self._linear_rate = peak * f.compute_efficiency
        self._attn_rate = g.bf16_flops * f.attention_efficiency
        self._hbm_rate = g.hbm_bandwidth * f.hbm_efficiency
        self._sharpness = f.roofline_sharpness
        if tp > 1:
            # Ring all-reduce moves 2(tp-1)/tp of the message per rank; two all-reduces per layer.
            self._comm_latency = 2.0 * m.num_layers * engine_allreduce_latency(g, tp, f)
            self._allreduce_bytes_per_token = (
                2.0 * m.num_layers * 2.0 * (tp - 1) / tp * m.hidden_size * DTYPE_BYTES["bf16"]
            )
            self._comm_rate = allreduce_bus_bandwidth(g, f, tp)
        else:
            self._comm_latency = 0.0
            self._allreduce_bytes_per_token = 0.0
            self._comm_rate = 1.0
        eager = 0.0 if profile.cuda_graphs else f.eager_overhead_per_layer_s * m.num_layers
        # W8A8 FP8 quantises each GEMM input per token first: 4 small kernels per decoder layer (weight-only
        # FP8 on GPUs without FP8 tensor cores computes in BF16 and skips them).
        quant = 0.0
        if profile.dtype == "fp8" and g.fp8_flops is not None:
            quant = FP8_QUANTISED_GEMMS_PER_LAYER * m.num_layers * f.fp8_quant_s
        # CPU fixed cost plus the small per-layer kernels (norms, rotary, activation) outside the roofline.
        self._overhead = f.overhead_s + eager + quant + f.layer_overhead_s * m.num_layers
        self._per_seq = f.per_seq_overhead_s

    # --- core -------------------------------------------------------------------------------------------
    def weight_bytes_read(self, tokens: float) -> float:
        """Weight bytes one rank streams for a step of `tokens` tokens (all of them for dense models)."""
        if self._expert_bytes == 0.0 or tokens <= 0:
            return self._dense_weight_bytes
        # Each token routes to k of E experts; the expected number of distinct experts hit is
        # E * (1 - (1 - k/E)^tokens), assuming uniform routing.
        distinct = self._experts * (1.0 - float((1.0 - self._experts_per_token / self._experts) ** tokens))
        return self._dense_weight_bytes + distinct * self._expert_bytes

    def _parts(
        self,
        decode_seqs: int,
        decode_ctx: float,
        q: int,
        prefill: int,
        prefill_seqs: int,
        prefill_ctx: float,
        pairs: float | None,
    ) -> tuple[float, float, float, float, float]:
        """(memory, compute, roofline, comm, overhead) seconds; plain floats so hot loops allocate nothing."""
        tokens = decode_seqs * q + prefill
        if tokens <= 0:
            return 0.0, 0.0, 0.0, 0.0, 0.0
        kv_bytes = (decode_ctx + prefill_ctx + tokens) * self._kv_bytes_per_token  # reads + new-token writes
        weights = self.weight_bytes_read(tokens)
        # Expert bytes cost 1/moe_hbm_efficiency as much time as dense ones: count the extra as bytes.
        weights += (weights - self._dense_weight_bytes) * self._expert_penalty
        mem_bytes = weights + kv_bytes + tokens * self._act_bytes_per_token
        memory_s = mem_bytes / self._hbm_rate
        if pairs is None:
            pairs = prefill * (prefill_ctx + (prefill + 1) / 2) if prefill else 0.0
        # Each of the q query tokens of a decode sequence attends to the whole context.
        pairs += decode_ctx * q
        sampled = decode_seqs * q + prefill_seqs
        compute_s = (self._linear_flops * tokens + self._lm_head_flops * sampled) / self._linear_rate
        compute_s += self._attn_flops_per_pair * pairs / self._attn_rate
        roofline_s = smooth_max(memory_s, compute_s, self._sharpness)
        comm_s = 0.0
        if self._comm_latency:
            comm_s = self._comm_latency + self._allreduce_bytes_per_token * tokens / self._comm_rate
        # Per-sequence CPU work (sampling, bookkeeping) is per sampled position: a verify step samples and
        # checks q positions of every decode sequence.
        overhead_s = self._overhead + self._per_seq * (decode_seqs * q + prefill_seqs)
        return memory_s, compute_s, roofline_s, comm_s, overhead_s

    def breakdown(self, b: StepBatch) -> StepTime:
        return StepTime(
            *self._parts(
                b.decode_seqs,
                b.decode_context_tokens,
                b.query_tokens,
                b.prefill_tokens,
                b.prefill_seqs,
                b.prefill_context_tokens,
                b.prefill_attention_pairs,
            )
        )

    def step(self, b: StepBatch) -> float:
        return self.breakdown(b).total_s

    # --- conveniences for hot loops ----------------------------------------------------------------------
    def decode(self, batch: int, total_context_tokens: int, query_tokens: int = 1) -> float:
        """Seconds for a pure decode step of `batch` sequences whose contexts sum to `total_context_tokens`."""
        _, _, roofline, comm, overhead = self._parts(batch, total_context_tokens, query_tokens, 0, 0, 0, None)
        return roofline + comm + overhead

    def prefill(self, tokens: int, cached_tokens: int = 0, seqs: int = 1) -> float:
        """Seconds for a prefill-only step of `tokens` new tokens over `cached_tokens` already in the KV cache."""
        _, _, roofline, comm, overhead = self._parts(0, 0, 1, tokens, seqs, cached_tokens, None)
        return roofline + comm + overhead

    def mixed(
        self,
        decode_seqs: int,
        decode_context_tokens: int,
        prefill_tokens: int,
        prefill_context_tokens: int = 0,
    ) -> float:
        """Seconds for a chunked-prefill step: decodes plus one prefill chunk."""
        parts = self._parts(
            decode_seqs,
            decode_context_tokens,
            1,
            prefill_tokens,
            1 if prefill_tokens else 0,
            prefill_context_tokens,
            None,
        )
        return parts[2] + parts[3] + parts[4]


def linear_layer_time(profile: Profile, tokens: int) -> float:
    """Seconds for one decoder layer's linear GEMMs (QKV, attention output, gated MLP) over `tokens` tokens on
    one rank: that layer's weights against HBM and its FLOPs on the tensor cores, through the same roofline as a
    step. What kernel profilers (Vidur's per-op GEMM timings) measure; no attention, no overhead."""
    m, g, f, tp = profile.model, profile.gpu, profile.factors, profile.tp
    attn = m.hidden_size * m.head_dim * (m.num_attention_heads + 2 * m.num_kv_heads)
    attn += m.num_attention_heads * m.head_dim * m.hidden_size
    params = (attn + 3 * m.hidden_size * m.intermediate_size) / tp
    memory_s = params * DTYPE_BYTES[profile.dtype] / (g.hbm_bandwidth * f.hbm_efficiency)
    peak = g.fp8_flops if (profile.dtype == "fp8" and g.fp8_flops is not None) else g.bf16_flops
    compute_s = 2.0 * params * tokens / (peak * f.compute_efficiency)
    return smooth_max(memory_s, compute_s, f.roofline_sharpness)


@lru_cache(maxsize=256)
def step_model(profile: Profile) -> StepModel:
    """The (cached) step model of a profile; profiles are frozen, so this is safe to share."""
    return StepModel(profile)


def step_time(profile: Profile, batch: StepBatch) -> StepTime:
    return step_model(profile).breakdown(batch)


def decode_step_time(profile: Profile, batch: int, total_context_tokens: int) -> float:
    """O(1): seconds for one decode step of `batch` sequences whose contexts sum to `total_context_tokens`."""
    return step_model(profile).decode(batch, total_context_tokens)


def prefill_step_time(profile: Profile, tokens: int, cached_tokens: int = 0) -> float:
    return step_model(profile).prefill(tokens, cached_tokens)


def iteration_time(
    profile: Profile, decode_contexts: Sequence[int], prefill_chunks: Sequence[tuple[int, int]] = ()
) -> float:
    """Seconds for one iteration given each decode sequence's context and (new, cached) per prefill chunk."""
    return step_model(profile).step(StepBatch.from_sequences(decode_contexts, prefill_chunks))
