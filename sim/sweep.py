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

from pydantic import ValidationError

from llmctl.errors import LlmctlError
from sim.scenario import Override, Scenario, cluster_for, load_scenario, run_scenario, with_overrides


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


def check_points(scenario: Scenario, points: Sequence[Point]) -> None:
    """Refuse a bad setting before any work starts, naming it: an unknown deployment or field, or a value
    out of range, would otherwise surface as a crash inside a worker process."""
    known = {d.name for d in cluster_for(scenario).deployments}
    for point in points:
        for dep, values in point.overrides.items():
            if dep not in known:
                raise LlmctlError(
                    f"sweep parameter for {dep}: no such deployment in {scenario.path(scenario.playbook)}"
                    f" (simulated: {', '.join(sorted(known))})"
                )
            try:
                Override(**values)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join([dep, *(str(x) for x in first["loc"])])
                fields = ", ".join(Override.model_fields)
                raise LlmctlError(f"sweep parameter {where}: {first['msg']} (fields: {fields})") from None


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
    check_points(scenario, points)
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
