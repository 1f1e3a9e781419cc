"""Progress counters of a batch run and its final summary with cost. Pure: the runner updates the counters,
the caller supplies the clock readings and prices."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from llmctl.batch.inputs import Problem


@dataclass
class Counters:
    """Live counts of one run; `done` counts results written to disk (fsynced), not merely received."""

    total: int = 0  # valid requests in the input
    already_done: int = 0  # results found in the output when the run started
    done: int = 0  # results written by this run
    succeeded: int = 0
    failed: int = 0  # error lines written (4xx)
    retries: int = 0  # attempts repeated after a transient failure
    unavailable: int = 0  # attempts that found their replica gone or asleep
    input_tokens: int = 0
    output_tokens: int = 0
    in_flight: int = 0
    paused_s: float = 0.0  # time with no replica reachable
    paused: bool = False

    @property
    def remaining(self) -> int:
        return max(0, self.total - self.already_done - self.done)


@dataclass(frozen=True)
class Cost:
    gpus: int
    price_per_gpu_hour: float  # mean over the replicas' hosts

    def usd(self, wall_s: float) -> float:
        return self.gpus * self.price_per_gpu_hour * wall_s / 3600.0


def rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


def eta_s(c: Counters, elapsed_s: float) -> float | None:
    """Seconds left at this run's pace so far (None before the first result)."""
    if c.done == 0 or elapsed_s <= 0:
        return None
    return c.remaining / (c.done / elapsed_s)


@dataclass
class Summary:
    deployment: str
    input: str
    output: str
    state: str  # done | interrupted | incomplete
    requests: int
    already_done: int
    sent: int  # results written by this run
    succeeded: int
    failed: int
    unfinished: int  # requests still without a result (interrupted, or retries used up)
    skipped_malformed: int
    retries: int
    unavailable: int  # attempts that found their replica gone or asleep (sent elsewhere, no attempt spent)
    input_tokens: int
    output_tokens: int
    wall_s: float
    paused_s: float
    requests_per_s: float
    output_tokens_per_s: float
    tokens_per_s: float
    concurrency: int
    concurrency_reason: str
    cost_usd: float | None
    usd_per_million_tokens: float | None
    usd_per_million_output_tokens: float | None
    malformed: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def summarise(
    c: Counters,
    *,
    deployment: str,
    input_path: str,
    output_path: str,
    wall_s: float,
    interrupted: bool,
    malformed: list[Problem],
    concurrency: int,
    concurrency_reason: str,
    cost: Cost | None,
) -> Summary:
    tokens = c.input_tokens + c.output_tokens
    usd = cost.usd(wall_s) if cost else None
    state = "done" if c.remaining == 0 else "interrupted" if interrupted else "incomplete"
    return Summary(
        deployment=deployment,
        input=input_path,
        output=output_path,
        state=state,
        requests=c.total,
        already_done=c.already_done,
        sent=c.done,
        succeeded=c.succeeded,
        failed=c.failed,
        unfinished=c.remaining,
        skipped_malformed=len(malformed),
        retries=c.retries,
        unavailable=c.unavailable,
        input_tokens=c.input_tokens,
        output_tokens=c.output_tokens,
        wall_s=round(wall_s, 3),
        paused_s=round(c.paused_s, 3),
        requests_per_s=round(rate(c.done, wall_s), 2),
        output_tokens_per_s=round(rate(c.output_tokens, wall_s), 1),
        tokens_per_s=round(rate(tokens, wall_s), 1),
        concurrency=concurrency,
        concurrency_reason=concurrency_reason,
        cost_usd=None if usd is None else round(usd, 6),
        usd_per_million_tokens=None if usd is None or not tokens else round(usd / tokens * 1e6, 4),
        usd_per_million_output_tokens=(
            None if usd is None or not c.output_tokens else round(usd / c.output_tokens * 1e6, 4)
        ),
        malformed=[{"line": p.line, "reason": p.reason} for p in malformed],
    )
