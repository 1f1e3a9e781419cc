"""The gateway's adapter loads against in-process emulated vLLM replicas: a load the replica refuses reaches
the client as the replica's answer (and is tried again next time); a replica that has the adapter already
(loaded behind the gateway's back) is recognised from its /v1/models; one that lost it answers 404 once,
after which the gateway loads it again."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from llmctl.engines.emulator.config import parse_config
from llmctl.engines.emulator.engine import Engine
from llmctl.engines.emulator.server import EmulatorApp
from llmctl.engines.emulator.startup import prepare
from llmctl.gateway.registry import AdapterRoute, Registry
from llmctl.gateway.server import Gateway
from llmctl.perf.step_time import step_model
from tests.unit.gateway.test_gateway_server import serve

BASE = ["meta-llama/Llama-3.1-8B-Instruct", "--served-model-name", "assist", "--max-model-len", "4096"]
Replica = Callable[[], Awaitable[str]]


def adapter_dir(root: Path, name: str) -> str:
    d = root / name
    d.mkdir()
    (d / "adapter_config.json").write_text(json.dumps({"r": 8}))
    (d / "adapter_model.safetensors").write_bytes(b"\0" * 1024)
    return str(d)


@pytest.fixture
async def replica() -> AsyncIterator[Replica]:
    runners: list[web.AppRunner] = []
    tasks: list[asyncio.Task[None]] = []

    async def make() -> str:
        env = {"LLMCTL_EMULATOR_TIME_SCALE": "0", "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "1"}
        config = parse_config("vllm", [*BASE, "--enable-lora", "--max-loras", "2"], env)
        ready = prepare(config)
        engine = Engine(config, step_model(ready.profile), ready.kv_capacity)
        tasks.append(asyncio.create_task(engine.run()))
        runner, url = await serve(EmulatorApp(engine).build())
        runners.append(runner)
        return url

    yield make
    for r in runners:
        await r.cleanup()
    for t in tasks:
        t.cancel()


async def ask(session: aiohttp.ClientSession, url: str, model: str) -> tuple[int, dict[str, object]]:
    async with session.post(
        url + "/v1/completions", json={"model": model, "prompt": "hi", "max_tokens": 2}
    ) as r:
        return r.status, await r.json(content_type=None)


def loads(text: str) -> dict[tuple[str, str], float]:
    return {
        (s.labels["adapter"], s.labels["outcome"]): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "llmctl_gateway_adapter_loads_total"
    }


async def test_refused_known_and_lost_adapters(replica: Replica, tmp_path: Path) -> None:
    upstream = await replica()
    registry = Registry()
    registry.add_deployment("assist")
    good = adapter_dir(tmp_path, "good")
    routes = [AdapterRoute("good", good, False), AdapterRoute("broken", str(tmp_path / "missing"), False)]
    registry.set_adapters("assist", routes, slots=2)
    registry.set_endpoints("assist", [("r0", upstream)])
    gateway = Gateway(registry)
    runner, url = await serve(gateway.app())
    try:
        async with aiohttp.ClientSession() as s:
            # The replica cannot find the adapter: its own 404 is the answer, twice (nothing is remembered).
            for _ in range(2):
                status, body = await ask(s, url, "broken")
                assert status == 404 and "No adapter found" in str(body["error"])
            # Loaded behind the gateway's back: the refusal (already loaded) is read from /v1/models.
            payload = {"lora_name": "good", "lora_path": good}
            async with s.post(upstream + "/v1/load_lora_adapter", json=payload) as r:
                assert r.status == 200
            assert (await ask(s, url, "good"))[0] == 200
            # The replica loses it (a restart): one 404, then the gateway loads it again.
            async with s.post(upstream + "/v1/unload_lora_adapter", json={"lora_name": "good"}) as r:
                assert r.status == 200
            assert (await ask(s, url, "good"))[0] == 404
            assert (await ask(s, url, "good"))[0] == 200
            async with s.get(url + "/metrics") as r:
                counted = loads(await r.text())
        assert counted == {("broken", "failed"): 2, ("good", "loaded"): 2}
    finally:
        await runner.cleanup()
