"""How the controller changes the fleet: scale decisions (wake sleepers first, then start spare slots; drain,
then sleep or stop), manual overrides and queued intents. Each action is an event carrying its reason."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from llmctl.autoscale import Autoscaler, Bounds, InFlightTarget, StartupCosts
from llmctl.autoscale.types import Decision, Observation
from llmctl.autoscale.victims import scale_down_victims
from llmctl.control.backfill import backfill_moves, borrowers
from llmctl.control.desired import DesiredDeployment, Slot, load_desired
from llmctl.control.engine_api import base_url, set_sleeping
from llmctl.control.rollout import ReplicaOutcome
from llmctl.control.scrape import EngineSample
from llmctl.state.intents import Intent, finish, pending, scale_overrides, set_scale_override
from llmctl.state.records import ReplicaRow, delete_replica, put_replica, replicas
from llmctl.state.store import Store

if TYPE_CHECKING:
    from llmctl.control.controller import Controller

# A draining replica's row says what becomes of it once idle, so a restarted controller finishes the job.
DRAIN_TO_SLEEP = "drain->sleep: "
DRAIN_TO_STOP = "drain->stop: "


class Actuator:
    def __init__(self, controller: Controller) -> None:
        self.c = controller
        self.drain_since: dict[str, float] = {}
        self.overrides: dict[str, tuple[int, Autoscaler]] = {}
        self.blocked: dict[str, str] = {}  # deployment -> last "cannot scale" reason, to say it once

    @property
    def store(self) -> Store:
        return self.c.store

    # -- scaling ------------------------------------------------------------------------------------------

    async def scale(self, dep: DesiredDeployment, obs: Observation, now: float) -> None:
        if dep.backfill_for:
            await self._backfill(dep)
            return
        pinned = scale_overrides(self.store).get(dep.name)
        if pinned is None and not dep.scaling.autoscaled:
            await self._fill_initial(dep)
            return
        policy = self._pinned(dep, pinned) if pinned is not None else self.c._policy(dep)
        decision = policy.decide(obs, now)
        if not decision.changed:
            return
        if pinned is not None:
            decision = Decision(
                decision.deployment,
                decision.current,
                decision.target,
                f"pinned to {pinned} by llmctl scale: {decision.reason.split(': ', 1)[-1]}",
                decision.wake,
                decision.start,
                decision.sleep,
                decision.stop,
            )
        self.c.event(dep.name, "scale", decision.reason)
        await self._act(dep, decision)

    def _pinned(self, dep: DesiredDeployment, n: int) -> Autoscaler:
        cached = self.overrides.get(dep.name)
        if cached is None or cached[0] != n:
            bounds = Bounds(
                n, n, max_step_up=max(n, 1), max_step_down=1024, down_window_s=0.0, idle_timeout_s=None
            )
            costs = StartupCosts(dep.cold_start_s, dep.wake_s, dep.scaling.warm_pool)
            cached = (n, Autoscaler(InFlightTarget(dep.scaling.target), bounds, costs))
            self.overrides[dep.name] = cached
        return cached[1]

    async def _backfill(self, dep: DesiredDeployment) -> None:
        assert dep.backfill_for is not None
        starts, stops = backfill_moves(dep, replicas(self.store, dep.backfill_for), replicas(self.store, dep.name))
        for row, why in stops:
            await self.c.rollout.stop(row, why)
        for slot, why in starts:
            await self.c.rollout.launch(dep.name, slot, why)

    async def _fill_initial(self, dep: DesiredDeployment) -> None:
        have = {r.name for r in replicas(self.store, dep.name)}
        for slot in dep.slots[: dep.initial]:
            if slot.name not in have:
                await self.c.rollout.launch(
                    dep.name, slot, f"{dep.name} wants {dep.initial} replica(s); {slot.name} is missing"
                )

    async def _act(self, dep: DesiredDeployment, d: Decision) -> None:
        rows = replicas(self.store, dep.name)
        for row in [r for r in rows if r.phase == "sleeping"][: d.wake]:
            await self.wake(dep, row, "scale up: waking is faster than a cold start")
        taken = {r.name for r in rows}
        free = [s for s in dep.slots if s.name not in taken]
        lenders = load_desired(self.store).values() if free[: d.start] else ()
        for slot in free[: d.start]:
            await self.c.rollout.give_back(borrowers(lenders, dep.name, slot.name), f"{dep.name} scales up")
            await self.c.rollout.launch(dep.name, slot, f"scale up to {d.target}")
        if d.start > len(free):
            why = f"wants {d.start} more replica(s), only {len(free)} free slot(s) on the planned GPUs"
            if self.blocked.get(dep.name) != why:
                self.blocked[dep.name] = why
                self.c.event(dep.name, "scale-blocked", why)
        # Positions in slot order stand for the slots (a row whose slot left the playbook sorts last).
        ready = sorted((r for r in rows if r.phase == "ready"), key=lambda r: (_slot_index(dep, r.name), r.name))
        sleepers, stoppers = scale_down_victims(range(len(ready)), d.sleep, d.stop)
        for i in sorted([*sleepers, *stoppers], reverse=True):
            to_sleep = i in sleepers and dep.sleep_mode
            self.drain(ready[i], DRAIN_TO_SLEEP if to_sleep else DRAIN_TO_STOP, f"scale down to {d.target}")

    # -- drain, sleep, wake -------------------------------------------------------------------------------

    def drain(self, row: ReplicaRow, then: str, why: str) -> None:
        """Stop routing to the replica (the gateway routes only ready ones); `drained` finishes the job."""
        put_replica(self.store, ReplicaRow(**{**row.__dict__, "phase": "draining", "reason": then + why}))
        self.drain_since[row.name] = time.time()
        self.c.event(
            row.name, "draining", f"{why}; {then.split(':')[0].replace('drain->', 'then ')} when idle"
        )

    async def drained(self, row: ReplicaRow, sample: EngineSample | None, now: float) -> None:
        since = self.drain_since.setdefault(row.name, now)
        busy = int(sample.running + sample.waiting) if sample else 0
        timed_out = now - since >= self.c.config.drain_timeout_s
        if busy and not timed_out:
            return
        self.drain_since.pop(row.name, None)
        why = row.reason.split(": ", 1)[-1]
        note = (
            f"{busy} request(s) still running after {self.c.config.drain_timeout_s:g} s" if busy else "idle"
        )
        if row.reason.startswith(DRAIN_TO_SLEEP):
            dep = self._desired(row.deployment)
            problem = await set_sleeping(self.c.client, self._url(row), dep.flavour if dep else "vllm", True)
            if not problem:
                put_replica(self.store, ReplicaRow(**{**row.__dict__, "phase": "sleeping", "reason": why}))
                self.c.event(
                    row.name, "slept", f"{why}; drained ({note}), weights offloaded, GPU memory freed"
                )
                return
            self.c.event(row.name, "sleep-failed", f"{problem}; stopping instead")
        await self.c.rollout.stop(row, f"{why}; drained ({note})")

    async def wake(self, dep: DesiredDeployment, row: ReplicaRow, why: str) -> bool:
        put_replica(self.store, ReplicaRow(**{**row.__dict__, "phase": "waking", "reason": why}))
        started = time.monotonic()
        problem = await set_sleeping(self.c.client, self._url(row), dep.flavour, False)
        if problem:
            self.c.event(row.name, "wake-failed", f"{problem}; stopping it so its slot can cold-start")
            await self.c.rollout.stop(row, "wake-up failed")
            return False
        put_replica(self.store, ReplicaRow(**{**row.__dict__, "phase": "ready", "reason": ""}))
        self.c.event(row.name, "woke", f"{why}; awake after {time.monotonic() - started:.1f} s")
        return True

    def forget(self, row: ReplicaRow, why: str) -> None:
        delete_replica(self.store, row.name)
        self.c.event(row.name, "forgotten", why)

    # -- intents ------------------------------------------------------------------------------------------

    async def intents(self, desired: dict[str, DesiredDeployment]) -> None:
        for intent in pending(self.store):
            ok, result = await self._carry_out(intent, desired)
            finish(self.store, intent.id, ok, result)
            self.c.event(intent.target, f"{intent.kind}-{'done' if ok else 'failed'}", result)

    async def _carry_out(self, i: Intent, desired: dict[str, DesiredDeployment]) -> tuple[bool, str]:
        if i.kind == "scale":
            if i.target not in desired:
                return False, f"no deployment named {i.target!r}"
            n = None if i.arg in ("", "auto") else int(i.arg)
            set_scale_override(self.store, i.target, n)
            return True, f"pinned to {n} replica(s)" if n is not None else "handed back to the autoscaler"
        row = next((r for r in replicas(self.store) if r.name == i.target), None)
        if row is None:
            return False, f"no replica named {i.target!r} in the state store"
        dep = desired.get(row.deployment)
        slot: Slot | None = dep.slot(row.name) if dep else None
        if i.kind == "stop":
            await self.c.rollout.stop(row, "llmctl stop (requested)")
            return True, "stopped"
        if i.kind == "restart":
            if dep is None or slot is None:
                return False, f"{row.name}: its deployment is gone from the store; re-apply the playbook"
            if row.pid is not None:
                await self.c.rollout.stop(row, "llmctl restart (requested)", forget=False)
            launched = await self.c.rollout.launch(dep.name, slot, "llmctl restart (requested)", row.restarts)
            if isinstance(launched, ReplicaOutcome):
                return False, launched.detail
            return True, f"restarted: pid {launched.pid}"
        if i.kind == "sleep":
            if dep is None or not dep.sleep_mode:
                return False, f"{row.name}: its engine runs without sleep mode"
            if row.phase != "ready":
                return False, f"{row.name} is {row.phase}, not ready"
            self.drain(row, DRAIN_TO_SLEEP, "llmctl sleep (requested)")
            return True, "draining, then sleep"
        if i.kind == "wake":
            if dep is None or row.phase != "sleeping":
                return False, f"{row.name} is {row.phase}, not sleeping"
            return (await self.wake(dep, row, "llmctl wake (requested)")), "awake"
        return False, f"unknown action {i.kind!r}"

    def _desired(self, name: str) -> DesiredDeployment | None:
        return load_desired(self.store).get(name)

    def _url(self, row: ReplicaRow) -> str:
        return base_url(self.c.inventory.host(row.host), row.address, row.port)


def _slot_index(dep: DesiredDeployment, name: str) -> int:
    return next((i for i, s in enumerate(dep.slots) if s.name == name), len(dep.slots))
