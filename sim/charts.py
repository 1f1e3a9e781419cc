"""PNG charts of a simulation: demand and provisioned replicas over time, and the latency CDFs. matplotlib
with the Agg backend (no display needed); imported only when charts are asked for."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sim.cluster import SimResult
from sim.outcome import FleetPoint, demand_series


def _step(timeline: Sequence[FleetPoint], end_s: float) -> tuple[np.ndarray, np.ndarray]:
    t = [p.t_s for p in timeline] + [end_s]
    n = [p.replicas for p in timeline]
    return np.asarray(t), np.asarray([*n, n[-1] if n else 0])


def write_charts(result: SimResult, directory: Path, title: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    bin_s = max(10.0, result.end_s / 240)
    hours = result.end_s >= 4 * 3600
    scale, unit = (3600.0, "h") if hours else (60.0, "min")
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for name, timeline in result.fleet.items():
        if not timeline:
            continue
        t, n = _step(timeline, result.end_s)
        ax.step(t / scale, n, where="post", label=f"{name} replicas")
    ax.set_xlabel(f"time ({unit})")
    ax.set_ylabel("replicas (starting, ready, draining)")
    demand_ax = ax.twinx()
    for name in result.fleet:
        recs = [r for r in result.records if r.deployment == name]
        d = demand_series(recs, result.end_s, bin_s)
        demand_ax.plot((np.arange(d.size) + 0.5) * bin_s / scale, d, alpha=0.5, lw=1, label=f"{name} req/s")
    demand_ax.set_ylabel("arrivals (req/s)")
    lines, labels = ax.get_legend_handles_labels()
    lines2, labels2 = demand_ax.get_legend_handles_labels()
    ax.legend(lines + lines2, labels + labels2, loc="upper left", fontsize=8)
    ax.set_title(f"{title}: demand and replicas")
    fig.tight_layout()
    over_time = directory / "replicas_and_demand.png"
    fig.savefig(over_time, dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    for ax, (label, values) in zip(
        axes,
        (
            ("time to first token (s)", [r.ttft_s for r in result.records]),
            ("inter-token latency (ms)", [r.itl_s * 1000 for r in result.records if r.output_tokens > 1]),
            ("end to end (s)", [r.e2e_s for r in result.records]),
        ),
        strict=True,
    ):
        v = np.sort(np.asarray(values))
        if v.size:
            ax.plot(v, np.arange(1, v.size + 1) / v.size)
            ax.set_xscale("log" if v[0] > 0 and v[-1] / max(v[0], 1e-9) > 100 else "linear")
        ax.set_xlabel(label)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("fraction of requests")
    fig.suptitle(f"{title}: latency CDF")
    fig.tight_layout()
    cdf = directory / "latency_cdf.png"
    fig.savefig(cdf, dpi=110)
    plt.close(fig)
    return [over_time, cdf]
