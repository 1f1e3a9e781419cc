"""The emulated engine's sleep levels (issue #18): vLLM /sleep?level=1 keeps the weights in host RAM,
level 2 discards them and its wake re-reads them (POST /wake_up, then /collective_rpc reload_weights), so a
level-2 wake takes the cold-start ladder's longer time. Timed on the emulator's modelled clock
(`modelled_wake_s`), at time scale 0: nothing waits on the wall clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from llmctl.engines.emulator.config import parse_config
from llmctl.engines.emulator.engine import Engine
from llmctl.engines.emulator.server import EmulatorApp
from llmctl.engines.emulator.startup import prepare, profile_of
from llmctl.perf.cold_start import tier_ladder
from llmctl.perf.step_time import step_model
from llmctl.perf.tiers import Tier

VLLM = ["meta-llama/Llama-3.1-8B-Instruct", "--served-model-name", "chat", "--enable-sleep-mode"]
DEV = {"VLLM_SERVER_DEV_MODE": "1", "LLMCTL_EMULATOR_TIME_SCALE": "0"}

Make = Callable[[], Coroutine[Any, Any, tuple[EmulatorApp, TestClient[Any, Any]]]]


@pytest.fixture
async def sleeper() -> AsyncIterator[Make]:
    made: list[tuple[TestClient[Any, Any], asyncio.Task[None]]] = []

    async def make() -> tuple[EmulatorApp, TestClient[Any, Any]]:
        config = parse_config("vllm", VLLM, DEV)
        replica = prepare(config)
        engine = Engine(config, step_model(replica.profile), replica.kv_capacity)
        task = asyncio.create_task(engine.run())
        app = EmulatorApp(engine)
        client: TestClient[Any, Any] = TestClient(TestServer(app.build()))
        await client.start_server()
        made.append((client, task))
        return app, client

    yield make
    for client, task in made:
        await client.close()
        task.cancel()


def sleep_state(metrics: str) -> str:
    line = next(
        x for x in metrics.splitlines() if x.startswith("vllm:engine_sleep_state") and x.endswith(" 1.0")
    )
    return line.split('sleep_state="')[1].split('"')[0]


async def test_sleep_reports_its_level_and_level_2_wakes_slower_by_the_re_read(sleeper: Make) -> None:
    app, client = await sleeper()
    ladder = tier_ladder(profile_of(app.config))
    one, two = ladder[Tier.ASLEEP_IN_RAM].total_s, ladder[Tier.ASLEEP_DISCARDED].total_s

    slept = await client.post("/sleep?level=1")
    assert await slept.json() == {"status": "sleeping", "level": 1} and app.sleep_level == 1
    level_1_state = sleep_state(await (await client.get("/metrics")).text())
    assert (await client.post("/wake_up")).status == 200
    assert app.modelled_wake_s == pytest.approx(one) and app.sleep_level == 0
    # Level 1 kept the weights: a reload has nothing to re-read.
    assert (await client.post("/collective_rpc", json={"method": "reload_weights"})).status == 200
    assert app.modelled_wake_s == pytest.approx(one)

    assert (await (await client.post("/sleep?level=2")).json())["level"] == 2 and app.sleep_level == 2
    level_2_state = sleep_state(await (await client.get("/metrics")).text())
    assert (level_1_state, level_2_state) == ("weights_offloaded", "discard_all")  # vLLM's sleep states
    assert (await client.post("/wake_up")).status == 200
    assert app.weights_discarded and app.modelled_wake_s == pytest.approx(one)  # re-mapped, not re-read
    assert (await client.post("/collective_rpc", json={"method": "reload_weights"})).status == 200
    assert (await (await client.post("/reset_prefix_cache")).json()) == {"success": True}
    assert not app.weights_discarded
    assert app.modelled_wake_s == pytest.approx(two) and two > one
    served = await client.post("/v1/completions", json={"model": "chat", "prompt": "hi", "max_tokens": 2})
    assert served.status == 200


async def test_bad_levels_and_rpc_bodies_are_refused(sleeper: Make) -> None:
    _, client = await sleeper()
    assert (await client.post("/sleep?level=3")).status == 400
    assert (await client.post("/collective_rpc", data=b"{nope")).status == 400
    assert (await client.post("/collective_rpc", json={"args": []})).status == 400
    assert (await client.post("/collective_rpc", json={"method": "format_disk"})).status == 400
