"""Outcome arithmetic against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from sim.outcome import FleetPoint, RequestRecord, Slo, fleet_series, gpu_seconds, summarise


def test_request_latencies() -> None:
    r = RequestRecord(arrival_s=10, first_token_s=10.5, finish_s=12.5, input_tokens=100, output_tokens=5)
    assert (r.ttft_s, r.itl_s, r.e2e_s) == (0.5, 0.5, 2.5)
    assert RequestRecord(0, 1, 1, 10, 1).itl_s == 0.0


def test_gpu_seconds_and_series() -> None:
    timeline = [FleetPoint(0, 1, 2), FleetPoint(30, 2, 4), FleetPoint(90, 0, 0)]
    assert gpu_seconds(timeline, 120) == 2 * 30 + 4 * 60
    assert list(fleet_series(timeline, 120, 60)) == [pytest.approx(3.0), pytest.approx(2.0)]


def test_summary_cost_slo_and_fixed_fleet() -> None:
    records = [RequestRecord(t, t + 0.2 * (1 + (t % 2)), t + 1.0, 50, 9) for t in range(100)]
    timeline = [FleetPoint(0, 1, 1), FleetPoint(50, 2, 2)]
    s = summarise(records, timeline, end_s=100, price_per_gpu_hour=3.6, slo=Slo(ttft_s=0.3), bin_s=10)
    assert s["gpu_hours"] == pytest.approx((50 + 100) / 3600)
    assert s["cost"] == pytest.approx(0.15)
    assert s["fixed_fleet_cost"] == pytest.approx(0.2) and s["saving_vs_fixed_fleet"] == pytest.approx(0.25)
    assert s["slo_attainment"] == pytest.approx(0.5)
    assert s["cost_per_million_tokens"] == pytest.approx(0.15 / 5900 * 1e6)
    assert s["gpus_peak_to_average"] == pytest.approx(2 / 1.5)
    assert s["demand_peak_to_average"] == pytest.approx(1.0)
    ttft = s["ttft_s"]
    assert isinstance(ttft, dict) and ttft["p50"] == pytest.approx(np.percentile([0.2, 0.4] * 50, 50))
