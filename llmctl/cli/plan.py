"""`llmctl plan PLAYBOOK -i INVENTORY`: what would run where, with the exact command line and the reasons."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from llmctl.cli.common import STATE, open_store
from llmctl.cli.output import console, print_json
from llmctl.engines.shell import render_command
from llmctl.errors import LlmctlError
from llmctl.fleet.facts import cached_facts
from llmctl.planner import Plan, PlannedReplica
from llmctl.planner.shape import ESTIMATE_CONTEXT
from llmctl.planning import plan_files


def replica_json(r: PlannedReplica) -> dict[str, Any]:
    s = r.shape
    return {
        "name": r.name,
        "deployment": r.deployment,
        "host": r.host,
        "address": r.address,
        "gpus": list(r.gpu_indices),
        "gpu_type": s.gpu_type,
        "device": s.device,
        "port": r.port,
        "engine": s.engine,
        "flavour": s.flavour,
        "engine_version": s.engine_version,
        "engine_package": s.engine_package,
        "model": s.model,
        "tp": s.tp,
        "quantization": s.quantization,
        "kv_cache_dtype": s.kv_cache_dtype,
        "speculative_draft": s.speculative_draft,
        "max_context": s.max_context,
        "max_num_seqs": s.max_num_seqs,
        "kv_capacity_tokens": s.kv_capacity_tokens,
        "max_concurrency": s.max_concurrency,
        "est_tokens_per_s": round(s.est_tokens_per_s),  # whole tokens, as the table shows it
        "est_batch": s.est_batch,
        "est_context": s.est_context,
        "sleep_mode": s.sleep_mode,
        "argv": list(r.argv),
        "env": r.env,
        "command": render_command(r.argv, r.env),
        "decisions": [{"what": d.what, "choice": d.choice, "reason": d.reason} for d in s.decisions],
    }


def plan_json(plan: Plan) -> dict[str, Any]:
    return {
        "playbook": plan.playbook,
        "inventory": plan.inventory,
        "replicas": [replica_json(r) for r in plan.replicas],
        "spares": [replica_json(r) for r in plan.spares],
        "backfill": [{**replica_json(r), "shares_with": r.shares_with} for r in plan.backfill],
        "pooled": [{**replica_json(r), "pool": plan_pool_of(plan, r)} for r in plan.pooled],
        "pools": [
            {
                "name": p.name,
                "gpus": [f"{h}:{i}" for h, i, _ in p.gpus],
                "members": [m.__dict__ for m in p.members],
                "minimum_gpus": p.minimum_gpus,
                "spare_gpus": p.spare_gpus,
            }
            for p in plan.pools
        ],
        "warnings": list(plan.warnings),
    }


def plan_pool_of(plan: Plan, r: PlannedReplica) -> str:
    return next(p.name for p in plan.pools if any(m.deployment == r.deployment for m in p.members))


def show_pools(plan: Plan) -> None:
    for p in plan.pools:
        console.print(
            f"\n[bold]pool {p.name}[/]: {len(p.gpus)} GPU(s) ({', '.join(f'{h}:{i}' for h, i, _ in p.gpus)}); "
            f"minimums take {p.minimum_gpus}, {p.spare_gpus} spare (granted at run time by priority)",
            highlight=False,
        )
        for m in p.members:
            console.print(
                f"  {m.deployment}: priority {m.priority}, weight {m.weight:g}, replicas {m.min_replicas}.."
                f"{m.max_replicas} x {m.gpus_per_replica} GPU(s){' (back-fill)' if m.backfill else ''}, "
                f"{m.slots} candidate slot(s)",
                highlight=False,
            )


def _first_per_deployment(rs: tuple[PlannedReplica, ...]) -> list[PlannedReplica]:
    first: dict[str, PlannedReplica] = {}
    for r in rs:
        first.setdefault(r.deployment, r)
    return list(first.values())


def show_plan(plan: Plan) -> None:
    table = Table(title=f"Plan: {plan.playbook} on {plan.inventory}", title_justify="left")
    for col in (
        "replica",
        "host:port",
        "GPUs",
        "engine",
        "TP",
        "weights/KV",
        "spec",
        "ctx",
        "KV tokens",
        "conc",
        "tok/s",
    ):
        table.add_column(
            col,
            justify="right" if col in ("TP", "ctx", "KV tokens", "conc", "tok/s") else "left",
            no_wrap=col in ("replica", "host:port"),
        )
    for r in plan.replicas:
        s = r.shape
        engine = ("emu-" if s.engine == "emulated" else "") + f"{s.flavour} {s.engine_version}"
        quant = s.model_spec.quantization or ("fp8" if s.quantization == "fp8" else "bf16")
        table.add_row(
            r.name,
            f"{r.host}:{r.port}",
            f"{s.gpu_type}[{','.join(map(str, r.gpu_indices))}]",
            engine,
            str(s.tp),
            f"{quant}/{s.kv_cache_dtype}",
            "EAGLE-3" if s.speculative_draft else "-",
            str(s.max_context),
            f"{s.kv_capacity_tokens:,}",
            str(s.max_concurrency),
            f"{s.est_tokens_per_s:,.0f}",
        )
    if plan.replicas or not plan.pooled:
        console.print(table)
    console.print(
        "[dim]conc: sequences of the full context that fit the KV cache; tok/s: modelled decode throughput "
        f"with {ESTIMATE_CONTEXT}-token sequences at the largest batch that fits (llmctl perf show)[/]"
    )
    if plan.spares:
        spare = ", ".join(f"{r.name} ({r.host}[{','.join(map(str, r.gpu_indices))}])" for r in plan.spares)
        console.print(f"spare slots for scale-up: {spare}", highlight=False)
    for r in plan.backfill:
        console.print(
            f"back-fill: {r.name} runs on {r.shares_with}'s GPUs ({r.host}[{','.join(map(str, r.gpu_indices))}],"
            f" port {r.port}) while {r.shares_with} is not running",
            highlight=False,
        )
    show_pools(plan)
    pooled = _first_per_deployment(plan.pooled)  # one slot of each member stands for all its slots
    shown: set[str] = set()
    for r in (*plan.replicas, *plan.backfill, *pooled):
        if r.deployment not in shown:
            shown.add(r.deployment)
            console.print(f"\n[bold]{r.deployment}[/] decisions:")
            for d in r.shape.decisions:
                console.print(f"  {d.what}: [cyan]{d.choice}[/] [dim]({d.reason})[/]", highlight=False)
    console.print("\n[bold]Commands[/]")
    for r in (*plan.replicas, *plan.backfill, *pooled):
        console.print(f"[dim]# {r.name} on {r.host}[/]", highlight=False)
        console.print(render_command(r.argv, r.env), highlight=False, markup=False, soft_wrap=True)
    for w in plan.warnings:
        console.print(f"[yellow]warning:[/] {w}", highlight=False)


def plan_command(
    playbook: Path = typer.Argument(..., help="Playbook YAML (deployments)."),
    inventory: Path = typer.Option(Path("inventory/local.yaml"), "-i", "--inventory", help="Inventory YAML."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    simulate: Path | None = typer.Option(
        None,
        "--simulate",
        help="Workload file (duration_s, seed, slo, workload: as in a sim scenario): predict latency, SLO "
        "attainment and cost of this plan.",
    ),
    state: Path | None = STATE,
) -> None:
    """Plan a playbook on an inventory: replicas, GPUs, engine flags and the exact command per replica.

    GPUs (and a CPU host's cores and memory) come from facts gathered by `llmctl hosts facts` where cached,
    else from the inventory."""
    plan = plan_files(playbook, inventory, facts=cached_facts(open_store(state)) or None)
    prediction = _simulate(playbook, inventory, simulate) if simulate else None
    if as_json:
        print_json({**plan_json(plan), **({"simulation": prediction} if prediction else {})})
        return
    show_plan(plan)
    if prediction:
        from llmctl.cli.sim import summary_table

        console.print(
            summary_table(
                f"predicted by the simulator for {simulate} ({prediction['duration_s']:g} s of traffic)",
                {**prediction["deployments"], "fleet": prediction["fleet"]},
            )
        )


def _simulate(playbook: Path, inventory: Path, workload_file: Path) -> dict[str, Any]:
    """Run the planned fleet through the simulator on a workload file (a scenario without playbook and
    inventory: those are the ones being planned)."""
    from llmctl.config.source import load_yaml, validate
    from sim.scenario import Scenario, run_scenario
    from sim.workload import parse_workload

    data, lines = load_yaml(workload_file)
    if not isinstance(data, dict):
        raise LlmctlError(f"{workload_file}: a workload file is a mapping with duration_s and workload")
    for key in ("playbook", "inventory"):
        if key in data:
            raise lines.error((key,), "comes from the command line with --simulate; remove it")
    scenario = validate(
        Scenario,
        {
            **data,
            "file": str(workload_file),
            "playbook": str(playbook.resolve()),
            "inventory": str(inventory.resolve()),
        },
        lines,
    )
    workload = parse_workload(scenario.workload, lines, ("workload",), scenario.duration_s)
    result = run_scenario(scenario, workload)
    slo = scenario.slo.slo()
    return {
        "duration_s": scenario.duration_s,
        "deployments": {n: result.summary(n, slo) for n in result.fleet},
        "fleet": result.summary(None, slo),
        "unfinished": result.unfinished,
    }
