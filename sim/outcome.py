"""What a simulation run produced, and the numbers people decide on: latency percentiles, SLO attainment,
GPU-hours, cost, cost per million tokens, utilisation and peak-to-average ratios, beside a fixed fleet sized
for the peak. Pure numpy over plain records, so live load tests can be summarised the same way."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RequestRecord:
    arrival_s: float
    first_token_s: float
    finish_s: float
    input_tokens: int
    output_tokens: int
    deployment: str = ""

    @property
    def ttft_s(self) -> float:
        return self.first_token_s - self.arrival_s

    @property
    def itl_s(self) -> float:
        # Mean gap between output tokens after the first; one-token answers have none.
        return (
            (self.finish_s - self.first_token_s) / (self.output_tokens - 1) if self.output_tokens > 1 else 0.0
        )

    @property
    def e2e_s(self) -> float:
        return self.finish_s - self.arrival_s


@dataclass(frozen=True)
class FleetPoint:
    """From `t_s` on (until the next point) `gpus` GPUs are provisioned (starting, ready, draining: all paid)."""

    t_s: float
    replicas: int
    gpus: int
    held: int = (
        0  # replicas holding their GPUs: the paid ones and the sleeping ones (back-fill cannot use them)
    )


@dataclass(frozen=True)
class Slo:
    ttft_s: float | None = None
    itl_s: float | None = None

    def met(self, r: RequestRecord) -> bool:
        return (self.ttft_s is None or r.ttft_s <= self.ttft_s) and (
            self.itl_s is None or r.itl_s <= self.itl_s
        )


def _pcts(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {"p50": float("nan"), "p90": float("nan"), "p99": float("nan")}
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99)}


def gpu_seconds(timeline: Sequence[FleetPoint], end_s: float) -> float:
    total = 0.0
    for point, nxt in zip(timeline, [*timeline[1:], None], strict=True):
        until = nxt.t_s if nxt else end_s
        total += point.gpus * max(0.0, min(until, end_s) - point.t_s)
    return total


def peak_to_average(samples: np.ndarray) -> float:
    mean = float(samples.mean()) if samples.size else 0.0
    return float(samples.max()) / mean if mean > 0 else float("nan")


def demand_series(records: Sequence[RequestRecord], end_s: float, bin_s: float) -> np.ndarray:
    bins = max(1, int(np.ceil(end_s / bin_s)))
    arrivals = np.fromiter((r.arrival_s for r in records), dtype=float, count=len(records))
    return np.bincount(np.minimum((arrivals // bin_s).astype(int), bins - 1), minlength=bins) / bin_s


def fleet_series(timeline: Sequence[FleetPoint], end_s: float, bin_s: float) -> np.ndarray:
    """Time-weighted mean GPUs in each bin."""
    bins = max(1, int(np.ceil(end_s / bin_s)))
    out = np.zeros(bins)
    for point, nxt in zip(timeline, [*timeline[1:], None], strict=True):
        start, stop = point.t_s, min(nxt.t_s if nxt else end_s, end_s)
        b = int(start // bin_s)
        while start < stop and b < bins:
            edge = min(stop, (b + 1) * bin_s)
            out[b] += point.gpus * (edge - start) / bin_s
            start, b = edge, b + 1
    return out


def summarise(
    records: Sequence[RequestRecord],
    timeline: Sequence[FleetPoint],
    end_s: float,
    price_per_gpu_hour: float,
    slo: Slo = Slo(),
    bin_s: float = 60.0,
) -> dict[str, object]:
    ttft = np.fromiter((r.ttft_s for r in records), dtype=float, count=len(records))
    itl = np.fromiter((r.itl_s for r in records if r.output_tokens > 1), dtype=float)
    e2e = np.fromiter((r.e2e_s for r in records), dtype=float, count=len(records))
    out_tokens = sum(r.output_tokens for r in records)
    in_tokens = sum(r.input_tokens for r in records)
    gpu_h = gpu_seconds(timeline, end_s) / 3600
    cost = gpu_h * price_per_gpu_hour
    peak_gpus = max((p.gpus for p in timeline), default=0)
    fixed_cost = peak_gpus * end_s / 3600 * price_per_gpu_hour
    demand, fleet = demand_series(records, end_s, bin_s), fleet_series(timeline, end_s, bin_s)
    tokens = in_tokens + out_tokens
    return {
        "requests": len(records),
        "input_tokens": in_tokens,
        "output_tokens": out_tokens,
        "ttft_s": _pcts(ttft),
        "itl_s": _pcts(itl),
        "e2e_s": _pcts(e2e),
        "slo_attainment": (sum(slo.met(r) for r in records) / len(records)) if records else float("nan"),
        "gpu_hours": gpu_h,
        "cost": cost,
        "cost_per_million_tokens": cost / tokens * 1e6 if tokens else float("nan"),
        "peak_gpus": peak_gpus,
        "mean_gpus": gpu_h * 3600 / end_s if end_s > 0 else 0.0,
        "demand_peak_to_average": peak_to_average(demand),
        "gpus_peak_to_average": peak_to_average(fleet),
        "fixed_fleet_cost": fixed_cost,
        "saving_vs_fixed_fleet": 1 - cost / fixed_cost if fixed_cost > 0 else float("nan"),
    }
