"""Held-out loads for a calibrated engine (issue #16, "against the real engine"): what to send, what the
simulator predicts for it, and how the prediction compares with what was measured.

A calibration (`llmctl perf calibrate --url`) fits the step-time factors on a closed-loop sweep of one
request shape; the loads here are open-loop and of other shapes, so they test the fit and the simulator's
queueing, not the fit's own points:
- Poisson at a light and a near-saturation rate, both a share of the capacity the calibrated model predicts
  for the load's shape (`capacity_req_s`);
- a slice of the Azure conversation trace (its burstiness and length mix kept), its lengths scaled by one
  factor so that the mean prompt is what a small test model prefills in a second or so, its clock squeezed
  so that its mean rate is a share of the capacity for those lengths.
No clock, no I/O: the caller sends the requests (`llmctl.bench.load.run_load`) and reads the trace file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from llmctl.bench.load import Scheduled, percentiles
from sim.cluster import ClusterSpec, DeploymentSim, simulate
from sim.outcome import RequestRecord
from sim.replica import EngineShape
from sim.workload import Arrival
from sim.workload.traces import Trace

METRICS = ("ttft_s", "itl_s", "e2e_s")
PCTS = ("p50", "p90")
# Issue #16: "Real CPU engine, held-out loads: p50 within 15%, p90 within 25%, throughput within 10%."
TARGETS: dict[str, float] = {"p50": 0.15, "p90": 0.25, "throughput": 0.10}


@dataclass(frozen=True)
class HeldoutLoad:
    name: str  # "poisson-light", "poisson-high", "azure-slice"
    kind: str  # what it is, in words (shown in the report)
    share: float  # of the predicted capacity for this load's shape
    rate_req_s: float
    duration_s: float
    schedule: tuple[Scheduled, ...]


@dataclass(frozen=True)
class Row:
    load: str
    metric: str  # "ttft_s p50", ..., "throughput"
    measured: float
    predicted: float
    target: float  # allowed relative error

    @property
    def ratio(self) -> float:
        return self.predicted / self.measured if self.measured > 0 else math.nan

    @property
    def passed(self) -> bool:
        return math.isfinite(self.ratio) and abs(self.ratio - 1.0) <= self.target


def arrivals(schedule: Sequence[Scheduled]) -> list[Arrival]:
    return [Arrival(s.at_s, s.prompt_tokens, s.output_tokens) for s in schedule]


def simulate_schedule(
    engine: EngineShape, schedule: Sequence[Scheduled], duration_s: float | None = None
) -> list[RequestRecord]:
    """The simulator's reference mode (the engine scheduler step by step), one replica, no autoscaling, fed
    the very arrivals (times and lengths) the load sent. The workload lasts `duration_s`, by default just
    past the last arrival: SimPy stops before the events at its end time, so an arrival exactly there would
    never be offered."""
    end = duration_s if duration_s is not None else (schedule[-1].at_s if schedule else 0.0) + 1e-6
    spec = ClusterSpec(
        (DeploymentSim("heldout", engine=engine, initial_replicas=1, max_replicas=1),), mode="step"
    )
    return simulate(spec, arrivals(schedule), end).records


def capacity_req_s(engine: EngineShape, shapes: Sequence[tuple[int, int]]) -> float:
    """Requests/s the model predicts the engine sustains for this mix of (prompt, output) lengths: a backlog
    of three batches' worth all at t = 0, served to the end; requests over the makespan."""
    if not shapes:
        raise ValueError("capacity of an empty mix")
    n = max(3 * engine.max_seqs, len(shapes))
    backlog = [Scheduled(0.0, *shapes[i % len(shapes)]) for i in range(n)]
    records = simulate_schedule(engine, backlog)
    makespan = max(r.finish_s for r in records) if records else math.inf
    return len(records) / makespan


def poisson_load(
    name: str, share: float, capacity: float, requests: int, prompt: int, output: int, seed: int
) -> HeldoutLoad:
    """The first `requests` arrivals of a Poisson process at `share` of `capacity`: a fixed count rather
    than a fixed duration, so that a light load's percentiles do not rest on the handful of requests an
    unlucky seed leaves in its window. The load lasts `requests / rate` (its mean span)."""
    rate = share * capacity
    gaps = np.random.default_rng(seed).exponential(1.0 / rate, size=requests)
    schedule = tuple(Scheduled(float(t), prompt, output) for t in np.cumsum(gaps))
    kind = f"Poisson {rate:.3f} req/s, {prompt} in / {output} out"
    return HeldoutLoad(name, kind, share, rate, max(requests / rate, schedule[-1].at_s + 1e-3), schedule)


def trace_slice(
    trace: Trace, requests: int, mean_prompt: float, max_context: int, start: int = 0
) -> list[tuple[float, int, int]]:
    """`requests` consecutive requests of `trace` from row `start`: (seconds after the first, prompt, output),
    every length times one factor that makes the mean prompt `mean_prompt` (outputs keep their ratio to
    prompts), at least 1 prompt and 2 output tokens (one gap for ITL), prompt + output within `max_context`."""
    if requests < 1 or start < 0 or start + requests > trace.t_s.size:
        raise ValueError(f"rows {start}..{start + requests} are not all in the trace ({trace.t_s.size} rows)")
    rows = slice(start, start + requests)
    prompts, outputs, t = trace.prompts[rows], trace.outputs[rows], trace.t_s[rows]
    scale = mean_prompt / max(float(np.mean(prompts)), 1.0)
    out: list[tuple[float, int, int]] = []
    for at, p, o in zip(t - t[0], prompts, outputs, strict=True):
        output = min(max(2, round(float(o) * scale)), max_context // 2)
        prompt = min(max(1, round(float(p) * scale)), max_context - output)
        out.append((float(at), prompt, output))
    return out


def trace_load(
    name: str, share: float, capacity: float, rows: Sequence[tuple[float, int, int]], duration_s: float
) -> HeldoutLoad:
    """The slice `rows` (from `trace_slice`) with its clock squeezed so that its mean rate is `share` of
    `capacity`: `len(rows)` arrivals over `duration_s`, the gaps in proportion to the trace's own."""
    span = rows[-1][0] if rows else 0.0
    # n arrivals over [0, duration): the last one at duration * (n - 1) / n keeps the mean gap duration / n.
    n = len(rows)
    squeeze = duration_s * (n - 1) / n / span if span > 0 else 0.0
    schedule = tuple(Scheduled(at * squeeze, p, o) for at, p, o in rows)
    rate = n / duration_s
    mean_p = float(np.mean([r[1] for r in rows]))
    mean_o = float(np.mean([r[2] for r in rows]))
    kind = f"Azure conv slice, {n} requests at {rate:.3f} req/s, mean {mean_p:.0f} in / {mean_o:.0f} out"
    return HeldoutLoad(name, kind, share, rate, duration_s, schedule)


def summarise_records(records: Sequence[RequestRecord]) -> dict[str, object]:
    """The simulator's records in the shape `llmctl.bench.load.summarise` gives for a measured load:
    percentiles per metric, and output tokens/s from the load's start (t = 0) to its last finish."""
    end = max((r.finish_s for r in records), default=0.0)
    tokens = sum(r.output_tokens for r in records)
    return {
        "requests": len(records),
        "succeeded": len(records),
        "wall_s": end,
        "requests_per_s": len(records) / end if end > 0 else 0.0,
        "output_tokens_per_s": tokens / end if end > 0 else 0.0,
        "ttft_s": percentiles([r.ttft_s for r in records]),
        "itl_s": percentiles([r.itl_s for r in records if r.output_tokens > 1]),
        "e2e_s": percentiles([r.e2e_s for r in records]),
    }


def compare(load: str, measured: Mapping[str, object], predicted: Mapping[str, object]) -> list[Row]:
    """One row per metric and percentile, plus throughput (output tokens/s), each with its target."""
    rows: list[Row] = []
    for metric in METRICS:
        m, p = measured[metric], predicted[metric]
        assert isinstance(m, Mapping) and isinstance(p, Mapping)
        for pct in PCTS:
            rows.append(Row(load, f"{metric} {pct}", float(m[pct]), float(p[pct]), TARGETS[pct]))
    m_tp, p_tp = measured["output_tokens_per_s"], predicted["output_tokens_per_s"]
    assert isinstance(m_tp, int | float) and isinstance(p_tp, int | float)
    rows.append(Row(load, "throughput", float(m_tp), float(p_tp), TARGETS["throughput"]))
    return rows
