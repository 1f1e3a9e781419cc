"""The emulated engine's HTTP app in-process (aiohttp test client): request checks, API key, the flavours'
endpoints, metrics under load. The real-process behaviour is in tests/integration/test_emulator_http.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from llmctl.engines.emulator.config import parse_config
from llmctl.engines.emulator.server import EmulatorApp, Engine
from llmctl.engines.emulator.startup import kv_capacity, profile_of
from llmctl.perf.step_time import step_model

VLLM = ["meta-llama/Llama-3.1-8B-Instruct", "--served-model-name", "chat", "--max-model-len", "4096"]
SGLANG = ["--model-path", "Qwen/Qwen3-8B", "--served-model-name", "chat", "--context-length", "4096"]

Factory = Callable[..., Coroutine[Any, Any, TestClient[Any, Any]]]


@pytest.fixture
async def make_client() -> AsyncIterator[Factory]:
    clients: list[TestClient[Any, Any]] = []
    tasks: list[asyncio.Task[None]] = []

    async def make(flavour: str, args: list[str], env: dict[str, str] | None = None) -> TestClient[Any, Any]:
        config = parse_config(flavour, args, {"LLMCTL_EMULATOR_TIME_SCALE": "0", **(env or {})})
        engine = Engine(config, step_model(profile_of(config)), kv_capacity(config))
        tasks.append(asyncio.create_task(engine.run()))
        client: TestClient[Any, Any] = TestClient(TestServer(EmulatorApp(engine).build()))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()
    for task in tasks:
        task.cancel()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_token_id_prompts_and_request_checks(make_client: Factory) -> None:
    client = await make_client("vllm", VLLM)
    ok = await client.post("/v1/completions", json={"model": "chat", "prompt": [1, 2, 3, 4, 5]})
    body = await ok.json()
    assert body["usage"] == {"prompt_tokens": 5, "completion_tokens": 16, "total_tokens": 21}  # default 16
    assert body["choices"][0]["text"].split()[:3] == ["the", "quick", "brown"]  # deterministic filler
    for bad in ({"prompt": []}, {"prompt": "x", "max_tokens": 0}, {"prompt": "x", "max_tokens": "many"}):
        response = await client.post("/v1/completions", json={"model": "chat", **bad})
        assert response.status == 400 and (await response.json())["object"] == "error"
    parts = {"role": "user", "content": [{"type": "text", "text": "y" * 80}]}
    chat = await client.post(
        "/v1/chat/completions", json={"model": "chat", "messages": [parts], "max_tokens": 3}
    )
    assert (await chat.json())["usage"]["prompt_tokens"] == 20
    assert (await client.post("/v1/completions", data=b"{not json")).status == 400


async def test_api_key_guards_v1_only(make_client: Factory) -> None:
    client = await make_client("vllm", [*VLLM, "--api-key", "s3cret"])
    assert (await client.get("/v1/models")).status == 401
    assert (await client.get("/v1/models", headers={"Authorization": "Bearer s3cret"})).status == 200
    assert (await client.get("/health")).status == 200 and (await client.get("/metrics")).status == 200


async def test_vllm_endpoints_and_finished_reason_label(make_client: Factory) -> None:
    client = await make_client("vllm", VLLM)
    assert (await client.get("/ping")).status == 200
    assert "version" in await (await client.get("/version")).json()
    assert (await client.get("/is_sleeping")).status == 404  # no --enable-sleep-mode
    await client.post("/v1/completions", json={"model": "chat", "prompt": "abcd", "max_tokens": 4})
    values = samples(await (await client.get("/metrics")).text())
    key = ("vllm:request_success_total", (("finished_reason", "length"), ("model_name", "chat")))
    assert values[key] == 1
    assert values[("vllm:num_preemptions_total", (("model_name", "chat"),))] == 0


async def test_sglang_endpoints_memory_saver_and_metrics_flag(make_client: Factory) -> None:
    plain = await make_client("sglang", SGLANG)
    assert (await plain.get("/metrics")).status == 404  # SGLang serves /metrics only with --enable-metrics
    assert (await plain.post("/release_memory_occupation")).status == 404
    client = await make_client("sglang", [*SGLANG, "--enable-metrics", "--enable-memory-saver"])
    info = await (await client.get("/get_model_info")).json()
    assert info["model_path"] == "Qwen/Qwen3-8B"
    assert (await client.get("/get_server_info")).status == 200
    assert (await client.get("/health_generate")).status == 200
    assert (await client.post("/release_memory_occupation")).status == 200
    asleep = await client.post("/v1/completions", json={"model": "chat", "prompt": "x"})
    assert asleep.status == 503
    assert (await client.post("/resume_memory_occupation")).status == 200
    assert (await client.post("/v1/completions", json={"model": "chat", "prompt": "x"})).status == 200
    names = {name for name, _ in samples(await (await client.get("/metrics")).text())}
    assert {"sglang:num_running_reqs", "sglang:num_queue_reqs", "sglang:token_usage"} <= names


async def test_requests_queue_past_max_seqs(make_client: Factory) -> None:
    client = await make_client("vllm", [*VLLM, "--max-num-seqs", "2"])
    engine_seen: list[int] = []

    async def one() -> int:
        r = await client.post("/v1/completions", json={"model": "chat", "prompt": "x" * 40, "max_tokens": 8})
        return int((await r.json())["usage"]["completion_tokens"])

    requests = [asyncio.create_task(one()) for _ in range(6)]
    while not all(t.done() for t in requests):
        values = samples(await (await client.get("/metrics")).text())
        engine_seen.append(int(values[("vllm:num_requests_waiting", (("model_name", "chat"),))]))
        assert values[("vllm:num_requests_running", (("model_name", "chat"),))] <= 2
        await asyncio.sleep(0)
    assert [t.result() for t in requests] == [8] * 6
    values = samples(await (await client.get("/metrics")).text())
    assert values[("vllm:generation_tokens_total", (("model_name", "chat"),))] == 48
    assert values[("vllm:prompt_tokens_total", (("model_name", "chat"),))] == 60
