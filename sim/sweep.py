"""Sweeps: run one scenario under many settings (replica ranges, autoscaler targets, fixed fleets) in
parallel and answer with the cheapest setting that meets the SLO. Local processes by default; a Ray cluster
with `ray_address` (ray is an optional extra: `pip install 'llmctl[ray]'`)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from llmctl.errors import LlmctlError
from sim.scenario import Scenario, load_scenario, run_scenario, with_overrides


@dataclass(frozen=True)
class Point:
    """One setting of the sweep: deployment -> override fields."""

    overrides: dict[str, dict[str, Any]]

    @property
    def label(self) -> str:
        return "; ".join(
            f"{d}: " + ", ".join(f"{k}={v}" for k, v in o.items()) for d, o in self.overrides.items()
        )


@dataclass(frozen=True)
class Outcome:
    point: Point
    summary: dict[str, Any]
    meets_slo: bool


def grid(params: Mapping[str, Sequence[Any]]) -> list[Point]:
    """`{"summarise.max_replicas": [2, 4], "summarise.target": [4, 8]}` -> the 4 combinations."""
    keys = list(params)
    points = []
    for values in itertools.product(*(params[k] for k in keys)):
        overrides: dict[str, dict[str, Any]] = {}
        for key, value in zip(keys, values, strict=True):
            dep, _, field = key.partition(".")
            if not field:
                raise LlmctlError(f"sweep parameter {key!r}: write DEPLOYMENT.FIELD, e.g. chat.max_replicas")
            overrides.setdefault(dep, {})[field] = value
        points.append(Point(overrides))
    return points


def run_point(scenario_file: str, point: Point, min_attainment: float) -> Outcome:
    scenario, workload = load_scenario(scenario_file)
    result = run_scenario(with_overrides(scenario, point.overrides), workload)
    summary = result.summary(None, scenario.slo.slo())
    summary["unfinished"] = result.unfinished
    attained = summary["slo_attainment"]
    ok = isinstance(attained, float) and not math.isnan(attained) and attained >= min_attainment
    return Outcome(point, summary, ok and result.unfinished == 0)


def sweep(
    scenario: Scenario,
    points: Sequence[Point],
    min_attainment: float = 0.99,
    workers: int | None = None,
    ray_address: str | None = None,
    on_done: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    if ray_address is not None:
        return _sweep_ray(scenario, points, min_attainment, ray_address, on_done)
    out: list[Outcome] = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(run_point, scenario.file, p, min_attainment) for p in points]
        for f in futures:
            outcome = f.result()
            out.append(outcome)
            if on_done:
                on_done(outcome)
    return out


def _sweep_ray(
    scenario: Scenario,
    points: Sequence[Point],
    min_attainment: float,
    address: str,
    on_done: Callable[[Outcome], None] | None,
) -> list[Outcome]:
    try:
        import ray
    except ImportError:
        raise LlmctlError("--ray needs ray: pip install 'llmctl[ray]'") from None
    ray.init(address=address or None, ignore_reinit_error=True, log_to_driver=False)
    remote = ray.remote(run_point)
    refs = [remote.remote(scenario.file, p, min_attainment) for p in points]
    out = []
    for ref in refs:
        outcome: Outcome = ray.get(ref)
        out.append(outcome)
        if on_done:
            on_done(outcome)
    return out


def cheapest(outcomes: Sequence[Outcome]) -> Outcome | None:
    meeting = [o for o in outcomes if o.meets_slo]
    return min(meeting, key=lambda o: float(o.summary["cost"])) if meeting else None
