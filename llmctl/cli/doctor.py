"""`llmctl doctor [PLAYBOOK] -i INVENTORY`: what an apply would need, checked on every host before anything
runs; one row per host and check with its fix, exit status 1 when something blocks."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

import llmctl
from llmctl.cli.common import ACCEPT_NEW, INVENTORY, JSON, KNOWN_HOSTS, LIMIT, STATE, open_store, select
from llmctl.cli.output import console, print_json

STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}


def doctor_command(
    playbook: Path | None = typer.Argument(
        None, help="Playbook YAML: check what its plan needs (default: hosts only)."
    ),
    inventory: Path = INVENTORY,
    limit: str | None = LIMIT,
    accept_new_host_keys: bool = ACCEPT_NEW,
    known_hosts: Path | None = KNOWN_HOSTS,
    timeout: float = typer.Option(60.0, help="Seconds per host for the probe."),
    as_json: bool = JSON,
    state: Path | None = STATE,
) -> None:
    """Check every host before an apply: reachable, host key, Python, venv, engine version, GPUs free,
    driver/CUDA, ports, disk for the weights, HF token for gated models. Exit 1 when any check fails."""
    # SSH, the planner and the fleet load only for this verb (see llmctl.cli.main).
    from llmctl.doctor.checks import exit_status
    from llmctl.doctor.run import doctor, needs_for
    from llmctl.fleet.facts import cached_facts
    from llmctl.fleet.ssh import SSHOptions
    from llmctl.planning import plan_files

    inv, hosts = select(inventory, limit)
    plan = None
    provision: list[str] = []
    if playbook is not None:
        plan = plan_files(playbook, inv, facts=cached_facts(open_store(state)) or None)
        provision = ["llmctl", "provision", str(playbook), "-i", str(inventory)]
    needs, run_dirs = needs_for(hosts, plan, provision, llmctl.__version__)
    if not needs:
        console.print("nothing to check: no planned replica on the selected hosts")
        return
    options = SSHOptions.from_env(accept_new_host_keys=accept_new_host_keys, known_hosts=known_hosts)
    rows = asyncio.run(doctor(hosts, needs, run_dirs, options, timeout))
    code = exit_status(rows)
    if as_json:
        print_json({"ok": code == 0, "checks": [r.__dict__ for r in rows]})
    else:
        table = Table(title=f"doctor: {len({r.host for r in rows})} host(s)", title_justify="left")
        for col in ("host", "check", "status", "detail", "fix"):
            table.add_column(col, overflow="fold")
        for r in rows:
            status = f"[{STYLE[r.status]}]{r.status}[/]"
            table.add_row(r.host, r.name, status, escape(r.detail), escape(r.fix))
        console.print(table)
        failed = sum(r.status == "fail" for r in rows)
        verdict = (
            f"[bold red]{failed} check(s) block an apply[/]"
            if failed
            else "[green]nothing blocks an apply[/]"
        )
        console.print(verdict)
    if code:
        raise typer.Exit(code)
