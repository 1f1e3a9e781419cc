"""The emulated engine's /metrics, with the real engine's metric names (llmctl.engines.metric_names)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from llmctl.engines.emulator.config import EmulatorConfig
from llmctl.engines.emulator.vllm_metrics import INTER_TOKEN, REQUEST_LATENCY, VllmMetrics
from llmctl.engines.metric_names import METRICS
from llmctl.reconcile.sample import TTFT_BUCKETS_S

# The engines' own bucket bounds (vLLM V1 loggers.py, SGLang metrics_collector.py), so histogram_quantile
# over an emulated replica interpolates exactly as it would over a real one.
BUCKETS: dict[str, dict[str, tuple[float, ...]]] = {
    "vllm": {
        "ttft": TTFT_BUCKETS_S[:-1],  # prometheus_client adds +Inf itself
        "itl": INTER_TOKEN,
        "e2e": REQUEST_LATENCY,
    },
    "sglang": {
        "ttft": (0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8, 10, 20, 40, 60, 80, 100, 200, 400),
        "itl": (
            0.002, 0.004, 0.006, 0.008, 0.010, 0.015, 0.020, 0.025, 0.030, 0.035, 0.040, 0.060, 0.080, 0.100,
            0.200, 0.400, 0.600, 0.800, 1.000, 2.000, 4.000, 6.000, 8.000,
        ),
        "e2e": (
            0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8, 10, 20, 40, 60, 80, 100, 200, 400, 600, 1200, 1800, 2400,
        ),
    },
}  # fmt: skip


PREEMPTIONS = "vllm:num_preemptions_total"
SGLANG_ABORTED = "sglang:num_aborted_requests_total"
# vLLM's finished_reason values, all exported from the start; the emulator only ever finishes with two.
VLLM_FINISH_REASONS = ("stop", "length", "abort", "error", "repetition")


class EngineMetrics:
    """One registry per server (not the process-global one), so in-process tests can run several."""

    def __init__(self, config: EmulatorConfig, kv_capacity: int) -> None:
        flavour, model_name = config.flavour, config.served_names[0]
        n = METRICS[flavour]
        buckets = BUCKETS[flavour]
        self.registry = r = CollectorRegistry()
        self.flavour = flavour
        self.model = model_name
        # vLLM V1 labels every series with the engine index too (one engine here); SGLang's tokenizer-side
        # series carry model_name only.
        labels = ["model_name", "engine"] if flavour == "vllm" else ["model_name"]
        self._values: tuple[str, ...] = (model_name, "0") if flavour == "vllm" else (model_name,)

        def counter(name: str, doc: str, names: list[str] = labels) -> Counter:
            # prometheus_client appends _total itself.
            return Counter(name.removesuffix("_total"), doc, names, registry=r)

        def histogram(name: str, doc: str, kind: str) -> Histogram:
            return Histogram(name, doc, labels, buckets=buckets[kind], registry=r)

        self.running = Gauge(n.running, "Requests running on the engine.", labels, registry=r)
        self.waiting = Gauge(n.waiting, "Requests waiting to be scheduled.", labels, registry=r)
        self.kv_usage = Gauge(n.kv_usage, "Fraction of the KV cache in use.", labels, registry=r)
        self.ttft = histogram(n.ttft, "Histogram of time to first token in seconds.", "ttft")
        self.itl = histogram(n.itl, "Histogram of inter-token latency in seconds.", "itl")
        self.e2e = histogram(n.e2e, "Histogram of e2e request latency in seconds.", "e2e")
        self.prompt_tokens = counter(n.prompt_tokens, "Number of prefill tokens processed.")
        self.generation_tokens = counter(n.generation_tokens, "Number of generation tokens processed.")
        # vLLM splits finished requests by why they stopped and counts aborts there; SGLang counts every
        # request in one series and aborts in another.
        if flavour == "vllm":
            self.requests = counter(
                n.requests, "Count of successfully processed requests.", [*labels, "finished_reason"]
            )
            self.aborted = self.requests
            self.preemptions: Counter | None = counter(
                PREEMPTIONS, "Cumulative number of preemption from the engine."
            )
        else:
            self.requests = counter(n.requests, "Number of requests processed.")
            self.aborted = counter(SGLANG_ABORTED, "Number of requests aborted.")
            self.preemptions = None  # SGLang retracts requests without a counter of its own
        # Touch every series so it is exported at 0 from the start, as the real engines do: a scraper that
        # sees a name appear only after the first request would read "missing" as "broken".
        for metric in (self.running, self.waiting, self.kv_usage, self.ttft, self.itl, self.e2e):
            metric.labels(*self._values)
        for total in (self.prompt_tokens, self.generation_tokens, self.preemptions):
            if total is not None:
                total.labels(*self._values)
        if flavour == "vllm":
            for reason in VLLM_FINISH_REASONS:
                self.requests.labels(*self._values, reason)
        else:
            self.requests.labels(*self._values)
            self.aborted.labels(*self._values)

        # Bound children, looked up once: the engine loop records every token, and labels() costs a lock.
        self._ttft, self._itl, self._e2e = (h.labels(*self._values) for h in (self.ttft, self.itl, self.e2e))
        self._generated = self.generation_tokens.labels(*self._values)
        self.vllm = VllmMetrics(r, config, (model_name, "0"), kv_capacity) if flavour == "vllm" else None

    def finished(self, reason: str = "length") -> None:
        if self.flavour == "vllm":
            self.requests.labels(*self._values, reason).inc()
            return
        (self.aborted if reason == "abort" else self.requests).labels(*self._values).inc()

    def preempted(self, count: int) -> None:
        if self.preemptions is not None and count:
            self.preemptions.labels(*self._values).inc(count)

    def tokens(self, prompt: int = 0, generated: int = 0) -> None:
        if prompt:
            self.prompt_tokens.labels(*self._values).inc(prompt)
        if generated:
            self._generated.inc(generated)

    def latency(self, first: bool, seconds: float) -> None:
        """One gap between tokens a client saw: the first is time to first token, the rest inter-token."""
        (self._ttft if first else self._itl).observe(seconds)

    def request_latency(self, seconds: float) -> None:
        self._e2e.observe(seconds)

    def state(self, running: int, waiting: int, kv_usage: float) -> None:
        self.running.labels(*self._values).set(running)
        self.waiting.labels(*self._values).set(waiting)
        self.kv_usage.labels(*self._values).set(kv_usage)
        if self.vllm is not None:
            self.vllm.waiting(waiting)
