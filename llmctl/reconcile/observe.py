"""The autoscaler's Observation of one deployment, built one way for both drivers: from replica records
(name and phase), the engines' samples this tick and last tick (TTFT p95 from the histogram's bucket deltas
in between), the requests the gateway holds, the arrival rate and the last request's time. The live
controller feeds it scraped samples and store rows; the simulator its replicas' samples of the same shape.

`last_request_at` and `now` share one clock, whichever the caller keeps it in: the live controller passes
wall-clock times stored in the state store, so the idle clock survives a controller restart."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from llmctl.autoscale.types import Observation, ReplicaView
from llmctl.reconcile.phase import Phase, parse, scaler_phase
from llmctl.reconcile.sample import EngineSample, Histogram

SERVING = (Phase.READY, Phase.DRAINING)  # replicas whose queues count as the deployment's load


class ReplicaRecord(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def phase(self) -> str: ...


def observe(
    deployment: str,
    rows: Sequence[ReplicaRecord],
    samples: Mapping[str, EngineSample],
    previous: Mapping[str, EngineSample],
    *,
    held: int,
    arrival_rate: float,
    last_request_at: float | None,
    now: float,
) -> Observation:
    views = []
    running = waiting = 0
    ttft = Histogram()
    for row in rows:
        phase = parse(row.phase)
        sample = samples.get(row.name)
        in_flight = int(sample.running + sample.waiting) if sample else 0
        kv = sample.kv_usage if sample else 0.0
        then = str(getattr(row, "drain_then", "")) if phase == Phase.DRAINING else ""
        views.append(ReplicaView(row.name, scaler_phase(phase), in_flight, kv, then))
        if sample and phase in SERVING:
            running += int(sample.running)
            waiting += int(sample.waiting)
            before = previous.get(row.name)
            ttft = add(ttft, sample.ttft.minus(before.ttft) if before else Histogram())
    return Observation(
        deployment=deployment,
        replicas=tuple(views),
        in_flight=running,
        queued=waiting + held,
        arrival_rate=arrival_rate,
        ttft_p95_s=ttft.quantile(0.95),
        seconds_since_last_request=None if last_request_at is None else max(0.0, now - last_request_at),
        clock_s=now,
    )


def add(a: Histogram, b: Histogram) -> Histogram:
    if not a.buckets:
        return b
    if not b.buckets:
        return a
    other = dict(b.buckets)
    return Histogram(
        tuple((le, c + other.get(le, 0.0)) for le, c in a.buckets), a.total + b.total, a.count + b.count
    )
