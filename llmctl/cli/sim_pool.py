"""`llmctl sim pool SCENARIO`: the pooling question. The scenario's tenants each on a fleet of its own and
all on one shared pool, over the same arrivals and through the same controller and allocator code: GPU-hours,
cost, SLO attainment, peak-to-average, preemptions and time in each cold-start tier (sim.pool_compare)."""

from __future__ import annotations

import time
from contextlib import nullcontext
from pathlib import Path

import typer
from rich.table import Table

from llmctl.cli.output import console, print_json


def _table(title: str, columns: tuple[str, ...], rows: list[list[str]]) -> Table:
    table = Table(title=title, title_justify="left")
    for i, c in enumerate(columns):
        table.add_column(c, justify="left" if i == 0 else "right")
    for r in rows:
        table.add_row(*r)
    return table


def pool_command(
    scenario: Path = typer.Argument(
        ..., help="Scenario YAML with tenants: and pool: (sim/scenarios/pooled-8-tenants.yaml)."
    ),
    gpus: int | None = typer.Option(
        None, "--gpus", min=1, help="Pool size in GPUs (overrides the scenario's pool.gpus)."
    ),
    duration: float | None = typer.Option(
        None, "--duration", min=1.0, help="Simulate this many seconds instead."
    ),
    seed: int | None = typer.Option(None, min=0, help="Override the scenario's seed."),
    chart: Path | None = typer.Option(None, "--chart", help="Write the GPUs-held chart (PNG) here."),
    markdown: Path | None = typer.Option(None, "--markdown", help="Write the tables as Markdown here."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable comparison."),
) -> None:
    """Pooled against separate fleets for a multi-tenant scenario."""
    from sim.pool_compare import compare
    from sim.pool_report import (
        FLEET_COLUMNS,
        TENANT_COLUMNS,
        TIER_COLUMNS,
        fleet_rows,
        tenant_rows,
        tier_rows,
    )
    from sim.pool_report import markdown as to_markdown
    from sim.scenario import load_scenario

    s, workload = load_scenario(scenario)
    changes: dict[str, object] = {}
    if duration is not None:
        changes["duration_s"] = duration
    if seed is not None:
        changes["seed"] = seed
    s = s.model_copy(update=changes)
    started = time.perf_counter()
    with (
        console.status("simulating separate fleets and the shared pool", spinner="dots")
        if not as_json
        else nullcontext()
    ):
        c = compare(s, workload, gpus)
    wall = time.perf_counter() - started
    report = {**c.report, "wall_s": wall}
    if chart is not None:
        from sim.pool_charts import write_pool_chart

        report["chart"] = str(write_pool_chart(c, chart))
    if markdown is not None:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        rel = (
            Path(report["chart"]).name
            if chart is not None and chart.parent == markdown.parent
            else report.get("chart")
        )
        markdown.write_text(to_markdown(report, rel))
        report["markdown"] = str(markdown)
    if as_json:
        print_json(report)
        return
    console.print(
        _table(
            f"{scenario.name}: {s.duration_s:g} s, pool of {c.pool_gpus} GPUs ({c.pool_rule}), {wall:.1f} s",
            FLEET_COLUMNS,
            fleet_rows(report),
        )
    )
    console.print(f"saving of the pool: {report['saving']:.1%} of the cost", highlight=False)
    console.print(_table("per tenant", TENANT_COLUMNS, tenant_rows(report)))
    console.print(_table("slot-hours per cold-start tier", TIER_COLUMNS, tier_rows(report)))
    for key in ("chart", "markdown"):
        if key in report:
            console.print(f"{key}: {report[key]}")
