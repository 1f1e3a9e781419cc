"""Rollout: make the store and the hosts match a plan. Start what is new, replace what changed, stop what is
gone; wait for readiness; record every step as an event with its reason.

Replicas run detached (llmctl.control.launch) so they survive the SSH session; readiness is the engine's
health endpoint answering 200. A replica that exits or never becomes ready fails the apply with the tail of
its log and, when recognised, the engine's own error line.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from llmctl.config.inventory import Host, Inventory
from llmctl.control.launch import log_tail_argv, start_argv, status_argv, stop_argv
from llmctl.engines.emulated import TIME_SCALE_ENV
from llmctl.engines.startup_errors import recognise
from llmctl.fleet.pool import Fleet
from llmctl.fleet.transport import FleetError
from llmctl.planner import Plan, PlannedReplica
from llmctl.state.records import (
    ReplicaRow,
    delete_deployment,
    delete_replica,
    put_deployment,
    put_replica,
    record_event,
    replicas,
)
from llmctl.state.store import Store

HEALTH_POLL_S = 0.2


def spec_hash(r: PlannedReplica) -> str:
    data = json.dumps([r.host, r.gpu_indices, r.port, r.argv, sorted(r.env.items())], sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()[:16]


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
    d = Diff()
    by_name = {r.name: r for r in current}
    planned = {r.name for r in plan.replicas}
    for r in plan.replicas:
        old = by_name.get(r.name)
        if old is None or old.phase in ("failed", "stopped"):
            d.start.append(r)
        elif old.spec_hash != spec_hash(r):
            d.replace.append((old, r))
        else:
            d.keep.append(old)
    d.stop = [r for r in current if r.name not in planned]
    return d


def run_dir(host: Host, replica: str) -> str:
    return f"{host.workdir.rstrip('/')}/replicas/{replica}"


def bin_dir(host: Host) -> str:
    # Local replicas run with this interpreter's environment (llmctl is installed there); remote ones with
    # the venv `llmctl provision` made.
    return (
        str(Path(sys.executable).parent)
        if host.connection == "local"
        else f"{host.workdir.rstrip('/')}/venv/bin"
    )


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

    async def stop(self, row: ReplicaRow, reason: str) -> ReplicaOutcome:
        host = self.inventory.host(row.host)
        try:
            result = await self.fleet.transport(host).run(stop_argv(run_dir(host, row.name)), timeout=60)
            detail = result.stdout.strip()
        except FleetError as exc:
            detail = f"could not reach {row.host}: {exc.problem}"
        delete_replica(self.store, row.name)
        self._event(row.name, "stopped", reason)
        return ReplicaOutcome(row.name, "stopped", detail)

    async def start(self, r: PlannedReplica, reason: str, restarts: int = 0) -> ReplicaOutcome:
        host = self.inventory.host(r.host)
        transport = self.fleet.transport(host)
        env = dict(r.env)
        if r.shape.engine == "emulated" and os.environ.get(TIME_SCALE_ENV):
            env[TIME_SCALE_ENV] = os.environ[TIME_SCALE_ENV]  # rehearsals run faster than real time
        directory = run_dir(host, r.name)
        row = ReplicaRow(
            r.name,
            r.deployment,
            r.host,
            r.address,
            ",".join(map(str, r.gpu_indices)),
            r.port,
            None,
            "starting",
            spec_hash(r),
            time.time(),
            restarts,
            reason,
        )
        put_replica(self.store, row)
        try:
            out = await transport.run(
                start_argv(directory, list(r.argv), env, bin_dir(host)), timeout=60, check=True
            )
        except FleetError as exc:
            return self._failed(row, f"could not start: {exc.problem}")
        pid = int(out.stdout.split()[-1])
        row = ReplicaRow(**{**row.__dict__, "pid": pid})
        put_replica(self.store, row)
        self._event(r.name, "started", f"{reason}; pid {pid} on {r.host}, GPUs {row.gpus}, port {r.port}")
        return await self._wait_ready(row, directory)

    async def _wait_ready(self, row: ReplicaRow, directory: str) -> ReplicaOutcome:
        host = self.inventory.host(row.host)
        transport = self.fleet.transport(host)
        address = "127.0.0.1" if host.connection == "local" else row.address
        url = f"http://{address}:{row.port}/health"
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
                    return await self._failed_with_log(row, directory, "the engine exited during start-up")
                await asyncio.sleep(HEALTH_POLL_S)
        return await self._failed_with_log(row, directory, f"not ready after {self.timeout_s:g} s")

    async def _failed_with_log(self, row: ReplicaRow, directory: str, why: str) -> ReplicaOutcome:
        host = self.inventory.host(row.host)
        tail = (await self.fleet.transport(host).run(log_tail_argv(directory, 40), timeout=30)).stdout
        failure = recognise(tail)
        if failure:
            why = f"{why}: {failure.line} ({failure.reason})"
        else:
            last = [line for line in tail.strip().splitlines() if line.strip()][-3:]
            why = f"{why}; log tail: {' | '.join(last) or '(empty)'}"
        if host.connection == "ssh" or why.startswith("not ready"):
            await self.fleet.transport(host).run(stop_argv(directory, grace_s=5), timeout=60)
        return self._failed(row, why)

    def _failed(self, row: ReplicaRow, why: str) -> ReplicaOutcome:
        put_replica(self.store, ReplicaRow(**{**row.__dict__, "phase": "failed", "reason": why}))
        self._event(row.name, "failed", why)
        return ReplicaOutcome(row.name, "failed", why)

    async def apply(self, plan: Plan, d: Diff) -> list[ReplicaOutcome]:
        by_dep: dict[str, list[PlannedReplica]] = {}
        for r in plan.replicas:
            by_dep.setdefault(r.deployment, []).append(r)
        for dep, reps in by_dep.items():
            spec: dict[str, object] = {
                "replicas": [{"name": r.name, "host": r.host, "argv": list(r.argv)} for r in reps]
            }
            put_deployment(self.store, dep, spec, hashlib.sha256(json.dumps(spec).encode()).hexdigest()[:16])
        outcomes = [await self.stop(row, "no longer in the playbook") for row in d.stop]
        for dep in {row.deployment for row in d.stop} - set(by_dep):
            delete_deployment(self.store, dep)
        # Changed replicas are replaced one at a time so the rest keep serving.
        for old, new in d.replace:
            outcomes.append(await self.stop(old, "spec changed"))
            outcomes.append(await self.start(new, "spec changed"))
        outcomes += await asyncio.gather(*(self.start(r, "new in the playbook") for r in d.start))
        return outcomes


def current_replicas(store: Store) -> list[ReplicaRow]:
    return replicas(store)
