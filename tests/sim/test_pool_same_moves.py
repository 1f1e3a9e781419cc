"""One recorded burst sequence on a GPU pool, two drivers, the same moves: the live controller's pooled
reconcile path (Controller._pools, then _reconcile for each member, with its store and policy cache) and the
simulator's pooled controller (sim.pool_scripted.replay_pooled over sim.pooled) make the same actions, with
the same reasons, at the same times: the pool's grants (Start on the granted slot), its preemptions (Drain
of a serving replica, Stop of one serving nothing yet), the members' wakes and scale-downs.

The fleet's response in the live run is the rule the simulator models: a start is ready `cold_start_s`
after it, a wake `wake_s` after it, a draining replica (which gets no new load) is put away by
`drain_outcome` at the next tick, a stopped one is gone. Start-up and wake-up times are odd seconds and
ticks even ones, so no tie decides an order."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from llmctl.config.inventory import Host, Inventory
from llmctl.control import actuate, controller
from llmctl.control.controller import Controller
from llmctl.fleet.pool import Fleet
from llmctl.reconcile.actions import Action, Drain, Start, Stop, Wake, drain_outcome
from llmctl.reconcile.sample import EngineSample
from llmctl.spec.deployment import DesiredDeployment, ScalingSpec, Slot
from llmctl.state.desired import put_desired
from llmctl.state.records import ReplicaRow, delete_replica, put_replica, replicas
from llmctl.state.store import Store
from llmctl.state.telemetry import GatewayDemand, put_demand
from sim.cluster import DeploymentSim
from sim.pool_scripted import replay_pooled
from sim.pooled import SimPool

INTERVAL_S = 2.0
GPUS = 4
Load = list[tuple[float, int]]


def member(name: str, priority: int, low: int, high: int, sleep: bool) -> DesiredDeployment:
    return DesiredDeployment(
        name=name,
        workload="semi-online",
        flavour="vllm",
        route="least_outstanding",
        api_key_env=None,
        scaling=ScalingSpec(
            low, high, "in_flight", 4.0, 20.0, warm_pool=1 if sleep else 0, down_window_s=6.0
        ),
        cold_start_s=5.0,
        wake_s=1.0,
        sleep_mode=sleep,
        initial=low,
        # One candidate slot per pool GPU, as the planner gives a pool member.
        slots=tuple(
            Slot(f"{name}-{g}", "box", "127.0.0.1", (g,), 8000 + g, ("engine",), {}, "h", "emulated")
            for g in range(GPUS)
        ),
        pool="shared",
        pool_priority=priority,
    )


def bursts(seed: int, ticks: int) -> Load:
    rng = random.Random(seed)
    out, burst = [], 0
    for i in range(1, ticks + 1):
        burst = rng.randint(5, 15) if rng.random() < 0.08 else max(0, burst - 1)
        quiet = rng.randint(0, 2) if rng.random() < 0.3 else 0
        out.append((i * INTERVAL_S, rng.randint(8, 20) if burst else quiet))
    return out


@dataclass
class Rep:
    name: str
    deployment: str
    phase: str
    since: float = 0.0
    drain_then: str = ""


@dataclass
class World:
    deps: dict[str, DesiredDeployment]
    reps: dict[str, Rep] = field(default_factory=dict)

    def advance(self, t: float) -> None:
        for r in list(self.reps.values()):
            d = self.deps[r.deployment]
            takes = {"starting": d.cold_start_s, "waking": d.wake_s}.get(r.phase)
            if takes is not None and r.since + takes <= t:
                r.phase = "ready"
            elif r.phase == "draining":
                outcome = drain_outcome("sleep" if r.drain_then == "sleep" else "stop", 0, t - r.since, 60.0)
                if outcome == "sleep":
                    r.phase = "sleeping"
                elif outcome is not None:
                    del self.reps[r.name]

    def apply(self, t: float, dep: str, actions: list[Action]) -> None:
        for a in actions:
            if isinstance(a, Start):
                self.reps[a.slot] = Rep(a.slot, dep, "starting", t)
            elif isinstance(a, Wake):
                self.reps[a.replica] = Rep(a.replica, dep, "waking", t)
            elif isinstance(a, Drain):
                self.reps[a.replica] = Rep(a.replica, dep, "draining", t, a.then)
            elif isinstance(a, Stop):
                self.reps.pop(a.replica, None)

    def loads(self, dep: str, demand: int) -> tuple[dict[str, int], int]:
        ready = sorted(r.name for r in self.reps.values() if r.deployment == dep and r.phase == "ready")
        if not ready:
            return {}, demand
        per = dict.fromkeys(ready, 0)
        for i in range(demand):
            per[ready[i % len(ready)]] += 1
        return per, 0


class Clock:
    t = 0.0

    def time(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.t


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    c = Clock()
    monkeypatch.setattr(controller, "time", c)
    monkeypatch.setattr(actuate, "time", c)
    yield c


async def live(
    tmp: Path, clock: Clock, deps: list[DesiredDeployment], load: dict[str, Load]
) -> list[tuple[float, str, Action]]:
    host = Host(name="box", connection="local", workdir=str(tmp / "w"))
    store = Store(tmp / f"state-{uuid.uuid4().hex}.db")
    for d in deps:
        put_desired(store, d)
    store.db.execute("UPDATE deployments SET applied_at = 0")
    c = Controller(Inventory(file="inv.yaml", hosts=(host,)), Fleet([host]), store)
    desired = {d.name: d for d in deps}
    # The rolled-out fleet: each member's minimum on the lowest free GPUs (what the pool grants at t = 0).
    world = World(desired)
    free = iter(range(GPUS))
    for d in deps:
        for _ in range(d.initial):
            g = next(free)
            world.reps[f"{d.name}-{g}"] = Rep(f"{d.name}-{g}", d.name, "ready")
    out: list[tuple[float, str, Action]] = []

    def sync_rows() -> None:
        for row in replicas(store):
            if row.name not in world.reps:
                delete_replica(store, row.name)
        for r in world.reps.values():
            row = ReplicaRow(
                r.name, r.deployment, "box", "127.0.0.1", "0", 8000, 1, r.phase, "h", r.since, 0, ""
            )
            put_replica(store, row.with_(drain_then=r.drain_then))

    async def carry_out(d: DesiredDeployment, actions: list[Action], _desired: object) -> None:
        out.extend((clock.t, d.name, a) for a in actions)
        world.apply(clock.t, d.name, list(actions))
        sync_rows()

    c.actuator.carry_out = carry_out  # type: ignore[method-assign,assignment]
    series = {name: dict(s) for name, s in load.items()}
    try:
        for t in sorted({t for s in load.values() for t, _ in s}):
            clock.t = t
            world.advance(t)
            sync_rows()
            samples: dict[str, EngineSample] = {}
            for d in deps:
                per, held = world.loads(d.name, series[d.name].get(t, 0))
                samples.update({n: EngineSample(running=k) for n, k in per.items()})
                put_demand(store, d.name, GatewayDemand(held, 0, 0, None, t))
            c.memory.samples = samples
            pooled = c._pools(desired)
            for d in deps:
                await c._reconcile(d, desired, pooled.get(d.name))
    finally:
        await c.close()
        store.close()
    return out


def simulated(deps: list[DesiredDeployment], load: dict[str, Load]) -> list[tuple[float, str, Action]]:
    sims = [
        DeploymentSim(
            name=d.name,
            initial_replicas=d.initial,
            max_replicas=len(d.slots),
            autoscaler=d.autoscaler,
            cold_start_s=d.cold_start_s,
            wake_s=d.wake_s,
            sleep_mode=d.sleep_mode,
        )
        for d in deps
    ]
    return replay_pooled(sims, [SimPool("shared", tuple(deps))], load, INTERVAL_S)


@pytest.mark.parametrize("sleep", [False, True])
async def test_one_burst_sequence_the_same_pool_moves_live_and_simulated(
    tmp_path: Path, clock: Clock, sleep: bool
) -> None:
    deps = [member("a", 0, 1, 3, sleep), member("b", 1, 0, 3, sleep)]
    load = {"a": bursts(seed=4, ticks=150), "b": bursts(seed=9, ticks=150)}
    sim = simulated(deps, load)
    # The recorded bursts must make the pool decide, or the comparison proves little: grants to both
    # members, and preemptions of the lower-priority one, serving (drained) and starting (stopped).
    starts = {dep for _, dep, a in sim if isinstance(a, Start)}
    preempted = [a for _, dep, a in sim if dep == "a" and "preempted for b" in a.reason]
    assert starts == {"a", "b"} and {type(a) for a in preempted} == {Drain, Stop}, sim
    assert any(isinstance(a, Wake) for _, _, a in sim) == sleep
    assert await live(tmp_path, clock, deps, load) == sim
