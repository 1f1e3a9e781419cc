"""How many requests to keep in flight so every replica's engine batch stays full. Pure.

A replica runs at most min(max-num-seqs, KV-cache tokens / tokens per request) sequences at once (the
performance model's `max_batch`). Keeping exactly that many in flight leaves a slot idle for the round trip
between one request finishing and the next arriving, so a small queue rides on top (`HEADROOM`); more than
that only makes requests wait in the engine's queue, where a crash or a cancel loses more work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmctl.perf.capacity import max_batch, max_throughput
from llmctl.perf.profile import Profile
from llmctl.planner.shape import shape_profile
from llmctl.planner.types import Shape

HEADROOM = 1.25
MAX_CONCURRENCY = 8192  # beyond this the client, not the fleet, is the bottleneck
DEFAULT_CONCURRENCY = 64  # when nothing is known about the replicas


@dataclass(frozen=True)
class ReplicaShape:
    """What the performance model needs about one replica."""

    profile: Profile
    max_seqs: int
    max_model_len: int


def replica_shape(shape: Shape) -> ReplicaShape:
    """A planned replica's shape for sizing: its profile from the Model the plan carries (so a local model
    directory works, it is not in the catalog), its max-num-seqs and context."""
    return ReplicaShape(shape_profile(shape), shape.max_num_seqs, shape.max_context)


@dataclass(frozen=True)
class Sizing:
    concurrency: int
    per_replica: int  # modelled engine batch of one replica (0 when unknown)
    reason: str


def replica_batch(shape: ReplicaShape, tokens_per_request: int) -> int:
    context = min(max(1, tokens_per_request), shape.max_model_len)
    return max(1, max_batch(shape.profile, context, max_seqs=shape.max_seqs))


def size_concurrency(
    shapes: list[ReplicaShape], tokens_per_request: int, *, override: int | None = None
) -> Sizing:
    if override is not None:
        return Sizing(max(1, override), 0, f"--concurrency {override}")
    if not shapes:
        return Sizing(
            DEFAULT_CONCURRENCY,
            0,
            f"replica shape unknown: default {DEFAULT_CONCURRENCY} (set --concurrency)",
        )
    batches = [replica_batch(s, tokens_per_request) for s in shapes]
    total = min(MAX_CONCURRENCY, math.ceil(sum(batches) * HEADROOM))
    first = shapes[0]
    reason = (
        f"{len(shapes)} replica(s) x min(max-num-seqs {first.max_seqs}, KV cache / ~{tokens_per_request} "
        f"tokens a request) = {batches[0]} sequences each, +{round((HEADROOM - 1) * 100)}% queued so engine "
        f"batches stay full -> {total}"
    )
    return Sizing(total, batches[0], reason)


def modelled_tokens_per_s(shapes: list[ReplicaShape], tokens_per_request: int) -> float:
    """The replicas' modelled decode throughput (output tokens/s) at their largest batch: the ceiling a
    batch job can reach against them."""
    total = 0.0
    for s in shapes:
        context = min(max(1, tokens_per_request), s.max_model_len)
        point = max_throughput(s.profile, context, max_seqs=s.max_seqs)
        total += point.tokens_per_s if point else 0.0
    return total
