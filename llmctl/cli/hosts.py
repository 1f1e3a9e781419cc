"""`llmctl hosts list|ping|facts|exec`: look at and act on the inventory's hosts over SSH."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

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
from llmctl.config.inventory import Host
from llmctl.fleet.facts import gather
from llmctl.fleet.facts_parse import HostFacts
from llmctl.fleet.transport import CommandResult, FleetError, Transport

app = typer.Typer(help="Inventory hosts: list, ping, gather facts, run commands.", no_args_is_help=True)


def _gpus_text(facts: HostFacts | None, host: Host) -> str:
    if facts and facts.gpus:
        names: dict[str, int] = {}
        for g in facts.gpus:
            label = g.catalog or g.name
            names[label] = names.get(label, 0) + 1
        text = ", ".join(f"{n} x {k}" for k, n in names.items())
        return text + (" (declared)" if facts.gpu_source == "declared" else "")
    if host.gpus:
        return f"{host.gpus.count} x {host.gpus.type} (declared)"
    return "-"


@app.command("list")
def list_hosts(
    inventory: Path = INVENTORY, limit: str | None = LIMIT, state: Path | None = STATE, as_json: bool = JSON
) -> None:
    """Hosts with address, user, port, groups and GPUs (gathered facts when cached, else declared)."""
    _, hosts = select(inventory, limit)
    store = open_store(state)
    cached = store.all_facts()
    rows: list[dict[str, Any]] = []
    for h in hosts:
        entry = cached.get(h.name)
        facts = HostFacts.from_dict(entry[1]) if entry else None
        rows.append(
            {
                "name": h.name,
                "address": h.address,
                "connection": h.connection,
                "user": h.user,
                "port": h.port,
                "groups": list(h.groups),
                "gpus": _gpus_text(facts, h),
                "facts_gathered_at": entry[0] if entry else None,
            }
        )
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"{len(rows)} host(s) in {inventory}", title_justify="left")
    for col in ("host", "address", "user", "groups", "GPUs"):
        table.add_column(col)
    for r in rows:
        where = "local" if r["connection"] == "local" else f"{r['address']}:{r['port']}"
        table.add_row(r["name"], where, r["user"] or "-", ",".join(r["groups"]) or "-", r["gpus"])
    console.print(table)


@app.command()
def ping(
    inventory: Path = INVENTORY,
    limit: str | None = LIMIT,
    accept_new_host_keys: bool = ACCEPT_NEW,
    known_hosts: Path | None = KNOWN_HOSTS,
    timeout: float = typer.Option(15.0, help="Seconds per host."),
    as_json: bool = JSON,
) -> None:
    """Connect to each host and run `true`: reachable or not, and how long it took."""
    _, hosts = select(inventory, limit)

    async def go() -> dict[str, CommandResult | FleetError]:
        async with fleet_for(hosts, accept_new_host_keys, known_hosts) as fleet:
            return await fleet.run(["true"], timeout=timeout)

    results = asyncio.run(go())
    rows = [
        {
            "host": name,
            "reachable": isinstance(r, CommandResult) and r.ok,
            "latency_ms": round(r.duration_s * 1000, 1) if isinstance(r, CommandResult) else None,
            "error": r.problem if isinstance(r, FleetError) else None,
        }
        for name, r in results.items()
    ]
    if as_json:
        print_json(rows)
    else:
        for row in rows:
            if row["reachable"]:
                console.print(f"[green]ok[/]   {row['host']}  {row['latency_ms']} ms", highlight=False)
            else:
                # One unwrapped line: the error may end in a command to paste (ssh-keygen -R ...).
                line = f"[red]FAIL[/] {row['host']}  {escape(str(row['error']))}"
                console.print(line, highlight=False, soft_wrap=True)
    if not all(r["reachable"] for r in rows):
        raise typer.Exit(1)


@app.command()
def facts(
    inventory: Path = INVENTORY,
    limit: str | None = LIMIT,
    state: Path | None = STATE,
    accept_new_host_keys: bool = ACCEPT_NEW,
    known_hosts: Path | None = KNOWN_HOSTS,
    as_json: bool = JSON,
) -> None:
    """Gather GPUs (nvidia-smi), CPUs, memory, disk, OS, Python and engine versions; cache them in the store."""
    _, hosts = select(inventory, limit)
    store = open_store(state)

    async def go() -> dict[str, HostFacts | FleetError]:
        async with fleet_for(hosts, accept_new_host_keys, known_hosts) as fleet:
            return await gather(fleet, hosts, store)

    results = asyncio.run(go())
    by_name = {h.name: h for h in hosts}
    if as_json:
        print_json(
            {
                n: (r.to_dict() if isinstance(r, HostFacts) else {"error": r.problem})
                for n, r in results.items()
            }
        )
    else:
        table = Table(title="host facts", title_justify="left")
        for col in ("host", "GPUs", "driver/CUDA", "CPUs", "memory", "free disk", "engines", "notes"):
            table.add_column(col)
        for name, r in results.items():
            if isinstance(r, FleetError):
                table.add_row(name, f"[red]{escape(r.problem)}[/]", "", "", "", "", "", "")
                continue
            table.add_row(
                name,
                _gpus_text(r, by_name[name]),
                f"{r.driver_version or '-'}/{r.cuda_version or '-'}",
                str(r.cpus or "-"),
                f"{(r.memory_mib or 0) / 1024:.0f} GiB",
                f"{(r.disk_free_mib or 0) / 1024:.0f} GiB",
                ", ".join(f"{k} {v}" for k, v in r.engines.items()) or "-",
                "; ".join(r.notes),
            )
        console.print(table)
    if any(isinstance(r, FleetError) for r in results.values()):
        raise typer.Exit(1)


@app.command("exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def exec_(
    command: list[str] = typer.Argument(..., help="Command and arguments, after --."),
    inventory: Path = INVENTORY,
    limit: str | None = LIMIT,
    accept_new_host_keys: bool = ACCEPT_NEW,
    known_hosts: Path | None = KNOWN_HOSTS,
    timeout: float = typer.Option(60.0, help="Seconds per host."),
    as_json: bool = JSON,
) -> None:
    """Run one command on every selected host; output grouped per host; exit 1 if any host failed."""
    _, hosts = select(inventory, limit)

    async def go() -> dict[str, CommandResult | FleetError]:
        async with fleet_for(hosts, accept_new_host_keys, known_hosts) as fleet:

            async def action(host: Host, t: Transport) -> CommandResult:
                return await t.run(command, timeout=timeout)

            return await fleet.each(action)

    results = asyncio.run(go())
    failed = [n for n, r in results.items() if not (isinstance(r, CommandResult) and r.ok)]
    if as_json:
        print_json(
            {
                n: (
                    {"exit_status": r.exit_status, "stdout": r.stdout, "stderr": r.stderr}
                    if isinstance(r, CommandResult)
                    else {"error": r.problem}
                )
                for n, r in results.items()
            }
        )
    else:
        for name, r in results.items():
            if isinstance(r, FleetError):
                console.print(
                    f"[bold red]{name}[/] unreachable: {escape(r.problem)}", highlight=False, soft_wrap=True
                )
                continue
            colour = "green" if r.ok else "red"
            console.print(f"[bold {colour}]{name}[/] exit {r.exit_status}", highlight=False)
            if r.stdout:
                sys.stdout.write(r.stdout if r.stdout.endswith("\n") else r.stdout + "\n")
            if r.stderr:
                sys.stderr.write(r.stderr if r.stderr.endswith("\n") else r.stderr + "\n")
            sys.stdout.flush()
    if failed:
        raise typer.Exit(1)
