"""The rest of vLLM V1's /metrics (vllm/v1/metrics/loggers.py, 0.32): per-request histograms, cache and sleep
gauges, the counters of features the emulator does not have (exported at 0, as a real vLLM without them
exports them), the cache-config info series, and the API server's HTTP metrics
(prometheus-fastapi-instrumentator). Names, labels and bucket bounds are vLLM's, so a dashboard or an
alert written against a real replica reads an emulated one unchanged.

What the numbers mean here: no prefix cache is modelled, so every prompt token is computed (hits stay 0);
there is no KV connector, multimodal cache, queue limit or MFU accounting, so those counters stay 0.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Summary,
)

from llmctl.engines.emulator.config import EmulatorConfig

REQUEST_LATENCY = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0,
    960.0, 1920.0, 7680.0,
)  # fmt: skip
INTER_TOKEN = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
)  # fmt: skip
ITERATION_TOKENS = (1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
REQUEST_PARAMS_N = (1, 2, 5, 10, 20)
REQUEST_NUM_PREEMPTIONS = (1, 2, 3, 4, 5, 10, 20)

# Counters of what the emulator never does, each with its enumerated label (None: engine labels only).
ZERO_COUNTERS: dict[str, tuple[str, str | None, tuple[str, ...]]] = {
    "vllm:estimated_flops_per_gpu": ("Estimated number of floating point operations per GPU.", None, ()),
    "vllm:estimated_read_bytes_per_gpu": ("Estimated number of bytes read from memory per GPU.", None, ()),
    "vllm:estimated_write_bytes_per_gpu": ("Estimated number of bytes written to memory per GPU.", None, ()),
    "vllm:prefix_cache_hits": ("Prefix cache hits, in terms of number of cached tokens.", None, ()),
    "vllm:external_prefix_cache_queries": ("External prefix cache queries from KV connector.", None, ()),
    "vllm:external_prefix_cache_hits": ("External prefix cache hits from KV connector.", None, ()),
    "vllm:mm_cache_queries": ("Multi-modal cache queries, in terms of number of queried items.", None, ()),
    "vllm:mm_cache_hits": ("Multi-modal cache hits, in terms of number of cached items.", None, ()),
    "vllm:prompt_tokens_cached": ("Number of cached prompt tokens (local + external).", None, ()),
    "vllm:prompt_tokens_cached_by_source": (
        "Prefix-cache hit tokens by the cache tier that supplied them.",
        "source",
        ("device", "host", "p2p", "disk", "external_unspecified"),
    ),
}
# Per-request histograms (and the per-step one): key -> (name, help, bounds: FIXED_BOUNDS or "tokens", the
# 1-2-5 series up to max-model-len).
HISTOGRAMS: dict[str, tuple[str, str, str]] = {
    "prompt": ("vllm:request_prompt_tokens", "Number of prefill tokens processed.", "tokens"),
    "generation": ("vllm:request_generation_tokens", "Number of generation tokens processed.", "tokens"),
    "iteration": ("vllm:iteration_tokens_total", "Histogram of number of tokens per engine_step.", "iteration"),
    "max_generation": (
        "vllm:request_max_num_generation_tokens", "Histogram of maximum number of requested generation tokens.",
        "tokens",
    ),
    "params_n": ("vllm:request_params_n", "Histogram of the n request parameter.", "n"),
    "params_max_tokens": ("vllm:request_params_max_tokens", "Histogram of the max_tokens request parameter.", "tokens"),
    "tpot": (
        "vllm:request_time_per_output_token_seconds", "Histogram of time_per_output_token_seconds per request.",
        "inter_token",
    ),
    "queue": ("vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.", "latency"),
    "inference": (
        "vllm:request_inference_time_seconds", "Histogram of time spent in RUNNING phase for request.", "latency",
    ),
    "prefill": (
        "vllm:request_prefill_time_seconds", "Histogram of time spent in PREFILL phase for request.", "latency",
    ),
    "decode": ("vllm:request_decode_time_seconds", "Histogram of time spent in DECODE phase for request.", "latency"),
    "num_preemptions": (
        "vllm:request_num_preemptions", "Histogram of the number of times a request was preempted.", "preemptions",
    ),
    "kv_computed": (
        "vllm:request_prefill_kv_computed_tokens", "Histogram of new KV tokens computed during prefill.", "tokens",
    ),
}  # fmt: skip
FIXED_BOUNDS: dict[str, tuple[float, ...]] = {
    "latency": REQUEST_LATENCY, "inter_token": INTER_TOKEN, "iteration": ITERATION_TOKENS, "n": REQUEST_PARAMS_N,
    "preemptions": REQUEST_NUM_PREEMPTIONS,
}  # fmt: skip
PROMPT_SOURCES = ("local_compute", "local_cache_hit", "external_kv_transfer")
ADMISSION_REASONS = ("max_num_queued_reqs", "max_num_queued_tokens")
SLEEP_STATES = ("awake", "weights_offloaded", "discard_all")

# The API server's HTTP metrics: vLLM leaves its probes and /metrics out of them.
HTTP_EXCLUDED = frozenset({"/metrics", "/health", "/load", "/ping", "/version", "/server_info"})
HTTP_HIGHR = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 7.5, 10.0,
    30.0, 60.0,
)  # fmt: skip
HTTP_LOW = (0.1, 0.5, 1.0)


def one_two_five(limit: int) -> tuple[float, ...]:
    """vLLM's token-count bounds: 1, 2, 5, 10, 20, 50 ... up to max-model-len."""
    out: list[float] = []
    scale = 1
    while True:
        for m in (1, 2, 5):
            if m * scale > limit:
                return tuple(out)
            out.append(float(m * scale))
        scale *= 10


def cache_config_labels(c: EmulatorConfig, kv_capacity: int) -> dict[str, str]:
    """vLLM's CacheConfig.metrics_info() for a GPU replica: the label names are 0.32's; values the
    emulator knows come from its configuration, the rest are vLLM's defaults."""
    block = 16  # vLLM's default on CUDA (its CPU backend uses 128)
    return {
        "_block_size_resolved": "True", "block_size": str(block), "cache_dtype": c.kv_cache_dtype,
        "cache_hit_alignment_tokens": "None", "effective_attention_block_size": str(block),
        "enable_mamba_shared_prefix_checkpoint": "False", "enable_prefix_caching": "True", "engine": "0",
        "gpu_memory_utilization": str(c.memory_fraction), "hash_block_size": "None", "is_attention_free": "False",
        "kv_cache_dtype_skip_layers": "[]", "kv_cache_layout": "None",
        "kv_cache_max_concurrency": str(round(kv_capacity / c.max_model_len, 2)), "kv_cache_memory_bytes": "None",
        "kv_cache_size_tokens": str(kv_capacity), "kv_offloading_backend": "native", "kv_offloading_size": "None",
        "kv_sharing_fast_prefill": "False", "mamba_block_size": "None", "mamba_cache_dtype": "auto",
        "mamba_cache_mode": "none", "mamba_page_size_padded": "None", "mamba_ssm_cache_dtype": "auto",
        "num_cpu_blocks": "None", "num_gpu_blocks": str(kv_capacity // block), "num_gpu_blocks_override": "None",
        "prefix_cache_retention_interval": "0", "prefix_caching_hash_algo": "sha256", "prefix_match_unit": "None",
        "replayssm_buffer_len": "16", "skip_page_size_padded": "None", "sliding_window": "None",
        "swa_bounded_replay": "True", "use_kda_recoverssm": "False", "use_replayssm": "False",
        "user_specified_block_size": "False",
    }  # fmt: skip


@dataclass
class RequestTimes:
    """One request's life, as vLLM's RequestStateStats keeps it (perf_counter seconds; 0: not yet)."""

    prompt_tokens: int
    max_tokens: int
    arrived: float
    scheduled: float = 0.0  # first admitted: ends the queue time, starts the prefill
    first_token: float = 0.0
    last_token: float = 0.0
    generated: int = 0
    preemptions: int = 0


class VllmMetrics:
    """The families EngineMetrics does not hold, on the same registry and labels."""

    def __init__(
        self, r: CollectorRegistry, c: EmulatorConfig, labels: tuple[str, str], kv_capacity: int
    ) -> None:
        names = ["model_name", "engine"]
        self._labels = labels

        def counter(name: str, doc: str, extra: str | None = None, values: tuple[str, ...] = ()) -> Counter:
            metric = Counter(name, doc, [*names, *([extra] if extra else [])], registry=r)
            for value in values or (None,):
                metric.labels(*labels, *([value] if value else []))
            return metric

        self.waiting_by_reason = Gauge(
            "vllm:num_requests_waiting_by_reason", "Number of waiting requests by reason.", [*names, "reason"],
            registry=r,
        )  # fmt: skip
        self.sleep_state = Gauge(
            "vllm:engine_sleep_state", "Engine sleep state; awake = 1 means engine is awake.",
            [*names, "sleep_state"], registry=r,
        )  # fmt: skip
        for name, (doc, extra, values) in ZERO_COUNTERS.items():
            counter(name, doc, extra, values)
        self.prefix_queries = counter("vllm:prefix_cache_queries", "Prefix cache queries, in queried tokens.")
        self.by_source = counter(
            "vllm:prompt_tokens_by_source", "Number of prompt tokens by source.", "source", PROMPT_SOURCES
        )
        rejections = Counter(
            "vllm:admission_rejections", "Number of admission attempts rejected by a queue limit, by reason.",
            ["model_name", "reason"], registry=r,
        )  # fmt: skip
        for reason in ADMISSION_REASONS:
            rejections.labels(labels[0], reason)
        bounds = {"tokens": one_two_five(c.max_model_len), **FIXED_BOUNDS}
        self.histograms = {
            key: Histogram(name, doc, names, buckets=bounds[kind], registry=r).labels(*labels)
            for key, (name, doc, kind) in HISTOGRAMS.items()
        }
        info = cache_config_labels(c, kv_capacity)
        Gauge(
            "vllm:cache_config_info", "Information of the LLMEngine CacheConfig", list(info), registry=r
        ).labels(**info).set(1)
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            r.register(collector)  # the process's own, as vLLM's default registry carries them
        self.http = HttpMetrics(r)
        self.waiting(0)
        self.sleeping(0)
        # With --enable-lora: one series per set of running and waiting adapters, set to when it was seen.
        self.lora: Gauge | None = None
        if c.lora is not None:
            names = ["max_lora", "waiting_lora_adapters", "running_lora_adapters"]
            self.lora = Gauge("vllm:lora_requests_info", "Running stats on lora requests.", names, registry=r)

    def lora_info(self, max_loras: int, running: str, waiting: str) -> None:
        if self.lora is not None:
            self.lora.labels(str(max_loras), waiting, running).set_to_current_time()

    def waiting(self, count: int) -> None:
        # The emulator defers nothing (no LoRA budget, no KV transfer): every waiting request waits for room.
        self.waiting_by_reason.labels(*self._labels, "capacity").set(count)
        self.waiting_by_reason.labels(*self._labels, "deferred").set(0)

    def sleeping(self, level: int) -> None:
        """0 awake, 1 weights offloaded, 2 weights discarded (vLLM's record_sleep_state)."""
        for state, on in zip(SLEEP_STATES, (level == 0, level == 1, level == 2), strict=True):
            self.sleep_state.labels(*self._labels, state).set(int(on))

    def admitted(self, tokens: int) -> None:
        """A request scheduled from the queue looks its tokens up in the prefix cache, and finds none."""
        self.prefix_queries.labels(*self._labels).inc(tokens)

    def step(self, prompt_tokens: int, generated: int) -> None:
        """One engine step: the prompts it completed (vLLM counts a prompt when its first token comes out)
        and the tokens it sampled."""
        if prompt_tokens:
            self.by_source.labels(*self._labels, "local_compute").inc(prompt_tokens)
        if prompt_tokens or generated:
            self.histograms["iteration"].observe(prompt_tokens + generated)

    def finished(self, t: RequestTimes) -> None:
        decode = t.last_token - t.first_token if t.first_token else 0.0
        observed = {
            "prompt": t.prompt_tokens, "generation": t.generated, "max_generation": t.generated, "params_n": 1,
            "params_max_tokens": t.max_tokens, "num_preemptions": t.preemptions,
            "kv_computed": t.prompt_tokens,  # no prefix cache: every prompt token is computed
            "queue": (t.scheduled or t.arrived) - t.arrived,
            "prefill": t.first_token - t.scheduled if t.first_token and t.scheduled else 0.0,
            "decode": decode,
            "inference": t.last_token - t.scheduled if t.scheduled else 0.0,
            "tpot": decode / (t.generated - 1) if t.generated > 1 else 0.0,
        }  # fmt: skip
        for key, value in observed.items():
            self.histograms[key].observe(value)


class HttpMetrics:
    """prometheus-fastapi-instrumentator's defaults, which vLLM's API server mounts: requests by route
    template, method and status class; sizes and durations by route."""

    def __init__(self, r: CollectorRegistry) -> None:
        self.requests = Counter("http_requests", "Total number of requests by method, status and handler.",
                                ["handler", "method", "status"], registry=r)  # fmt: skip
        self.request_size = Summary(
            "http_request_size_bytes",
            "Content length of incoming requests by handler.",
            ["handler"],
            registry=r,
        )
        self.response_size = Summary(
            "http_response_size_bytes",
            "Content length of outgoing responses by handler.",
            ["handler"],
            registry=r,
        )
        self.highr = Histogram(
            "http_request_duration_highr_seconds", "Latency with many buckets but no API specific labels.",
            buckets=HTTP_HIGHR, registry=r,
        )  # fmt: skip
        self.duration = Histogram(
            "http_request_duration_seconds", "Latency with only few buckets by handler.", ["handler", "method"],
            buckets=HTTP_LOW, registry=r,
        )  # fmt: skip

    def observe(self, handler: str, method: str, status: int, request_bytes: int, response_bytes: int,
                started: float) -> None:  # fmt: skip
        """`handler`: the route template, or "none" for a path no route matched."""
        if handler in HTTP_EXCLUDED:
            return
        seconds = time.perf_counter() - started
        self.requests.labels(handler, method, f"{status // 100}xx").inc()
        self.request_size.labels(handler).observe(request_bytes)
        self.response_size.labels(handler).observe(response_bytes)
        self.highr.observe(seconds)
        self.duration.labels(handler, method).observe(seconds)
