"""The controller: a reconcile loop that keeps the replicas the store describes healthy and sized.

Each tick it (1) health-checks every replica and scrapes its /metrics into the store, (2) restarts crashed
or hung replicas with exponential backoff and gives up after `max_restarts`, marking them failed with the
engine's own error line, (3) carries out queued intents (restart, stop, sleep, wake), (4) asks each
deployment's autoscaler (or a manual `llmctl scale` override) for a target and acts on it: wake sleepers,
start spare slots, drain then sleep or stop. Every action is an event with its reason.

The controller keeps nothing it cannot rebuild: replicas, restarts and phases live in the store, processes
carry pid files on their hosts, and starts are idempotent. A restarted controller therefore adopts what
still runs instead of starting it twice. It skips a tick while an `llmctl apply` holds the writer lock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from llmctl.autoscale import Autoscaler
from llmctl.config.inventory import Inventory
from llmctl.control.actuate import Actuator
from llmctl.control.desired import DesiredDeployment, load_desired
from llmctl.control.engine_api import base_url, probe
from llmctl.control.host_watch import HostWatch
from llmctl.control.launch import status_argv
from llmctl.control.observe import observe
from llmctl.control.rollout import ReplicaOutcome, Rollout, run_dir
from llmctl.control.scrape import EngineSample
from llmctl.fleet.pool import Fleet
from llmctl.fleet.transport import FleetError
from llmctl.state.records import ReplicaRow, lock_holder, put_replica, record_event, replicas
from llmctl.state.store import Store
from llmctl.state.telemetry import demand, put_sample, trim_samples

Log = Callable[[str, str, str], None]


@dataclass(frozen=True)
class ControllerConfig:
    interval_s: float = 2.0
    max_restarts: int = 5
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 60.0
    unhealthy_after: int = 3  # consecutive failed health checks of a live process before a restart
    start_timeout_s: float = 900.0
    drain_timeout_s: float = 60.0
    retention_s: float = 3600.0  # metric samples older than this are dropped
    host_check_s: float = 30.0  # how often each host's reachability is checked (llmctl.control.host_watch)


@dataclass
class _Memory:
    """What the controller learns between ticks; all of it can be lost without harm."""

    health_failures: dict[str, int] = field(default_factory=dict)
    restart_at: dict[str, float] = field(default_factory=dict)
    samples: dict[str, EngineSample] = field(default_factory=dict)
    previous: dict[str, EngineSample] = field(default_factory=dict)
    activity: dict[str, float] = field(default_factory=dict)  # deployment -> last sign of a request
    requests_seen: dict[str, tuple[float, float]] = field(default_factory=dict)  # deployment -> (at, total)
    scalers: dict[str, tuple[str, Autoscaler]] = field(default_factory=dict)  # deployment -> (spec, policy)


class Controller:
    def __init__(
        self,
        inventory: Inventory,
        fleet: Fleet,
        store: Store,
        config: ControllerConfig | None = None,
        log: Log | None = None,
    ) -> None:
        self.inventory = inventory
        self.fleet = fleet
        self.store = store
        self.config = config or ControllerConfig()
        self.log = log or (lambda subject, kind, reason: None)
        self.rollout = Rollout(inventory, fleet, store, progress=lambda n, w: None)
        self.rollout._event = self.event  # type: ignore[method-assign]  # one place that records and logs
        self.memory = _Memory()
        self.kick = asyncio.Event()  # set by the gateway when requests wait for a deployment with no replica
        self.started_at = time.time()
        self.client = httpx.AsyncClient(timeout=2.0)
        self.actuator = Actuator(self)
        self.hosts = HostWatch(inventory, fleet, store, self.event, every_s=self.config.host_check_s)

    def event(self, subject: str, kind: str, reason: str) -> None:
        record_event(self.store, subject, kind, reason)
        self.log(subject, kind, reason)

    async def close(self) -> None:
        await self.client.aclose()

    async def run(self, stop: asyncio.Event) -> None:
        watch = asyncio.create_task(self.hosts.run(stop))
        try:
            await self.adopt()
            while not stop.is_set():
                await self.tick()
                self.kick.clear()
                waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self.kick.wait())]
                await asyncio.wait(waits, timeout=self.config.interval_s, return_when=asyncio.FIRST_COMPLETED)
                for w in waits:
                    w.cancel()
        finally:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)

    async def adopt(self) -> None:
        """On start: take over replicas whose processes still run; the tick handles the rest."""
        for row in replicas(self.store):
            if row.pid is None or row.phase in ("failed", "stopped"):
                continue
            host = self.inventory.host(row.host)
            try:
                out = await self.fleet.transport(host).run(status_argv(run_dir(host, row.name)), timeout=30)
            except FleetError as exc:
                self.event(row.name, "unreachable", f"cannot check {row.host}: {exc.problem}")
                continue
            if out.stdout.startswith("running"):
                self.event(row.name, "adopted", f"{out.stdout.strip()} on {row.host}, phase {row.phase}")

    async def tick(self) -> None:
        holder = lock_holder(self.store, "apply")
        if holder:
            self.log("controller", "waiting", f"an apply is running ({holder}); skipping this tick")
            return
        desired = load_desired(self.store)
        rows = [r for r in replicas(self.store) if r.deployment in desired]
        self.memory.previous = dict(self.memory.samples)
        await asyncio.gather(*(self._check(row) for row in rows))
        await self.actuator.intents(desired)
        for dep in desired.values():
            await self._scale(dep)
        trim_samples(self.store, time.time() - self.config.retention_s)

    # -- health -------------------------------------------------------------------------------------------

    async def _check(self, row: ReplicaRow) -> None:
        if row.phase in ("failed", "stopped", "stopping"):
            return
        if row.phase == "backoff":
            if time.time() >= self.memory.restart_at.get(row.name, 0.0):
                await self._restart(row, row.reason)
            return
        host = self.inventory.host(row.host)
        flavour = self._flavour(row)
        p = await probe(self.client, base_url(host, row.address, row.port), flavour)
        now = time.time()
        if p.healthy:
            self.memory.health_failures.pop(row.name, None)
            if p.sample:
                self.memory.samples[row.name] = p.sample
                put_sample(self.store, row.name, now, p.sample)
            if row.phase == "starting":
                put_replica(self.store, ReplicaRow(**{**row.__dict__, "phase": "ready", "reason": ""}))
                self.event(row.name, "ready", f"health 200 after {now - (row.started_at or now):.1f} s")
            elif row.phase == "draining":
                await self.actuator.drained(row, p.sample, now)
            return
        self.memory.samples.pop(row.name, None)
        try:
            status = await self.fleet.transport(host).run(status_argv(run_dir(host, row.name)), timeout=30)
        except FleetError as exc:
            self.event(row.name, "unreachable", f"{p.problem}; cannot reach {row.host}: {exc.problem}")
            return
        if not status.stdout.startswith("running"):
            why = f"process {status.stdout.strip() or 'gone'} ({p.problem})"
            if row.phase == "sleeping":
                self.actuator.forget(row, f"exited while asleep: {why}; its slot is free again")
            else:
                await self._crashed(row, why)
            return
        if row.phase == "starting":
            if now - (row.started_at or now) > self.config.start_timeout_s:
                await self._crashed(row, f"not ready after {self.config.start_timeout_s:g} s")
            return
        fails = self.memory.health_failures.get(row.name, 0) + 1
        self.memory.health_failures[row.name] = fails
        if fails >= self.config.unhealthy_after:
            self.memory.health_failures.pop(row.name, None)
            await self.rollout.stop(row, f"unhealthy: {p.problem} {fails} times in a row", forget=False)
            await self._crashed(row, f"unhealthy: {p.problem} {fails} times in a row")

    async def _crashed(self, row: ReplicaRow, why: str, read_log: bool = True) -> None:
        reason = await self.rollout.why_failed(row, why) if read_log else why
        if row.restarts >= self.config.max_restarts:
            put_replica(
                self.store, ReplicaRow(**{**row.__dict__, "phase": "failed", "pid": None, "reason": reason})
            )
            self.event(row.name, "gave-up", f"{reason}; restarted {row.restarts} times already, giving up")
            return
        delay = (
            0.0
            if row.restarts == 0
            else min(self.config.backoff_base_s * 2 ** (row.restarts - 1), self.config.backoff_cap_s)
        )
        self.memory.restart_at[row.name] = time.time() + delay
        put_replica(
            self.store, ReplicaRow(**{**row.__dict__, "phase": "backoff", "pid": None, "reason": reason})
        )
        when = "now" if delay == 0 else f"in {delay:g} s"
        self.event(
            row.name,
            "crashed",
            f"{reason}; restart {row.restarts + 1}/{self.config.max_restarts} {when}",
        )
        if delay == 0:
            await self._restart(ReplicaRow(**{**row.__dict__, "phase": "backoff", "reason": reason}), reason)

    async def _restart(self, row: ReplicaRow, why: str) -> None:
        dep = load_desired(self.store).get(row.deployment)
        slot = dep.slot(row.name) if dep else None
        if slot is None:
            self.actuator.forget(row, "its deployment no longer has this slot")
            return
        self.memory.restart_at.pop(row.name, None)
        launched = await self.rollout.launch(
            row.deployment, slot, f"restart after: {why}", restarts=row.restarts + 1
        )
        if isinstance(launched, ReplicaOutcome):
            # Refused before it ran (port taken, host unreachable): a failed attempt like any crash.
            failed = next((r for r in replicas(self.store, row.deployment) if r.name == row.name), None)
            if failed is not None:
                await self._crashed(failed, launched.detail, read_log=False)

    def _flavour(self, row: ReplicaRow) -> str:
        dep = load_desired(self.store).get(row.deployment)
        return dep.flavour if dep else "vllm"

    # -- scaling ------------------------------------------------------------------------------------------

    def _policy(self, dep: DesiredDeployment) -> Autoscaler:
        key = repr(dep.scaling)
        cached = self.memory.scalers.get(dep.name)
        if cached is None or cached[0] != key:
            cached = (key, dep.autoscaler())
            self.memory.scalers[dep.name] = cached
        return cached[1]

    async def _scale(self, dep: DesiredDeployment) -> None:
        now = time.time()
        rows = [r for r in replicas(self.store, dep.name)]
        seen = demand(self.store).get(dep.name)
        rate = self._arrival_rate(dep.name, seen.requests_total if seen else None, rows, now)
        obs = observe(
            dep.name,
            rows,
            self.memory.samples,
            self.memory.previous,
            seen,
            rate,
            now,
            self.memory.activity.get(dep.name, self.started_at),
        )
        if obs.demand > 0:
            self.memory.activity[dep.name] = now
        await self.actuator.scale(dep, obs, now)

    def _arrival_rate(
        self, deployment: str, gateway_total: int | None, rows: list[ReplicaRow], now: float
    ) -> float:
        # Requests finished by the engines plus those the gateway saw; a rise in either is activity.
        engines = sum(s.requests for r in rows if (s := self.memory.samples.get(r.name)))
        total = float(gateway_total) if gateway_total is not None else engines
        before = self.memory.requests_seen.get(deployment)
        self.memory.requests_seen[deployment] = (now, total)
        if before is None or total < before[1] or now <= before[0]:
            return 0.0
        if total > before[1]:
            self.memory.activity[deployment] = now
        return (total - before[1]) / (now - before[0])
