"""The pooled-versus-separate comparison (sim.pool_compare's report) as tables: rows of plain strings, shared
by the CLI's rich table and the Markdown a bench result or a closing note carries."""

from __future__ import annotations

import math
from typing import Any

from llmctl.pool.tiers import Tier

FLEET_COLUMNS = (
    "fleet",
    "GPUs",
    "GPU-h",
    "cost",
    "busy GPU-h",
    "SLO met",
    "worst tenant SLO",
    "demand P2A",
    "GPU P2A",
    "preemptions",
)
TENANT_COLUMNS = (
    "tenant",
    "requests",
    "SLO met sep / pool",
    "TTFT p99 s sep / pool",
    "busy GPU-h sep / pool",
    "peak GPUs sep / pool",
    "demand P2A",
    "GPU P2A sep / pool",
    "preempted",
    "refused ticks",
)
# The tiers a simulated slot can sit in (sim.pooled): the others need the perf model's tier times.
SHOWN_TIERS = (Tier.RUNNING, Tier.ASLEEP_IN_RAM, Tier.ON_DISK)
TIER_COLUMNS = ("tenant", *(f"{t.label} h sep / pool" for t in SHOWN_TIERS), "wakes / cold starts sep / pool")


def _f(v: float, fmt: str = ".2f") -> str:
    return "-" if isinstance(v, float) and math.isnan(v) else format(v, fmt)


def _pct(v: float) -> str:
    return "-" if math.isnan(v) else f"{v:.2%}"


def fleet_rows(report: dict[str, Any]) -> list[list[str]]:
    rows = []
    for mode in ("separate", "pooled"):
        f, tenants = report[mode]["fleet"], report[mode]["tenants"]
        worst = min(t["slo_attainment"] for t in tenants.values())
        rows.append(
            [
                "separate fleets (each sized to its peak)" if mode == "separate" else "one shared pool",
                str(f["reserved_gpus"]),
                _f(f["gpu_hours"]),
                f"${f['cost']:.2f}",
                _f(f["busy_gpu_hours"]),
                _pct(f["slo_attainment"]),
                _pct(worst),
                _f(f["demand_peak_to_average"]),
                _f(f["gpus_peak_to_average"]),
                str(f["preemptions"]),
            ]
        )
    return rows


def tenant_rows(report: dict[str, Any]) -> list[list[str]]:
    sep, pool = report["separate"]["tenants"], report["pooled"]["tenants"]
    rows = []
    for name, s in sep.items():
        p = pool[name]
        rows.append(
            [
                name,
                str(s["offered"]),
                f"{_pct(s['slo_attainment'])} / {_pct(p['slo_attainment'])}",
                f"{_f(s['ttft_p99_s'])} / {_f(p['ttft_p99_s'])}",
                f"{_f(s['busy_gpu_hours'])} / {_f(p['busy_gpu_hours'])}",
                f"{s['peak_gpus_held']} / {p['peak_gpus_held']}",
                _f(s["demand_peak_to_average"]),
                f"{_f(s['gpus_peak_to_average'])} / {_f(p['gpus_peak_to_average'])}",
                str(p["preempted"]),
                str(p["refused_ticks"]),
            ]
        )
    return rows


def tier_rows(report: dict[str, Any]) -> list[list[str]]:
    sep, pool = report["separate"]["tenants"], report["pooled"]["tenants"]
    rows = []
    for name, s in sep.items():
        p = pool[name]
        ups = [
            f"{x['scale_ups'].get(Tier.ASLEEP_IN_RAM.name, 0)}/{x['scale_ups'].get(Tier.ON_DISK.name, 0)}"
            for x in (s, p)
        ]
        rows.append(
            [
                name,
                *(f"{s['tier_hours'][t.name]:.2f} / {p['tier_hours'][t.name]:.2f}" for t in SHOWN_TIERS),
                " / ".join(ups),
            ]
        )
    return rows


def _md(columns: tuple[str, ...], rows: list[list[str]]) -> str:
    head = "| " + " | ".join(columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    return "\n".join([head, rule, *("| " + " | ".join(r) + " |" for r in rows)])


def markdown(report: dict[str, Any], chart: str | None = None) -> str:
    pool = report["pool"]
    slo = report["slo"]
    lines = [
        f"# Pooled vs separate fleets: {report['scenario']}",
        "",
        f"{len(report['separate']['tenants'])} tenants, {report['duration_s']:g} s simulated (seed {report['seed']}),"
        f" {report['gpu_type']} at ${report['price_per_gpu_hour']:.2f}/GPU-h, SLO: TTFT <= {slo['ttft_s']} s"
        " (attainment counts every offered request; one not answered is a miss).",
        f"Pool: {pool['gpus']} GPUs ({pool['rule']}; the minimums need {pool['minimums']}). Separate fleets: each"
        f" sized to the GPUs its tenant held at its peak in the separate run (planned slots:"
        f" {report['separate_planned_gpus']} GPUs). GPU-h and cost: the fleet's GPUs for the whole run"
        " (owned or rented by the hour); busy GPU-h: replicas starting, ready or draining.",
        "",
        _md(FLEET_COLUMNS, fleet_rows(report)),
        "",
        f"Saving of the pool: {report['saving']:.1%} of the cost.",
        "",
        "## Per tenant",
        "",
        _md(TENANT_COLUMNS, tenant_rows(report)),
        "",
        "## Time in each cold-start tier (slot-hours over the tenant's max_replicas slots)",
        "",
        "A scale-up from "
        + ", ".join(f"{Tier[k].label} takes {v:.1f} s" for k, v in report["tier_seconds"].items())
        + " (the performance model's, as planned); a slot with no replica keeps the weights on local disk.",
        "",
        _md(TIER_COLUMNS, tier_rows(report)),
    ]
    if chart:
        lines += ["", f"![GPUs held per tenant, separate vs pooled]({chart})"]
    return "\n".join(lines) + "\n"


__all__ = [
    "FLEET_COLUMNS",
    "TENANT_COLUMNS",
    "TIER_COLUMNS",
    "fleet_rows",
    "markdown",
    "tenant_rows",
    "tier_rows",
]
