"""The shadow replay's pure parts: the controller's events folded into a replica series timed as the
simulator times it, the live ticks, the comparison (series shape and shift, decisions in order, latency
errors), and a replay of a recorded window whose own prediction it is: the simulator must find itself."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from llmctl.config.inventory import load_inventory
from llmctl.gateway.request_log import LoggedRequest
from llmctl.planning import plan_and_desired
from llmctl.spec.deployment import DesiredDeployment
from sim.outcome import RequestRecord
from sim.shadow import Window, replay
from sim.shadow_compare import changes, latency_metrics, match_decisions, match_series, report
from sim.shadow_observed import FleetEvent, ObservedFleet, observed_fleet, tick_times

SINCE = 1000.0
SLOTS = ("burst-0", "burst-1")


def ev(t: float, subject: str, kind: str) -> FleetEvent:
    return FleetEvent(SINCE + t, subject, kind)


def test_events_fold_into_the_series_the_simulator_would_draw() -> None:
    events = [
        ev(-20, "burst-0", "started"),
        ev(-10, "burst-0", "ready"),
        ev(-5, "burst", "scale"),
        ev(-5, "burst-0", "draining"),
        ev(-4, "burst-0", "slept"),
        ev(-1, "burst-0", "adopted"),  # a controller restart: says nothing of the GPUs
        ev(1.0, "burst", "scale"),
        ev(1.2, "burst-0", "woke"),
        ev(3.0, "burst", "scale"),
        ev(5.0, "burst-1", "started"),  # launched after the tick's other work: counted from the decision
        ev(9.0, "burst-1", "ready"),
        ev(12.0, "burst", "scale"),
        ev(12.0, "burst-1", "draining"),
        ev(16.0, "burst-1", "stopped"),  # the stop took seconds after the tick that put it away
    ]
    samples = {"burst-1": [SINCE + t for t in (9.0, 10.0, 11.0, 12.0, 13.0)]}
    obs = observed_fleet(events, "burst", SLOTS, SINCE, SINCE + 30, samples)
    assert obs.replicas == ((0.0, 0), (1.0, 1), (3.0, 2), (13.0, 1))
    assert obs.decisions == (1.0, 3.0, 12.0)
    assert (obs.ready_at_start, obs.asleep_at_start) == (0, ("burst-0",))
    assert obs.cold_starts_s == (6.0,)  # decision -> ready, launch included


def test_ticks_are_the_scrapes_and_fill_in_only_while_nothing_ran() -> None:
    samples = {"a": [SINCE + t for t in (5.0, 6.0, 9.5)], "b": [SINCE + t for t in (5.02, 6.01, 14.0)]}
    # "a" was scraped on both sides of 6 -> 9.5: a stalled tick, not missing ones. Before 5 nothing was
    # ready, nor between 9.5 and 14: a tick a second there.
    ticks = tick_times(samples, SINCE, SINCE + 16, 1.0)
    assert ticks == (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 9.5, 10.5, 11.5, 12.5, 14.0, 15.0)


def test_series_match_needs_the_same_counts_within_the_tolerance() -> None:
    observed = [(0.0, 1), (2.0, 2), (2.5, 2), (9.0, 1)]
    assert changes(observed) == [(0.0, 1), (2.0, 2), (9.0, 1)]
    near = match_series(observed, [(0.0, 1), (2.4, 2), (8.5, 1)], tolerance_s=0.5)
    assert near.same_shape and near.max_shift_s == pytest.approx(0.5) and near.matches
    late = match_series(observed, [(0.0, 1), (3.0, 2), (9.0, 1)], tolerance_s=0.5)
    assert late.same_shape and not late.matches
    other = match_series(observed, [(0.0, 1), (2.0, 3), (9.0, 1)], tolerance_s=0.5)
    assert not other.same_shape and math.isinf(other.max_shift_s) and not other.matches


def test_decisions_pair_in_order() -> None:
    # Nearest-first would pair the observed 1.0 with 1.6 and leave 0.5 and 2.2 alone.
    assert match_decisions([1.0, 2.2], [0.5, 1.6], tolerance_s=0.7) == [(1.0, 0.5), (2.2, 1.6)]
    assert match_decisions([1.0], [5.0], tolerance_s=0.7) == [(1.0, None), (None, 5.0)]


def logged(at: float, ttft: float | None, e2e: float, status: int = 200) -> LoggedRequest:
    return LoggedRequest(SINCE + at, "chat", "chat-0", 10, 5, ttft, e2e, status, ttft is not None, True)


def test_latency_errors_compare_the_same_requests() -> None:
    observed = [logged(1.0, 0.1, 1.0), logged(2.0, None, 2.0), logged(3.0, 0.3, 3.0, status=503)]
    predicted = [
        RequestRecord(1.0, 1.2, 2.1, 10, 5),  # ttft 0.2, e2e 1.1
        RequestRecord(2.0, 2.5, 4.2, 10, 5),  # e2e 2.2; its TTFT is not compared (not streamed)
        RequestRecord(3.0, 3.1, 3.2, 10, 5),  # the 503 is not a latency
    ]
    m = {x.name: x for x in latency_metrics(observed, predicted, SINCE)}
    assert m["ttft_p50_s"].observed == pytest.approx(0.1) and m["ttft_p50_s"].predicted == pytest.approx(0.2)
    assert m["ttft_p50_s"].error == pytest.approx(1.0)
    assert m["e2e_p50_s"].observed == pytest.approx(1.5) and m["e2e_p50_s"].predicted == pytest.approx(1.65)


@pytest.fixture(scope="module")
def desired(tmp_path_factory: pytest.TempPathFactory) -> DesiredDeployment:
    d = tmp_path_factory.mktemp("shadow")
    host = {"connection": "local", "workdir": str(d / "w"), "gpus": {"type": "L4", "count": 2}}
    (d / "inv.yaml").write_text(yaml.safe_dump({"hosts": {"box": host}}))
    dep = {
        "name": "chat",
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "workload": "semi-online",
        "engine": "emulated",
        "emulate": "vllm",
        "scaling": {"min_replicas": 1, "max_replicas": 2, "signal": "in_flight", "target": 4},
    }
    (d / "pb.yaml").write_text(yaml.safe_dump({"deployments": [dep]}))
    _plan, out = plan_and_desired(Path(d / "pb.yaml"), load_inventory(d / "inv.yaml"))
    return out[0]


def test_a_window_replays_to_its_own_prediction(desired: DesiredDeployment) -> None:
    """Log what one replay predicted as if the fleet had done it; replaying that log must find it again:
    the same latencies and the same replica series (nothing in the replay depends on the wall clock)."""
    arrivals = [(0.05 * i, 200, 100) for i in range(200)]  # 20 req/s for 10 s: a second replica
    base = [LoggedRequest(SINCE + t, "chat", "", p, o, None, 0.0, 200, True, True) for t, p, o in arrivals]
    fleet = ObservedFleet(((0.0, 1),), (), 1, (), ())
    window = Window(desired, tuple(base), SINCE, 30.0, fleet, 2.0, None, 1.0)
    first = replay(window)
    records = {round(r.arrival_s, 6): r for r in first.result.records}
    recorded = tuple(
        LoggedRequest(
            SINCE + t,
            "chat",
            "chat-0",
            p,
            o,
            records[round(t, 6)].ttft_s,
            records[round(t, 6)].e2e_s,
            200,
            True,
            True,
        )
        for t, p, o in arrivals
    )
    series = tuple((p.t_s, p.replicas) for p in first.result.fleet["chat"])
    assert max(n for _, n in series) == 2  # the load did scale it
    decided = tuple(t for t, _ in first.result.decisions)
    again = replay(Window(desired, recorded, SINCE, 30.0, ObservedFleet(series, decided, 1, (), ()), 2.0))
    out = report(
        "chat",
        recorded,
        series,
        decided,
        again.result,
        since=SINCE,
        duration_s=30.0,
        interval_s=2.0,
        gpus_per_replica=1,
        threshold=0.01,
    )
    assert not out["divergent"], out
    assert all(abs(m["error"]) < 1e-9 for m in out["metrics"]), out["metrics"]
    assert out["replicas"]["matches"] and out["replicas"]["max_shift_s"] == 0.0
