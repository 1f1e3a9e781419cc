"""`llmctl apply`, `llmctl status`, `llmctl stop`: record what should run, look at it, take it down.

`apply` and `stop` write desired state (a new generation; a deployment marked stopped) and leave the acting
to the controller (llmctl.cli.converge): a running one, whose events they follow, or the controller's own
passes in this process when none runs.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from pathlib import Path

import typer
from rich.table import Table

from llmctl.cli.common import ACCEPT_NEW, INVENTORY, JSON, KNOWN_HOSTS, STATE, open_store
from llmctl.cli.converge import Done, carry_out
from llmctl.cli.output import console, print_json
from llmctl.config.inventory import Inventory, load_inventory
from llmctl.control.diff import Diff, diff
from llmctl.errors import LlmctlError
from llmctl.fleet.facts import cached_facts
from llmctl.planning import plan_and_desired
from llmctl.reconcile.phase import Phase
from llmctl.reconcile.pool import GpuHolder, pool_holdings
from llmctl.reconcile.tiers import replica_tier
from llmctl.spec.deployment import DesiredDeployment
from llmctl.state.desired import load_desired, next_generation, put_desired, read_desired, to_json
from llmctl.state.records import (
    ReplicaRow,
    events,
    reconciled_generation,
    record_event,
    replicas,
    writer_lock,
)
from llmctl.state.store import Store

# Events that make an apply or a stop report failure at once (the controller goes on within its budget).
FAILURES = ("crashed", "failed", "gave-up", "stop-failed", "rollout-halted")
NO_WAIT = typer.Option(
    False, "--no-wait", help="Record the change and return; the controller carries it out."
)


def _show_diff(d: Diff, settings: list[str]) -> None:
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
    for line in settings:
        console.print(f"[yellow]setting[/] {line}", highlight=False)


def _settings(
    old: dict[str, DesiredDeployment], new: list[DesiredDeployment], unreadable: dict[str, str] | None = None
) -> list[str]:
    """What an apply changes beyond command lines: every field of the desired state, by name. A row that
    cannot be read is rewritten from the playbook (the repair its error advises)."""
    out = []
    unreadable = unreadable or {}
    for dep in new:
        before = old.get(dep.name)
        if dep.name in unreadable:
            out.append(
                f"{dep.name}: unreadable in the store ({unreadable[dep.name]}); rewritten from the playbook"
            )
            continue
        if before is None:
            out.append(f"{dep.name}: new deployment")
            continue
        if before.stopped:
            out.append(f"{dep.name}: stopped, wanted again")
        a = to_json(replace(before, generation=0, stopped=False, removed=False))
        b = to_json(replace(dep, generation=0, stopped=False, removed=False))
        for key in sorted(k for k in b if k != "slots" and a.get(k) != b[k]):
            if isinstance(b[key], dict) and isinstance(a.get(key), dict):
                for sub in sorted(k for k in b[key] if a[key].get(k) != b[key][k]):
                    out.append(f"{dep.name}: {key}.{sub} {a[key].get(sub)!r} -> {b[key][sub]!r}")
            else:
                out.append(f"{dep.name}: {key} {a.get(key)!r} -> {b[key]!r}")
    for name in sorted(set(old) - {d.name for d in new}):
        if not old[name].removed:
            out.append(f"{name}: no longer in the playbook")
    return out


def _about(names: Collection[str]) -> Callable[[str], bool]:
    return lambda subject: subject in names or any(subject.startswith(f"{n}-") for n in names)


def _settled(store: Store, rec: Recorded) -> Done | None:
    about = _about(rec.names)
    broke = [e for e in events(store, rec.since, 10_000) if e.kind in FAILURES and about(e.subject)]
    if broke:
        return Done(False, "\n".join(f"{e.subject} {e.kind}: {e.reason}" for e in broke), said=True)
    if all(reconciled_generation(store, n) >= rec.generation for n in rec.names):
        ready = sum(r.phase == Phase.READY for r in replicas(store) if r.deployment in rec.names)
        return Done(True, f"generation {rec.generation} reconciled: {ready} replica(s) ready")
    return None


def apply_command(
    playbook: Path = typer.Argument(..., help="Playbook YAML."),
    inventory: Path = INVENTORY,
    yes: bool = typer.Option(False, "--yes", "-y", help="Apply without asking (scripts)."),
    timeout: float = typer.Option(
        900.0, help="Seconds to wait for the controller to reach the new generation."
    ),
    no_wait: bool = NO_WAIT,
    state: Path | None = STATE,
    accept_new_host_keys: bool = ACCEPT_NEW,
    known_hosts: Path | None = KNOWN_HOSTS,
) -> None:
    """Plan, show the changes against what runs, confirm, record the new desired state; the controller makes it so."""
    inv = load_inventory(inventory)
    store = open_store(state)
    plan, desired = plan_and_desired(playbook, inv, facts=cached_facts(store) or None)
    with writer_lock(store):
        old = read_desired(store)
        d = diff(plan, replicas(store))
        settings = _settings(old.deployments, desired, old.unreadable)
        for name in sorted(set(old.unreadable) - {dep.name for dep in desired}):
            console.print(f"[yellow]{name}[/]: {old.unreadable[name]}; not in this playbook, left as it is")
        _show_diff(d, settings)
        if d.empty and not settings:
            console.print("nothing to change")
            return
        if not yes and not typer.confirm("apply these changes?", default=False):
            raise typer.Exit(1)
        recorded = record_apply(store, desired)
    console.print(f"recorded generation {recorded.generation}")
    if no_wait:
        return
    result = settle_apply(inv, store, recorded, timeout, accept_new_host_keys, known_hosts)
    if not result.ok:
        if not result.said:
            console.print(f"[bold red]failed[/]: {result.detail}", highlight=False)
        raise LlmctlError("the apply did not complete; see above, `llmctl status` and `llmctl events`")
    console.print(f"[green]applied[/]: {result.detail}")


@dataclass(frozen=True)
class Recorded:
    generation: int
    names: frozenset[str]  # the deployments the change is about
    since: int  # the last event id before it: what follows is its story


def _last_event(store: Store) -> int:
    last = events(store, 0, 1)
    return last[-1].id if last else 0


def record_apply(store: Store, desired: list[DesiredDeployment]) -> Recorded:
    """Record the whole desired state as a new generation, in one transaction: every deployment of the
    playbook wanted (even one that `stop` marked stopped), every other one stopped and removed."""
    old = load_desired(store)
    generation = next_generation(store)
    names = {dep.name for dep in desired}
    with store.transaction():
        for dep in desired:
            put_desired(store, replace(dep, generation=generation, stopped=False, removed=False))
        for name in sorted(set(old) - names):
            put_desired(store, replace(old[name], generation=generation, stopped=True, removed=True))
            names.add(name)
        record_event(store, "apply", "applied", f"generation {generation}: {', '.join(sorted(names))}")
    return Recorded(generation, frozenset(names), _last_event(store))


def settle_apply(
    inv: Inventory, store: Store, rec: Recorded, timeout: float, accept_new: bool, known_hosts: Path | None
) -> Done:
    return carry_out(
        inv,
        store,
        lambda: _settled(store, rec),
        timeout,
        _about(rec.names),
        accept_new,
        known_hosts,
    )


def record_stop(store: Store, names: set[str]) -> Recorded:
    desired = load_desired(store)
    with store.transaction():
        for name in sorted(names):
            put_desired(store, replace(desired[name], stopped=True))
            record_event(store, name, "stop-requested", "llmctl stop: no replica wanted")
    return Recorded(0, frozenset(names), _last_event(store))


def settle_stop(
    inv: Inventory | None,
    store: Store,
    rec: Recorded,
    timeout: float,
    accept_new: bool,
    known_hosts: Path | None,
) -> Done:
    about = _about(rec.names)

    def gone() -> Done | None:
        broke = [e for e in events(store, rec.since, 10_000) if e.kind == "stop-failed" and about(e.subject)]
        if broke:
            return Done(False, "\n".join(f"{e.subject}: {e.reason}" for e in broke))
        left = [r for r in replicas(store) if r.deployment in rec.names]
        orphans = [r for r in left if r.phase == Phase.ORPHANED]
        if orphans:  # nothing can reach them: say so now rather than wait out the timeout
            return Done(
                False,
                "\n".join(f"{r.name}: not stopped, {r.reason}; it may still run there" for r in orphans),
            )
        return None if left else Done(True, f"{', '.join(sorted(rec.names))}: every replica stopped")

    return carry_out(inv, store, gone, timeout, about, accept_new, known_hosts)


def status_command(state: Path | None = STATE, as_json: bool = JSON) -> None:
    """Replicas as the controller records them (phase, host, GPUs, port, restarts, reason)."""
    store = open_store(state)
    rows = replicas(store)
    recorded_state = read_desired(store)
    pools = {d.name: d.pool for d in recorded_state.deployments.values()}
    if as_json:
        print_json(
            [
                {
                    **r.__dict__,
                    "phase": str(r.phase),
                    "pool": pools.get(r.deployment),
                    "tier": replica_tier(r).name,
                }
                for r in rows
            ]
        )
        return
    show_status(rows)
    show_pools(pool_holdings(recorded_state.deployments.values(), rows))
    for name, why in sorted(recorded_state.unreadable.items()):
        console.print(f"[red]{name}[/]: {why}", highlight=False)
    stopped = [d.name for d in recorded_state.deployments.values() if d.stopped and not d.removed]
    if stopped:
        console.print(f"stopped (no replica wanted until the next apply): {', '.join(stopped)}")


def show_status(rows: list[ReplicaRow]) -> None:
    table = Table(title=f"{len(rows)} replica(s)", title_justify="left")
    for col in ("replica", "deployment", "phase", "host:port", "GPUs", "pid", "restarts", "reason"):
        table.add_column(col)
    colour = {
        "ready": "green",
        "starting": "yellow",
        "backoff": "yellow",
        "failed": "red",
        "orphaned": "red",
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


def show_pools(holders: list[GpuHolder]) -> None:
    """Each GPU pool: which deployment holds which GPU (free ones are the pool's spare)."""
    if not holders:
        return
    table = Table(title="GPU pools", title_justify="left")
    for col in ("pool", "GPU", "deployment", "replica", "phase"):
        table.add_column(col)
    for h in holders:
        gpu = f"{h.gpu.host}:{h.gpu.index}"
        table.add_row(h.pool, gpu, h.deployment or "[dim]spare[/]", h.replica or "-", h.phase or "-")
    console.print(table)


def stop_command(
    deployment: str | None = typer.Argument(None, help="Deployment to stop."),
    all_: bool = typer.Option(False, "--all", help="Stop every deployment."),
    inventory: Path = INVENTORY,
    timeout: float = typer.Option(300.0, help="Seconds to wait for its replicas to be gone."),
    no_wait: bool = NO_WAIT,
    state: Path | None = STATE,
    accept_new_host_keys: bool = ACCEPT_NEW,
    known_hosts: Path | None = KNOWN_HOSTS,
) -> None:
    """Mark a deployment (or all) stopped: the controller drains and stops its replicas and forgets each one
    only once it is confirmed gone. The deployment stays recorded; the next apply wants it again."""
    if not deployment and not all_:
        raise LlmctlError("name a deployment to stop, or pass --all")
    store = open_store(state)
    with writer_lock(store):
        recorded_state = read_desired(store)
        desired = recorded_state.deployments
        if deployment in recorded_state.unreadable:
            raise LlmctlError(recorded_state.unreadable[deployment])
        for name, why in sorted(recorded_state.unreadable.items()) if all_ else ():
            console.print(f"[yellow]{name}[/]: {why}; not stopped (its replicas are left as they are)")
        if deployment and deployment not in desired:
            known = ", ".join(sorted(desired)) or "none"
            raise LlmctlError(
                f"no deployment named {deployment!r} in the state store {store.path}; deployments: {known}"
            )
        names = set(desired) if all_ else {deployment or ""}
        if not names:
            raise LlmctlError("nothing runs")
        recorded = record_stop(store, names)
    if no_wait:
        console.print(f"marked stopped: {', '.join(sorted(names))}")
        return
    inv = load_inventory(inventory) if inventory.exists() else None
    result = settle_stop(inv, store, recorded, timeout, accept_new_host_keys, known_hosts)
    console.print(result.detail, highlight=False)
    if not result.ok:
        raise typer.Exit(1)
