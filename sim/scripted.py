"""Replay a recorded load through the simulator's controller: each tick the deployment holds a given number
of requests (spread over its ready replicas, held at the gateway while none is ready), and the simulated
controller observes, decides and carries the reconcile core's actions out as in any simulation; start-ups
and wake-ups take their modelled times in SimPy. This is the simulator's side of the check that it and
the live controller make the same moves (tests/unit/control/test_same_actions.py)."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import replace
from typing import Any

import simpy

from llmctl.autoscale import Autoscaler
from llmctl.autoscale.types import Observation
from llmctl.reconcile.actions import Action, scale_actions
from sim.cluster import ClusterSpec, DeploymentSim, _Cluster, _Dep
from sim.outcome import RequestRecord
from sim.workload import Arrival


class ScriptedReplica:
    """A replica model whose load is set from outside: it serves nothing and finishes nothing by itself."""

    def __init__(self) -> None:
        self.load = 0

    def add(self, arrival: Arrival, now: float) -> bool:
        self.load += 1
        return True

    def advance(self, until_s: float) -> list[RequestRecord]:
        return []

    def next_event_s(self) -> float:
        return float("inf")

    @property
    def in_flight(self) -> int:
        return self.load

    @property
    def queued(self) -> int:
        return 0

    @property
    def kv_usage(self) -> float:
        return 0.0

    def take_ttfts(self) -> list[float]:
        return []

    def abort_all(self) -> int:
        n, self.load = self.load, 0
        return n


def replay_observations(
    policy: Autoscaler,
    observations: Sequence[tuple[float, Observation]],
    slots: Sequence[str],
    sleep_mode: bool,
) -> list[tuple[float, Action]]:
    """The simulated controller's moves on a recorded sequence of observations (a live controller's): a SimPy
    process gives each to `policy` at its time and plans the moves as a simulated tick does."""
    env = simpy.Environment()
    out: list[tuple[float, Action]] = []

    def run() -> Generator[simpy.Event, Any, None]:
        for t, obs in observations:
            if t > env.now:
                yield env.timeout(t - env.now)
            d = policy.decide(obs, env.now)
            if d.changed:
                out.extend((env.now, a) for a in scale_actions(d, obs.replicas, slots, sleep_mode=sleep_mode))

    env.process(run())
    env.run()
    return out


def place_demand(state: _Dep, t: float, demand: int) -> None:
    """The recorded `demand` at `t`: spread over the ready replicas (as in-flight requests of their scripted
    models), or held at the gateway while none is ready (sim.pool_scripted plays it the same way)."""
    ready = [r for r in state.replicas if r.phase == "ready"]
    for r in state.replicas:
        if isinstance(r.model, ScriptedReplica):
            r.model.load = 0
    for i in range(demand if ready else 0):
        model = ready[i % len(ready)].model
        assert isinstance(model, ScriptedReplica)
        model.load += 1
    state.gateway.held.clear()
    state.gateway.held.extend((t, Arrival(t, 0, 0)) for _ in range(0 if ready else demand))
    if demand:
        state.gateway.last_request_s = t


def replay(
    dep: DeploymentSim, load: Sequence[tuple[float, int]], interval_s: float
) -> list[tuple[float, Action]]:
    """Every action the simulated controller takes on `load`: (tick time, requests in the deployment)."""
    spec = ClusterSpec((replace(dep, model=ScriptedReplica),), scrape_interval_s=interval_s)
    env = simpy.Environment()
    cluster = _Cluster(spec, env)
    state = cluster.deps[dep.name]

    def ticks() -> Generator[simpy.Event, Any, None]:
        for t, demand in load:
            if t > env.now:
                yield env.timeout(t - env.now)
            place_demand(state, t, demand)
            cluster._tick(state, env.now)

    env.process(ticks())
    env.run()
    return [(t, a) for t, _name, a in cluster.actions]
