"""The emulated engine's /metrics, with the real engine's metric names (llmctl.engines.metric_names)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from llmctl.engines.metric_names import METRICS

# Bucket bounds in the style of vLLM's defaults: fine at the low end, where online latency targets live.
TTFT_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
)
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0)


PREEMPTIONS = "vllm:num_preemptions_total"


class EngineMetrics:
    """One registry per server (not the process-global one), so in-process tests can run several."""

    def __init__(self, flavour: str, model_name: str) -> None:
        n = METRICS[flavour]
        self.registry = CollectorRegistry()
        labels = ["model_name"]

        def counter(name: str, doc: str) -> Counter:
            # prometheus_client appends _total itself.
            return Counter(name.removesuffix("_total"), doc, labels, registry=self.registry)

        self.running = Gauge(n.running, "Requests running on the engine.", labels, registry=self.registry)
        self.waiting = Gauge(n.waiting, "Requests waiting to be scheduled.", labels, registry=self.registry)
        self.kv_usage = Gauge(n.kv_usage, "Fraction of the KV cache in use.", labels, registry=self.registry)
        self.ttft = Histogram(
            n.ttft, "Time to first token.", labels, buckets=TTFT_BUCKETS, registry=self.registry
        )
        self.itl = Histogram(
            n.itl, "Time between output tokens.", labels, buckets=ITL_BUCKETS, registry=self.registry
        )
        self.e2e = Histogram(n.e2e, "Request latency.", labels, buckets=E2E_BUCKETS, registry=self.registry)
        self.prompt_tokens = counter(n.prompt_tokens, "Prefill tokens processed.")
        self.generation_tokens = counter(n.generation_tokens, "Generation tokens produced.")
        # vLLM splits finished requests by why they stopped; the emulator always runs to max_tokens ("length").
        request_labels = [*labels, "finished_reason"] if flavour == "vllm" else labels
        self.requests = Counter(
            n.requests.removesuffix("_total"), "Requests finished.", request_labels, registry=self.registry
        )
        # Only vLLM exports preemptions; SGLang retracts requests without a counter.
        self.preemptions = (
            counter(PREEMPTIONS, "Preemptions by the scheduler.") if flavour == "vllm" else None
        )
        self.model = model_name
        self.flavour = flavour
        # Touch every series so it is exported at 0 from the start, as the real engines do: a scraper that
        # sees a name appear only after the first request would read "missing" as "broken".
        for metric in (self.running, self.waiting, self.kv_usage, self.ttft, self.itl, self.e2e):
            metric.labels(model_name)
        for total in (self.prompt_tokens, self.generation_tokens, self.preemptions):
            if total is not None:
                total.labels(model_name)
        if flavour == "vllm":
            for reason in ("stop", "length", "abort"):
                self.requests.labels(model_name, reason)
        else:
            self.requests.labels(model_name)

    def finished(self, reason: str = "length") -> None:
        labelled = (
            self.requests.labels(self.model, reason)
            if self.flavour == "vllm"
            else self.requests.labels(self.model)
        )
        labelled.inc()

    def preempted(self, count: int) -> None:
        if self.preemptions is not None and count:
            self.preemptions.labels(self.model).inc(count)

    def state(self, running: int, waiting: int, kv_usage: float) -> None:
        self.running.labels(self.model).set(running)
        self.waiting.labels(self.model).set(waiting)
        self.kv_usage.labels(self.model).set(kv_usage)
