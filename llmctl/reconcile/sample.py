"""What one scrape of an engine says, as plain numbers: the live scraper (llmctl.control.scrape) parses it
from /metrics, the simulator's replicas report the same shape. Latency comes as cumulative histograms with
the engine's own bucket bounds, so both drivers compute TTFT p95 the same way: from bucket deltas."""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Histogram:
    """Cumulative buckets (upper bound, count), plus sum and count, summed over label sets."""

    buckets: tuple[tuple[float, float], ...] = ()
    total: float = 0.0
    count: float = 0.0

    def minus(self, earlier: Histogram) -> Histogram:
        """The observations made since `earlier` (counters only grow, unless the engine restarted)."""
        if earlier.count > self.count:
            return self
        old = dict(earlier.buckets)
        return Histogram(
            tuple((le, c - old.get(le, 0.0)) for le, c in self.buckets),
            self.total - earlier.total,
            self.count - earlier.count,
        )

    def quantile(self, q: float) -> float | None:
        """Linear interpolation inside the bucket holding quantile q, as PromQL's histogram_quantile does."""
        if self.count <= 0 or not self.buckets:
            return None
        rank = q * self.count
        prev_le, prev_c = 0.0, 0.0
        for le, c in self.buckets:
            if c >= rank:
                if math.isinf(le):
                    return prev_le  # past the last finite bound: the best statement is "at least this"
                span = c - prev_c
                return prev_le + (le - prev_le) * ((rank - prev_c) / span if span > 0 else 1.0)
            prev_le, prev_c = le, c
        return prev_le


@dataclass(frozen=True)
class EngineSample:
    running: float = 0.0
    waiting: float = 0.0
    kv_usage: float = 0.0
    prompt_tokens: float = 0.0
    generation_tokens: float = 0.0
    requests: float = 0.0
    ttft: Histogram = field(default_factory=Histogram)
    itl: Histogram = field(default_factory=Histogram)
    e2e: Histogram = field(default_factory=Histogram)


# vLLM's bucket bounds for time_to_first_token_seconds (vllm/v1/metrics/loggers.py), +Inf last: the emulated
# engine exposes them and the simulator fills them, so its p95 carries the same interpolation error as the
# live one.
TTFT_BUCKETS_S: tuple[float, ...] = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
    160.0,
    640.0,
    2560.0,
    math.inf,
)


def histogram_of(
    values: Iterable[float], bounds: Sequence[float] = TTFT_BUCKETS_S, base: Histogram | None = None
) -> Histogram:
    """`base` (default empty) with `values` observed: cumulative counts over `bounds`."""
    counts = [0.0] * len(bounds)
    total = n = 0.0
    for v in values:
        counts[min(bisect.bisect_left(bounds, v), len(bounds) - 1)] += 1
        total += v
        n += 1
    cumulative, running = [], 0.0
    old = dict(base.buckets) if base else {}
    for le, c in zip(bounds, counts, strict=True):
        running += c
        cumulative.append((le, running + old.get(le, 0.0)))
    return Histogram(
        tuple(cumulative), total + (base.total if base else 0.0), n + (base.count if base else 0.0)
    )
