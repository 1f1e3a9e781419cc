"""The live fleet in a window, from what the controller stored: its events folded into the replica series
as the simulator counts it, the scale decisions, the measured cold starts, and the controller's own ticks
(its metric samples' times). Pure: `llmctl sim replay` reads the rows; `sim.shadow` replays against them."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# Replica event kinds (the controller's, llmctl.control): what each means for the replica's GPUs. Others
# ("adopted", "stable", "crashed", ...) leave its state as it was.
PAID_KINDS = frozenset({"started", "woke", "ready", "draining"})
ASLEEP_KINDS = frozenset({"slept"})
GONE_KINDS = frozenset({"stopped", "failed", "forgotten", "sleep-failed", "wake-failed"})
UP_KINDS = frozenset({"started", "woke"})
ATTRIBUTE_WITHIN_S = 120.0  # a start this long after a scale decision is still that decision's


@dataclass(frozen=True)
class FleetEvent:
    """One row of the store's events, as the replay needs it (`at` in unix seconds)."""

    at: float
    subject: str
    kind: str


@dataclass(frozen=True)
class ObservedFleet:
    """What the live fleet did in the window, relative to its start (t = 0 at `since`)."""

    replicas: tuple[tuple[float, int], ...]  # (t, paid replicas) from t = 0, a step series
    decisions: tuple[float, ...]  # times of the controller's scale events
    ready_at_start: int
    asleep_at_start: tuple[str, ...]  # slots whose replica slept when the window opened
    cold_starts_s: tuple[float, ...]  # scale decision -> ready, measured in the window


def observed_fleet(
    events: Sequence[FleetEvent],
    deployment: str,
    slots: Sequence[str],
    since: float,
    until: float,
    samples: Mapping[str, Sequence[float]] | None = None,
) -> ObservedFleet:
    """Fold the controller's events (every one up to `until`) into the replica series, timed as the
    simulator times it: a replica is paid from the scale decision that asked for it (its "started" or
    "woke" event comes once the launch or wake-up is done, and a tick launches its starts one after the
    other) until the tick that put it away: its last metric sample (`samples`: replica -> scrape times)
    before its "slept" or "stopped" event, as a stop then waits seconds for the processes to exit."""
    samples = samples or {}
    state: dict[str, str] = {}
    points: list[tuple[float, str, str]] = []  # (when it counts, replica, new state), unix seconds
    decisions: list[float] = []
    decided: dict[str, float] = {}  # replica -> the decision its pending start or wake answers
    last_scale: float | None = None
    colds: list[float] = []
    last_seen: dict[str, float] = {}  # replica -> time of its previous event
    names = set(slots)
    for e in sorted(events, key=lambda e: e.at):
        if e.at >= until:
            break
        if e.subject == deployment and e.kind == "scale":
            last_scale = e.at
            if e.at >= since:
                decisions.append(e.at - since)
        if e.subject not in names:
            continue
        at = e.at
        if (
            e.kind in UP_KINDS
            and last_scale is not None
            and e.at - last_scale <= ATTRIBUTE_WITHIN_S
            and last_scale >= last_seen.get(e.subject, -math.inf)
        ):
            at = last_scale
            if e.kind == "started":
                decided[e.subject] = last_scale
        if e.kind == "ready" and e.subject in decided and e.at >= since:
            colds.append(e.at - decided.pop(e.subject))
        if e.kind in ASLEEP_KINDS | GONE_KINDS:
            before = [
                t for t in samples.get(e.subject, ()) if last_seen.get(e.subject, -math.inf) <= t <= e.at
            ]
            if before:
                at = before[-1]
        last_seen[e.subject] = e.at
        new = (
            "paid"
            if e.kind in PAID_KINDS
            else "asleep"
            if e.kind in ASLEEP_KINDS
            else "gone"
            if e.kind in GONE_KINDS
            else state.get(e.subject, "gone")
        )
        state[e.subject] = new
        points.append((at, e.subject, new))
    # The series in time order of when each change counts (an attributed start moves before later events).
    phase: dict[str, str] = {}
    series: list[tuple[float, int]] = []
    at_start: dict[str, str] | None = None
    for at, name, new in sorted(points, key=lambda p: p[0]):
        if at_start is None and at >= since:
            at_start = dict(phase)
            series.append((0.0, _paid(phase)))
        before_n = _paid(phase)
        phase[name] = new
        if at >= since and _paid(phase) != before_n:
            t = at - since
            if series and series[-1][0] == t:
                series[-1] = (t, _paid(phase))
            else:
                series.append((t, _paid(phase)))
    if at_start is None:
        at_start = dict(phase)
        series.append((0.0, _paid(phase)))
    return ObservedFleet(
        replicas=tuple(series),
        decisions=tuple(decisions),
        ready_at_start=sum(1 for s in at_start.values() if s == "paid"),
        asleep_at_start=tuple(sorted(n for n, s in at_start.items() if s == "asleep")),
        cold_starts_s=tuple(colds),
    )


def _paid(phase: Mapping[str, str]) -> int:
    return sum(1 for s in phase.values() if s == "paid")


def tick_times(
    samples: Mapping[str, Sequence[float]], since: float, until: float, interval_s: float
) -> tuple[float, ...]:
    """The live controller's ticks in the window, relative to `since`: every tick scrapes its ready
    replicas and stores the samples under one time, so their times are its ticks, stalls included (a tick
    that launches, stops or waits on a slow health check comes late, and so does what it decides). A gap
    between two ticks that both scraped one replica is such a stall; any other (nothing ready: all asleep,
    starting or stopped) gets a tick every `interval_s`."""
    rel = {n: sorted(t - since for t in ts if since <= t < until) for n, ts in samples.items()}
    seen: list[float] = []
    # One tick scrapes its replicas one after the other: samples this close together are that one tick.
    for t in sorted(t for ts in rel.values() for t in ts):
        if not seen or t - seen[-1] > 0.25 * interval_s:
            seen.append(t)
    end = until - since
    eps = 0.25 * interval_s

    def stalled(a: float, b: float) -> bool:
        return any(
            any(abs(t - a) <= eps for t in ts) and any(abs(t - b) <= eps for t in ts) for ts in rel.values()
        )

    out: list[float] = []
    last = 0.0
    for t in [*seen, end + interval_s]:
        if not (seen and last in seen and stalled(last, t)):
            while t - last > 1.5 * interval_s:
                last += interval_s
                out.append(last)
        if t < end:
            out.append(t)
        last = t
    return tuple(x for x in out if 0 < x < end)
