"""`llmctl perf validate`: the performance model against the published fidelity set (llmctl/perf/data).

Prints every row (predicted, measured, ratio), the error summary overall, per group and for TTFT, and which of
issue #16's targets hold; `--json` for machines, `--chart PATH` for a PNG. Exits 1 when a target is broken, so
CI (tests/unit/test_perf_fidelity.py runs the same check) catches a factor change that makes the fit worse.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from llmctl.bench.fidelity_data import load_published
from llmctl.cli.output import console, print_json
from llmctl.errors import LlmctlError
from llmctl.perf.fidelity import TARGETS, FidelityReport, report_to_dict, validate


def _parse_factors(text: str | None) -> dict[str, float]:
    if not text:
        return {}
    out: dict[str, float] = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        if not sep:
            raise LlmctlError(f"--factors: expected name=value, got {item!r}")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise LlmctlError(f"--factors: {name.strip()}: expected a number, got {value!r}") from None
    return out


def render_text(report: FidelityReport) -> str:
    """A plain-text table and summary (what /work/fidelity_*.txt records)."""
    lines = [f"{'id':<46} {'group':<18} {'predicted':>11} {'measured':>11} {'unit':<6} {'ratio':>6}"]
    for p in report.predictions:
        lines.append(
            f"{p.point.id:<46} {p.point.group:<18} {p.predicted:>11.4g} {p.point.value:>11.4g} "
            f"{p.point.unit:<6} {p.ratio:>6.3f}"
        )
    lines.append("")
    lines.append(f"{'group':<18} {'rows':>4} {'median':>7} {'p90':>7} {'worst':>7} {'bias':>7}  worst row")
    stats = [("ALL", report.overall), *report.groups.items()]
    if report.ttft is not None:
        stats.append(("ttft_ms rows", report.ttft))
    for name, s in stats:
        lines.append(
            f"{name:<18} {s.count:>4} {s.median:>7.1%} {s.p90:>7.1%} {s.worst:>7.1%} {s.bias:>+7.1%}  {s.worst_id}"
        )
    met = report.targets_met()
    lines.append("")
    lines.append(
        "targets: "
        + ", ".join(f"{k} <= {TARGETS[k]:.0%}: {'met' if v else 'NOT met'}" for k, v in met.items())
    )
    return "\n".join(lines)


def write_chart(report: FidelityReport, path: Path) -> None:
    """Predicted vs measured (as ratio) per group on a log axis: one dot per row, the ±targets shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(report.groups)
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(groups) + 1.8))
    for i, name in enumerate(groups):
        ratios = [p.ratio for p in report.predictions if p.point.group == name]
        ax.scatter(ratios, [i] * len(ratios), s=22, alpha=0.8)
    ax.axvspan(1 - TARGETS["p90"], 1 + TARGETS["p90"], color="green", alpha=0.08, label="±p90 target")
    ax.axvspan(
        1 - TARGETS["median"], 1 + TARGETS["median"], color="green", alpha=0.15, label="±median target"
    )
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yticks(range(len(groups)), groups)
    ax.set_xlabel("predicted / measured")
    ax.set_title(
        f"llmctl perf model vs published set: median |err| {report.overall.median:.1%}, "
        f"p90 {report.overall.p90:.1%}, worst {report.overall.worst:.1%}"
    )
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def validate_command(
    data: Path | None = typer.Option(
        None, "--data", help="a CSV of the published set's columns (default: packaged)"
    ),
    factors: str | None = typer.Option(
        None, "--factors", help="factor overrides for every row, e.g. hbm_efficiency=0.8,roofline_sharpness=2"
    ),
    group: str | None = typer.Option(None, "--group", help="only rows of this group"),
    chart: Path | None = typer.Option(None, "--chart", help="write a PNG of predicted/measured per group"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Compare the model with every published measurement; exit 1 when a fidelity target is broken."""
    points = load_published(data)
    if group is not None:
        points = [p for p in points if p.group == group]
        if not points:
            raise LlmctlError(f"no rows in group {group!r}")
    report = validate(points, _parse_factors(factors))
    if chart is not None:
        write_chart(report, chart)
    if as_json:
        print_json(report_to_dict(report))
    else:
        table = Table(title="perf model vs published measurements", title_justify="left")
        for column in ("id", "group", "predicted", "measured", "unit", "ratio"):
            table.add_column(column, justify="left" if column in ("id", "group", "unit") else "right")
        for p in report.predictions:
            colour = "green" if abs(p.error) <= TARGETS["p90"] else "red"
            table.add_row(
                p.point.id,
                p.point.group,
                f"{p.predicted:.4g}",
                f"{p.point.value:.4g}",
                p.point.unit,
                f"[{colour}]{p.ratio:.3f}[/]",
            )
        console.print(table)
        console.print(render_text(report).split("\n\n", 1)[1], highlight=False)
        if chart is not None:
            console.print(f"wrote {chart}", highlight=False)
    # Only the whole published set has targets; a --group subset is informational.
    if group is None and not all(report.targets_met().values()):
        raise typer.Exit(1)
