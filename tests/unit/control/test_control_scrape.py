"""Scraping engine metrics: real exposition text (made by prometheus_client with the engines' names) parses
into the numbers the controller uses, and histogram quantiles interpolate as PromQL does."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from llmctl.control.scrape import Histogram as H
from llmctl.control.scrape import parse_engine_metrics
from llmctl.engines.metric_names import METRICS


def exposition(flavour: str, ttft_values: list[float]) -> str:
    n = METRICS[flavour]
    reg = CollectorRegistry()
    labels = ["model_name"]
    Gauge(n.running, "running", labels, registry=reg).labels("m").set(3)
    Gauge(n.waiting, "waiting", labels, registry=reg).labels("m").set(7)
    Gauge(n.kv_usage, "kv", labels, registry=reg).labels("m").set(0.42)
    Counter(n.prompt_tokens.removesuffix("_total"), "p", labels, registry=reg).labels("m").inc(1000)
    Counter(n.generation_tokens.removesuffix("_total"), "g", labels, registry=reg).labels("m").inc(250)
    Counter(n.requests.removesuffix("_total"), "r", labels, registry=reg).labels("m").inc(5)
    ttft = Histogram(n.ttft, "ttft", labels, buckets=(0.1, 0.2, 0.5, 1.0), registry=reg).labels("m")
    for v in ttft_values:
        ttft.observe(v)
    return generate_latest(reg).decode()


@pytest.mark.parametrize("flavour", ["vllm", "sglang"])
def test_parses_gauges_counters_and_histograms(flavour: str) -> None:
    s = parse_engine_metrics(exposition(flavour, [0.05, 0.15, 0.15, 0.3]), flavour)
    assert (s.running, s.waiting, s.kv_usage) == (3, 7, 0.42)
    assert (s.prompt_tokens, s.generation_tokens, s.requests) == (1000, 250, 5)
    assert s.ttft.count == 4 and s.ttft.total == pytest.approx(0.65)
    assert dict(s.ttft.buckets)[0.2] == 3


def test_quantile_interpolates_within_the_bucket() -> None:
    h = H(buckets=((0.1, 10.0), (0.2, 30.0), (0.5, 40.0), (float("inf"), 40.0)), total=0.0, count=40.0)
    assert h.quantile(0.25) == pytest.approx(0.1)  # rank 10 sits at the top of the first bucket
    assert h.quantile(0.5) == pytest.approx(0.15)  # rank 20: halfway through (0.1, 0.2]
    assert h.quantile(0.95) == pytest.approx(0.2 + 0.3 * (38 - 30) / 10)
    assert H().quantile(0.5) is None


def test_window_difference_and_counter_reset() -> None:
    before = parse_engine_metrics(exposition("vllm", [0.05] * 10), "vllm").ttft
    after = parse_engine_metrics(exposition("vllm", [0.05] * 10 + [0.9] * 10), "vllm").ttft
    window = after.minus(before)
    assert window.count == 10 and window.quantile(0.5) == pytest.approx(0.75)
    assert before.minus(after) == before  # a restarted engine's counters start again from zero


def test_garbage_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_engine_metrics("this is { not metrics", "vllm")
