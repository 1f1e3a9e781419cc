"""The simulator against queueing theory: M/M/c (Erlang C) and M/D/1 (Pollaczek-Khinchine) through the whole
cluster (gateway, controller, lazy replicas), with batch-means confidence intervals; Little's law on every
run of a hypothesis sweep of small random fleets."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from llmctl.perf.profile import make_profile
from llmctl.perf.step_time import step_model
from sim.cluster import ClusterSpec, DeploymentSim, SimResult, simulate
from sim.replica import EngineShape
from sim.workload import Arrival, poisson_times, to_arrivals

T_99_19 = 2.861  # Student t, 99 % two-sided, 19 degrees of freedom (20 batches)


def _poisson(rate: float, n: int, seed: int) -> list[Arrival]:
    times = poisson_times(np.random.default_rng(seed), rate, n / rate)
    ones = np.ones(times.size, dtype=np.int64)
    return to_arrivals(times, ones, ones)


def _servers(service: DeploymentSim, arrivals: list[Arrival], **spec: float) -> SimResult:
    return simulate(ClusterSpec((service,), scrape_interval_s=10.0, **spec), arrivals)


def _batch_ci(values: np.ndarray, batches: int = 20) -> tuple[float, float]:
    """Mean and 99 % half-width by batch means (batches long enough to be nearly independent)."""
    means = np.array([b.mean() for b in np.array_split(values, batches)])
    return float(means.mean()), T_99_19 * float(means.std(ddof=1)) / math.sqrt(batches)


def _erlang_c(c: int, a: float) -> float:
    top = a**c / math.factorial(c) / (1 - a / c)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


def test_mmc_matches_erlang_c() -> None:
    c, mu, rho = 3, 1.0, 0.7
    lam = rho * c * mu
    rng = np.random.default_rng(11)
    dep = DeploymentSim("q", service_time=lambda a: float(rng.exponential(1 / mu)), servers=c)
    result = _servers(dep, _poisson(lam, 120_000, seed=5))
    assert len(result.records) == result.offered and result.unfinished == 0
    records = sorted(result.records, key=lambda r: r.arrival_s)
    waits = np.array([r.ttft_s for r in records])
    p_wait, p_half = _batch_ci((waits > 1e-12).astype(float))
    w_mean, w_half = _batch_ci(waits)
    erlang = _erlang_c(c, lam / mu)
    assert abs(p_wait - erlang) < p_half, (p_wait, p_half, erlang)
    assert abs(w_mean - erlang / (c * mu - lam)) < w_half, (w_mean, w_half, erlang / (c * mu - lam))
    assert erlang == pytest.approx(0.4923, abs=1e-4)  # the textbook value for c = 3, a = 2.1


def test_md1_matches_pollaczek_khinchine() -> None:
    rho, service = 0.7, 1.0
    dep = DeploymentSim("q", service_time=lambda a: service, servers=1)
    result = _servers(dep, _poisson(rho / service, 100_000, seed=6))
    records = sorted(result.records, key=lambda r: r.arrival_s)
    waits = np.array([r.ttft_s for r in records])
    w_mean, w_half = _batch_ci(waits)
    pk = rho * service / (2 * (1 - rho))
    assert abs(w_mean - pk) < w_half, (w_mean, w_half, pk)
    assert np.allclose([r.finish_s - r.first_token_s for r in records], service)


_ENGINE = EngineShape(
    step_model(make_profile("vllm", "meta-llama/Llama-3.1-8B-Instruct", "H100-SXM", "fp8", 1)),
    kv_capacity_tokens=20_000,
    max_seqs=8,
    max_batched_tokens=2048,
)


@settings(max_examples=12, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.generate])
@given(
    kind=st.sampled_from(["exponential", "deterministic", "engine", "engine-step"]),
    servers=st.integers(1, 3),
    replicas=st.integers(1, 3),
    rho=st.floats(0.2, 0.8),
    mean_service=st.floats(0.05, 0.5),
    route=st.sampled_from(["least_outstanding", "round_robin"]),
    seed=st.integers(0, 1000),
)
def test_littles_law_holds_on_every_run(
    kind: str, servers: int, replicas: int, rho: float, mean_service: float, route: str, seed: int
) -> None:
    """L (time-average of what the simulator holds, sampled) = lambda x W (from the records), on one path."""
    rng = np.random.default_rng(seed)
    duration = 300 * mean_service * 10
    if kind.startswith("engine"):
        dep = DeploymentSim("e", engine=_ENGINE, initial_replicas=replicas, route=route)
        lam = replicas * rho * 8  # an 8-sequence replica of ~0.3 s requests
        times = poisson_times(rng, lam, duration)
        prompts = rng.integers(50, 1500, times.size)
        outputs = rng.integers(1, 40, times.size)
        arrivals = to_arrivals(times, prompts, outputs)
        spec = ClusterSpec((dep,), mode="step" if kind == "engine-step" else "fast", sample_interval_s=0.01)
    else:
        draw = (
            (lambda a: float(rng.exponential(mean_service)))
            if kind == "exponential"
            else (lambda a: mean_service)
        )
        dep = DeploymentSim("q", service_time=draw, servers=servers, initial_replicas=replicas, route=route)
        lam = rho * servers * replicas / mean_service
        times = poisson_times(rng, lam, duration)
        arrivals = to_arrivals(
            times, np.ones(times.size, dtype=np.int64), np.ones(times.size, dtype=np.int64)
        )
        spec = ClusterSpec((dep,), sample_interval_s=mean_service / 50)
    result = simulate(spec, arrivals, duration)
    assert result.unfinished == 0 and len(result.records) == len(arrivals)
    assert all(r.arrival_s <= r.first_token_s <= r.finish_s for r in result.records)
    inside = np.array([s.in_system for s in result.samples if s.t_s < duration])
    big_l = float(inside.mean())
    lam_w = sum(r.e2e_s for r in result.records) / duration
    assert big_l == pytest.approx(lam_w, rel=0.06, abs=0.05)
