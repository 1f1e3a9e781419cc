"""Day-to-day operating commands: `logs`, `events`, and the intents `restart`, `sleep`, `wake`, `scale`.

An intent is checked (llmctl.reconcile.intents, the rules the TUI and the controller use), queued in the
store and carried out by the controller: a running one, or its own passes in this process when none runs
(llmctl.cli.converge). Nothing here reaches a host to change it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import typer
from rich.table import Table

from llmctl.cli.common import ACCEPT_NEW, INVENTORY, JSON, KNOWN_HOSTS, STATE, fleet_for, open_store
from llmctl.cli.converge import Done, carry_out
from llmctl.cli.output import console, print_json
from llmctl.config.inventory import load_inventory
from llmctl.control.launch import shell_path
from llmctl.control.lifecycle import run_dir
from llmctl.errors import LlmctlError
from llmctl.state.intents import get, submit
from llmctl.state.records import ReplicaRow, events, replicas
from llmctl.state.store import Store

FOLLOW_POLL_S = 0.5


def _replica(store: Store, name: str) -> ReplicaRow:
    rows = replicas(store)
    row = next((r for r in rows if r.name == name), None)
    if row is None:
        known = ", ".join(r.name for r in rows) or "none"
        raise LlmctlError(f"no replica named {name!r} in the state store {store.path}; replicas: {known}")
    return row


def logs_command(
    replica: str = typer.Argument(..., help="Replica name (see llmctl status)."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines."),
    lines: int = typer.Option(50, "--lines", "-n", help="Lines of history to show first."),
    inventory: Path = INVENTORY,
    state: Path | None = STATE,
    accept_new_host_keys: bool = ACCEPT_NEW,
    known_hosts: Path | None = KNOWN_HOSTS,
) -> None:
    """Print a replica's engine log from its host (like kubectl logs)."""
    inv = load_inventory(inventory)
    row = _replica(open_store(state), replica)
    host = inv.host(row.host)
    log = f"{shell_path(run_dir(host, row.name))}/log"

    async def go() -> None:
        async with fleet_for([host], accept_new_host_keys, known_hosts) as fleet:
            t = fleet.transport(host)
            # The byte count and the tail come from one command, so following resumes exactly there.
            first = await t.run(
                ["sh", "-c", f'f={log}; [ -f "$f" ] || exit 3; wc -c < "$f"; tail -n {int(lines)} "$f"'],
                timeout=30,
            )
            if first.exit_status == 3:
                raise LlmctlError(f"{row.name} has no log on {row.host} yet ({run_dir(host, row.name)}/log)")
            size, _, text = first.stdout.partition("\n")
            offset = int(size.strip() or 0)
            console.out(text, end="", highlight=False)
            while follow:
                await asyncio.sleep(FOLLOW_POLL_S)
                more = await t.run(
                    [
                        "sh",
                        "-c",
                        f'f={log}; n=$(wc -c < "$f"); echo "$n"; '
                        f'tail -c +{offset + 1} "$f" | head -c $((n - {offset}))',
                    ],
                    timeout=30,
                )
                size, _, text = more.stdout.partition("\n")
                new = int(size.strip() or offset)
                if new < offset:  # the log was rotated or the replica restarted: start over
                    offset = 0
                    continue
                offset = new
                console.out(text, end="", highlight=False)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(go())


def _intent(
    kind: str,
    target: str,
    arg: str,
    inventory: Path,
    state: Path | None,
    timeout: float,
    accept_new: bool,
    known_hosts: Path | None,
    then_ready: bool = False,
) -> None:
    """Queue the intent (checked by the rules the controller applies), then follow it until carried out."""
    store = open_store(state)
    intent = submit(store, kind, target, arg)
    inv = load_inventory(inventory) if inventory.exists() else None

    def finished() -> Done | None:
        done = get(store, intent)
        if done is None or done.state == "pending":
            return None
        if done.state == "failed":
            return Done(False, f"{done.kind} {done.target} failed: {done.result}")
        if then_ready:
            row = next((r for r in replicas(store) if r.name == target), None)
            if row is None or row.phase in ("starting", "backoff"):
                return None
            if row.phase != "ready":
                return Done(False, f"{target} is {row.phase}: {row.reason}")
        return Done(True, f"{done.kind} {done.target}: {done.result}")

    result = carry_out(inv, store, finished, timeout, lambda s: s == target, accept_new, known_hosts)
    if not result.ok:
        raise LlmctlError(result.detail)
    console.print(result.detail, highlight=False)


def restart_command(
    replica: str = typer.Argument(..., help="Replica name (see llmctl status)."),
    timeout: float = typer.Option(900.0, help="Seconds to wait for it to be ready again."),
    inventory: Path = INVENTORY,
    state: Path | None = STATE,
    accept_new_host_keys: bool = ACCEPT_NEW,
    known_hosts: Path | None = KNOWN_HOSTS,
) -> None:
    """Stop a replica and start it again with the same command line (an intent the controller carries out)."""
    _intent(
        "restart", replica, "", inventory, state, timeout, accept_new_host_keys, known_hosts, then_ready=True
    )


def sleep_command(
    replica: str = typer.Argument(..., help="Replica name (see llmctl status)."),
    timeout: float = typer.Option(300.0, help="Seconds to wait for the controller to take it."),
    inventory: Path = INVENTORY,
    state: Path | None = STATE,
    accept_new_host_keys: bool = ACCEPT_NEW,
    known_hosts: Path | None = KNOWN_HOSTS,
) -> None:
    """Drain a ready replica, then put it to sleep (weights offloaded; engines started with sleep mode)."""
    _intent("sleep", replica, "", inventory, state, timeout, accept_new_host_keys, known_hosts)


def wake_command(
    replica: str = typer.Argument(..., help="Replica name (see llmctl status)."),
    timeout: float = typer.Option(300.0, help="Seconds to wait for it to be awake."),
    inventory: Path = INVENTORY,
    state: Path | None = STATE,
    accept_new_host_keys: bool = ACCEPT_NEW,
    known_hosts: Path | None = KNOWN_HOSTS,
) -> None:
    """Wake a sleeping replica."""
    _intent("wake", replica, "", inventory, state, timeout, accept_new_host_keys, known_hosts)


def events_command(
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new events."),
    subject: str | None = typer.Option(None, "--for", help="Only events about this replica or deployment."),
    limit: int = typer.Option(50, "--limit", "-n", help="Most recent events to show first."),
    state: Path | None = STATE,
    as_json: bool = JSON,
) -> None:
    """What the controller, autoscaler and rollouts did, and why (like kubectl get events)."""
    store = open_store(state)

    def wanted(e_subject: str) -> bool:
        return subject is None or e_subject == subject or e_subject.startswith(f"{subject}-")

    batch = [e for e in events(store, 0, 100_000 if subject else limit) if wanted(e.subject)][-limit:]
    if as_json and not follow:
        print_json([e.__dict__ for e in batch])
        return
    if not follow:
        table = Table(title=f"{len(batch)} event(s)", title_justify="left")
        for col in ("time", "subject", "kind", "reason"):
            table.add_column(col, overflow="fold")
        for e in batch:
            table.add_row(time.strftime("%H:%M:%S", time.localtime(e.at)), e.subject, e.kind, e.reason)
        console.print(table)
        return
    last = batch[-1].id if batch else 0
    try:
        while True:
            for e in batch:
                if as_json:
                    print_json(e.__dict__)
                else:
                    stamp = time.strftime("%H:%M:%S", time.localtime(e.at))
                    console.print(f"{stamp} [bold]{e.subject}[/] {e.kind}: {e.reason}", highlight=False)
                last = e.id
            time.sleep(FOLLOW_POLL_S)
            batch = [e for e in events(store, last, 1000) if wanted(e.subject)]
            if not batch:
                newest = events(store, last, 1)
                last = newest[-1].id if newest else last
    except KeyboardInterrupt:
        pass


def scale_command(
    deployment: str = typer.Argument(..., help="Deployment name."),
    replicas_: str = typer.Argument(..., metavar="N|auto", help="Replica count to pin, or 'auto'."),
    inventory: Path = INVENTORY,
    timeout: float = typer.Option(60.0, help="Seconds to wait for the controller to take the pin."),
    state: Path | None = STATE,
    accept_new_host_keys: bool = ACCEPT_NEW,
    known_hosts: Path | None = KNOWN_HOSTS,
) -> None:
    """Pin a deployment to N replicas (manual override of the autoscaler), or hand it back with 'auto'."""
    _intent("scale", deployment, replicas_, inventory, state, timeout, accept_new_host_keys, known_hosts)
