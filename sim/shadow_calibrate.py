"""`llmctl sim replay --calibrate`: fit the perf factors to the window by replaying it.

A step-time fit (llmctl.perf.calibrate.fit_factors) needs clean steps: one decode step at a known batch, one
prefill alone. A per-request log has neither: a request's mean gap between tokens mixes its decode steps with
the prefill chunks of the requests that arrived meanwhile, and a burst leaves few requests alone on their
replica. Fed those points the fit lands far off (on an emulated burst: compute efficiency 0.03, and a replay
40 times too slow). So the simulator is put in the loop instead: each candidate is the whole window replayed,
scored by its latency percentiles against the log's. Two factors, the ones a fleet's own overheads move:
`overhead_s`, the fixed cost of every engine step (CPU scheduling, Python, launches: it stretches every
token), searched on a grid then refined; and `request_latency_s`, the path outside the steps (HTTP,
tokenisation: it shifts TTFT and end to end alike), solved for each candidate as the TTFT gap that is left.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from llmctl.perf.factors import FACTOR_BOUNDS
from llmctl.perf.profile import Profile
from sim.shadow import Replayed, Window, replay
from sim.shadow_compare import Metric, latency_metrics

# Past the factor's physical range (50 ms, FACTOR_BOUNDS) too: a host so short of CPU that its engine's
# steps take a tenth of a second more than the model's is a fact the replay must fit, and report as such.
OVERHEAD_GRID_S = (0.0, 0.25e-3, 0.5e-3, 1e-3, 2e-3, 3e-3, 5e-3, 7.5e-3, 10e-3, 15e-3, 20e-3, 30e-3, 50e-3)
OVERHEAD_BEYOND_S = (75e-3, 0.1, 0.15, 0.2, 0.3, 0.5)
WEIGHTS = {"ttft_p50_s": 1.0, "e2e_p50_s": 1.0, "ttft_p90_s": 0.5, "e2e_p90_s": 0.5}


@dataclass(frozen=True)
class Calibration:
    profile: Profile
    request_latency_s: float  # real seconds (not model time)
    fitted: dict[str, float]  # factor -> value, in the profile's (model) time
    beyond: list[str]  # fitted factors outside their physical range (FACTOR_BOUNDS), in words
    score: float  # the weighted mean absolute error of the latency percentiles
    replays: int
    replayed: Replayed


def score(metrics: list[Metric]) -> float:
    total = weight = 0.0
    for m in metrics:
        w = WEIGHTS.get(m.name, 0.0)
        if w and math.isfinite(m.error):
            total, weight = total + w * abs(m.error), weight + w
    return total / weight if weight else math.inf


def _metric(metrics: list[Metric], name: str) -> Metric:
    return next(m for m in metrics if m.name == name)


def calibrate(w: Window) -> Calibration:
    base = replay(w).profile
    low, high = FACTOR_BOUNDS["request_latency_s"]
    runs = 0

    def attempt(overhead: float) -> tuple[float, float, Profile]:
        nonlocal runs
        prof = dataclasses.replace(base, factors=base.factors.with_overrides({"overhead_s": overhead}))
        records = replay(w, prof, 0.0).result.records
        runs += 1
        ttft = _metric(latency_metrics(w.requests, records, w.since), "ttft_p50_s")
        # What TTFT lacks once the steps are right is the request path (both of its sides are real time).
        # It delays a request's first token and its end alike and changes no queue (sim.replica's
        # request_latency_s), so it is applied to the records rather than replayed again.
        gap = ttft.observed - ttft.predicted if math.isfinite(ttft.error) else 0.0
        latency = float(np.clip(gap, low, high))
        shifted = [
            dataclasses.replace(r, first_token_s=r.first_token_s + latency, finish_s=r.finish_s + latency)
            for r in records
        ]
        return score(latency_metrics(w.requests, shifted, w.since)), latency, prof

    tried = {o: attempt(o) for o in OVERHEAD_GRID_S}
    best = min(tried, key=lambda o: tried[o][0])
    if best == OVERHEAD_GRID_S[-1]:
        tried |= {o: attempt(o) for o in OVERHEAD_BEYOND_S}
        best = min(tried, key=lambda o: tried[o][0])
    # Refine between the neighbours of the best grid point: the score is not smooth (a decision can flip).
    grid = sorted(tried)
    i = grid.index(best)
    lo, hi = grid[max(0, i - 1)], grid[min(len(grid) - 1, i + 1)]
    for o in np.linspace(lo, hi, 7)[1:-1]:
        tried[float(o)] = attempt(float(o))
    best = min(tried, key=lambda o: tried[o][0])
    s, latency, prof = tried[best]
    result = replay(w, prof, latency)
    runs += 1
    fitted = {"overhead_s": best, "request_latency_s": latency / w.time_scale}
    beyond = [
        f"{name} {value:.4g} is outside its physical range [{FACTOR_BOUNDS[name][0]:g}, {FACTOR_BOUNDS[name][1]:g}]"
        for name, value in fitted.items()
        if not FACTOR_BOUNDS[name][0] <= value <= FACTOR_BOUNDS[name][1]
    ]
    return Calibration(prof, latency, fitted, beyond, s, runs, result)
