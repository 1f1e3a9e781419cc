"""The cold-start tiers in the live controller (issue #18): a replica put to sleep sleeps at the level the
cold policy picks for its deployment's TTFT target (level 1 when only a copy from host RAM wakes in time,
level 2 when a re-read still does, level 1 refused when the host's RAM cannot hold the weights), the level
is recorded on the row and said as a `cold-tier` event with typed data, and a level-2 sleeper is woken with
the re-read vLLM needs. The engine is a fake HTTP API (httpx.MockTransport) that records the calls."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest
from aiohttp.test_utils import TestServer

from llmctl.autoscale.types import Decision
from llmctl.catalog.gpu_table import GiB
from llmctl.control.controller import Controller
from llmctl.engines.emulator.config import parse_config
from llmctl.engines.emulator.engine import Engine
from llmctl.engines.emulator.server import EmulatorApp
from llmctl.engines.emulator.startup import prepare, profile_of
from llmctl.fleet.facts_parse import HostFacts
from llmctl.fleet.pool import Fleet
from llmctl.perf.cold_start import tier_holdings, tier_ladder
from llmctl.perf.step_time import step_model
from llmctl.perf.tiers import Tier
from llmctl.planner.shape import shape_profile
from llmctl.pool.cold_policy import ScaleUps
from llmctl.pool.residency import HostRoom
from llmctl.reconcile.tiers import slot_tiers
from llmctl.spec.deployment import DesiredDeployment, ScalingSpec
from llmctl.spec.from_plan import desired_from_plan
from llmctl.state.desired import put_desired
from llmctl.state.records import ReplicaRow, events, put_replica, replicas
from llmctl.state.store import Store
from tests.unit.planner.conftest import inventory_from, plan_texts, playbook_from

INVENTORY = "hosts:\n  box:\n    connection: local\n    gpus: {type: H100-SXM, count: 2}\n"
PLAYBOOK = (
    "deployments:\n"
    "  - name: burst\n"
    "    model: meta-llama/Llama-3.1-8B-Instruct\n"
    "    workload: semi-online\n"
    "    engine: vllm\n"
    "    targets:\n"
    "      ttft_ms: {p99: 2000}\n"
    "    scaling: {min_replicas: 0, max_replicas: 2, signal: queue_depth, target: 8}\n"
)
EMULATED = ["meta-llama/Llama-3.1-8B-Instruct", "--served-model-name", "burst"]
DEV = {"VLLM_SERVER_DEV_MODE": "1", "LLMCTL_EMULATOR_TIME_SCALE": "0"}


def planned() -> DesiredDeployment:
    (dep,) = desired_from_plan(playbook_from(PLAYBOOK)[0], plan_texts(PLAYBOOK, INVENTORY))
    assert dep.sleep_mode and dep.slots[0].shape is not None
    return dep


def with_target(dep: DesiredDeployment, ttft_s: float) -> DesiredDeployment:
    s = dep.scaling
    scaling = ScalingSpec(
        s.min_replicas, s.max_replicas, s.signal, s.target, s.idle_timeout_s, ttft_s, s.warm_pool
    )
    return DesiredDeployment(**{**dep.__dict__, "scaling": scaling})


class FakeEngine:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, object]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.calls.append((request.method, request.url.raw_path.decode(), body))
        return httpx.Response(200, json={})


def controller(
    tmp_path: Path, dep: DesiredDeployment, memory_mib: int | None = None
) -> tuple[Controller, Store, FakeEngine]:
    store = Store(tmp_path / "s.db")
    put_desired(store, dep)
    if memory_mib is not None:
        store.put_facts("box", HostFacts("box", memory_mib=memory_mib).to_dict())
    inventory = inventory_from(INVENTORY)
    c = Controller(inventory, Fleet(list(inventory.hosts)), store)
    fake = FakeEngine()
    c.client = c.actuator.client = httpx.AsyncClient(transport=httpx.MockTransport(fake))
    return c, store, fake


def draining(dep: DesiredDeployment) -> ReplicaRow:
    s = dep.slots[0]
    gpus = ",".join(map(str, s.gpus))
    return ReplicaRow(
        s.name, dep.name, "box", "127.0.0.1", gpus, s.port, 4242, "draining", "h", 0.0, 0, "idle"
    )


def rungs(dep: DesiredDeployment) -> tuple[float, float]:
    shape = dep.slots[0].shape
    assert shape is not None
    ladder = tier_ladder(shape_profile(shape))
    return ladder[Tier.ASLEEP_IN_RAM].total_s, ladder[Tier.ASLEEP_DISCARDED].total_s


async def put_to_sleep(c: Controller, store: Store, dep: DesiredDeployment) -> ReplicaRow:
    row = draining(dep).with_(drain_then="sleep", drain_since=time.time() - 60.0)  # drained a while ago
    put_replica(store, row)
    await c.actuator.drained(row, dep, None)
    (after,) = replicas(store)
    return after


@pytest.mark.parametrize(("between", "level"), [("1-2", 1), ("2-disk", 2)])
async def test_the_sleep_level_is_the_cheapest_rung_meeting_the_ttft_target(
    tmp_path: Path, between: str, level: int
) -> None:
    base = planned()
    one, two = rungs(base)
    # A target between the two wakes needs level 1; one above level 2's (far below a start from disk)
    # is met by level 2, which holds the same GPU residue and no weights in RAM: the cheaper rung.
    target = (one + two) / 2 if between == "1-2" else two + 1.0
    dep = with_target(base, target)
    c, store, fake = controller(tmp_path, dep, memory_mib=512 * 1024)
    after = await put_to_sleep(c, store, dep)
    assert fake.calls == [("POST", f"/sleep?level={level}", None)]
    assert after.phase == "sleeping" and after.sleep_level == level
    said = [e for e in events(store) if e.kind == "cold-tier"]
    assert len(said) == 1 and said[0].subject == after.name
    tier = Tier.ASLEEP_IN_RAM if level == 1 else Tier.ASLEEP_DISCARDED
    assert said[0].data["tier"] == tier.name
    assert said[0].data["wake_s"] == pytest.approx(one if level == 1 else two, abs=1e-3)
    assert said[0].data["budget_s"] == pytest.approx(target, abs=1e-3)
    assert isinstance(said[0].data["cost_per_h"], float)
    assert slot_tiers(dep, replicas(store))[after.name] is tier


async def test_a_host_without_ram_for_the_weights_gets_level_2(tmp_path: Path) -> None:
    base = planned()
    one, two = rungs(base)
    dep = with_target(base, (one + two) / 2)  # only level 1 meets it, but the host's RAM cannot hold it
    shape = dep.slots[0].shape
    assert shape is not None
    room = HostRoom("box", 8 * GiB, (0,), 80 * GiB)
    held = {t: tier_holdings(shape_profile(shape), t).host_ram_bytes for t in Tier if t.asleep}
    assert held[Tier.ASLEEP_DISCARDED] <= room.ram_budget < held[Tier.ASLEEP_IN_RAM]
    c, store, fake = controller(tmp_path, dep, memory_mib=8 * 1024)
    after = await put_to_sleep(c, store, dep)
    assert fake.calls == [("POST", "/sleep?level=2", None)] and after.sleep_level == 2
    (said,) = [e for e in events(store) if e.kind == "cold-tier"]
    assert "refused asleep in RAM (level 1)" in said.reason and said.data["tier"] == "ASLEEP_DISCARDED"


async def test_a_level_2_sleeper_wakes_with_a_reload_and_a_level_1_one_without(tmp_path: Path) -> None:
    dep = planned()
    c, store, fake = controller(tmp_path, dep)
    for level, expected in (
        (2, ["/wake_up", "/collective_rpc", "/reset_prefix_cache"]),
        (1, ["/wake_up"]),
    ):
        fake.calls.clear()
        row = draining(dep).with_(phase="sleeping", sleep_level=level)
        put_replica(store, row)
        assert await c.actuator.wake(dep, row, "scale up")
        assert [path for _, path, _ in fake.calls] == expected
        if level == 2:
            assert fake.calls[1][2] == {"method": "reload_weights"}
        (after,) = replicas(store)
        assert after.phase == "ready" and after.sleep_level == 0
        assert slot_tiers(dep, [after])[after.name] is Tier.RUNNING


async def test_the_controller_sleeps_and_wakes_an_emulated_engine_at_level_2(tmp_path: Path) -> None:
    """The same calls against the emulated engine over HTTP: it sleeps at level 2 and its wake, re-read
    included, takes the ladder's level-2 time on its modelled clock."""
    config = parse_config("vllm", [*EMULATED, "--enable-sleep-mode"], DEV)
    replica = prepare(config)
    engine = Engine(config, step_model(replica.profile), replica.kv_capacity)
    task = asyncio.create_task(engine.run())
    emulated = EmulatorApp(engine)
    server = TestServer(emulated.build(), host="127.0.0.1")
    await server.start_server()
    try:
        base = planned()
        _, two = rungs(base)
        dep = with_target(base, two + 1.0)  # level 2 meets it: the cheaper sleep
        store = Store(tmp_path / "s.db")
        put_desired(store, dep)
        inventory = inventory_from(INVENTORY)
        c = Controller(inventory, Fleet(list(inventory.hosts)), store)
        row = draining(dep).with_(port=server.port, drain_then="sleep", drain_since=time.time() - 60.0)
        put_replica(store, row)
        await c.actuator.drained(row, dep, None)
        (asleep,) = replicas(store)
        assert asleep.sleep_level == 2 and emulated.sleep_level == 2 and engine.sleeping
        assert await c.actuator.wake(dep, asleep, "scale up")
        ladder = tier_ladder(profile_of(config))
        assert emulated.modelled_wake_s == pytest.approx(ladder[Tier.ASLEEP_DISCARDED].total_s)
        assert not emulated.weights_discarded and not engine.sleeping
        await c.close()
    finally:
        await server.close()
        task.cancel()


def test_the_scale_up_rate_is_the_recent_carried_out_scale_ups(tmp_path: Path) -> None:
    c, _, _ = controller(tmp_path, planned())
    tiers = c.actuator.tiers
    assert tiers is not None
    up, down = Decision("burst", 0, 2, "burst"), Decision("burst", 2, 0, "idle")
    for at, d in ((0.0, up), (100.0, down), (4000.0, up), (5000.0, up)):
        tiers.scaled("burst", d, at)
    # Over the last hour at t=5000: two scale-ups (the one at t=0 has left the window), one spare each.
    assert tiers.scale_ups("burst", 5000.0) == ScaleUps(2.0, 1, 1.0)
    assert tiers.scale_ups("other", 5000.0) == ScaleUps(0.0, 1, 1.0)
