"""Capacity of one replica: KV-cache tokens (via memory_fit), the largest batch they allow, and throughput.

KV capacity is not computed here: `llmctl.perf.memory.memory_fit` is the one function that says how many
tokens fit; this module only turns it into batch sizes and tokens per second.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmctl.perf.memory import MemoryFit, memory_fit
from llmctl.perf.profile import Profile
from llmctl.perf.speculative import SpecConfig, decode_throughput, per_token_time

# Batches `llmctl perf show` tabulates: powers of two up to vLLM's default CUDA-graph capture limit.
SWEEP_BATCHES: tuple[int, ...] = tuple(2**i for i in range(10))


def kv_fit(profile: Profile, spec: SpecConfig | None = None) -> MemoryFit:
    """Per-rank memory split and KV capacity at the profile's memory fraction (draft weights included)."""
    return memory_fit(
        profile.model,
        profile.gpu,
        tp=profile.tp,
        weight_dtype=profile.dtype,
        kv_dtype=profile.kv_dtype,
        memory_fraction=profile.memory_fraction,
        step_tokens=profile.max_batched_tokens,
        draft_params=spec.draft_params if spec else 0.0,
        kv_cache_bytes=profile.kv_cache_bytes,
    )


def kv_capacity_tokens(profile: Profile, spec: SpecConfig | None = None) -> int:
    return kv_fit(profile, spec).kv_capacity_tokens


def max_batch(
    profile: Profile, context: int, *, spec: SpecConfig | None = None, max_seqs: int | None = None
) -> int:
    """Most sequences of `context` tokens whose KV cache fits at once (optionally capped by max_num_seqs)."""
    fit = kv_capacity_tokens(profile, spec) // max(1, context)
    return min(fit, max_seqs) if max_seqs is not None else fit


@dataclass(frozen=True)
class BatchPoint:
    batch: int
    step_s: float  # one decode step (per-token time with spec decoding)
    tokens_per_s: float  # output tokens/s of the replica
    fits: bool  # whether this batch's KV cache fits in memory


def sweep(
    profile: Profile,
    context: int,
    batches: tuple[int, ...] = SWEEP_BATCHES,
    *,
    spec: SpecConfig | None = None,
) -> list[BatchPoint]:
    """Decode step time and throughput at each batch, every sequence holding `context` tokens."""
    capacity = kv_capacity_tokens(profile, spec)
    return [
        BatchPoint(
            batch=b,
            step_s=per_token_time(profile, b, b * context, spec),
            tokens_per_s=decode_throughput(profile, b, b * context, spec),
            fits=b * context <= capacity,
        )
        for b in batches
    ]


def max_throughput(
    profile: Profile, context: int, *, spec: SpecConfig | None = None, max_seqs: int | None = None
) -> BatchPoint | None:
    """Throughput at the largest batch the KV cache allows (None when not even one sequence fits).

    Decode throughput rises monotonically with batch in this model, so the largest batch is the best one.
    """
    batch = max_batch(profile, context, spec=spec, max_seqs=max_seqs)
    if batch < 1:
        return None
    return BatchPoint(
        batch=batch,
        step_s=per_token_time(profile, batch, batch * context, spec),
        tokens_per_s=decode_throughput(profile, batch, batch * context, spec),
        fits=True,
    )
