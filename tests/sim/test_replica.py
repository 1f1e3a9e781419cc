"""The fast replica against the step-by-step reference (the emulated engine's own Scheduler): the segment
sum, single-replica runs with heavy preemption, laziness, and the whole cluster on an Azure trace slice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from llmctl.perf.profile import make_profile
from llmctl.perf.step_time import step_model
from sim.cluster import PROGRESS_STEPS, ClusterSpec, DeploymentSim, simulate
from sim.outcome import RequestRecord
from sim.replica import EngineShape, FastReplica, ReplicaModel
from sim.replica_step import StepReplica
from sim.workload import Arrival, load_azure, poisson_times, to_arrivals

AZURE_CONV = Path(__file__).resolve().parents[2] / "sim" / "traces" / "AzureLLMInferenceTrace_conv.csv"
MODEL = step_model(make_profile("vllm", "meta-llama/Llama-3.1-8B-Instruct", "H100-SXM", "fp8", 1))


def _shape(kv: int = 400_000, seqs: int = 128, budget: int = 4096) -> EngineShape:
    return EngineShape(MODEL, kv, seqs, budget, max_context=32_768)


def _run(
    model: ReplicaModel, arrivals: list[Arrival], poll: list[float] | None = None
) -> list[RequestRecord]:
    out: list[RequestRecord] = []
    polls = iter(sorted(poll or []))
    nxt = next(polls, None)
    for a in arrivals:
        while nxt is not None and nxt < a.t_s:
            out += model.advance(nxt)
            nxt = next(polls, None)
        assert model.add(a, a.t_s)
    out += model.advance(float("inf"))
    return sorted(out, key=lambda r: (r.arrival_s, r.input_tokens))


def _workload(seed: int, n: int, rate: float) -> list[Arrival]:
    rng = np.random.default_rng(seed)
    times = poisson_times(rng, rate, n / rate)
    return to_arrivals(times, rng.integers(20, 3000, times.size), rng.integers(1, 400, times.size))


def test_segment_sum_matches_the_step_sum() -> None:
    # Simpson + curvature is exact for a quadratic step time; the roofline's max(compute, memory) kink and
    # the integer context leave an error far below the 2% the fast mode must keep.
    fast = FastReplica(_shape())
    for b, c0, k in [(1, 100, 500), (7, 3_000, 37), (64, 150_000, 2_000), (128, 10, 9)]:
        fast.B, fast.c_dec = b, c0
        exact = sum(MODEL.decode(b, c0 + b * j) for j in range(k))
        assert fast._seg_time(k) == pytest.approx(exact, rel=1e-4)


@pytest.mark.parametrize(("kv", "rate"), [(400_000, 20.0), (30_000, 20.0)])
def test_fast_matches_step_on_one_replica(kv: int, rate: float) -> None:
    """With room to spare and with a KV cache small enough to preempt all the time."""
    arrivals = _workload(1, 1500, rate)
    fast, step = FastReplica(_shape(kv)), StepReplica(_shape(kv))
    f, s = _run(fast, arrivals), _run(step, arrivals)
    assert len(f) == len(s) == len(arrivals)
    if kv < 100_000:
        assert fast.preemptions > 100 and step.preemptions > 100
    for attr in ("ttft_s", "e2e_s"):
        fv, sv = np.array([getattr(r, attr) for r in f]), np.array([getattr(r, attr) for r in s])
        assert np.percentile(fv, [50, 99]) == pytest.approx(np.percentile(sv, [50, 99]), rel=0.02)


def test_results_do_not_depend_on_when_a_replica_is_advanced() -> None:
    arrivals = _workload(2, 400, 15.0)
    polls = list(np.random.default_rng(3).uniform(0, arrivals[-1].t_s, 300))
    for cls in (FastReplica, StepReplica):
        assert _run(cls(_shape()), arrivals) == _run(cls(_shape()), arrivals, polls)


def test_requests_longer_than_the_engine_allows_are_rejected() -> None:
    fast = FastReplica(_shape(kv=1000))
    assert not fast.add(Arrival(0.0, 900, 200), 0.0) and fast.in_flight == 0
    assert fast.add(Arrival(0.0, 700, 200), 0.0) and fast.in_flight == 1


def test_fast_mode_matches_step_mode_on_an_azure_trace_replay() -> None:
    trace = load_azure(AZURE_CONV)
    n = 2500  # ~450 s of the trace, played 4x faster on two replicas: batches of tens of sequences
    arrivals = to_arrivals(trace.t_s[:n] / 4, trace.prompts[:n], trace.outputs[:n])
    dep = DeploymentSim("chat", engine=_shape(kv=150_000), initial_replicas=2)
    runs = {mode: simulate(ClusterSpec((dep,), mode=mode), arrivals) for mode in ("fast", "step")}
    for result in runs.values():
        assert len(result.records) + result.rejected["chat"] == n and result.unfinished == 0
    # The tail is compared as the mean of the slowest 1% (CVaR 99), not as the 99th order statistic: on this
    # replay one order statistic swings by +-10% with a microsecond of per-layer overhead (the schedule is
    # chaotic at that depth), while the tail's mean agrees within 1% (measured: p99 +5.4%, CVaR99 +0.1%).
    for attr in ("ttft_s", "e2e_s"):
        f = np.sort([getattr(r, attr) for r in runs["fast"].records])
        s = np.sort([getattr(r, attr) for r in runs["step"].records])
        k = len(f) // 100
        assert np.median(f) == pytest.approx(np.median(s), rel=0.02), attr
        assert np.percentile(f, 90) == pytest.approx(np.percentile(s, 90), rel=0.03), attr
        assert f[-k:].mean() == pytest.approx(s[-k:].mean(), rel=0.03), attr


def test_progress_reports_leave_the_run_unchanged() -> None:
    arrivals = _workload(4, 600, 10.0)
    spec = ClusterSpec((DeploymentSim("chat", engine=_shape(), initial_replicas=2),), sample_interval_s=1.0)
    seen: list[float] = []
    quiet, reported = simulate(spec, arrivals), simulate(spec, arrivals, progress=seen.append)
    assert reported.records == quiet.records and reported.samples == quiet.samples
    assert len(seen) == PROGRESS_STEPS and seen == sorted(seen) and seen[-1] == 1.0
