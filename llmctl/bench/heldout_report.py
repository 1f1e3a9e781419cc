"""The held-out comparison as text: a markdown table (measured, predicted, ratio, pass/fail per load and
metric) and a PNG of predicted against measured per load (matplotlib's Agg backend, as sim.charts)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from llmctl.bench.heldout import Row

LABELS = {"ttft_s": "TTFT", "itl_s": "ITL", "e2e_s": "E2E"}


def metric_label(metric: str) -> str:
    name, _, pct = metric.partition(" ")
    return f"{LABELS.get(name, name)} {pct}".strip()


def _value(row: Row) -> tuple[str, str]:
    if row.metric == "throughput":
        return f"{row.measured:.1f} tok/s", f"{row.predicted:.1f} tok/s"
    return f"{row.measured * 1000:.0f} ms", f"{row.predicted * 1000:.0f} ms"


def markdown_table(rows: Sequence[Row]) -> str:
    out = [
        "| load | metric | measured | predicted | predicted/measured | target | |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        measured, predicted = _value(r)
        verdict = "pass" if r.passed else "**miss**"
        out.append(
            f"| {r.load} | {metric_label(r.metric)} | {measured} | {predicted} | {r.ratio:.2f} | "
            f"±{r.target:.0%} | {verdict} |"
        )
    return "\n".join(out)


def verdicts(rows: Sequence[Row]) -> dict[str, tuple[int, int]]:
    """(passed, total) per target class: p50, p90, throughput."""
    out: dict[str, tuple[int, int]] = {}
    for r in rows:
        key = r.metric.rpartition(" ")[2] if r.metric != "throughput" else "throughput"
        ok, n = out.get(key, (0, 0))
        out[key] = (ok + r.passed, n + 1)
    return out


def write_chart(rows: Sequence[Row], path: Path, title: str) -> Path:
    """Bars of predicted/measured per metric, one group per load, the target bands shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    loads = list(dict.fromkeys(r.load for r in rows))
    metrics = list(dict.fromkeys(r.metric for r in rows))
    fig, (ax, scatter) = plt.subplots(1, 2, figsize=(15, 4.8), gridspec_kw={"width_ratios": [2.2, 1]})
    width = 0.8 / len(loads)
    x = np.arange(len(metrics))
    for i, load in enumerate(loads):
        by_metric = {r.metric: r.ratio for r in rows if r.load == load}
        ax.bar(
            x + i * width - 0.4 + width / 2, [by_metric.get(m, np.nan) for m in metrics], width, label=load
        )
        # Latencies only (seconds): throughput is in other units.
        lat = [r for r in rows if r.load == load and r.metric != "throughput"]
        scatter.scatter([r.measured for r in lat], [r.predicted for r in lat], label=load, s=18)
    ax.axhline(1.0, color="black", lw=1)
    for j, m in enumerate(metrics):
        band = next(r.target for r in rows if r.metric == m)
        ax.fill_between([j - 0.45, j + 0.45], 1 - band, 1 + band, color="green", alpha=0.12, lw=0)
    ax.set_xticks(x, [metric_label(m) for m in metrics], rotation=20)
    ax.set_ylabel("predicted / measured")
    ax.set_title(f"{title} (shaded: the target band)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    values = [v for r in rows if r.metric != "throughput" for v in (r.measured, r.predicted) if v > 0]
    if values:
        low, high = min(values) / 1.5, max(values) * 1.5
        scatter.plot([low, high], [low, high], color="black", lw=1)
        scatter.set_xscale("log")
        scatter.set_yscale("log")
    scatter.set_xlabel("measured (s)")
    scatter.set_ylabel("predicted (s)")
    scatter.set_title("latency percentiles (TTFT, ITL, E2E p50/p90)", fontsize=10)
    scatter.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
