"""One reconcile core, three drivers, the same moves: the live controller's reconcile path (Controller with its
store, policy cache, idle clock and `plan_deployment`), a plain loop over the pure functions, and the SimPy
simulator's controller (sim.scripted.replay, the cluster's own tick and executor), given the same recorded
load, make the same actions at the same times: scale from zero, wake-ups, cold starts, drains to sleep and
to stop. Hypothesis draws the bursts and the fleets.

The fleet's response is one rule shared by the live and plain drivers and modelled by SimPy in the
simulator: a start is ready `cold_start_s` after it, a wake-up `wake_s` after it, a draining replica (which
gets no new load) is put away at the next tick by `drain_outcome`. Start-up and wake-up times are odd
seconds and ticks even ones, so no tie decides an order."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmctl.config.inventory import Host, Inventory
from llmctl.control import actuate, controller
from llmctl.control.controller import Controller
from llmctl.fleet.pool import Fleet
from llmctl.reconcile.actions import Action, Drain, Start, Wake, drain_outcome, scale_actions
from llmctl.reconcile.observe import observe
from llmctl.reconcile.sample import EngineSample
from llmctl.spec.deployment import DesiredDeployment, ScalingSpec, Slot
from llmctl.state.desired import put_desired
from llmctl.state.records import ReplicaRow, delete_replica, put_replica, replicas
from llmctl.state.store import Store
from llmctl.state.telemetry import GatewayDemand, put_demand
from sim.cluster import DeploymentSim
from sim.scripted import replay

INTERVAL_S = 2.0
Load = list[tuple[float, int]]


def deployment(
    slots: int, initial: int, min_r: int, sleep: bool, target: float, idle: float, down: float
) -> DesiredDeployment:
    return DesiredDeployment(
        name="burst",
        workload="semi-online",
        flavour="vllm",
        route="least_outstanding",
        api_key_env=None,
        scaling=ScalingSpec(
            min_r,
            slots,
            "in_flight",
            target,
            idle,
            warm_pool=1 if sleep and min_r == 0 else 0,
            down_window_s=down,
        ),
        cold_start_s=5.0,
        wake_s=1.0,
        sleep_mode=sleep,
        initial=initial,
        slots=tuple(
            Slot(f"burst-{i}", "box", "127.0.0.1", (i,), 8000 + i, ("engine",), {}, "h", "emulated")
            for i in range(slots)
        ),
    )


def bursty(seed: int, ticks: int) -> Load:
    rng = random.Random(seed)
    out, burst = [], 0
    for i in range(1, ticks + 1):
        burst = rng.randint(3, 12) if rng.random() < 0.15 else max(0, burst - 1)
        out.append(
            (
                i * INTERVAL_S,
                rng.randint(8, 40) if burst else (rng.randint(0, 2) if rng.random() < 0.3 else 0),
            )
        )
    return out


# -- the fleet's response, shared by the live and plain drivers --------------------------------------------
@dataclass
class Rep:
    name: str
    phase: str
    since: float = 0.0  # when its start or wake began
    drain_then: str = ""


@dataclass
class World:
    dep: DesiredDeployment
    reps: dict[str, Rep] = field(default_factory=dict)

    def advance(self, t: float) -> None:
        for r in list(self.reps.values()):
            takes = {"starting": self.dep.cold_start_s, "waking": self.dep.wake_s}.get(r.phase)
            if takes is not None and r.since + takes <= t:
                r.phase = "ready"
            elif r.phase == "draining":
                outcome = drain_outcome("sleep" if r.drain_then == "sleep" else "stop", 0, t - r.since, 60.0)
                if outcome == "sleep":
                    r.phase = "sleeping"
                else:
                    del self.reps[r.name]

    def apply(self, t: float, actions: list[Action]) -> None:
        for a in actions:
            if isinstance(a, Start):
                self.reps[a.slot] = Rep(a.slot, "starting", t)
            elif isinstance(a, Wake):
                self.reps[a.replica] = Rep(a.replica, "waking", t)
            elif isinstance(a, Drain):
                self.reps[a.replica] = Rep(a.replica, "draining", t, a.then)

    def loads(self, demand: int) -> tuple[dict[str, int], int]:
        """(requests per ready replica, requests held at the gateway)."""
        ready = sorted(r.name for r in self.reps.values() if r.phase == "ready")
        if not ready:
            return {}, demand
        per = dict.fromkeys(ready, 0)
        for i in range(demand):
            per[ready[i % len(ready)]] += 1
        return per, 0

    @classmethod
    def initial(cls, dep: DesiredDeployment) -> World:
        return cls(dep, {s.name: Rep(s.name, "ready") for s in dep.slots[: dep.initial]})


def plain(dep: DesiredDeployment, load: Load) -> list[tuple[float, Action]]:
    world, policy, last, out = World.initial(dep), dep.autoscaler(), 0.0, []
    slots = [s.name for s in dep.slots]
    for t, demand in load:
        world.advance(t)
        per, held = world.loads(demand)
        last = t if demand else last
        samples = {n: EngineSample(running=k) for n, k in per.items()}
        reps = sorted(world.reps.values(), key=lambda r: r.name)
        obs = observe(dep.name, reps, samples, {}, held=held, arrival_rate=0.0, last_request_at=last, now=t)
        d = policy.decide(obs, t)
        if d.changed:
            acts = scale_actions(d, reps, slots, sleep_mode=dep.sleep_mode)
            out += [(t, a) for a in acts]
            world.apply(t, acts)
    return out


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


async def live(tmp: Path, clock: Clock, dep: DesiredDeployment, load: Load) -> list[tuple[float, Action]]:
    """The controller's own reconcile pass each tick; its actuator replaced by the shared fleet response."""
    host = Host(name="box", connection="local", workdir=str(tmp / "w"))
    store = Store(tmp / f"state-{uuid.uuid4().hex}.db")  # hypothesis reuses tmp_path across examples
    put_desired(store, dep)
    store.db.execute("UPDATE deployments SET applied_at = 0")  # applied at t = 0, like the simulation
    c = Controller(Inventory(file="inv.yaml", hosts=(host,)), Fleet([host]), store)
    world, out = World.initial(dep), []

    def sync_rows() -> None:
        for row in replicas(store):
            if row.name not in world.reps:
                delete_replica(store, row.name)
        for r in world.reps.values():
            put_replica(
                store,
                ReplicaRow(
                    r.name, dep.name, "box", "127.0.0.1", "0", 8000, 1, r.phase, "h", r.since, 0, ""
                ).with_(drain_then=r.drain_then),
            )

    async def carry_out(d: DesiredDeployment, actions: list[Action], _desired: object) -> None:
        out.extend((clock.t, a) for a in actions)
        world.apply(clock.t, list(actions))
        sync_rows()

    c.actuator.carry_out = carry_out  # type: ignore[method-assign,assignment]
    try:
        for t, demand in load:
            clock.t = t
            world.advance(t)
            sync_rows()
            per, held = world.loads(demand)
            c.memory.samples = {n: EngineSample(running=k) for n, k in per.items()}
            put_demand(store, dep.name, GatewayDemand(held, 0, 0, None, t))
            await c._reconcile(replace(dep), {dep.name: dep})
    finally:
        await c.close()
        store.close()
    return out


def simulated(dep: DesiredDeployment, load: Load) -> list[tuple[float, Action]]:
    spec = DeploymentSim(
        name=dep.name,
        initial_replicas=dep.initial,
        max_replicas=len(dep.slots),
        autoscaler=dep.autoscaler,
        cold_start_s=dep.cold_start_s,
        wake_s=dep.wake_s,
        sleep_mode=dep.sleep_mode,
    )
    return replay(spec, load, INTERVAL_S)


async def test_scale_from_zero_wake_and_drains_are_the_same_moves(tmp_path: Path, clock: Clock) -> None:
    dep = deployment(slots=4, initial=1, min_r=0, sleep=True, target=4, idle=20, down=6)
    load = bursty(seed=3, ticks=120)
    moves = plain(dep, load)
    kinds = {type(a).__name__ for _, a in moves} | {a.then for _, a in moves if isinstance(a, Drain)}
    # The recorded burst must exercise every move, or the comparison proves little.
    assert {"Start", "Wake", "Drain", "sleep", "stop"} <= kinds, kinds
    assert any(isinstance(a, Start) and t > 0 for t, a in moves)
    assert await live(tmp_path, clock, dep, load) == moves == simulated(dep, load)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    slots=st.integers(2, 6),
    initial=st.integers(0, 2),
    min_r=st.integers(0, 1),
    sleep=st.booleans(),
    target=st.sampled_from([2.0, 4.0, 8.0]),
    idle=st.sampled_from([8.0, 20.0, 40.0]),
    down=st.sampled_from([0.0, 6.0, 20.0]),
    seed=st.integers(0, 10_000),
)
async def test_same_moves_for_any_burst_and_fleet(
    tmp_path: Path,
    clock: Clock,
    slots: int,
    initial: int,
    min_r: int,
    sleep: bool,
    target: float,
    idle: float,
    down: float,
    seed: int,
) -> None:
    dep = deployment(slots, min(initial, slots), min_r, sleep, target, idle, down)
    load = bursty(seed, 60)
    assert await live(tmp_path, clock, dep, load) == plain(dep, load) == simulated(dep, load)
