"""The controller: the one actor. A reconcile loop that makes the fleet what the store's desired state says
and keeps it healthy and sized.

Each tick it (1) health-checks every replica and scrapes its /metrics into the store, (2) restarts crashed or
hung replicas within the restart budget (llmctl.reconcile.restart: consecutive failures, exponential
backoff), (3) carries out queued intents (restart, sleep, wake, scale pins, replica stops), (4) for each
deployment asks the reconcile core (llmctl.reconcile.plan) for this tick's actions: a stop, a rolling
replace step, the autoscaler's decision, the initial fill, back-fill; and carries them out
(llmctl.control.actuate), (5) records the generation it has reconciled. Every action is an event. GPU pools
come before step 4: every member's autoscaler target is the pool's demand, the shared pool step
(llmctl.reconcile.pool) grants, preempts, waits and refuses, and those moves join the members' actions
(llmctl.control.pools records each decision as an event).

What it keeps lives in the store (phases, failure counts, retry times, drain targets, surge, idle clocks), so
a restarted controller adopts what still runs and picks up where the last one stopped. Policies read the
monotonic clock; wall time is only what the store keeps across restarts and what people see. A replica whose
host left the inventory is orphaned (an event, a phase), never a reason for the controller to stop.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from llmctl.autoscale import Autoscaler
from llmctl.autoscale.types import Decision, Observation
from llmctl.config.inventory import Host, Inventory
from llmctl.control.actuate import Actuator
from llmctl.control.engine_api import base_url, probe
from llmctl.control.host_watch import HostWatch
from llmctl.control.launch import status_argv
from llmctl.control.lifecycle import Lifecycle, ReplicaOutcome, run_dir
from llmctl.control.pools import PoolEvents
from llmctl.control.scrape import EngineSample
from llmctl.control.tiers import ColdTiers
from llmctl.errors import LlmctlError
from llmctl.fleet.pool import Fleet
from llmctl.fleet.transport import FleetError
from llmctl.reconcile.actions import Action
from llmctl.reconcile.idle import in_use_now
from llmctl.reconcile.observe import observe
from llmctl.reconcile.phase import Phase, parse
from llmctl.reconcile.plan import converged, plan_deployment
from llmctl.reconcile.pool import pool_tick, pools_of
from llmctl.reconcile.restart import RestartPolicy
from llmctl.spec.deployment import DesiredDeployment
from llmctl.state.desired import read_desired
from llmctl.state.intents import finish, pending, scale_overrides
from llmctl.state.machine_lock import StoreWatch
from llmctl.state.records import (
    ReplicaRow,
    delete_deployment,
    last_active,
    put_replica,
    reconciled_generation,
    record_event,
    replica_key,
    replicas,
    set_last_active,
    set_reconciled,
    set_surge,
    surge,
)
from llmctl.state.store import Store
from llmctl.state.telemetry import demand, put_sample, trim_samples

Log = Callable[[str, str, str], None]
# (deployment, policy time, the Observation the policy was given, the actions planned that tick)
Trace = Callable[[str, float, Observation, tuple[Action, ...]], None]


@dataclass(frozen=True)
class ControllerConfig:
    interval_s: float = 2.0
    max_restarts: int = 5
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 60.0
    stable_after_s: float = 300.0  # ready this long: the consecutive-failure count starts over
    unhealthy_after: int = 3  # consecutive failed health checks of a live process before a restart
    start_timeout_s: float = 900.0
    drain_timeout_s: float = 60.0
    retention_s: float = 3600.0  # metric samples older than this are dropped
    host_check_s: float = 30.0  # how often each host's reachability is checked (llmctl.control.host_watch)

    @property
    def restarts(self) -> RestartPolicy:
        return RestartPolicy(self.max_restarts, self.backoff_base_s, self.backoff_cap_s, self.stable_after_s)


@dataclass
class _Memory:
    """What the controller learns between ticks that can be lost without harm (rebuilt in a tick or two)."""

    health_failures: dict[str, int] = field(default_factory=dict)
    samples: dict[str, EngineSample] = field(default_factory=dict)
    previous: dict[str, EngineSample] = field(default_factory=dict)
    requests_seen: dict[str, tuple[float, float]] = field(default_factory=dict)  # deployment -> (mono, total)
    scalers: dict[str, tuple[str, Autoscaler]] = field(default_factory=dict)  # deployment -> (spec, policy)
    halted: dict[str, str] = field(default_factory=dict)  # deployment -> why its roll stopped, said once
    quarantined: set[str] = field(default_factory=set)  # deployments whose desired state cannot be read


@dataclass
class _Pooled:
    """A pool member this tick: what its autoscaler saw and decided, and the moves its pool gave it."""

    seen: tuple[float, Observation] | None
    decision: Decision | None  # None unless it changes something
    actions: list[Action] = field(default_factory=list)


class Controller:
    def __init__(
        self,
        inventory: Inventory,
        fleet: Fleet,
        store: Store,
        config: ControllerConfig | None = None,
        log: Log | None = None,
        trace: Trace | None = None,
    ) -> None:
        self.trace = trace
        self.inventory = inventory
        self.fleet = fleet
        self.store = store
        self.config = config or ControllerConfig()
        self.log = log or (lambda subject, kind, reason: None)
        self.memory = _Memory()
        self.kick = asyncio.Event()  # set by the gateway when requests wait for a deployment with no replica
        self.client = httpx.AsyncClient(timeout=2.0)
        self.lifecycle = Lifecycle(inventory, fleet, store, self.event)
        self.actuator = Actuator(
            inventory,
            store,
            self.lifecycle,
            self.client,
            self.event,
            self.config.drain_timeout_s,
            ColdTiers(inventory, store, self.event),
        )
        self.hosts = HostWatch(inventory, fleet, store, self.event, every_s=self.config.host_check_s)
        self.pool_events = PoolEvents(self.event)

    def event(self, subject: str, kind: str, reason: str, data: dict[str, object] | None = None) -> None:
        record_event(self.store, subject, kind, reason, data)
        self.log(subject, kind, reason)

    async def close(self) -> None:
        await self.client.aclose()

    async def run(self, stop: asyncio.Event) -> None:
        watch = asyncio.create_task(self.hosts.run(stop))
        store_watch = StoreWatch(self.store.path)
        try:
            await self.adopt()
            while not stop.is_set():
                gone = store_watch.problem()
                if gone:
                    # Writing on would go to an unlinked file nobody reads: stop, and say why.
                    raise LlmctlError(f"{gone} under the running controller; stopping (start it again)")
                await self.safe_tick()
                self.kick.clear()
                waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self.kick.wait())]
                await asyncio.wait(waits, timeout=self.config.interval_s, return_when=asyncio.FIRST_COMPLETED)
                for w in waits:
                    w.cancel()
        finally:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)

    async def safe_tick(self) -> None:
        """A tick that fails is said and survived: the next one starts from the store again."""
        try:
            await self.tick()
        except (LlmctlError, FleetError, OSError, ValueError, sqlite3.Error) as exc:
            why = f"{type(exc).__name__}: {exc}"
            try:
                self.event("controller", "tick-failed", why)
            except sqlite3.Error:  # the store itself is what failed: say it where it can be said
                self.log("controller", "tick-failed", f"{why} (not recorded: the state store is unavailable)")

    def _quarantine(self, unreadable: dict[str, str]) -> None:
        """Say once of each deployment whose desired state cannot be read; say when it can be again."""
        for name, why in unreadable.items():
            if name not in self.memory.quarantined:
                self.event(name, "quarantined", f"{why}; its replicas are left as they are")
        for name in self.memory.quarantined - set(unreadable):
            self.event(name, "readable", "its desired state can be read again; managing it")
        self.memory.quarantined = set(unreadable)

    def _host(self, row: ReplicaRow) -> Host | None:
        """The row's host, or None when it left the inventory: the replica is then orphaned, said once."""
        try:
            host = self.inventory.host(row.host)
        except LlmctlError:
            if row.phase != Phase.ORPHANED:
                put_replica(
                    self.store,
                    row.with_(phase=Phase.ORPHANED, reason=f"host {row.host!r} is not in the inventory"),
                )
                self.event(
                    row.name, "orphaned", f"host {row.host!r} is not in the inventory; nothing reaches it"
                )
            return None
        if row.phase == Phase.ORPHANED:
            put_replica(
                self.store, row.with_(phase=Phase.STARTING, started_at=time.time(), reason="host back")
            )
            self.event(row.name, "adopted", f"host {row.host!r} is in the inventory again; checking it")
        return host

    async def adopt(self) -> None:
        """On start: take over replicas whose processes still run; the tick handles the rest."""
        for row in replicas(self.store):
            if row.pid is None or row.phase in (Phase.FAILED, Phase.STOPPED):
                continue
            host = self._host(row)
            if host is None:
                continue
            try:
                out = await self.fleet.transport(host).run(status_argv(run_dir(host, row.name)), timeout=30)
            except FleetError as exc:
                self.event(row.name, "unreachable", f"cannot check {row.host}: {exc.problem}")
                continue
            if out.stdout.startswith("running"):
                self.event(row.name, "adopted", f"{out.stdout.strip()} on {row.host}, phase {row.phase}")

    async def tick(self) -> None:
        state = read_desired(self.store)
        self._quarantine(state.unreadable)
        desired = state.deployments
        self.memory.previous = dict(self.memory.samples)
        # A quarantined deployment's replicas are left as they are: unreadable is not "removed".
        rows = [r for r in replicas(self.store) if r.deployment not in state.unreadable]
        await asyncio.gather(*(self._check(row, desired.get(row.deployment)) for row in rows))
        await self._intents(desired)
        pooled = self._pools(desired)
        for dep in desired.values():
            await self._reconcile(dep, desired, pooled.get(dep.name))
        trim_samples(self.store, time.time() - self.config.retention_s)

    # -- health -------------------------------------------------------------------------------------------

    async def _check(self, row: ReplicaRow, dep: DesiredDeployment | None) -> None:
        host = self._host(row)
        phase = parse(row.phase)
        if host is None or phase in (Phase.FAILED, Phase.STOPPED, Phase.STOPPING):
            return
        if dep is None:
            await self.lifecycle.stop(row, "its deployment is no longer in the store")
            return
        if phase == Phase.BACKOFF:
            if time.time() >= (row.retry_at or 0.0):
                await self._restart(row, dep, row.reason)
            return
        key = replica_key(self.store, row.name)
        p = await probe(self.client, base_url(host, row.address, row.port), dep.flavour, key)
        now = time.time()
        if p.healthy:
            self.memory.health_failures.pop(row.name, None)
            if p.sample:
                self.memory.samples[row.name] = p.sample
                put_sample(self.store, row.name, now, p.sample)
            if phase == Phase.STARTING:
                put_replica(self.store, row.with_(phase=Phase.READY, reason="", ready_since=now))
                self.event(row.name, "ready", f"health 200 after {now - (row.started_at or now):.1f} s")
            elif phase == Phase.READY and row.failures:
                ready_for = now - row.ready_since if row.ready_since is not None else None
                if self.config.restarts.failures_now(row.failures, ready_for) == 0:
                    put_replica(self.store, row.with_(failures=0))
                    self.event(row.name, "stable", f"ready {ready_for:.0f} s: its failure count starts over")
            elif phase == Phase.DRAINING:
                await self.actuator.drained(row, dep, p.sample)
            return
        self.memory.samples.pop(row.name, None)
        try:
            status = await self.fleet.transport(host).run(status_argv(run_dir(host, row.name)), timeout=30)
        except FleetError as exc:
            self.event(row.name, "unreachable", f"{p.problem}; cannot reach {row.host}: {exc.problem}")
            return
        if not status.stdout.startswith("running"):
            why = f"process {status.stdout.strip() or 'gone'} ({p.problem})"
            if phase == Phase.SLEEPING:
                self.actuator.forget(row, f"exited while asleep: {why}; its slot is free again")
            else:
                await self._crashed(row, dep, why)
            return
        if phase == Phase.STARTING:
            if now - (row.started_at or now) > self.config.start_timeout_s:
                await self.lifecycle.stop(row, "start-up timed out", forget=False)
                await self._crashed(row, dep, f"not ready after {self.config.start_timeout_s:g} s")
            return
        fails = self.memory.health_failures.get(row.name, 0) + 1
        self.memory.health_failures[row.name] = fails
        if fails >= self.config.unhealthy_after:
            self.memory.health_failures.pop(row.name, None)
            why = f"unhealthy: {p.problem} {fails} times in a row"
            await self.lifecycle.stop(row, why, forget=False)
            await self._crashed(row, dep, why)

    async def _crashed(
        self, row: ReplicaRow, dep: DesiredDeployment, why: str, read_log: bool = True
    ) -> None:
        reason = await self.lifecycle.why_failed(row, why) if read_log else why
        ready_for = (
            time.time() - row.ready_since
            if row.ready_since is not None and row.phase == Phase.READY
            else None
        )
        failures = self.config.restarts.failures_now(row.failures, ready_for) + 1
        delay = self.config.restarts.delay(failures)
        if delay is None:
            put_replica(self.store, row.with_(phase=Phase.FAILED, pid=None, reason=reason, failures=failures))
            self.event(
                row.name,
                "gave-up",
                f"{reason}; failed {failures} times in a row (restarted {row.restarts} times already), giving up",
            )
            return
        backoff = row.with_(
            phase=Phase.BACKOFF, pid=None, reason=reason, failures=failures, retry_at=time.time() + delay
        )
        put_replica(self.store, backoff)
        when = "now" if delay == 0 else f"in {delay:g} s"
        self.event(row.name, "crashed", f"{reason}; restart {failures}/{self.config.max_restarts} {when}")
        if delay == 0:
            await self._restart(backoff, dep, reason)

    async def _restart(self, row: ReplicaRow, dep: DesiredDeployment, why: str) -> None:
        if dep.slot(row.name) is None:
            self.actuator.forget(row, "its deployment no longer has this slot")
            return
        launched = await self.actuator.restart(
            dep, row.with_(restarts=row.restarts + 1), f"restart after: {why}"
        )
        if isinstance(launched, ReplicaOutcome):
            # Refused before it ran (port taken, host unreachable): a failed attempt like any crash.
            failed = next((r for r in replicas(self.store, row.deployment) if r.name == row.name), None)
            if failed is not None:
                await self._crashed(failed.with_(phase=Phase.BACKOFF), dep, launched.detail, read_log=False)

    # -- intents ------------------------------------------------------------------------------------------

    async def _intents(self, desired: dict[str, DesiredDeployment]) -> None:
        for intent in pending(self.store):
            ok, result = await self.actuator.intent(intent, desired)
            finish(self.store, intent.id, ok, result)
            self.event(intent.target, f"{intent.kind}-{'done' if ok else 'failed'}", result)

    # -- reconcile ------------------------------------------------------------------------------------------

    def _policy(self, dep: DesiredDeployment, pinned: int | None) -> Autoscaler:
        key = repr((dep.scaling, dep.cold_start_s, dep.wake_s, pinned))
        cached = self.memory.scalers.get(dep.name)
        if cached is None or cached[0] != key:
            cached = (key, dep.pinned(pinned) if pinned is not None else dep.autoscaler())
            self.memory.scalers[dep.name] = cached
        return cached[1]

    def _sized(self, dep: DesiredDeployment, pinned: int | None) -> bool:
        """Does a policy size it this tick (the autoscaler, or a pin)?"""
        pooled = dep.pool is not None and not dep.removed
        return (
            not dep.stopped
            and not dep.backfill_for
            and (pinned is not None or dep.scaling.autoscaled or pooled)
        )

    def _pools(self, desired: dict[str, DesiredDeployment]) -> dict[str, _Pooled]:
        """Each pool member's decision this tick and its pool's moves (grants, preemptions), said as events."""
        every = replicas(self.store)
        pins = scale_overrides(self.store)
        out: dict[str, _Pooled] = {}
        for pool, deps in pools_of(desired.values()).items():
            wanted: dict[str, int] = {}
            for dep in deps:
                pinned = pins.get(dep.name)
                if not self._sized(dep, pinned):
                    continue
                seen, decision = self._decide(dep, [r for r in every if r.deployment == dep.name], pinned)
                wanted[dep.name] = decision.target
                out[dep.name] = _Pooled(seen, decision if decision.changed else None)
            step = pool_tick(pool, deps, every, wanted)
            self.pool_events.said(step)
            for name, actions in step.actions.items():
                out.setdefault(name, _Pooled(None, None)).actions.extend(actions)
        return out

    async def _reconcile(
        self, dep: DesiredDeployment, desired: dict[str, DesiredDeployment], pooled: _Pooled | None = None
    ) -> None:
        generation = reconciled_generation(self.store, dep.name)
        if dep.generation > generation:
            self._new_generation(dep)
        every = replicas(self.store)
        rows = [r for r in every if r.deployment == dep.name]  # orphans too: their slots stay taken
        pinned = scale_overrides(self.store).get(dep.name)
        surge_before = surge(self.store, dep.name)
        decision = seen = None
        if pooled is not None:
            seen, decision = pooled.seen, pooled.decision
        elif dep.pool is None and self._sized(dep, pinned):
            seen, full = self._decide(dep, rows, pinned)
            decision = full if full.changed else None
        plan = plan_deployment(
            dep,
            rows,
            every,
            desired,
            surge=surge_before,
            pinned=pinned,
            decision=decision,
            fill=dep.generation > generation,
            pool=pooled.actions if pooled is not None else (),
        )
        if plan.scaled and decision is not None:
            self.event(dep.name, "scale", decision.reason)
            if self.actuator.tiers is not None:  # the scale-up rate a sleeper's depth is chosen by
                self.actuator.tiers.scaled(dep.name, decision, time.monotonic())
        if self.trace is not None and seen is not None:
            self.trace(dep.name, seen[0], seen[1], tuple(plan.actions))
        if plan.roll.surge != surge_before:
            set_surge(self.store, dep.name, plan.roll.surge)
        if plan.roll.halted and self.memory.halted.get(dep.name) != plan.roll.halted:
            self.memory.halted[dep.name] = plan.roll.halted
            self.event(dep.name, "rollout-halted", plan.roll.halted)
        await self.actuator.carry_out(dep, plan.actions, desired)
        after = replicas(self.store, dep.name)
        if dep.generation > generation and converged(dep, after, plan.roll):
            set_reconciled(self.store, dep.name, dep.generation)
            self.event(dep.name, "reconciled", f"generation {dep.generation}: {_phases(after)}")
        if dep.removed and not after:
            delete_deployment(self.store, dep.name)  # no longer in the playbook: gone once its replicas are
            self.event(dep.name, "removed", "no longer in the playbook; its replicas are gone")

    def _new_generation(self, dep: DesiredDeployment) -> None:
        """An apply asks again: replicas that were given up get a fresh budget and are started once more."""
        for row in replicas(self.store, dep.name):
            if row.phase == Phase.FAILED and dep.slot(row.name) is not None and not dep.stopped:
                put_replica(self.store, row.with_(phase=Phase.BACKOFF, failures=0, retry_at=0.0))
                self.event(row.name, "retry", f"generation {dep.generation} applied; starting it again")

    def _decide(
        self, dep: DesiredDeployment, rows: list[ReplicaRow], pinned: int | None
    ) -> tuple[tuple[float, Observation], Decision]:
        """((policy time, what the policy saw), its decision; `changed` says whether it moves something)."""
        mono = time.monotonic()
        wall = time.time()
        seen = demand(self.store).get(dep.name)
        rate = self._arrival_rate(dep.name, seen.requests_total if seen else None, rows, mono, wall)
        obs = observe(
            dep.name,
            rows,
            self.memory.samples,
            self.memory.previous,
            held=seen.held if seen else 0,
            arrival_rate=rate,
            last_request_at=last_active(self.store).get(dep.name),
            now=wall,
        )
        obs, busy = in_use_now(obs)
        if busy:
            set_last_active(self.store, dep.name, wall)
        return (mono, obs), self._policy(dep, pinned).decide(obs, mono)

    def _arrival_rate(
        self, deployment: str, gateway_total: int | None, rows: list[ReplicaRow], mono: float, wall: float
    ) -> float:
        # Requests finished by the engines plus those the gateway saw; a rise in either is activity.
        engines = sum(s.requests for r in rows if (s := self.memory.samples.get(r.name)))
        total = float(gateway_total) if gateway_total is not None else engines
        before = self.memory.requests_seen.get(deployment)
        self.memory.requests_seen[deployment] = (mono, total)
        if before is None or total < before[1] or mono <= before[0]:
            return 0.0
        if total > before[1]:
            set_last_active(self.store, deployment, wall)
        return (total - before[1]) / (mono - before[0])


def _phases(rows: list[ReplicaRow]) -> str:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.phase] = counts.get(r.phase, 0) + 1
    return ", ".join(f"{n} {p}" for p, n in sorted(counts.items())) or "no replicas"
