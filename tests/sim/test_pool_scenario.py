"""The shipped 8-tenant scenario (sim/scenarios/pooled-8-tenants.yaml), shortened to 15 minutes for CI: the
pool costs fewer GPU-hours than the separate fleets and every tenant keeps its SLO attainment within a
stated margin; every request is answered or counted; `llmctl sim pool` reports it and refuses bad input
with one line naming the file, line and field."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sim.pool_compare import Comparison, compare
from sim.pooled import PooledResult
from sim.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "sim" / "scenarios" / "pooled-8-tenants.yaml"
SHORT_S = 900.0
# A tenant's SLO attainment on the pool may trail its own fleet's by at most this much (absolute): pool
# contention shows as refused cold starts while another tenant bursts.
MARGIN = 0.01


def llmctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmctl.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={
            "COLUMNS": "200",
            "NO_COLOR": "1",
            "PATH": "/usr/bin:/bin",
            "LLMCTL_STATE": os.environ["LLMCTL_STATE"],
        },
    )


@pytest.fixture(scope="module")
def short() -> Comparison:
    s, workload = load_scenario(SCENARIO)
    return compare(s.model_copy(update={"duration_s": SHORT_S}), workload)


def test_the_pool_costs_less_at_the_same_slo(short: Comparison) -> None:
    r = short.report
    sep, pool = r["separate"], r["pooled"]
    assert r["gpu_type"] == "H100-SXM" and len(sep["tenants"]) == 8
    assert pool["fleet"]["gpu_hours"] < sep["fleet"]["gpu_hours"] and r["saving"] > 0.2
    assert pool["fleet"]["cost"] < sep["fleet"]["cost"]
    for name, s in sep["tenants"].items():
        assert pool["tenants"][name]["slo_attainment"] >= s["slo_attainment"] - MARGIN, name
    # The bursts do collide on the pool: it refuses some cold starts, so the comparison is not vacuous.
    assert sum(t["refused_ticks"] for t in pool["tenants"].values()) > 0
    assert pool["fleet"]["peak_gpus_held"] <= short.pool_gpus < sep["fleet"]["reserved_gpus"]
    # Pooling flattens the aggregate GPU curve; the demand is the same arrivals either way.
    assert pool["fleet"]["gpus_peak_to_average"] < sep["fleet"]["gpus_peak_to_average"]
    assert pool["fleet"]["demand_peak_to_average"] == sep["fleet"]["demand_peak_to_average"]


@pytest.mark.parametrize("mode", ["separate", "pooled"])
def test_every_request_is_answered_or_counted(short: Comparison, mode: str) -> None:
    run: PooledResult = getattr(short, mode)
    r = run.result
    assert sum(run.offered.values()) == r.offered > 5_000
    for name, offered in run.offered.items():
        answered = sum(1 for x in r.records if x.deployment == name)
        lost = r.rejected[name] + r.shed.get(name, 0) + r.dropped[name] + run.unfinished[name]
        assert answered + lost == offered, (mode, name)
    # Each tenant's slots (its max_replicas) sit in some cold-start tier for the whole run.
    tenants = {t.name: t for p in run.pools for t in p.tenants}
    for name, n in short.report[mode]["tenants"].items():
        hours = sum(n["tier_hours"].values())
        assert hours == pytest.approx(tenants[name].max_replicas * SHORT_S / 3600), (mode, name)


def test_scale_ups_take_the_perf_models_tier_times(short: Comparison) -> None:
    from llmctl.perf.cold_start import tier_transition
    from llmctl.planner.shape import shape_draft_params, shape_profile
    from llmctl.pool.tiers import Tier

    shape = short.separate.pools[0].members[0].slots[0].shape
    assert shape is not None
    profile, draft = shape_profile(shape), shape_draft_params(shape)
    for tier, seconds in short.report["tier_seconds"].items():
        assert seconds == pytest.approx(tier_transition(profile, Tier[tier], draft_params=draft).total_s), (
            tier
        )
    assert short.report["tier_seconds"]["ASLEEP_IN_RAM"] < short.report["tier_seconds"]["ON_DISK"]


def test_minimums_are_held_on_the_pool(short: Comparison) -> None:
    tenants = short.pooled.pools[0].tenants
    assert sum(t.min_replicas for t in tenants) > 0
    for t in tenants:
        assert all(p.gpus >= t.min_replicas for p in short.pooled.held[t.name]), t.name


def test_cli_reports_the_comparison_and_writes_chart_and_table(tmp_path: Path) -> None:
    out = llmctl(
        "sim", "pool", str(SCENARIO), "--duration", "120", "--json",
        "--chart", str(tmp_path / "pool.png"), "--markdown", str(tmp_path / "pool.md"),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["pool"]["gpus"] == 16 and set(report["pooled"]["tenants"]) == set(
        report["separate"]["tenants"]
    )
    assert (tmp_path / "pool.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (tmp_path / "pool.md").read_text()
    assert "| one shared pool | 16 |" in md and "![GPUs held" in md and "code-a" in md


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda d: d["tenants"][2].update(min_replicas=5), "tenants[2]"),
        (lambda d: d["tenants"][1].update(like="nope"), "tenants[1].like"),
        (lambda d: d["pool"].update(gpus=1), "pool.gpus"),
    ],
)
def test_bad_input_is_one_line_naming_file_line_and_field(tmp_path: Path, change: object, where: str) -> None:
    data = yaml.safe_load(SCENARIO.read_text())
    for key in ("playbook", "inventory"):
        data[key] = str((SCENARIO.parent / data[key]).resolve())
    for part in data["workload"]["parts"]:
        for holder in (part, part.get("lengths") or {}):
            if "path" in holder:
                holder["path"] = str((SCENARIO.parent / holder["path"]).resolve())
    change(data)  # type: ignore[operator]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    out = llmctl("sim", "pool", str(path), "--duration", "60")
    assert out.returncode != 0
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"{path}:" in lines[0] and where in lines[0], out.stderr


def test_auto_pool_is_the_smallest_that_keeps_every_tenants_slo() -> None:
    from sim.pool_compare import run_pooled, tenant_numbers, tenants_of
    from sim.pool_spec import PoolSpec
    from sim.scenario import arrivals_for

    s, workload = load_scenario(SCENARIO)
    s = s.model_copy(update={"duration_s": 300.0, "pool": PoolSpec(gpus="auto", slo_margin=0.005)})
    c = compare(s, workload)
    sep, slo = c.report["separate"]["tenants"], s.slo.slo()

    def keeps(run: PooledResult) -> bool:
        got = {n: tenant_numbers(run, n, slo)["slo_attainment"] for n in sep}
        return all(got[n] >= sep[n]["slo_attainment"] - 0.005 for n in sep)

    assert c.report["pool"]["rule"].startswith("auto") and keeps(c.pooled)
    assert c.pool_gpus < c.report["separate"]["fleet"]["reserved_gpus"]
    ts = tenants_of(s)
    smaller = run_pooled(s, ts, arrivals_for(s, workload), c.pool_gpus - 1, 8)
    assert not keeps(smaller), c.pool_gpus
