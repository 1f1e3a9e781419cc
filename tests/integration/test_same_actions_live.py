"""The live controller on real processes makes the moves the reconcile core prescribes for what it saw: a
burst through the gateway to a semi-online deployment of emulated engines (scale from zero by waking the
warm-pool sleeper, cold starts, drains to sleep and to stop), recorded tick by tick as (time, observation,
actions). A plain loop and the SimPy driver (sim.scripted.replay_observations), each with a fresh policy,
replay the recorded observations and must produce the same actions at the same times."""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass

import httpx
import pytest

from llmctl.autoscale.types import Observation
from llmctl.cli.controller import run_controller
from llmctl.config.inventory import load_inventory
from llmctl.control.controller import ControllerConfig
from llmctl.engines.emulated import TIME_SCALE_ENV
from llmctl.reconcile.actions import Action, Drain, Start, Wake, scale_actions
from llmctl.state.desired import load_desired
from llmctl.state.store import Store
from llmctl.testing.local_fleet import LocalFleet, free_port
from sim.scripted import replay_observations

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Tick:
    t: float
    obs: Observation
    actions: tuple[Action, ...]


async def burst(port: int, seconds: float, workers: int) -> list[int]:
    statuses: list[int] = []
    deadline = time.monotonic() + seconds
    body = {"model": "burst", "prompt": "tell me a story", "max_tokens": 300}

    async def worker(client: httpx.AsyncClient) -> None:
        while time.monotonic() < deadline:
            r = await client.post(f"http://127.0.0.1:{port}/v1/completions", json=body)
            statuses.append(r.status_code)

    async with httpx.AsyncClient(timeout=120) as client:
        await asyncio.gather(*(worker(client) for _ in range(workers)))
    return statuses


def test_live_moves_are_the_cores_for_what_it_saw(
    scaling_fleet: LocalFleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The controller runs in this process: the engines it starts take its time scale from here.
    monkeypatch.setenv(TIME_SCALE_ENV, scaling_fleet.vars[TIME_SCALE_ENV])
    scaling_fleet.apply(
        scaling_fleet.playbook(
            name="burst",
            workload="semi-online",
            scaling={
                "min_replicas": 0,
                "max_replicas": 3,
                "signal": "in_flight",
                "target": 4,
                "idle_timeout_s": 2,
                "down_window_s": 1,
            },
        )
    )
    inv = load_inventory(scaling_fleet.inventory)
    store = Store(scaling_fleet.state)
    ticks: list[Tick] = []
    port = free_port()

    def trace(deployment: str, t: float, obs: Observation, actions: tuple[Action, ...]) -> None:
        if deployment == "burst":
            ticks.append(Tick(t, obs, actions))

    async def scenario() -> list[int]:
        stop = asyncio.Event()
        config = ControllerConfig(interval_s=0.5, host_check_s=3600)
        task = asyncio.create_task(
            run_controller(inv, store, config, ("127.0.0.1", port), stop=stop, trace=trace)
        )
        try:

            async def until(what: str, check: object, timeout: float = 30.0) -> None:
                deadline = time.monotonic() + timeout
                while not check():  # type: ignore[operator]
                    assert time.monotonic() < deadline, f"timed out waiting for {what}"
                    assert not task.done(), task
                    await asyncio.sleep(0.1)

            await until("the gateway", lambda: _listening(port))
            await until(
                "burst-0 asleep", lambda: _phase(store, "burst-0") == "sleeping"
            )  # the apply idled it
            statuses = await burst(port, 5.0, 24)
            await until(
                "back to zero",
                lambda: {_phase(store, n) for n in ("burst-0", "burst-1", "burst-2")} <= {"sleeping", None},
                40.0,
            )
            return statuses
        finally:
            stop.set()
            await task

    statuses = asyncio.run(scenario())
    assert set(statuses) == {200}
    moves = [(k.t, a) for k in ticks for a in k.actions]
    kinds = {type(a).__name__ for _, a in moves} | {a.then for _, a in moves if isinstance(a, Drain)}
    assert {"Wake", "Start", "Drain", "sleep", "stop"} <= kinds, moves  # the burst exercised every move
    dep = load_desired(store)["burst"]
    slots = [s.name for s in dep.slots]
    policy = dep.autoscaler()
    plain = []
    for k in ticks:
        d = policy.decide(k.obs, k.t)
        if d.changed:
            plain += [(k.t, a) for a in scale_actions(d, k.obs.replicas, slots, sleep_mode=dep.sleep_mode)]
    simulated = replay_observations(dep.autoscaler(), [(k.t, k.obs) for k in ticks], slots, dep.sleep_mode)
    assert moves == plain == simulated
    assert any(isinstance(a, Start) for _, a in moves) and any(isinstance(a, Wake) for _, a in moves)
    store.close()


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _phase(store: Store, name: str) -> str | None:
    row = store.db.execute("SELECT phase FROM replicas WHERE name = ?", (name,)).fetchone()
    return str(row[0]) if row else None
