"""What the autoscaler sees and what it decides: plain data shared by the live controller and the simulator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Phase = Literal["starting", "waking", "ready", "draining", "sleeping", "stopped", "failed"]
ACTIVE_PHASES: frozenset[str] = frozenset({"starting", "waking", "ready"})


@dataclass(frozen=True)
class ReplicaView:
    name: str
    phase: Phase
    in_flight: int = 0  # requests the replica is serving (engine running + waiting)
    kv_usage: float = 0.0  # fraction of KV cache in use, 0..1
    draining_to: str = ""  # a draining replica: what it becomes once idle (sleep | stop | replace)


@dataclass(frozen=True)
class Observation:
    """One deployment as scraped at one moment. `queued` counts requests nobody serves yet (gateway holds plus
    engine waiting queues); `in_flight` counts requests being served."""

    deployment: str
    replicas: tuple[ReplicaView, ...] = ()
    in_flight: int = 0
    queued: int = 0
    arrival_rate: float = 0.0  # requests/s over the last scrape window
    ttft_p95_s: float | None = None
    seconds_since_last_request: float | None = None  # None: never saw one
    # The clock a schedule reads (unix seconds live, simulated seconds in the simulator): policies get
    # monotonic time for their windows, which knows no time of day.
    clock_s: float | None = None

    def count(self, *phases: str) -> int:
        return sum(1 for r in self.replicas if r.phase in phases)

    @property
    def active(self) -> int:
        """Replicas serving or about to: the ones a scale decision counts as capacity."""
        return sum(1 for r in self.replicas if r.phase in ACTIVE_PHASES)

    @property
    def demand(self) -> int:
        return self.in_flight + self.queued

    @property
    def kv_usage(self) -> float:
        ready = [r.kv_usage for r in self.replicas if r.phase == "ready"]
        return sum(ready) / len(ready) if ready else 0.0


@dataclass(frozen=True)
class Decision:
    """The target number of active replicas and how to get there, with the reason in words."""

    deployment: str
    current: int
    target: int
    reason: str
    wake: int = 0  # sleeping replicas to wake (scale up)
    start: int = 0  # replicas to cold-start (scale up)
    sleep: int = 0  # replicas to drain then put to sleep (scale down)
    stop: int = 0  # replicas to drain then stop (scale down)

    @property
    def changed(self) -> bool:
        return self.target != self.current
