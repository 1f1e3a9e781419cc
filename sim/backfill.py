"""What back-fill recovers: the GPU time an offline deployment gets on the spare slots of an autoscaled one
(`placement.backfill_for`), under the controller's policy (`llmctl.control.backfill`): a spare slot is lent
while the owner holds no replica on it, the owner takes it back at once, and every loan starts with the
borrower's cold start, which earns nothing. Pure: computed from the owner's simulated fleet timeline.

The owner fills its slots lowest first and gives back the highest first, so the spare slot freed last is the
first taken back: loans end last-in, first-out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sim.outcome import FleetPoint


@dataclass(frozen=True)
class BackfillSpec:
    deployment: str  # the borrowing (offline) deployment
    cold_start_s: float
    tokens_per_s: float  # modelled output tokens/s of one borrowing replica at full batch
    gpus_per_replica: int


@dataclass(frozen=True)
class Recovery:
    lent_s: float  # replica-seconds of spare slots lent out
    serving_s: float  # of those, after the borrower's cold start: doing work
    loans: int

    def report(self, spec: BackfillSpec) -> dict[str, Any]:
        return {
            "deployment": spec.deployment,
            "loans": self.loans,
            "lent_gpu_hours": self.lent_s * spec.gpus_per_replica / 3600,
            "recovered_gpu_hours": self.serving_s * spec.gpus_per_replica / 3600,
            "output_tokens": self.serving_s * spec.tokens_per_s,
        }


def recovery(
    timeline: Sequence[FleetPoint], slots: int, initial: int, cold_start_s: float, end_s: float
) -> Recovery:
    """Loans of the owner's spare slots (indices `initial`..`slots`-1) over [0, end_s), from the points at
    which its held replicas (`FleetPoint.held`: any phase but stopped) changed."""
    free_since: list[float] = []  # start of each open loan, the most recent last
    lent = serving = 0.0
    loans = 0

    def close(t: float) -> None:
        nonlocal lent, serving
        start = free_since.pop()
        lent += t - start
        serving += max(0.0, t - start - cold_start_s)

    for p in timeline:
        if p.t_s >= end_s:
            break
        free = max(0, slots - max(p.held, initial))
        while len(free_since) > free:
            close(p.t_s)
        while len(free_since) < free:
            free_since.append(p.t_s)
            loans += 1
    while free_since:
        close(end_s)
    return Recovery(lent, serving, loans)
