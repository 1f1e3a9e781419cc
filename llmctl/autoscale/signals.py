"""Scaling signals: each turns an observation into the replica count it would like, with its reasoning.

Signals are stateless; windows, bounds and steps live in `Autoscaler`, so every signal gets them the same way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from llmctl.autoscale.types import Observation


@dataclass(frozen=True)
class Wish:
    replicas: int
    why: str


class Signal(Protocol):
    @property
    def name(self) -> str: ...

    def wish(self, obs: Observation, now: float) -> Wish: ...


@dataclass(frozen=True)
class InFlightTarget:
    """Keep about `target` requests in flight (serving or queued) per replica. The default: it reacts to
    load before queues form and needs no latency metric."""

    target: float
    name: str = "in_flight"

    def wish(self, obs: Observation, now: float) -> Wish:
        want = math.ceil(obs.demand / self.target) if obs.demand else 0
        return Wish(want, f"in-flight {obs.demand} at {self.target:g} per replica needs {want}")


@dataclass(frozen=True)
class QueueDepth:
    """Add replicas for queued requests, `target` queued per added replica; with no queue, keep the replicas
    that running requests need at `per_replica` concurrency (so an empty queue is not a reason to drop all)."""

    target: float
    per_replica: int
    name: str = "queue_depth"

    def wish(self, obs: Observation, now: float) -> Wish:
        busy = math.ceil(obs.in_flight / self.per_replica) if obs.in_flight else 0
        if obs.queued > 0:
            want = max(busy, obs.active) + math.ceil(obs.queued / self.target)
            return Wish(want, f"queue {obs.queued} > 0 at {self.target:g} per added replica needs {want}")
        return Wish(busy, f"no queue; {obs.in_flight} running need {busy} at {self.per_replica} each")


@dataclass(frozen=True)
class TtftSlo:
    """Scale on TTFT p95 against the target: up in proportion to the breach, down one at a time when latency
    sits below `low_water` of the target. Latency lags load, so this reacts later than in-flight signals."""

    target_s: float
    low_water: float = 0.5
    name: str = "ttft_slo"

    def wish(self, obs: Observation, now: float) -> Wish:
        current = obs.active
        if current == 0:
            want = 1 if obs.demand else 0
            return Wish(want, "no replica and requests waiting" if want else "no replica, no requests")
        p95 = obs.ttft_p95_s
        if p95 is None:
            return Wish(current, "no TTFT measured yet")
        if p95 > self.target_s:
            want = math.ceil(current * p95 / self.target_s)
            return Wish(
                want, f"TTFT p95 {p95 * 1000:.0f} ms > target {self.target_s * 1000:.0f} ms needs {want}"
            )
        if p95 < self.low_water * self.target_s and obs.demand < current:
            return Wish(current - 1, f"TTFT p95 {p95 * 1000:.0f} ms < {self.low_water:g} x target")
        return Wish(current, f"TTFT p95 {p95 * 1000:.0f} ms within target")


@dataclass(frozen=True)
class Schedule:
    """Fixed replica counts by time of day: `steps` are (seconds into the period, replicas), sorted."""

    steps: Sequence[tuple[float, int]]
    period_s: float = 86400.0
    name: str = "schedule"

    def wish(self, obs: Observation, now: float) -> Wish:
        t = (obs.clock_s if obs.clock_s is not None else now) % self.period_s
        want = self.steps[-1][1]  # before the first step, the last one of the previous period holds
        for start, replicas in self.steps:
            if start <= t:
                want = replicas
        return Wish(want, f"schedule at {t / 3600:.2f} h says {want}")


@dataclass(frozen=True)
class Pinned:
    """A count a person pinned with `llmctl scale N`: the wish is N whatever the load."""

    replicas: int
    name: str = "pinned"

    def wish(self, obs: Observation, now: float) -> Wish:
        return Wish(self.replicas, f"pinned to {self.replicas} by llmctl scale")
