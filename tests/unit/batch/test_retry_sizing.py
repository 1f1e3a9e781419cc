"""Retry classification and backoff; concurrency sized from the performance model."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from llmctl.batch.retry import (
    Backoff,
    Failure,
    ReplicaCooloff,
    Verdict,
    classify_failure,
    classify_status,
    retry_after,
)
from llmctl.batch.sizing import (
    DEFAULT_CONCURRENCY,
    HEADROOM,
    ReplicaShape,
    modelled_tokens_per_s,
    replica_batch,
    size_concurrency,
)
from llmctl.perf.capacity import kv_capacity_tokens
from llmctl.perf.profile import make_profile


def test_statuses() -> None:
    assert classify_status(200) is Verdict.DONE
    for permanent in (400, 404, 413, 422):
        assert classify_status(permanent) is Verdict.DONE  # written as an error line, not retried
    for refused in (401, 403):
        assert classify_status(refused) is Verdict.ABORT  # the job's key: never recorded as an answer
    for transient in (408, 429, 500, 502, 504):
        assert classify_status(transient) is Verdict.RETRY
    assert classify_status(503) is Verdict.UNAVAILABLE
    assert classify_failure(Failure.CONNECT) is Verdict.UNAVAILABLE
    for f in (Failure.TIMEOUT, Failure.BROKEN, Failure.BAD_BODY):
        assert classify_failure(f) is Verdict.RETRY


@given(attempt=st.integers(1, 60), unit=st.floats(0, 1, exclude_max=True))
def test_backoff_is_bounded_and_jittered(attempt: int, unit: float) -> None:
    b = Backoff(base_s=0.1, cap_s=5.0)
    d = b.delay(attempt, unit)
    assert 0 <= d <= min(5.0, 0.1 * 2 ** (attempt - 1))
    assert b.delay(attempt, unit, retry_after_s=3.0) >= 3.0


def test_retry_after_and_cooloff() -> None:
    assert retry_after("2") == 2.0 and retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None
    assert retry_after(None) is None and retry_after("-1") is None
    c = ReplicaCooloff(first_s=0.5, cap_s=3.0)
    assert [c.delay(k) for k in (1, 2, 3, 4, 10)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def shape(max_seqs: int = 512) -> ReplicaShape:
    profile = make_profile("vllm", "meta-llama/Llama-3.1-8B-Instruct", "H100-SXM", "fp8", 1)
    return ReplicaShape(profile, max_seqs, 8192)


def test_concurrency_fills_every_replica_batch_with_headroom() -> None:
    s = shape(512)
    short = size_concurrency([s, s], 100)
    assert short.per_replica == 512  # max-num-seqs binds for short requests
    assert short.concurrency == round(2 * 512 * HEADROOM)
    long = size_concurrency([s], 8000)
    kv = kv_capacity_tokens(s.profile)
    assert long.per_replica == kv // 8000 < 512  # the KV cache binds for long ones
    assert "max-num-seqs 512" in long.reason
    assert replica_batch(shape(16), 10) == 16


def test_concurrency_override_and_unknown_shape() -> None:
    assert size_concurrency([shape()], 100, override=7).concurrency == 7
    unknown = size_concurrency([], 100)
    assert unknown.concurrency == DEFAULT_CONCURRENCY and "--concurrency" in unknown.reason


def test_modelled_throughput_scales_with_replicas() -> None:
    one = modelled_tokens_per_s([shape()], 300)
    assert one > 0 and modelled_tokens_per_s([shape(), shape()], 300) == 2 * one
