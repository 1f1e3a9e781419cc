"""PNG of a shadow replay: observed and predicted replicas over the window, the scaling decisions marked,
beside the simulator's own charts (sim.charts). Imported only when charts are asked for."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sim.charts import write_charts
from sim.cluster import SimResult


def _steps(series: Sequence[tuple[float, int]], end_s: float) -> tuple[np.ndarray, np.ndarray]:
    t = [p[0] for p in series] + [end_s]
    n = [p[1] for p in series]
    return np.asarray(t), np.asarray([*n, n[-1] if n else 0])


def write_replay_charts(
    name: str,
    observed: Sequence[tuple[float, int]],
    predicted: SimResult,
    decisions: Sequence[float],
    directory: Path,
) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    end = predicted.end_s
    fig, ax = plt.subplots(figsize=(10, 4))
    t, n = _steps(observed, end)
    ax.step(t, n, where="post", label="observed replicas", lw=2)
    timeline = predicted.fleet.get(name, [])
    t, n = _steps([(p.t_s, p.replicas) for p in timeline], end)
    ax.step(t, n, where="post", label="predicted replicas", ls="--")
    for i, at in enumerate(decisions):
        ax.axvline(at, color="grey", alpha=0.4, lw=0.8, label="observed scale decision" if i == 0 else None)
    acted = {round(t, 6) for t, _d, _a in predicted.actions}  # as sim.shadow_compare counts decisions
    made = [t for t, _d in predicted.decisions if round(t, 6) in acted]
    for i, at in enumerate(made):
        ax.axvline(at, color="red", alpha=0.4, lw=0.8, ls=":", label="predicted decision" if i == 0 else None)
    ax.set_xlabel("time in the window (s)")
    ax.set_ylabel("replicas (starting, ready, draining)")
    ax.set_title(f"{name}: shadow replay, observed vs predicted")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path = directory / f"{name}_replay_replicas.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path, *write_charts(predicted, directory / f"{name}_predicted", f"{name} (predicted)")]
