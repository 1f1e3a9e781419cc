"""Build the autoscaler's Observation of one deployment from what the controller saw this tick: replica rows,
the engines' scraped samples (and the previous ones, for windowed TTFT) and the gateway's demand row.
Pure: the caller passes `now` and the idle fallback."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from llmctl.autoscale.types import Observation, Phase, ReplicaView
from llmctl.control.scrape import EngineSample, Histogram
from llmctl.state.records import ReplicaRow
from llmctl.state.telemetry import GatewayDemand

# Store phases the controller uses beyond the autoscaler's: a replica waiting out its restart backoff or
# being stopped counts as starting (capacity on its way) or gone respectively.
_PHASES: dict[str, Phase] = {
    "starting": "starting",
    "backoff": "starting",
    "waking": "waking",
    "ready": "ready",
    "draining": "draining",
    "sleeping": "sleeping",
    "stopping": "stopped",
    "stopped": "stopped",
    "failed": "failed",
}


def observe(
    deployment: str,
    rows: Sequence[ReplicaRow],
    samples: Mapping[str, EngineSample],
    previous: Mapping[str, EngineSample],
    demand: GatewayDemand | None,
    arrival_rate: float,
    now: float,
    last_activity: float,
) -> Observation:
    views = []
    running = waiting = 0
    ttft = Histogram()
    for row in rows:
        sample = samples.get(row.name)
        in_flight = int(sample.running + sample.waiting) if sample else 0
        views.append(
            ReplicaView(
                row.name,
                _PHASES.get(row.phase, "failed"),
                in_flight,
                sample.kv_usage if sample else 0.0,
            )
        )
        if sample and row.phase in ("ready", "draining"):
            running += int(sample.running)
            waiting += int(sample.waiting)
            before = previous.get(row.name)
            ttft = _add(ttft, sample.ttft.minus(before.ttft) if before else Histogram())
    held = demand.held if demand else 0
    last = demand.last_request_at if demand and demand.last_request_at else None
    seen = max(x for x in (last, last_activity) if x is not None)
    return Observation(
        deployment=deployment,
        replicas=tuple(views),
        in_flight=running,
        queued=waiting + held,
        arrival_rate=arrival_rate,
        ttft_p95_s=ttft.quantile(0.95),
        seconds_since_last_request=max(0.0, now - seen),
    )


def _add(a: Histogram, b: Histogram) -> Histogram:
    if not a.buckets:
        return b
    if not b.buckets:
        return a
    other = dict(b.buckets)
    return Histogram(
        tuple((le, c + other.get(le, 0.0)) for le, c in a.buckets), a.total + b.total, a.count + b.count
    )
