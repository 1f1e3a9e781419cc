"""The per-request path (HTTP, tokenisation, scheduling: EfficiencyFactors.request_latency_s) reaches the
simulator's records as a constant delay of every first token and finish, and leaves the engine's own
scheduling unchanged (issue #16: TTFT was half what engines measure because this term was missing)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from llmctl.perf.profile import make_profile
from llmctl.perf.step_time import step_model
from sim.cluster import ClusterSpec, DeploymentSim, simulate
from sim.replica import EngineShape
from sim.workload import poisson_times, to_arrivals

PROFILE = make_profile("vllm", "meta-llama/Llama-3.1-8B-Instruct", "H100-SXM", "bf16", 1)


@pytest.mark.parametrize("mode", ["fast", "step"])
def test_every_request_sees_the_path_delay_once(mode: str) -> None:
    rng = np.random.default_rng(3)
    times = poisson_times(rng, 20.0, 60.0)
    arrivals = to_arrivals(times, rng.integers(50, 2000, times.size), rng.integers(1, 200, times.size))
    base = EngineShape(step_model(PROFILE), 400_000, 128, 4096, max_context=32_768)
    runs = []
    for delay in (0.0, PROFILE.factors.request_latency_s):
        engine = dataclasses.replace(base, request_latency_s=delay)
        spec = ClusterSpec((DeploymentSim("chat", engine=engine),), mode=mode)
        runs.append(sorted(simulate(spec, arrivals, 60.0).records, key=lambda r: r.arrival_s))
    plain, delayed = runs
    assert PROFILE.factors.request_latency_s > 0 and len(plain) == len(delayed) == len(arrivals)
    for a, b in zip(plain, delayed, strict=True):
        assert b.ttft_s == pytest.approx(a.ttft_s + PROFILE.factors.request_latency_s)
        assert b.e2e_s == pytest.approx(a.e2e_s + PROFILE.factors.request_latency_s)
        assert b.itl_s == pytest.approx(a.itl_s)  # between tokens the path adds nothing
