"""`llmctl provision PLAYBOOK -i INVENTORY`: prepare the hosts a plan uses (venv, engine, weights)."""

from __future__ import annotations

import asyncio
import shlex
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

import llmctl
from llmctl.cli.common import (
    ACCEPT_NEW,
    INVENTORY,
    JSON,
    KNOWN_HOSTS,
    LIMIT,
    STATE,
    fleet_for,
    open_store,
    select,
)
from llmctl.cli.output import console, print_json
from llmctl.fleet.facts import cached_facts
from llmctl.fleet.provision import work_from_plan
from llmctl.fleet.provision_run import StepOutcome, build_wheel, provision
from llmctl.planning import plan_files

STATUS_STYLE = {"done": "green", "skipped": "dim", "failed": "bold red", "not run": "yellow"}


def provision_command(
    playbook: Path = typer.Argument(..., help="Playbook YAML."),
    inventory: Path = INVENTORY,
    limit: str | None = LIMIT,
    accept_new_host_keys: bool = ACCEPT_NEW,
    known_hosts: Path | None = KNOWN_HOSTS,
    pip_args: str = typer.Option(
        "", help="Extra pip arguments, e.g. '--index-url URL' or '--no-index --find-links DIR'."
    ),
    wheel: Path | None = typer.Option(
        None,
        help="llmctl wheel for hosts running the emulated engine (default: built from this installation).",
    ),
    as_json: bool = JSON,
    state: Path | None = STATE,
) -> None:
    """Idempotently prepare each host the plan uses; re-running skips what is done and finishes what is not."""
    inv, hosts = select(inventory, limit)
    plan = plan_files(playbook, inv, facts=cached_facts(open_store(state)) or None)
    works = work_from_plan(plan, hosts, llmctl.__version__)
    if not works:
        console.print("nothing to provision: no planned replica on the selected hosts")
        return
    needs_wheel = any(p == "llmctl" for w in works for p, _ in w.packages) and any(
        w.host.connection == "ssh" for w in works
    )
    wheel_path = wheel or (build_wheel() if needs_wheel else None)

    with Progress(
        TextColumn("{task.fields[host]:<12}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        disable=as_json,
    ) as progress:
        tasks = {w.host.name: progress.add_task("waiting", total=None, host=w.host.name) for w in works}

        def report(host: str, step: str, index: int, total: int) -> None:
            progress.update(tasks[host], description=step, completed=index, total=total)

        async def go() -> list[StepOutcome]:
            async with fleet_for([w.host for w in works], accept_new_host_keys, known_hosts) as fleet:
                return await provision(fleet, works, shlex.split(pip_args), wheel_path, report)

        outcomes = asyncio.run(go())

    failed = [o for o in outcomes if o.status == "failed"]
    if as_json:
        print_json([o.__dict__ for o in outcomes])
    else:
        table = Table(title="provisioning", title_justify="left")
        for col in ("host", "step", "status", "seconds", "detail"):
            table.add_column(col, justify="right" if col == "seconds" else "left")
        for o in outcomes:
            style = STATUS_STYLE.get(o.status, "")
            table.add_row(o.host, o.step, f"[{style}]{o.status}[/]", f"{o.duration_s:.1f}", o.detail)
        console.print(table)
    if failed:
        raise typer.Exit(1)
