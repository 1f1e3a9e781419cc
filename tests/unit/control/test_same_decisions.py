"""One autoscaling policy, one observation sequence, three drivers: the live controller's scaling path
(Controller -> Actuator.scale, with its policy cache and store), a plain loop calling decide(), and the
simulator's SimPy process (sim.cluster.drive_policy). They must make the same decisions, so the simulator
predicts what the controller does."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from llmctl.autoscale.types import Decision, Observation, ReplicaView
from llmctl.config.inventory import load_inventory
from llmctl.control.controller import Controller
from llmctl.control.desired import DesiredDeployment
from llmctl.fleet.pool import Fleet
from llmctl.planning import plan_and_desired
from llmctl.state.store import Store
from sim.cluster import drive_policy


def semi_online(tmp_path: Path) -> tuple[Path, DesiredDeployment]:
    inv = tmp_path / "inv.yaml"
    inv.write_text(
        yaml.safe_dump({"hosts": {"box": {"connection": "local", "gpus": {"type": "H100-SXM", "count": 8}}}})
    )
    pb = tmp_path / "pb.yaml"
    dep = {
        "name": "burst",
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "workload": "semi-online",
        "engine": "emulated",
        "scaling": {
            "min_replicas": 0,
            "max_replicas": 6,
            "target": 4,
            "idle_timeout_s": 30,
            "down_window_s": 20,
        },
    }
    pb.write_text(yaml.safe_dump({"deployments": [dep]}))
    _plan, desired = plan_and_desired(pb, inv)
    return inv, desired[0]


def observations(seed: int, steps: int) -> list[tuple[float, Observation]]:
    """A bursty sequence with replicas that follow the (unknown to this generator) decisions loosely."""
    rng = random.Random(seed)
    out = []
    active = 1
    for i in range(steps):
        t = i * 2.0
        burst = rng.random() < 0.3
        demand = rng.randint(10, 40) if burst else rng.randint(0, 3)
        views = tuple(ReplicaView(f"burst-{k}", "ready", demand // max(active, 1)) for k in range(active))
        sleeping = (ReplicaView("burst-5", "sleeping"),) if rng.random() < 0.5 else ()
        out.append(
            (
                t,
                Observation(
                    "burst",
                    views + sleeping,
                    in_flight=demand,
                    queued=rng.randint(0, 5) if burst else 0,
                    seconds_since_last_request=0.0 if demand else float(rng.randint(0, 60)),
                ),
            )
        )
        active = max(0, min(6, active + rng.choice((-1, 0, 1))))
    return out


async def live_decisions(
    tmp_path: Path, inv_path: Path, dep: DesiredDeployment, seq: list[tuple[float, Observation]]
) -> list[tuple[float, Decision]]:
    inv = load_inventory(inv_path)
    store = Store(tmp_path / f"state-{len(list(tmp_path.iterdir()))}.db")
    controller = Controller(inv, Fleet(list(inv.hosts)), store)
    seen: list[tuple[float, Decision]] = []
    now = 0.0

    async def record(_dep: DesiredDeployment, decision: Decision) -> None:
        seen.append((now, decision))

    controller.actuator._act = record  # type: ignore[method-assign]  # act on nothing, just record
    try:
        for now, obs in seq:
            await controller.actuator.scale(dep, obs, now)
    finally:
        await controller.close()
        store.close()
    return seen


def simpy_decisions(
    dep: DesiredDeployment, seq: list[tuple[float, Observation]]
) -> list[tuple[float, Decision]]:
    return [(t, d) for t, d in drive_policy(dep.autoscaler(), seq) if d.changed]


def plain_decisions(
    dep: DesiredDeployment, seq: list[tuple[float, Observation]]
) -> list[tuple[float, Decision]]:
    policy = dep.autoscaler()
    return [(t, d) for t, obs in seq if (d := policy.decide(obs, t)).changed]


async def test_the_live_controller_and_a_plain_loop_decide_the_same(tmp_path: Path) -> None:
    inv, dep = semi_online(tmp_path)
    seq = observations(seed=7, steps=200)
    live = await live_decisions(tmp_path, inv, dep, seq)
    plain = plain_decisions(dep, seq)
    assert len(plain) >= 10, "the sequence must make the policy act, or the comparison proves little"
    assert live == plain == simpy_decisions(dep, seq)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000))
@pytest.mark.asyncio
async def test_same_decisions_for_any_sequence(tmp_path_factory: pytest.TempPathFactory, seed: int) -> None:
    tmp = tmp_path_factory.mktemp("same")
    inv, dep = semi_online(tmp)
    seq = observations(seed, 60)
    assert await live_decisions(tmp, inv, dep, seq) == plain_decisions(dep, seq) == simpy_decisions(dep, seq)
