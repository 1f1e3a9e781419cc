"""Predicted against observed for one replayed window: latency percentiles, the replica series and its
changes, the scaling decisions, GPU-hours; every relative error beyond the threshold is flagged. Also the
measured step-time points that `--calibrate` fits the perf factors to. Pure (numpy over plain records)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from llmctl.gateway.request_log import LoggedRequest
from sim.cluster import SimResult
from sim.outcome import FleetPoint, RequestRecord, gpu_seconds


@dataclass(frozen=True)
class Metric:
    name: str  # e.g. ttft_p50_s
    observed: float
    predicted: float

    @property
    def error(self) -> float:
        """predicted / observed - 1; nan when there is nothing to compare."""
        if not np.isfinite(self.observed) or not np.isfinite(self.predicted) or self.observed <= 0:
            return float("nan")
        return self.predicted / self.observed - 1.0


@dataclass(frozen=True)
class SeriesMatch:
    """Replica series, change by change: same counts in the same order, each within `tolerance_s`."""

    observed: tuple[tuple[float, int], ...]
    predicted: tuple[tuple[float, int], ...]
    same_shape: bool  # the same sequence of replica counts
    max_shift_s: float  # the largest time difference between matching changes (inf when shapes differ)
    tolerance_s: float

    @property
    def matches(self) -> bool:
        return self.same_shape and self.max_shift_s <= self.tolerance_s


def changes(series: Sequence[tuple[float, int]]) -> list[tuple[float, int]]:
    """The series with repeats of one count dropped: where it changes, and to what."""
    out: list[tuple[float, int]] = []
    for t, n in series:
        if not out or out[-1][1] != n:
            out.append((t, n))
    return out


def match_series(
    observed: Sequence[tuple[float, int]], predicted: Sequence[tuple[float, int]], tolerance_s: float
) -> SeriesMatch:
    obs, pred = changes(observed), changes(predicted)
    same = [n for _, n in obs] == [n for _, n in pred]
    shift = max((abs(a[0] - b[0]) for a, b in zip(obs, pred, strict=True)), default=0.0) if same else np.inf
    return SeriesMatch(tuple(obs), tuple(pred), same, float(shift), tolerance_s)


def match_decisions(
    observed: Sequence[float], predicted: Sequence[float], tolerance_s: float
) -> list[tuple[float | None, float | None]]:
    """Pairs (observed t, predicted t) in time order, each within the tolerance; None where one side made a
    decision the other did not. Order-preserving (the n-th move answers the n-th): a nearest-first match
    would pair a late first move with the second one."""
    out: list[tuple[float | None, float | None]] = []
    obs, pred = sorted(observed), sorted(predicted)
    i = j = 0
    while i < len(obs) or j < len(pred):
        if i < len(obs) and j < len(pred) and abs(obs[i] - pred[j]) <= tolerance_s:
            out.append((obs[i], pred[j]))
            i, j = i + 1, j + 1
        elif j >= len(pred) or (i < len(obs) and obs[i] < pred[j]):
            out.append((obs[i], None))
            i += 1
        else:
            out.append((None, pred[j]))
            j += 1
    return out


def series_of(timeline: Sequence[FleetPoint]) -> list[tuple[float, int]]:
    return [(p.t_s, p.replicas) for p in timeline]


def gpu_hours(series: Sequence[tuple[float, int]], end_s: float, gpus_per_replica: int) -> float:
    total = 0.0
    for (t, n), nxt in zip(series, [*series[1:], None], strict=True):
        until = min(nxt[0] if nxt else end_s, end_s)
        total += n * gpus_per_replica * max(0.0, until - t)
    return total / 3600


def _pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if len(values) else float("nan")


def latency_metrics(
    observed: Sequence[LoggedRequest], predicted: Sequence[RequestRecord], since: float
) -> list[Metric]:
    """TTFT (streamed requests only: the gateway sees no first token in a whole answer) and end to end, p50
    and p90, over the requests the fleet answered, against the same requests' predictions."""
    ok = [r for r in observed if r.status == 200]
    by_arrival: dict[float, list[RequestRecord]] = {}
    for rec in predicted:
        by_arrival.setdefault(round(rec.arrival_s, 6), []).append(rec)

    def twin(r: LoggedRequest) -> RequestRecord | None:
        same = by_arrival.get(round(r.at - since, 6))
        return same.pop() if same else None

    pairs = [(r, p) for r in ok if (p := twin(r)) is not None]
    streamed = [(r, p) for r, p in pairs if r.ttft_s is not None]
    out: list[Metric] = []
    for q in (50, 90):
        out.append(
            Metric(
                f"ttft_p{q}_s",
                _pct([r.ttft_s for r, _ in streamed if r.ttft_s is not None], q),
                _pct([p.ttft_s for _, p in streamed], q),
            )
        )
    for q in (50, 90):
        out.append(
            Metric(f"e2e_p{q}_s", _pct([r.e2e_s for r, _ in pairs], q), _pct([p.e2e_s for _, p in pairs], q))
        )
    return out


def report(
    name: str,
    observed_requests: Sequence[LoggedRequest],
    observed_series: Sequence[tuple[float, int]],
    observed_decisions: Sequence[float],
    predicted: SimResult,
    *,
    since: float,
    duration_s: float,
    interval_s: float,
    gpus_per_replica: int,
    threshold: float,
) -> dict[str, Any]:
    """The comparison as plain data (what `--json` prints); `divergent` when anything is flagged."""
    latency = latency_metrics(observed_requests, predicted.records, since)
    series = match_series(observed_series, series_of(predicted.fleet[name]), interval_s)
    # A decision the controller acts on, as the live one records a scale event only then (while a drain it
    # asked for runs, the policy says the same again every tick, and nothing is done).
    acted = {round(t, 6) for t, _d, _a in predicted.actions}
    made = [(t, d) for t, d in predicted.decisions if round(t, 6) in acted]
    decided = match_decisions(observed_decisions, [t for t, _ in made], interval_s)
    gpu = Metric(
        "gpu_hours",
        gpu_hours(observed_series, duration_s, gpus_per_replica),
        gpu_seconds(predicted.fleet[name], duration_s) / 3600,
    )
    rows = [*latency, gpu]

    def flagged(m: Metric) -> bool:
        return bool(np.isfinite(m.error) and abs(m.error) > threshold)

    metrics = [
        {
            "name": m.name,
            "observed": m.observed,
            "predicted": m.predicted,
            "error": m.error,
            "flagged": flagged(m),
        }
        for m in rows
    ]
    reasons = {round(t, 6): f"{d.current} -> {d.target}: {d.reason}" for t, d in made}
    divergent = any(m["flagged"] for m in metrics) or not series.matches
    return {
        "deployment": name,
        "requests": len(observed_requests),
        "metrics": metrics,
        "replicas": {
            "observed": [list(p) for p in series.observed],
            "predicted": [list(p) for p in series.predicted],
            "same_shape": series.same_shape,
            "max_shift_s": series.max_shift_s,
            "tolerance_s": series.tolerance_s,
            "matches": series.matches,
            "flagged": not series.matches,
        },
        "decisions": [
            {
                "observed_t_s": o,
                "predicted_t_s": p,
                "predicted": reasons.get(round(p, 6), "") if p is not None else "",
            }
            for o, p in decided
        ],
        "divergent": divergent,
    }
