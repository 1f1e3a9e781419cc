"""Turn an engine's /metrics text into one sample: queue, running, KV usage, token counters and latency
histograms. Parsing is prometheus_client's own; this module only picks and sums what the controller needs."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client.parser import text_string_to_metric_families

from llmctl.engines.metric_names import METRICS
from llmctl.reconcile.sample import EngineSample, Histogram

__all__ = ["EngineSample", "Histogram", "parse_engine_metrics"]


def _histogram(samples: Sequence[tuple[str, dict[str, str], float]], name: str) -> Histogram:
    buckets: dict[float, float] = {}
    total = count = 0.0
    for sample_name, labels, value in samples:
        if sample_name == f"{name}_bucket":
            le = float(labels["le"])
            buckets[le] = buckets.get(le, 0.0) + value
        elif sample_name == f"{name}_sum":
            total += value
        elif sample_name == f"{name}_count":
            count += value
    return Histogram(tuple(sorted(buckets.items())), total, count)


def parse_engine_metrics(text: str, flavour: str) -> EngineSample:
    """One sample from an engine's exposition text; label sets (model, TP rank) are summed, KV usage averaged.

    Raises ValueError when the text is not Prometheus exposition."""
    names = METRICS[flavour]
    samples: list[tuple[str, dict[str, str], float]] = []
    for family in text_string_to_metric_families(text):
        samples.extend((s.name, s.labels, s.value) for s in family.samples)

    def total(name: str) -> float:
        # prometheus_client reports counters as <name>_total samples whatever the family name says.
        base = name.removesuffix("_total")
        return sum(v for n, _, v in samples if n in (name, base, f"{base}_total"))

    kv = [v for n, _, v in samples if n == names.kv_usage]
    return EngineSample(
        running=total(names.running),
        waiting=total(names.waiting),
        kv_usage=sum(kv) / len(kv) if kv else 0.0,
        prompt_tokens=total(names.prompt_tokens),
        generation_tokens=total(names.generation_tokens),
        requests=total(names.requests),
        ttft=_histogram(samples, names.ttft),
        itl=_histogram(samples, names.itl),
        e2e=_histogram(samples, names.e2e),
    )
