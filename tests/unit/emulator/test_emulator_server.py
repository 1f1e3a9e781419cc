"""The emulated engine's HTTP app in-process (aiohttp test client): request checks, API key, the flavours'
endpoints, metrics under load. The real-process behaviour is in tests/integration/test_emulator_http.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from llmctl.engines.api_key import delivery
from llmctl.engines.emulator.config import parse_config
from llmctl.engines.emulator.startup import prepare

VLLM = ["meta-llama/Llama-3.1-8B-Instruct", "--served-model-name", "chat", "--max-model-len", "4096"]
SGLANG = ["--model-path", "Qwen/Qwen3-8B", "--served-model-name", "chat", "--context-length", "4096"]

V_LABELS = (("engine", "0"), ("model_name", "chat"))  # vLLM V1 labels every series with its engine index

Factory = Callable[..., Coroutine[Any, Any, TestClient[Any, Any]]]


# The `emulator` fixture (conftest.py) starts emulated engines in-process.


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_token_id_prompts_and_request_checks(emulator: Factory) -> None:
    client = await emulator("vllm", VLLM)
    ok = await client.post("/v1/completions", json={"model": "chat", "prompt": [1, 2, 3, 4, 5]})
    body = await ok.json()
    counts = {k: body["usage"][k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
    assert counts == {"prompt_tokens": 5, "completion_tokens": 16, "total_tokens": 21}  # default 16
    assert body["choices"][0]["text"].split()[:3] == ["the", "quick", "brown"]  # deterministic filler
    bad_bodies: list[tuple[dict[str, Any], str]] = [
        ({"prompt": []}, "BadRequestError"),
        ({"prompt": "x", "max_tokens": 0}, "BadRequestError"),
        ({"prompt": "x", "max_tokens": "many"}, "Bad Request"),  # FastAPI's validation, not vLLM's own check
    ]
    for bad, kind in bad_bodies:
        response = await client.post("/v1/completions", json={"model": "chat", **bad})
        assert response.status == 400 and (await response.json())["error"]["type"] == kind
    parts = {"role": "user", "content": [{"type": "text", "text": "y" * 80}]}
    chat = await client.post(
        "/v1/chat/completions", json={"model": "chat", "messages": [parts], "max_tokens": 3}
    )
    assert (await chat.json())["usage"]["prompt_tokens"] == 20
    assert (await client.post("/v1/completions", data=b"{not json")).status == 400


async def test_api_key_guards_v1_only(emulator: Factory) -> None:
    client = await emulator("vllm", [*VLLM, "--api-key", "s3cret"])
    assert (await client.get("/v1/models")).status == 401
    assert (await client.get("/v1/models", headers={"Authorization": "Bearer s3cret"})).status == 200
    assert (await client.get("/health")).status == 200 and (await client.get("/metrics")).status == 200


async def test_vllm_key_from_its_environment_variable(emulator: Factory) -> None:
    client = await emulator("vllm", VLLM, {"VLLM_API_KEY": "from-env"})
    assert (await client.get("/v1/models")).status == 401
    assert (await client.get("/v1/models", headers={"Authorization": "Bearer from-env"})).status == 200


async def test_sglang_key_from_its_config_file_guards_all_but_health_and_metrics(
    emulator: Factory, tmp_path: Path
) -> None:
    """What llmctl hands an SGLang replica on an SSH host: `--config key.yaml` holding `api-key`."""
    config = tmp_path / "key.yaml"
    config.write_text(delivery("sglang").file_text('k"ey: #1'))
    client = await emulator("sglang", [*SGLANG, "--enable-metrics", "--config", str(config)])
    auth = {"Authorization": 'Bearer k"ey: #1'}
    for path in ("/v1/models", "/get_model_info"):
        assert (await client.get(path)).status == 401
        assert (await client.get(path, headers=auth)).status == 200
    assert (await client.get("/health")).status == 200 and (await client.get("/metrics")).status == 200
    assert (await client.post("/release_memory_occupation")).status == 401


async def test_vllm_endpoints_and_finished_reason_label(emulator: Factory) -> None:
    client = await emulator("vllm", VLLM)
    assert (await client.get("/ping")).status == 200
    assert "version" in await (await client.get("/version")).json()
    assert (await client.get("/is_sleeping")).status == 404  # no --enable-sleep-mode
    await client.post("/v1/completions", json={"model": "chat", "prompt": "abcd", "max_tokens": 4})
    values = samples(await (await client.get("/metrics")).text())
    key = (
        "vllm:request_success_total",
        (("engine", "0"), ("finished_reason", "length"), ("model_name", "chat")),
    )
    assert values[key] == 1
    assert values[("vllm:num_preemptions_total", V_LABELS)] == 0


async def test_sglang_endpoints_memory_saver_and_metrics_flag(emulator: Factory) -> None:
    plain = await emulator("sglang", SGLANG)
    assert (await plain.get("/metrics")).status == 404  # SGLang serves /metrics only with --enable-metrics
    assert (await plain.post("/release_memory_occupation")).status == 404
    client = await emulator("sglang", [*SGLANG, "--enable-metrics", "--enable-memory-saver"])
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


async def test_requests_queue_past_max_seqs(emulator: Factory) -> None:
    client = await emulator("vllm", [*VLLM, "--max-num-seqs", "2"])
    engine_seen: list[int] = []

    async def one() -> int:
        r = await client.post("/v1/completions", json={"model": "chat", "prompt": "x" * 40, "max_tokens": 8})
        return int((await r.json())["usage"]["completion_tokens"])

    requests = [asyncio.create_task(one()) for _ in range(6)]
    while not all(t.done() for t in requests):
        values = samples(await (await client.get("/metrics")).text())
        engine_seen.append(int(values[("vllm:num_requests_waiting", V_LABELS)]))
        assert values[("vllm:num_requests_running", V_LABELS)] <= 2
        await asyncio.sleep(0)
    assert [t.result() for t in requests] == [8] * 6
    values = samples(await (await client.get("/metrics")).text())
    assert values[("vllm:generation_tokens_total", V_LABELS)] == 48
    assert values[("vllm:prompt_tokens_total", V_LABELS)] == 60
    assert max(engine_seen) > 0  # some requests did queue


async def wait_for(
    client: TestClient[Any, Any], key: tuple[str, tuple[tuple[str, str], ...]], value: float
) -> None:
    """Poll /metrics until a series reaches `value` (bounded: the engine loop runs in this event loop)."""
    for _ in range(2000):
        if samples(await (await client.get("/metrics")).text()).get(key) == value:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"{key} never reached {value}")


async def test_client_disconnect_aborts_the_request(emulator: Factory) -> None:
    # Time scale 0.1: long enough a request for the client to leave half-way, short enough for a unit test.
    client = await emulator("vllm", VLLM, {"LLMCTL_EMULATOR_TIME_SCALE": "0.1"})
    body = {"model": "chat", "prompt": "x" * 40, "max_tokens": 3000, "stream": True}
    response = await client.post("/v1/completions", json=body)
    await response.content.readline()  # the first token arrived: the request is running
    response.close()
    await wait_for(client, ("vllm:num_requests_running", V_LABELS), 0)
    values = samples(await (await client.get("/metrics")).text())
    assert (
        values[
            (
                "vllm:request_success_total",
                (("engine", "0"), ("finished_reason", "abort"), ("model_name", "chat")),
            )
        ]
        == 1
    )
    assert values[("vllm:generation_tokens_total", V_LABELS)] < 3000


async def test_sleep_aborts_unfinished_requests_and_refuses_new_ones(emulator: Factory) -> None:
    client = await emulator(
        "vllm",
        [*VLLM, "--enable-sleep-mode"],
        {"LLMCTL_EMULATOR_TIME_SCALE": "0.1", "VLLM_SERVER_DEV_MODE": "1"},
    )
    body = {
        "model": "chat",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 3000,
        "stream": True,
    }
    response = await client.post("/v1/chat/completions", json=body)
    first = json.loads((await response.content.readline()).decode()[6:])
    assert first["choices"][0]["delta"]["role"] == "assistant"
    assert (await client.post("/sleep?level=1")).status == 200
    rest = await response.text()
    chunks = [json.loads(line[6:]) for line in rest.splitlines() if line.startswith("data: {")]
    assert chunks[-1]["choices"][0]["finish_reason"] == "abort" and rest.rstrip().endswith("data: [DONE]")
    refused = await client.post("/v1/chat/completions", json={**body, "stream": False})
    assert refused.status == 503
    assert (await client.get("/is_sleeping")).status == 200
    assert (await client.post("/wake_up")).status == 200
    assert (await (await client.get("/is_sleeping")).json()) == {"is_sleeping": False}


async def test_context_limits_speak_each_engines_words(emulator: Factory) -> None:
    vllm = await emulator("vllm", VLLM)  # max-model-len 4096
    # vLLM 0.32 cuts max_tokens to what the context leaves; it refuses only a max_tokens past the context.
    cut = await vllm.post("/v1/completions", json={"model": "chat", "prompt": [1] * 4000, "max_tokens": 100})
    assert (await cut.json())["usage"]["completion_tokens"] == 96
    too_long = await vllm.post("/v1/completions", json={"model": "chat", "prompt": "x", "max_tokens": 5000})
    error = (await too_long.json())["error"]
    assert too_long.status == 400 and error["message"].startswith(
        "max_tokens=5000 cannot be greater than max_model_len=4096."
    )
    missing = await vllm.post("/v1/completions", json={"model": "gpt-4", "prompt": "x"})
    assert (
        missing.status == 404
        and (await missing.json())["error"]["message"]
        == "The model `gpt-4` does not exist. Valid aliases: chat."
    )
    sglang = await emulator("sglang", SGLANG)  # context-length 4096
    prompt = await sglang.post("/v1/completions", json={"model": "chat", "prompt": [1] * 4096})
    body = await prompt.json()
    assert (
        body["object"] == "error"
        and "is longer than the model's context length (4096 tokens)" in body["message"]
    )
    total = await sglang.post(
        "/v1/completions", json={"model": "chat", "prompt": [1] * 4000, "max_tokens": 96}
    )
    assert (
        "Requested token count exceeds the model's maximum context length of 4096"
        in (await total.json())["message"]
    )


async def test_sglang_starts_with_a_kv_pool_smaller_than_the_context(emulator: Factory) -> None:
    # 8B bf16 at 0.25 of an H100 leaves a few thousand KV tokens: SGLang starts and bounds each request by it.
    args = ["--model-path", "Qwen/Qwen3-8B", "--served-model-name", "chat", "--mem-fraction-static", "0.25"]
    config = parse_config("sglang", args, {})
    pool = prepare(config).kv_capacity
    assert 0 < pool < config.max_model_len
    client = await emulator("sglang", args)
    over = await client.post("/v1/completions", json={"model": "chat", "prompt": [1] * pool})
    assert (
        over.status == 400
        and "Use a shorter input or enable --allow-auto-truncate." in (await over.json())["message"]
    )
    fits = await client.post(
        "/v1/completions", json={"model": "chat", "prompt": [1] * (pool - 10), "max_tokens": 50}
    )
    assert (await fits.json())["usage"]["completion_tokens"] == 8  # clipped to the pool, as SGLang does


async def test_histograms_use_the_engines_own_buckets(emulator: Factory) -> None:
    for flavour, args, top in (("vllm", VLLM, "2560.0"), ("sglang", [*SGLANG, "--enable-metrics"], "400.0")):
        client = await emulator(flavour, args)
        text = await (await client.get("/metrics")).text()
        bounds = [
            s.labels["le"]
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == f"{flavour}:time_to_first_token_seconds_bucket"
        ]
        assert bounds[-2:] == [top, "+Inf"]
