"""Rollout: make the store and the hosts match a plan. Start what is new, replace what changed, stop what is
gone; wait for readiness; record every step as an event with its reason.

Replicas run detached (llmctl.control.launch) so they survive the SSH session; readiness is the engine's
health endpoint answering 200. A replica that exits or never becomes ready fails the apply with the tail of
its log and, when recognised, the engine's own error line.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from llmctl.config.inventory import Host, Inventory
from llmctl.control.desired import DesiredDeployment, Slot, put_desired, spec_hash
from llmctl.control.engine_api import ENDPOINTS, base_url
from llmctl.control.launch import log_tail_argv, start_argv, status_argv, stop_argv
from llmctl.control.scrape import parse_engine_metrics
from llmctl.engines.emulated import TIME_SCALE_ENV
from llmctl.engines.startup_errors import recognise
from llmctl.fleet.pool import Fleet
from llmctl.fleet.transport import FleetError
from llmctl.planner import Plan, PlannedReplica
from llmctl.state.records import (
    ReplicaRow,
    delete_deployment,
    delete_replica,
    put_replica,
    record_event,
    replicas,
)
from llmctl.state.store import Store

HEALTH_POLL_S = 0.2
# A rolling replace drains a replica before stopping it: marked draining, the gateway stops sending it
# requests within two of its store syncs (llmctl.gateway.store_sync, every 0.5 s) and, in the same sync,
# starts sending them to the replacement just made ready; the requests it still holds then finish.
DRAIN_SETTLE_S = 1.0
DRAIN_TIMEOUT_S = 60.0


@dataclass
class Diff:
    start: list[PlannedReplica] = field(default_factory=list)
    replace: list[tuple[ReplicaRow, PlannedReplica]] = field(default_factory=list)
    keep: list[ReplicaRow] = field(default_factory=list)
    stop: list[ReplicaRow] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.start or self.replace or self.stop)


def diff(plan: Plan, current: Sequence[ReplicaRow]) -> Diff:
    """What an apply changes. Replicas the controller started on spare slots (scale-up) or put to sleep
    stay as they are unless their slot's spec changed: re-applying the same playbook changes nothing."""
    d = Diff()
    by_name = {r.name: r for r in current}
    for r in plan.replicas:
        old = by_name.get(r.name)
        if old is None or old.phase in ("failed", "stopped"):
            d.start.append(r)
        elif old.spec_hash != spec_hash(r):
            d.replace.append((old, r))
        else:
            d.keep.append(old)
    for r in (*plan.spares, *plan.backfill):
        old = by_name.get(r.name)
        if old is None:
            continue
        if old.spec_hash != spec_hash(r) and old.phase not in ("failed", "stopped"):
            d.replace.append((old, r))
        else:
            d.keep.append(old)
    planned = {r.name for r in (*plan.replicas, *plan.spares, *plan.backfill)}
    d.stop = [r for r in current if r.name not in planned]
    return d


def run_dir(host: Host, replica: str) -> str:
    return f"{host.workdir.rstrip('/')}/replicas/{replica}"


def bin_dir(host: Host, engine: str) -> str:
    """Where the replica's program is found: the host's engine venv (`engine_venv`, default {workdir}/venv,
    where `llmctl provision` installs the engine), local and SSH hosts alike. The one exception is the
    emulated engine on a local host without an `engine_venv`: it is llmctl itself, run by this interpreter."""
    if engine == "emulated" and host.connection == "local" and host.engine_venv is None:
        return str(Path(sys.executable).parent)
    return f"{host.venv.rstrip('/')}/bin"


@dataclass(frozen=True)
class ReplicaOutcome:
    name: str
    phase: str  # ready | failed | stopped
    detail: str


Progress = Callable[[str, str], None]


class Rollout:
    def __init__(
        self,
        inventory: Inventory,
        fleet: Fleet,
        store: Store,
        timeout_s: float = 900.0,
        progress: Progress | None = None,
    ) -> None:
        self.inventory = inventory
        self.fleet = fleet
        self.store = store
        self.timeout_s = timeout_s
        self.progress = progress or (lambda name, what: None)

    def _event(self, subject: str, kind: str, reason: str) -> None:
        record_event(self.store, subject, kind, reason)
        self.progress(subject, f"{kind}: {reason}")

    async def stop(self, row: ReplicaRow, reason: str, forget: bool = True) -> ReplicaOutcome:
        """Stop every process of the replica; `forget` drops its row (a stopped slot is simply free again).
        A stop that cannot be confirmed (host unreachable, processes surviving SIGKILL) keeps the row, as
        failed with the reason: a replica is forgotten only once it is known to be gone."""
        host = self.inventory.host(row.host)
        put_replica(self.store, ReplicaRow(**{**row.__dict__, "phase": "stopping"}))
        try:
            result = await self.fleet.transport(host).run(stop_argv(run_dir(host, row.name)), timeout=60)
            problem = "" if result.ok else (result.stderr or result.stdout).strip() or f"exit {result.exit_status}"
        except FleetError as exc:
            result, problem = None, f"could not reach {row.host}: {exc.problem}"
        if result is None or problem:
            why = f"stop not confirmed ({reason}): {problem}"
            put_replica(self.store, ReplicaRow(**{**row.__dict__, "phase": "failed", "reason": why}))
            self._event(row.name, "stop-failed", why)
            return ReplicaOutcome(row.name, "failed", why)
        if forget:
            delete_replica(self.store, row.name)
        else:
            put_replica(self.store, ReplicaRow(**{**row.__dict__, "phase": "stopped", "pid": None}))
        self._event(row.name, "stopped", reason)
        return ReplicaOutcome(row.name, "stopped", result.stdout.strip())

    async def launch(
        self, deployment: str, slot: Slot, reason: str, restarts: int = 0
    ) -> ReplicaRow | ReplicaOutcome:
        """Start the slot's engine detached and record it as starting; does not wait for readiness.
        Idempotent on the host: a replica whose process still runs is adopted, not started twice."""
        host = self.inventory.host(slot.host)
        env = dict(slot.env)
        if slot.engine == "emulated" and os.environ.get(TIME_SCALE_ENV):
            env[TIME_SCALE_ENV] = os.environ[TIME_SCALE_ENV]  # rehearsals run faster than real time
        row = ReplicaRow(
            slot.name,
            deployment,
            slot.host,
            slot.address,
            ",".join(map(str, slot.gpus)),
            slot.port,
            None,
            "starting",
            slot.spec_hash,
            time.time(),
            restarts,
            reason,
        )
        put_replica(self.store, row)
        try:
            out = await self.fleet.transport(host).run(
                start_argv(
                    run_dir(host, slot.name), list(slot.argv), env, bin_dir(host, slot.engine), port=slot.port
                ),
                timeout=60,
                check=True,
            )
        except FleetError as exc:
            return self._failed(row, f"could not start: {exc.problem}")
        verb, pid = out.stdout.split()[-2:]
        row = ReplicaRow(**{**row.__dict__, "pid": int(pid)})
        put_replica(self.store, row)
        what = "already running, adopted" if verb == "running" else "started"
        self._event(
            slot.name,
            "started",
            f"{reason}; {what}: pid {pid} on {slot.host}, GPUs {row.gpus}, port {slot.port}",
        )
        return row

    async def start(self, deployment: str, slot: Slot, reason: str, restarts: int = 0) -> ReplicaOutcome:
        launched = await self.launch(deployment, slot, reason, restarts)
        if isinstance(launched, ReplicaOutcome):
            return launched
        return await self._wait_ready(launched, run_dir(self.inventory.host(slot.host), slot.name))

    async def _wait_ready(self, row: ReplicaRow, directory: str) -> ReplicaOutcome:
        host = self.inventory.host(row.host)
        transport = self.fleet.transport(host)
        url = base_url(host, row.address, row.port) + ENDPOINTS["vllm"].health
        deadline = time.monotonic() + self.timeout_s
        started = time.monotonic()
        async with httpx.AsyncClient(timeout=2.0) as client:
            while time.monotonic() < deadline:
                try:
                    if (await client.get(url)).status_code == 200:
                        put_replica(
                            self.store, ReplicaRow(**{**row.__dict__, "phase": "ready", "reason": ""})
                        )
                        self._event(row.name, "ready", f"health 200 after {time.monotonic() - started:.1f} s")
                        return ReplicaOutcome(row.name, "ready", url)
                except httpx.HTTPError:
                    pass
                status = await transport.run(status_argv(directory), timeout=30)
                if status.stdout.startswith("exited"):
                    return self._failed(row, await self.why_failed(row, "the engine exited during start-up"))
                await asyncio.sleep(HEALTH_POLL_S)
        why = await self.why_failed(row, f"not ready after {self.timeout_s:g} s")
        await transport.run(stop_argv(directory, grace_s=5), timeout=60)
        return self._failed(row, why)

    async def why_failed(self, row: ReplicaRow, why: str) -> str:
        """`why`, plus the engine's own error line from its log when recognised, else the log's last lines."""
        host = self.inventory.host(row.host)
        try:
            tail = (
                await self.fleet.transport(host).run(log_tail_argv(run_dir(host, row.name), 40), timeout=30)
            ).stdout
        except FleetError as exc:
            return f"{why}; log unreadable: {exc.problem}"
        failure = recognise(tail)
        if failure:
            return f"{why}: {failure.line} ({failure.reason})"
        last = [line for line in tail.strip().splitlines() if line.strip()][-3:]
        return f"{why}; log tail: {' | '.join(last) or '(empty)'}"

    async def drain(self, row: ReplicaRow, flavour: str) -> None:
        """Take the replica out of the gateway's routes and wait (bounded) until it holds no request, so that
        stopping it loses none. An engine that cannot be asked is stopped anyway: the wait is bounded."""
        put_replica(self.store, ReplicaRow(**{**row.__dict__, "phase": "draining"}))
        await asyncio.sleep(DRAIN_SETTLE_S)
        host = self.inventory.host(row.host)
        url = base_url(host, row.address, row.port) + ENDPOINTS[flavour].metrics
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        async with httpx.AsyncClient(timeout=2.0) as client:
            while time.monotonic() < deadline:
                try:
                    sample = parse_engine_metrics((await client.get(url)).text, flavour)
                except (httpx.HTTPError, ValueError):
                    return
                if sample.running + sample.waiting == 0:
                    return
                await asyncio.sleep(HEALTH_POLL_S)
        self._event(row.name, "drain-timeout", f"still busy after {DRAIN_TIMEOUT_S:g} s; stopping anyway")

    def _failed(self, row: ReplicaRow, why: str) -> ReplicaOutcome:
        put_replica(self.store, ReplicaRow(**{**row.__dict__, "phase": "failed", "reason": why}))
        self._event(row.name, "failed", why)
        return ReplicaOutcome(row.name, "failed", why)

    def _free_spare(self, plan: Plan, deployment: str) -> PlannedReplica | None:
        taken = {r.name for r in replicas(self.store)}
        return next((r for r in plan.spares if r.deployment == deployment and r.name not in taken), None)

    async def give_back(self, borrowers: Collection[str], why: str) -> list[ReplicaOutcome]:
        """Stop the back-fill replicas running on a slot's GPUs before the slot's owner starts there."""
        rows = [r for r in replicas(self.store) if r.name in borrowers and r.phase != "stopping"]
        return [await self.stop(r, f"gives its GPUs back: {why}") for r in rows]

    def _halt(self, deployment: str, left: list[str], why: str) -> None:
        if left:
            self._event(deployment, "rollout-halted", f"{why}; kept {', '.join(left)} on the old spec")

    async def apply(self, plan: Plan, d: Diff, desired: Sequence[DesiredDeployment]) -> list[ReplicaOutcome]:
        for dep in desired:
            put_desired(self.store, dep)
        kept = {dep.name for dep in desired}
        outcomes = [await self.stop(row, "no longer in the playbook") for row in d.stop]
        for name in {row.deployment for row in d.stop} - kept:
            delete_deployment(self.store, name)
        # A rolling replace, one replica at a time. When the deployment has a free spare slot (planned for
        # scale-up, GPUs idle) the roll surges: a replica of the new spec starts there and is ready before the
        # old one stops, so capacity never drops; the surge replica goes once the slot's own replacement is
        # ready. Without a free slot the old replica must give up its GPUs first (one replica down at a time).
        # The first failure ends the roll and leaves the rest on the old spec, still serving.
        for i, (old, new) in enumerate(d.replace):
            surge = self._free_spare(plan, new.deployment)
            if surge is not None:
                borrowers = {b.name for b in plan.backfill if b.shares_with == surge.name}
                outcomes += await self.give_back(borrowers, f"{surge.name} surges while {old.name} is replaced")
                extra = await self.start(
                    surge.deployment, Slot.of(surge), f"surge while {old.name} is replaced"
                )
                outcomes.append(extra)
                if extra.phase == "failed":
                    self._halt(
                        new.deployment, [o.name for o, _ in d.replace[i:]], f"surge {surge.name} failed"
                    )
                    break
            await self.drain(old, new.shape.flavour)
            outcomes.append(await self.stop(old, "spec changed: replacing"))
            started = await self.start(new.deployment, Slot.of(new), "spec changed")
            outcomes.append(started)
            if surge is not None:
                row = next((r for r in replicas(self.store) if r.name == surge.name), None)
                if row is not None:
                    outcomes.append(
                        await self.stop(row, f"surge no longer needed: {new.name} is {started.phase}")
                    )
            if started.phase == "failed":
                self._halt(new.deployment, [o.name for o, _ in d.replace[i + 1 :]], f"{new.name} failed")
                break
        outcomes += await asyncio.gather(
            *(self.start(r.deployment, Slot.of(r), "new in the playbook") for r in d.start)
        )
        return outcomes


def current_replicas(store: Store) -> list[ReplicaRow]:
    return replicas(store)
