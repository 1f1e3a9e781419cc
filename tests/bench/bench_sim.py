"""Simulator speed (not run by CI): `python tests/bench/bench_sim.py [--day]`.

1. The Azure conversation trace (19,366 requests, one hour) replayed through the shipped semi-online
   playbook (queue-depth autoscaling, scale to zero, warm pool) in the fast mode and in the step-by-step
   reference, in this one process: simulated requests per wall-second of each, their ratio, and how far
   apart their latency percentiles are.
2. With `--day`: a day of a 100 req/s service (the shipped day-long scenario, the trace's burstiness under a
   daily cycle, scaled to a mean of 100 req/s, autoscaled at 64 requests per replica, up to 16 replicas) in
   the fast mode: wall time against the 10-minute target, and peak memory.
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

import numpy as np
from rich.console import Console

from sim.cluster import SimResult, simulate
from sim.from_plan import cluster_from_plan
from sim.scenario import arrivals_for, cluster_for, load_scenario, with_overrides
from sim.workload import load_azure, to_arrivals

ROOT = Path(__file__).resolve().parents[2]
TRACE = ROOT / "sim" / "traces" / "AzureLLMInferenceTrace_conv.csv"
DAY = ROOT / "sim" / "scenarios" / "semi-online-day.yaml"
DAY_MEAN_RATE = 100.0
console = Console(width=120)
T = TypeVar("T")


def _timed(fn: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def _percentiles(result: SimResult, attr: str) -> np.ndarray:
    return np.asarray(np.percentile([getattr(r, attr) for r in result.records], [50, 99]))


def trace_replay() -> None:
    trace = load_azure(TRACE)
    spec = cluster_from_plan(
        ROOT / "playbooks" / "semi-online-burst.yaml", ROOT / "inventory" / "example-ssh.yaml"
    )
    name = spec.deployments[0].name
    arrivals = to_arrivals(trace.t_s, trace.prompts, trace.outputs, name)
    runs: dict[str, tuple[SimResult, float]] = {}
    for mode in ("fast", "step"):
        with console.status(f"{mode} mode: {len(arrivals):,} requests of the Azure conversation trace"):
            mode_spec = dataclasses.replace(spec, mode=mode)
            runs[mode] = _timed(partial(simulate, mode_spec, arrivals, 3600.0))
    console.print(
        f"[bold]Azure conversation trace, {len(arrivals):,} requests over 3,600 s, deployment {name}"
    )
    for mode, (result, wall) in runs.items():
        console.print(
            f"  {mode:<5} {wall:7.2f} s wall  {len(result.records) / wall:9,.0f} simulated req/s"
            f"  ({len(result.records):,} finished, {len(result.decisions)} scaling decisions)"
        )
    (fast, fast_wall), (step, step_wall) = runs["fast"], runs["step"]
    console.print(f"  fast / step speed: {step_wall / fast_wall:.1f}x")
    for attr in ("ttft_s", "e2e_s"):
        f, s = _percentiles(fast, attr), _percentiles(step, attr)
        gap = np.abs(f - s) / s * 100
        console.print(
            f"  {attr}: p50 {f[0]:.3f} vs {s[0]:.3f} s ({gap[0]:.2f}%), p99 {f[1]:.3f} vs {s[1]:.3f} s ({gap[1]:.2f}%)"
        )


def day_at_100_rps() -> None:
    scenario, workload = load_scenario(DAY)
    trace_mean = load_azure(TRACE).mean_rate
    # The diurnal thinning keeps 1 / (1 + amplitude) of the replay on average (see TraceSpec).
    amplitude = workload.diurnal.amplitude if workload.kind == "trace" and workload.diurnal else 0.0
    assert workload.kind == "trace"
    rate_scale = DAY_MEAN_RATE * (1 + amplitude) / trace_mean
    workload = workload.model_copy(update={"rate_scale": rate_scale})
    # 64 queued or running per replica: the scenario's 8 would pin this much traffic at the fleet's maximum.
    scenario = with_overrides(scenario, {"summarise": {"max_replicas": 16, "target": 64}})
    with console.status("generating a day of arrivals"):
        arrivals, gen_wall = _timed(partial(arrivals_for, scenario, workload))
    spec = cluster_for(scenario)
    with console.status(f"fast mode: {len(arrivals):,} requests over a day"):
        result, wall = _timed(lambda: simulate(spec, arrivals, scenario.duration_s))
    rss_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    summary = result.summary("summarise")
    rate = len(arrivals) / scenario.duration_s
    console.print(f"[bold]A day at a mean of {rate:.1f} req/s ({len(arrivals):,} requests)")
    console.print(
        f"  arrivals generated in {gen_wall:.1f} s; simulated in {wall:.1f} s wall (target < 600 s)"
    )
    console.print(f"  {len(result.records) / wall:,.0f} simulated req/s; peak RSS {rss_gib:.2f} GiB")
    console.print(
        f"  replicas: peak {summary['peak_gpus']} GPUs, mean {summary['mean_gpus']:.2f},"
        f" {len(result.decisions)} scaling decisions; SLO attainment {summary['slo_attainment']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--day", action="store_true", help="also simulate a day of a 100 req/s service")
    args = parser.parse_args()
    trace_replay()
    if args.day:
        day_at_100_rps()


if __name__ == "__main__":
    main()
