"""Day-to-day operating commands: `logs`, `restart`, `events`, `scale`.

`restart` goes through the controller when one runs (an intent it carries out and records), so the
controller never fights a change it did not make; without a controller it acts directly, under the
writer lock, like `apply`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import typer
from rich.table import Table

from llmctl.cli.common import ACCEPT_NEW, INVENTORY, JSON, KNOWN_HOSTS, STATE, fleet_for, open_store
from llmctl.cli.output import console, print_json
from llmctl.config.inventory import Inventory, load_inventory
from llmctl.control.desired import load_desired
from llmctl.control.launch import shell_path
from llmctl.control.rollout import Rollout, run_dir
from llmctl.errors import LlmctlError
from llmctl.state.intents import get, set_scale_override, submit
from llmctl.state.records import ReplicaRow, events, lock_holder, record_event, replicas, writer_lock
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


def restart_command(
    replica: str = typer.Argument(..., help="Replica name (see llmctl status)."),
    timeout: float = typer.Option(900.0, help="Seconds to wait for it to be ready again."),
    inventory: Path = INVENTORY,
    state: Path | None = STATE,
    accept_new_host_keys: bool = ACCEPT_NEW,
    known_hosts: Path | None = KNOWN_HOSTS,
) -> None:
    """Stop a replica and start it again with the same command line."""
    store = open_store(state)
    row = _replica(store, replica)
    controller = lock_holder(store, "controller")
    if controller:
        intent = submit(store, "restart", row.name)
        console.print(f"asked the running controller ({controller}) to restart {row.name}")
        _wait_for_intent(store, intent, timeout)
        return
    inv = load_inventory(inventory)
    _restart_directly(inv, store, row, timeout, accept_new_host_keys, known_hosts)


def _wait_for_intent(store: Store, intent: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = get(store, intent)
        if done and done.state != "pending":
            if done.state == "failed":
                raise LlmctlError(f"{done.kind} {done.target} failed: {done.result}")
            console.print(f"{done.kind} {done.target}: {done.result}")
            return
        time.sleep(FOLLOW_POLL_S)
    raise LlmctlError(f"the controller did not carry out the request within {timeout:g} s; see llmctl events")


def _restart_directly(
    inv: Inventory, store: Store, row: ReplicaRow, timeout: float, accept_new: bool, known_hosts: Path | None
) -> None:
    dep = load_desired(store).get(row.deployment)
    slot = dep.slot(row.name) if dep else None
    if slot is None:
        raise LlmctlError(f"{row.name}: its deployment is not in the state store; re-apply its playbook")
    with writer_lock(store):

        async def go() -> str:
            async with fleet_for([inv.host(row.host)], accept_new, known_hosts) as fleet:
                r = Rollout(inv, fleet, store, timeout, lambda n, w: console.print(f"[dim]{n}[/] {w}"))
                await r.stop(row, "llmctl restart", forget=False)
                out = await r.start(row.deployment, slot, "llmctl restart", row.restarts)
                if out.phase == "failed":
                    raise LlmctlError(f"{row.name} failed to start again: {out.detail}")
                return out.detail

        console.print(f"[green]{row.name} ready[/] at {asyncio.run(go())}")


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
    state: Path | None = STATE,
) -> None:
    """Pin a deployment to N replicas (manual override of the autoscaler), or hand it back with 'auto'."""
    store = open_store(state)
    desired = load_desired(store)
    if deployment not in desired:
        raise LlmctlError(f"no deployment named {deployment!r} in the state store {store.path}")
    lender = desired[deployment].backfill_for
    if lender:
        raise LlmctlError(
            f"{deployment} back-fills {lender}'s idle spare slots: its replicas follow {lender}; scale {lender} instead"
        )
    if replicas_ == "auto":
        n = None
    else:
        try:
            n = int(replicas_)
        except ValueError:
            raise LlmctlError(f"replica count {replicas_!r}: give a whole number or 'auto'") from None
        dep = load_desired(store)[deployment]
        if not 0 <= n <= len(dep.slots):
            raise LlmctlError(
                f"{deployment} has {len(dep.slots)} planned slot(s) (scaling.max_replicas); pick 0..{len(dep.slots)}"
            )
    set_scale_override(store, deployment, n)
    what = f"pinned to {n} replica(s)" if n is not None else "handed back to the autoscaler"
    record_event(store, deployment, "scale-override", f"llmctl scale: {what}")
    console.print(f"{deployment}: {what}")
    if not lock_holder(store, "controller"):
        console.print("[yellow]no controller is running[/]: it takes effect when `llmctl controller` runs")
