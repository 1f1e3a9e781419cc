"""`llmctl apply`, `llmctl status`, `llmctl stop`: roll a playbook out, look at it, take it down."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from rich.table import Table

from llmctl.cli.common import ACCEPT_NEW, INVENTORY, JSON, KNOWN_HOSTS, STATE, fleet_for, open_store
from llmctl.cli.output import console, print_json
from llmctl.config.inventory import load_inventory
from llmctl.control.rollout import Diff, ReplicaOutcome, Rollout, diff
from llmctl.errors import LlmctlError
from llmctl.fleet.facts import cached_facts
from llmctl.planning import plan_and_desired
from llmctl.state.records import ReplicaRow, replicas, writer_lock


def _show_diff(d: Diff) -> None:
    table = Table(title="changes", title_justify="left")
    for col in ("action", "replica", "host", "GPUs", "port"):
        table.add_column(col)
    for r in d.start:
        table.add_row("[green]start[/]", r.name, r.host, ",".join(map(str, r.gpu_indices)), str(r.port))
    for _old, new in d.replace:
        table.add_row(
            "[yellow]replace[/]", new.name, new.host, ",".join(map(str, new.gpu_indices)), str(new.port)
        )
    for row in d.stop:
        table.add_row("[red]stop[/]", row.name, row.host, row.gpus, str(row.port))
    for row in d.keep:
        table.add_row("[dim]unchanged[/]", row.name, row.host, row.gpus, str(row.port))
    console.print(table)


def apply_command(
    playbook: Path = typer.Argument(..., help="Playbook YAML."),
    inventory: Path = INVENTORY,
    yes: bool = typer.Option(False, "--yes", "-y", help="Apply without asking (scripts)."),
    timeout: float = typer.Option(900.0, help="Seconds each replica may take to become ready."),
    state: Path | None = STATE,
    accept_new_host_keys: bool = ACCEPT_NEW,
    known_hosts: Path | None = KNOWN_HOSTS,
) -> None:
    """Plan, show the changes against what runs, confirm, then start, replace and stop replicas."""
    inv = load_inventory(inventory)
    store = open_store(state)
    plan, desired = plan_and_desired(playbook, inv, facts=cached_facts(store) or None)
    with writer_lock(store):
        d = diff(plan, replicas(store))
        _show_diff(d)
        if d.empty:
            console.print("nothing to change")
            return
        if not yes and not typer.confirm("apply these changes?", default=False):
            raise typer.Exit(1)
        hosts = [
            inv.host(name) for name in sorted({r.host for r in plan.replicas} | {r.host for r in d.stop})
        ]

        async def go() -> list[ReplicaOutcome]:
            async with fleet_for(hosts, accept_new_host_keys, known_hosts) as fleet:
                rollout = Rollout(
                    inv,
                    fleet,
                    store,
                    timeout,
                    lambda name, what: console.print(f"[dim]{name}[/] {what}", highlight=False),
                )
                return await rollout.apply(plan, d, desired)

        outcomes = asyncio.run(go())
    failed = [o for o in outcomes if o.phase == "failed"]
    for o in failed:
        console.print(f"[bold red]{o.name} failed[/]: {o.detail}", highlight=False)
    if failed:
        raise LlmctlError(f"{len(failed)} replica(s) failed to start; see above and `llmctl status`")
    console.print(f"[green]applied[/]: {sum(o.phase == 'ready' for o in outcomes)} replica(s) ready")


def status_command(state: Path | None = STATE, as_json: bool = JSON) -> None:
    """Replicas as recorded by the last apply (phase, host, GPUs, port, restarts, reason)."""
    rows = replicas(open_store(state))
    if as_json:
        print_json([r.__dict__ for r in rows])
        return
    show_status(rows)


def show_status(rows: list[ReplicaRow]) -> None:
    table = Table(title=f"{len(rows)} replica(s)", title_justify="left")
    for col in ("replica", "deployment", "phase", "host:port", "GPUs", "pid", "restarts", "reason"):
        table.add_column(col)
    colour = {
        "ready": "green",
        "starting": "yellow",
        "backoff": "yellow",
        "failed": "red",
        "sleeping": "blue",
    }
    for r in rows:
        table.add_row(
            r.name,
            r.deployment,
            f"[{colour.get(r.phase, 'white')}]{r.phase}[/]",
            f"{r.host}:{r.port}",
            r.gpus,
            str(r.pid or "-"),
            str(r.restarts),
            r.reason,
        )
    console.print(table)


def stop_command(
    deployment: str | None = typer.Argument(None, help="Deployment to stop."),
    all_: bool = typer.Option(False, "--all", help="Stop every deployment."),
    inventory: Path = INVENTORY,
    state: Path | None = STATE,
    accept_new_host_keys: bool = ACCEPT_NEW,
    known_hosts: Path | None = KNOWN_HOSTS,
) -> None:
    """Stop a deployment's replicas (or all of them) and forget them."""
    if not deployment and not all_:
        raise LlmctlError("name a deployment to stop, or pass --all")
    inv = load_inventory(inventory)
    store = open_store(state)
    with writer_lock(store):
        rows = [r for r in replicas(store) if all_ or r.deployment == deployment]
        if not rows:
            raise LlmctlError(
                f"no replicas of {deployment!r} in the state store" if deployment else "nothing runs"
            )
        hosts = [inv.host(n) for n in sorted({r.host for r in rows})]

        async def go() -> list[ReplicaOutcome]:
            async with fleet_for(hosts, accept_new_host_keys, known_hosts) as fleet:
                rollout = Rollout(inv, fleet, store)
                return list(await asyncio.gather(*(rollout.stop(r, "llmctl stop") for r in rows)))

        outcomes = asyncio.run(go())
        for o in outcomes:
            console.print(f"{o.name}: {o.detail}", highlight=False)
        if any(o.phase == "failed" for o in outcomes):
            raise typer.Exit(1)
