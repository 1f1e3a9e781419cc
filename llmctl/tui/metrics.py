"""Pure arithmetic on metric samples for the dashboard: counter rates, merged latency histograms and
time-binned series for sparklines. No I/O, no clock: the caller passes `now`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from llmctl.control.scrape import Histogram


@dataclass(frozen=True)
class Point:
    """The scalar part of one engine sample (counters are cumulative since the engine started)."""

    at: float
    running: float
    waiting: float
    kv_usage: float
    requests: float
    generation_tokens: float


@dataclass(frozen=True)
class Quantiles:
    p50: float | None = None
    p99: float | None = None

    @classmethod
    def of(cls, h: Histogram) -> Quantiles:
        return cls(h.quantile(0.5), h.quantile(0.99))


def merge_histograms(histograms: Iterable[Histogram]) -> Histogram:
    """Sum histograms bucket by bucket (replicas of one deployment share bucket bounds; a bound missing
    from one replica counts as zero there)."""
    buckets: dict[float, float] = {}
    total = count = 0.0
    for h in histograms:
        for le, c in h.buckets:
            buckets[le] = buckets.get(le, 0.0) + c
        total += h.total
        count += h.count
    return Histogram(tuple(sorted(buckets.items())), total, count)


def counter_rate(points: Sequence[Point], now: float, window_s: float, field: str = "requests") -> float:
    """Per-second increase of a counter over the last `window_s` (an engine restart, where the counter
    drops, counts from zero)."""
    recent = [p for p in points if p.at >= now - window_s]
    if len(recent) < 2:
        return 0.0
    increase = 0.0
    for a, b in pairwise(recent):
        va, vb = getattr(a, field), getattr(b, field)
        increase += vb - va if vb >= va else vb
    span = recent[-1].at - recent[0].at
    return increase / span if span > 0 else 0.0


@dataclass(frozen=True)
class Series:
    """One value per time bin, oldest first, for a sparkline."""

    requests_per_s: tuple[float, ...]
    in_flight: tuple[float, ...]
    queued: tuple[float, ...]
    kv_usage: tuple[float, ...]


def binned_series(per_replica: Iterable[Sequence[Point]], now: float, width_s: float, bins: int) -> Series:
    """Deployment-wide series in `bins` bins of `width_s` seconds aligned to multiples of `width_s` (the
    last bin holds `now`): request rate and in-flight and queued requests summed over replicas (each
    replica's mean in the bin), KV usage averaged over the replicas sampled in the bin."""
    first = int(now // width_s) - bins + 1
    rate = [0.0] * bins
    running = [0.0] * bins
    waiting = [0.0] * bins
    kv_sum = [0.0] * bins
    kv_n = [0] * bins
    for points in per_replica:
        sums: dict[int, list[float]] = {}
        for prev, p in zip((None, *points), points, strict=False):
            i = int(p.at // width_s) - first
            if not 0 <= i < bins:
                continue
            acc = sums.setdefault(i, [0.0, 0.0, 0.0, 0.0, 0.0])
            acc[0] += p.running
            acc[1] += p.waiting
            acc[2] += p.kv_usage
            acc[3] += 1
            if prev is not None and p.at > prev.at:
                delta = p.requests - prev.requests
                acc[4] += (delta if delta >= 0 else p.requests) / (p.at - prev.at)
        for i, (r, w, k, n, per_s) in sums.items():
            running[i] += r / n
            waiting[i] += w / n
            kv_sum[i] += k / n
            kv_n[i] += 1
            rate[i] += per_s / n
    kv = [kv_sum[i] / kv_n[i] if kv_n[i] else 0.0 for i in range(bins)]
    return Series(tuple(rate), tuple(running), tuple(waiting), tuple(kv))


def breached(value: float | None, target: float | None) -> bool:
    return value is not None and target is not None and value > target
