"""The gateway's own Prometheus metrics, in a registry of its own (one per gateway, so tests can run many)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Latency buckets from 5 ms to 2 min: gateway overhead sits at the bottom, long generations at the top.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "llmctl_gateway_requests",
            "Requests answered, by deployment and HTTP status (499: the client hung up first).",
            ["deployment", "code"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "llmctl_gateway_in_flight",
            "Requests being proxied to a replica.",
            ["deployment"],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "llmctl_gateway_queue_depth",
            "Requests held while the deployment has no ready replica.",
            ["deployment"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "llmctl_gateway_request_duration_seconds",
            "Time from request to last byte sent.",
            ["deployment"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.first_byte = Histogram(
            "llmctl_gateway_time_to_first_byte_seconds",
            "Time from request to first byte from the replica.",
            ["deployment"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.upstream_failures = Counter(
            "llmctl_gateway_upstream_failures",
            "Responses cut short because the replica failed mid-answer.",
            ["deployment"],
            registry=self.registry,
        )
        self.retries = Counter(
            "llmctl_gateway_retries",
            "Requests retried on another replica after a failure before any byte.",
            ["deployment"],
            registry=self.registry,
        )
        # LoRA adapters (llmctl.gateway.adapters): where each request for an adapter went, and the loads.
        self.adapter_requests = Counter(
            "llmctl_gateway_adapter_requests",
            "Requests for a LoRA adapter, by whether the replica chosen had it loaded (affinity hit) or not.",
            ["deployment", "adapter", "affinity"],
            registry=self.registry,
        )
        self.adapter_loads = Counter(
            "llmctl_gateway_adapter_loads",
            "Load requests the gateway sent a replica for an adapter it did not have, by outcome.",
            ["deployment", "adapter", "outcome"],
            registry=self.registry,
        )
        self.adapter_load_time = Histogram(
            "llmctl_gateway_adapter_load_seconds",
            "Time a replica took to answer a load request for an adapter.",
            ["deployment"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
