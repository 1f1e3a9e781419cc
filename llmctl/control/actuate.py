"""The live driver of the reconcile core's actions (llmctl.reconcile.actions): wake over HTTP, start and stop
over the fleet transport, drain by marking the row (the gateway routes only ready replicas) and finishing the
drain once the replica is idle. It decides nothing: which action, on which replica, why, comes in the list.
Every action is an event carrying its reason."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import httpx

from llmctl.config.inventory import Inventory
from llmctl.control.engine_api import base_url, set_sleeping
from llmctl.control.lifecycle import Lifecycle, ReplicaOutcome
from llmctl.control.tiers import ColdTiers, send, wake_calls
from llmctl.errors import LlmctlError
from llmctl.reconcile.actions import (
    Action,
    Blocked,
    Drain,
    DrainThen,
    Lend,
    Reclaim,
    Start,
    Stop,
    Wake,
    drain_outcome,
)
from llmctl.reconcile.intents import check_intent, scale_count
from llmctl.reconcile.phase import Phase, check, parse
from llmctl.reconcile.sample import EngineSample
from llmctl.spec.deployment import DesiredDeployment
from llmctl.state.intents import Intent, set_scale_override
from llmctl.state.records import ReplicaRow, delete_replica, put_replica, replica_key, replicas
from llmctl.state.store import Store

Event = Callable[[str, str, str], None]


class Actuator:
    def __init__(
        self,
        inventory: Inventory,
        store: Store,
        lifecycle: Lifecycle,
        client: httpx.AsyncClient,
        event: Event,
        drain_timeout_s: float,
        tiers: ColdTiers | None = None,
    ) -> None:
        self.inventory = inventory
        self.store = store
        self.lifecycle = lifecycle
        self.client = client
        self.event = event
        self.drain_timeout_s = drain_timeout_s
        # How deep a replica sleeps and how it wakes (issue #18); without one, level 1 as before.
        self.tiers = tiers
        self.blocked: dict[str, str] = {}  # deployment -> last "cannot scale" reason, to say it once

    async def carry_out(
        self, dep: DesiredDeployment, actions: Sequence[Action], desired: dict[str, DesiredDeployment]
    ) -> None:
        rows = {r.name: r for r in replicas(self.store)}
        for a in actions:
            if isinstance(a, Blocked):
                if self.blocked.get(dep.name) != a.reason:
                    self.blocked[dep.name] = a.reason
                    self.event(dep.name, "scale-blocked", a.reason)
            elif isinstance(a, Start | Lend):
                slot = dep.slot(a.slot)
                if slot is not None:
                    await self.lifecycle.launch(dep.name, slot, a.reason, rows.get(a.slot))
            elif isinstance(a, Wake):
                if a.replica in rows:
                    await self.wake(dep, rows[a.replica], a.reason)
            elif isinstance(a, Drain):
                if a.replica in rows:
                    self.drain(rows[a.replica], a.then, a.reason)
            elif isinstance(a, Stop | Reclaim):
                row = rows.get(a.replica)
                if row is not None:
                    why = a.reason if isinstance(a, Stop) else f"gives its GPUs back: {a.reason}"
                    await self.lifecycle.stop(row, why)

    # -- drain, sleep, wake -------------------------------------------------------------------------------

    def drain(self, row: ReplicaRow, then: DrainThen, why: str) -> None:
        """Stop routing to the replica (the gateway routes only ready ones); `drained` finishes the job."""
        check(row.name, parse(row.phase), Phase.DRAINING)
        put_replica(
            self.store, row.with_(phase=Phase.DRAINING, reason=why, drain_then=then, drain_since=time.time())
        )
        self.event(row.name, "draining", f"{why}; then {then} when idle")

    async def drained(
        self, row: ReplicaRow, dep: DesiredDeployment | None, sample: EngineSample | None
    ) -> None:
        """A draining replica at this tick: put away once idle (or after the drain timeout)."""
        busy = int(sample.running + sample.waiting) if sample else 0
        since = row.drain_since if row.drain_since is not None else time.time()
        then: DrainThen = (
            "sleep" if row.drain_then == "sleep" else "replace" if row.drain_then == "replace" else "stop"
        )
        outcome = drain_outcome(then, busy, time.time() - since, self.drain_timeout_s)
        if outcome is None:
            return
        note = f"{busy} request(s) still running after {self.drain_timeout_s:g} s" if busy else "idle"
        if outcome == "sleep" and dep is not None:
            level = 1
            if self.tiers is not None:
                choice = self.tiers.choose(dep, row, time.monotonic())
                level = choice.level
                problem = await send(
                    self.client, self._url(row), (self.tiers.sleep_call(dep, choice),), self._key(row)
                )
            else:
                problem = await set_sleeping(self.client, self._url(row), dep.flavour, True, self._key(row))
            if not problem:
                asleep = row.with_(phase=Phase.SLEEPING, drain_then="", drain_since=None, sleep_level=level)
                put_replica(self.store, asleep)
                weights = "offloaded to host RAM" if level == 1 else "discarded"
                self.event(
                    row.name,
                    "slept",
                    f"{row.reason}; drained ({note}), asleep at level {level}: weights {weights}, GPU memory freed",
                )
                return
            self.event(row.name, "sleep-failed", f"{problem}; stopping instead")
        if outcome == "replace" and dep is not None and (slot := dep.slot(row.name)) is not None:
            stopped = await self.lifecycle.stop(row, f"{row.reason}; drained ({note})", forget=False)
            if stopped.phase == "stopped":
                await self.lifecycle.launch(dep.name, slot, "spec changed", row.with_(failures=0))
            return
        await self.lifecycle.stop(row, f"{row.reason}; drained ({note})")

    async def wake(self, dep: DesiredDeployment, row: ReplicaRow, why: str) -> bool:
        put_replica(self.store, row.with_(phase=Phase.WAKING, reason=why))
        started = time.monotonic()
        if self.tiers is not None:
            problem = await send(self.client, self._url(row), wake_calls(dep, row), self._key(row))
        else:
            problem = await set_sleeping(self.client, self._url(row), dep.flavour, False, self._key(row))
        if problem:
            self.event(row.name, "wake-failed", f"{problem}; stopping it so its slot can cold-start")
            await self.lifecycle.stop(row, "wake-up failed")
            return False
        put_replica(
            self.store, row.with_(phase=Phase.READY, reason="", ready_since=time.time(), sleep_level=0)
        )
        self.event(row.name, "woke", f"{why}; awake after {time.monotonic() - started:.1f} s")
        return True

    def forget(self, row: ReplicaRow, why: str) -> None:
        delete_replica(self.store, row.name)
        self.event(row.name, "forgotten", why)

    async def restart(self, dep: DesiredDeployment, row: ReplicaRow, why: str) -> ReplicaRow | ReplicaOutcome:
        slot = dep.slot(row.name)
        if slot is None:
            raise LlmctlError(f"{row.name}: its deployment no longer has this slot")
        if row.pid is not None and row.phase not in (Phase.STOPPED, Phase.BACKOFF):
            stopped = await self.lifecycle.stop(row, why, forget=False)
            if stopped.phase == "failed":
                return stopped
        return await self.lifecycle.launch(dep.name, slot, why, row)

    async def intent(self, i: Intent, desired: dict[str, DesiredDeployment]) -> tuple[bool, str]:
        """Carry out one queued intent, checked again by the rules the CLI and TUI checked it with."""
        rows = replicas(self.store)
        problem = check_intent(i.kind, i.target, i.arg, desired, rows)
        if problem:
            return False, problem
        if i.kind == "scale":
            n = scale_count(i.arg)
            set_scale_override(self.store, i.target, n)
            return True, f"pinned to {n} replica(s)" if n is not None else "handed back to the autoscaler"
        row = next(r for r in rows if r.name == i.target)
        dep = desired[row.deployment]
        if i.kind == "stop":
            out = await self.lifecycle.stop(row, "llmctl stop (requested)")
            return out.phase == "stopped", out.detail or "stopped"
        if i.kind == "restart":
            launched = await self.restart(dep, row.with_(failures=0), "llmctl restart (requested)")
            if isinstance(launched, ReplicaOutcome):
                return False, launched.detail
            return True, f"restarted: pid {launched.pid}"
        if i.kind == "sleep":
            self.drain(row, "sleep", "llmctl sleep (requested)")
            return True, "draining, then sleep"
        return (await self.wake(dep, row, "llmctl wake (requested)")), "awake"

    def _url(self, row: ReplicaRow) -> str:
        return base_url(self.inventory.host(row.host), row.address, row.port)

    def _key(self, row: ReplicaRow) -> str | None:
        return replica_key(self.store, row.name)
