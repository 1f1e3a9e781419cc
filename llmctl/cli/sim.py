"""`llmctl sim run SCENARIO` and `llmctl sim sweep SCENARIO --param DEP.FIELD=V1,V2`: predict latency,
replicas over time, GPU-hours and cost before a rollout, with the same planner and autoscaling code."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from llmctl.cli.output import console, print_json
from llmctl.cli.sim_pool import pool_command
from llmctl.cli.sim_replay import replay_command
from llmctl.errors import LlmctlError

app = typer.Typer(
    help="Capacity simulator: replay traffic through the real planner and autoscaler.", no_args_is_help=True
)
app.command("pool")(pool_command)
app.command("replay")(replay_command)


def _param_value(param: str, value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        raise LlmctlError(f"--param {param!r}: {value!r} is not a number, true or false") from None


def _ms(p: dict[str, float], key: str) -> str:
    v = p[key]
    return "-" if math.isnan(v) else f"{v * 1000:.0f}"


def summary_table(title: str, summaries: dict[str, dict[str, Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    cols = (
        "",
        "requests",
        "TTFT p50/p99 ms",
        "ITL p50/p99 ms",
        "e2e p99 ms",
        "SLO met",
        "GPU-h",
        "cost",
        "$/M tok",
        "peak GPUs",
        "demand peak/avg",
        "GPUs peak/avg",
        "vs fixed fleet",
    )
    for c in cols:
        table.add_column(c, justify="left" if not c else "right")
    for name, s in summaries.items():
        table.add_row(
            name,
            str(s["requests"]),
            f"{_ms(s['ttft_s'], 'p50')}/{_ms(s['ttft_s'], 'p99')}",
            f"{_ms(s['itl_s'], 'p50')}/{_ms(s['itl_s'], 'p99')}",
            _ms(s["e2e_s"], "p99"),
            f"{s['slo_attainment']:.1%}",
            f"{s['gpu_hours']:.2f}",
            f"${s['cost']:.2f}",
            f"${s['cost_per_million_tokens']:.3f}",
            str(s["peak_gpus"]),
            f"{s['demand_peak_to_average']:.2f}",
            f"{s['gpus_peak_to_average']:.2f}",
            f"{s['saving_vs_fixed_fleet']:+.0%}" if not math.isnan(s["saving_vs_fixed_fleet"]) else "-",
        )
    return table


@app.command("run")
def run_command(
    scenario: Path = typer.Argument(..., help="Scenario YAML (see sim/scenarios/)."),
    mode: str | None = typer.Option(None, help="Replica model: fast (default) or step (reference)."),
    seed: int | None = typer.Option(None, help="Override the scenario's seed."),
    charts: Path | None = typer.Option(None, "--charts", help="Write PNG charts into this folder."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable summary."),
) -> None:
    """Simulate one scenario: per-deployment and fleet latency, SLO attainment, GPU-hours and cost."""
    from sim.scenario import load_scenario, run_scenario

    s, workload = load_scenario(scenario)
    if mode is not None:
        if mode not in ("fast", "step"):
            raise LlmctlError(f"--mode {mode!r}: use fast or step")
        s = s.model_copy(update={"mode": mode})
    if seed is not None:
        s = s.model_copy(update={"seed": seed})
    started = time.perf_counter()
    with Progress(
        TextColumn(f"[bold]simulating {s.duration_s:g} s of traffic ({s.mode} mode)[/]"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=as_json,
    ) as bar:
        task = bar.add_task("simulated time", total=1.0)
        result = run_scenario(s, workload, lambda done: bar.update(task, completed=done))
    wall = time.perf_counter() - started
    slo = s.slo.slo()
    per_dep = {name: result.summary(name, slo) for name in result.fleet}
    fleet = result.summary(None, slo)
    out: dict[str, Any] = {
        "scenario": str(scenario),
        "mode": s.mode,
        "seed": s.seed,
        "duration_s": s.duration_s,
        "offered": result.offered,
        "unfinished": result.unfinished,
        "rejected": result.rejected,
        "wall_s": wall,
        "deployments": per_dep,
        "fleet": fleet,
        "decisions": [
            {"t_s": t, "deployment": d.deployment, "from": d.current, "to": d.target, "reason": d.reason}
            for t, d in result.decisions
        ],
    }
    if charts is not None:
        from sim.charts import write_charts

        out["charts"] = [str(p) for p in write_charts(result, charts, scenario.stem)]
    if as_json:
        print_json(out)
        return
    console.print(
        summary_table(
            f"{scenario.name}: {s.duration_s:g} s simulated in {wall:.1f} s ({s.mode} mode)",
            {**per_dep, "fleet": fleet},
        )
    )
    for owner, bf in result.backfill.items():
        console.print(
            f"back-fill: {bf['deployment']} on {owner}'s idle spare slots: {bf['loans']} loan(s),"
            f" {bf['lent_gpu_hours']:.2f} GPU-h lent, {bf['recovered_gpu_hours']:.2f} GPU-h recovered after cold"
            f" starts, about {bf['output_tokens'] / 1e6:.1f} M output tokens of offline work",
            highlight=False,
        )
    console.print(f"{len(result.decisions)} scaling decision(s); first ones:")
    for t, d in result.decisions[:8]:
        console.print(f"  t={t:8.0f} s  {d.deployment}: {d.reason}", highlight=False)
    if result.unfinished or any(result.rejected.values()):
        console.print(f"[yellow]unfinished {result.unfinished}, rejected as too long {result.rejected}[/]")
    for p in out.get("charts", []):
        console.print(f"chart: {p}")


@app.command("sweep")
def sweep_command(
    scenario: Path = typer.Argument(..., help="Scenario YAML."),
    param: list[str] = typer.Option(
        ...,
        "--param",
        "-p",
        help="DEPLOYMENT.FIELD=V1,V2,... (max_replicas, initial_replicas, target, autoscale).",
    ),
    min_attainment: float = typer.Option(0.99, help="Fraction of requests that must meet the SLO."),
    workers: int | None = typer.Option(None, help="Local processes (default: one per core)."),
    ray: str | None = typer.Option(
        None, "--ray", help="Run on a Ray cluster at ADDRESS ('' or 'auto' for local)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable results."),
) -> None:
    """Run a scenario under every combination of the parameters; answer with the cheapest that meets the SLO."""
    from sim.scenario import load_scenario
    from sim.sweep import Outcome, cheapest, grid, sweep

    s, _ = load_scenario(scenario)
    params: dict[str, list[Any]] = {}
    for p in param:
        key, eq, values = p.partition("=")
        if not eq or not values:
            raise LlmctlError(f"--param {p!r}: write DEPLOYMENT.FIELD=V1,V2")
        params[key] = [_param_value(p, v) for v in values.split(",")]
    points = grid(params)
    with Progress(
        TextColumn("[bold]sweep[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,  # the table replaces it; a refused setting leaves no empty bar behind
        disable=as_json,
    ) as progress:
        task = progress.add_task("points", total=len(points))

        def done(_: Outcome) -> None:
            progress.advance(task)

        outcomes = sweep(s, points, min_attainment, workers, ray, done)
    best = cheapest(outcomes)
    if as_json:
        print_json(
            {
                "results": [
                    {"setting": o.point.overrides, "meets_slo": o.meets_slo, **o.summary} for o in outcomes
                ],
                "cheapest": best.point.overrides if best else None,
            }
        )
        return
    table = Table(title=f"{scenario.name}: {len(outcomes)} setting(s)", title_justify="left")
    for c in ("setting", "SLO met", "TTFT p99 ms", "GPU-h", "cost", ""):
        table.add_column(c, justify="left" if c in ("setting", "") else "right")
    for o in sorted(outcomes, key=lambda o: float(o.summary["cost"])):
        table.add_row(
            o.point.label,
            f"{o.summary['slo_attainment']:.1%}",
            _ms(o.summary["ttft_s"], "p99"),
            f"{o.summary['gpu_hours']:.2f}",
            f"${o.summary['cost']:.2f}",
            "[green]cheapest meeting the SLO[/]" if o is best else ("" if o.meets_slo else "[red]misses[/]"),
        )
    console.print(table)
    if best is None:
        raise LlmctlError(f"no setting meets the SLO for {min_attainment:.0%} of requests")
