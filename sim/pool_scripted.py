"""Replay a recorded load through the simulator's pooled controller (sim.pooled): each tick every member
holds a given number of requests (spread over its ready replicas, held at the gateway while none is
ready), and the simulated controller observes, decides, asks the pool and carries the moves out as in any
pooled simulation, start-ups and wake-ups taking their modelled times in SimPy. The simulator's side of the
check that it and the live controller make the same pool moves (tests/sim/test_pool_same_moves.py), as
sim.scripted is for one deployment."""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from dataclasses import replace
from typing import Any

import simpy

from llmctl.reconcile.actions import Action
from sim.cluster import ClusterSpec, DeploymentSim
from sim.pooled import SimPool, _PooledCluster
from sim.scripted import ScriptedReplica, place_demand


def replay_pooled(
    deployments: Sequence[DeploymentSim],
    pools: Sequence[SimPool],
    load: Mapping[str, Sequence[tuple[float, int]]],
    interval_s: float,
) -> list[tuple[float, str, Action]]:
    """Every action the simulated pooled controller takes on `load`: per member, (tick time, requests in
    it); every member's load has the same tick times."""
    spec = ClusterSpec(
        tuple(replace(d, model=ScriptedReplica) for d in deployments), scrape_interval_s=interval_s
    )
    env = simpy.Environment()
    times = sorted({t for series in load.values() for t, _ in series})
    cluster = _PooledCluster(spec, env, pools, times[-1] if times else 0.0)
    at = {name: dict(series) for name, series in load.items()}

    def ticks() -> Generator[simpy.Event, Any, None]:
        for t in times:
            if t > env.now:
                yield env.timeout(t - env.now)
            for name, state in cluster.deps.items():
                place_demand(state, t, at.get(name, {}).get(t, 0))
            cluster._pooled_tick(env.now)

    env.process(ticks())
    env.run()
    return list(cluster.actions)


__all__ = ["replay_pooled"]
