"""The pooling chart: GPUs held over time per tenant, stacked, separate fleets above the shared pool, each
with the fleet size it pays for. matplotlib (Agg), imported only when a chart is asked for."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sim.outcome import FleetPoint
from sim.pool_compare import Comparison


def _on_grid(timeline: list[FleetPoint], grid: np.ndarray) -> np.ndarray:
    """The step function's value at each grid time (GPUs from a point until the next)."""
    if not timeline:
        return np.zeros(grid.size)
    t = np.asarray([p.t_s for p in timeline])
    g = np.asarray([p.gpus for p in timeline], dtype=float)
    idx = np.searchsorted(t, grid, side="right") - 1
    return np.where(idx >= 0, g[np.clip(idx, 0, None)], 0.0)


def write_pool_chart(c: Comparison, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    end = c.duration_s
    grid = np.linspace(0.0, end, 721)
    scale, unit = (3600.0, "h") if end >= 4 * 3600 else (60.0, "min")
    fig, axes = plt.subplots(2, 1, figsize=(11, 7), sharex=True, sharey=True)
    report = c.report
    for ax, run, mode in ((axes[0], c.separate, "separate"), (axes[1], c.pooled, "pooled")):
        names = list(run.held)
        stacks = [_on_grid(run.held[n], grid) for n in names]
        ax.stackplot(grid / scale, *stacks, labels=names, step="post", alpha=0.85)
        fleet = report[mode]["fleet"]
        ax.axhline(fleet["reserved_gpus"], color="black", lw=1.5, ls="--")
        title = "separate fleets" if mode == "separate" else "one shared pool"
        ax.set_title(
            f"{title}: {fleet['reserved_gpus']} GPUs, {fleet['gpu_hours']:.1f} GPU-h, ${fleet['cost']:.2f},"
            f" SLO met {fleet['slo_attainment']:.2%}, {fleet['preemptions']} preemption(s)",
            fontsize=10,
        )
        ax.set_ylabel("GPUs held (asleep included)")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper left", fontsize=7, ncol=4)
    axes[1].set_xlabel(f"time ({unit})")
    fig.suptitle(f"{Path(c.scenario).stem}: GPUs held per tenant (dashed: the fleet paid for)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


__all__ = ["write_pool_chart"]
