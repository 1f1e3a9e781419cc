"""What back-fill recovers in the simulator: the loan accounting on a hand-made timeline, its invariants on
any timeline, and the report of a shipped back-fill playbook under bursty traffic."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.backfill import recovery
from sim.cluster import simulate
from sim.from_plan import cluster_from_plan
from sim.outcome import FleetPoint
from sim.workload import generate, parse_workload

ROOT = Path(__file__).resolve().parents[2]


def test_loans_end_last_in_first_out_and_each_pays_a_cold_start() -> None:
    # 4 slots, 1 initial: 3 spares. Held replicas 1 -> 3 at t=100 -> 1 at t=300; the run ends at 400.
    timeline = [FleetPoint(0, 1, 1, 1), FleetPoint(100, 3, 3, 3), FleetPoint(300, 1, 1, 1)]
    r = recovery(timeline, slots=4, initial=1, cold_start_s=30, end_s=400)
    # Loans a, b, c from 0; b and c end at 100; two more from 300; all end at 400.
    assert r.loans == 5
    assert r.lent_s == pytest.approx(100 + 100 + 100 + 100 + 400)
    assert r.serving_s == pytest.approx(70 + 70 + 70 + 70 + 370)


def test_a_scaled_to_zero_owner_lends_only_its_spares() -> None:
    r = recovery([FleetPoint(0, 0, 0, 0)], slots=3, initial=1, cold_start_s=0, end_s=100)
    assert (r.loans, r.lent_s) == (2, 200)


@given(
    changes=st.lists(st.tuples(st.floats(0, 1000), st.integers(0, 6)), max_size=30),
    slots=st.integers(1, 6),
    initial=st.integers(0, 3),
    cold=st.floats(0, 200),
)
def test_recovery_is_bounded_by_the_idle_spare_capacity(
    changes: list[tuple[float, int]], slots: int, initial: int, cold: float
) -> None:
    initial = min(initial, slots)
    timeline = [FleetPoint(0, 0, 0, initial)] + [FleetPoint(t, h, h, h) for t, h in sorted(changes)]
    end = 1000.0
    r = recovery(timeline, slots, initial, cold, end)
    idle = 0.0  # integral of the idle spare slots, directly
    for p, nxt in zip(timeline, [*timeline[1:], FleetPoint(end, 0, 0, 0)], strict=True):
        idle += (nxt.t_s - p.t_s) * max(0, slots - max(p.held, initial))
    assert r.lent_s == pytest.approx(idle, abs=1e-6)
    assert 0 <= r.serving_s <= r.lent_s + 1e-9
    if cold == 0:
        assert r.serving_s == pytest.approx(r.lent_s)


def test_the_shipped_backfill_playbook_reports_the_recovered_gpu_hours() -> None:
    spec = cluster_from_plan(
        ROOT / "playbooks" / "semi-online-backfill.yaml", ROOT / "inventory" / "example-ssh.yaml"
    )
    (owner,) = spec.deployments  # the borrower has no traffic of its own: it is not simulated as one
    assert owner.name == "summarise" and owner.backfill is not None and owner.backfill.deployment == "enrich"
    workload = parse_workload(
        {"kind": "mmpp", "deployment": "summarise", "rates": [0.5, 30.0], "mean_sojourn_s": [600, 120]}
    )
    result = simulate(spec, generate(workload, 3600.0, seed=2), 3600.0)
    report = result.summary("summarise")["backfill"]
    spare_gpu_hours = owner.slots - owner.initial_replicas  # one GPU each, for the hour
    assert report["deployment"] == "enrich" and report["loans"] >= 2
    assert 0 < report["recovered_gpu_hours"] < report["lent_gpu_hours"] <= spare_gpu_hours
    assert report["output_tokens"] == pytest.approx(
        report["recovered_gpu_hours"] * 3600 * owner.backfill.tokens_per_s
    )
