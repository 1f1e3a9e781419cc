"""The Prometheus metric names each engine exposes (vLLM V1 and SGLang `--enable-metrics`), in one place, so
the scraper, the emulated engine and the tests agree with the real engines."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricNames:
    running: str
    waiting: str
    kv_usage: str  # fraction 0..1 of the KV cache in use
    ttft: str  # histogram, seconds
    itl: str  # histogram, seconds
    e2e: str  # histogram, seconds
    prompt_tokens: str  # counter
    generation_tokens: str  # counter
    requests: str  # counter of finished requests


METRICS: dict[str, MetricNames] = {
    "vllm": MetricNames(
        running="vllm:num_requests_running",
        waiting="vllm:num_requests_waiting",
        kv_usage="vllm:kv_cache_usage_perc",
        ttft="vllm:time_to_first_token_seconds",
        itl="vllm:inter_token_latency_seconds",
        e2e="vllm:e2e_request_latency_seconds",
        prompt_tokens="vllm:prompt_tokens_total",
        generation_tokens="vllm:generation_tokens_total",
        requests="vllm:request_success_total",
    ),
    "sglang": MetricNames(
        running="sglang:num_running_reqs",
        waiting="sglang:num_queue_reqs",
        kv_usage="sglang:token_usage",
        ttft="sglang:time_to_first_token_seconds",
        itl="sglang:inter_token_latency_seconds",
        e2e="sglang:e2e_request_latency_seconds",
        prompt_tokens="sglang:prompt_tokens_total",
        generation_tokens="sglang:generation_tokens_total",
        requests="sglang:num_requests_total",
    ),
}
