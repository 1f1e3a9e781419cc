"""The one door from the dashboard to the capacity simulator (`sim/`): run a scenario file and hand back
a flat summary (metric -> number or string) with series for charts (replicas and demand per time bin).

sim is imported lazily so the dashboard works, and says so, where it is missing. The simulator runs a
scenario in one call, so progress is reported at the start (loading) and at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

ProgressCallback = Callable[[float], None]


class SimulatorUnavailable(Exception):
    """sim (or a scenario runner in it) is not installed; the message says what is missing."""


@dataclass(frozen=True)
class SimSummary:
    scenario: str
    metrics: dict[str, float | str] = field(default_factory=dict)
    series: dict[str, tuple[float, ...]] = field(default_factory=dict)


ScenarioRunner = Callable[[Path, ProgressCallback], SimSummary]


def run_scenario(path: Path, progress_cb: ProgressCallback) -> SimSummary:
    try:
        from sim.outcome import demand_series, fleet_series
        from sim.scenario import load_scenario
        from sim.scenario import run_scenario as simulate_scenario
    except ImportError as exc:
        raise SimulatorUnavailable(f"simulator not available: {exc}") from None
    progress_cb(0.0)
    scenario, workload = load_scenario(path)
    # Planning and generating arrivals take the first 5%, the simulated time the next 90%.
    progress_cb(0.05)
    result = simulate_scenario(scenario, workload, lambda done: progress_cb(0.05 + 0.9 * done))
    summary = dict(result.summary(None, scenario.slo.slo()))
    bin_s = max(1.0, result.end_s / 60)
    summary["series"] = {
        "demand req/s": [float(x) for x in demand_series(result.records, result.end_s, bin_s)],
        "GPUs": [float(x) for x in fleet_series(result.total_fleet, result.end_s, bin_s)],
    }
    progress_cb(1.0)
    return summarise(path, summary)


def summarise(path: Path, raw: object) -> SimSummary:
    """Normalise what the runner returned: a mapping, or an object with to_dict() or __dict__."""
    data: object = raw
    to_dict = getattr(raw, "to_dict", None)
    if callable(to_dict):
        data = to_dict()
    elif not isinstance(raw, Mapping) and hasattr(raw, "__dict__"):
        data = vars(raw)
    if not isinstance(data, Mapping):
        raise SimulatorUnavailable(
            f"the scenario runner returned {type(raw).__name__}, not a summary mapping"
        )
    metrics: dict[str, float | str] = {}
    series: dict[str, tuple[float, ...]] = {}
    for key, value in data.items():
        if key == "series" and isinstance(value, Mapping):
            series = {
                str(k): tuple(float(x) for x in v) for k, v in value.items() if isinstance(v, list | tuple)
            }
        elif isinstance(value, bool):
            metrics[str(key)] = str(value)
        elif isinstance(value, int | float):
            metrics[str(key)] = float(value)
        elif isinstance(value, str):
            metrics[str(key)] = value
        elif isinstance(value, Mapping):
            for sub, v in value.items():
                if isinstance(v, int | float) and not isinstance(v, bool):
                    metrics[f"{key}.{sub}"] = float(v)
    return SimSummary(path.stem, metrics, series)


def scenario_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.yaml")) + sorted(directory.glob("*.yml")) if directory.is_dir() else []
