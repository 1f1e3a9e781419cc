"""`llmctl sim replay --since 1h`: the simulator checked against what the live fleet did.

Reads the window from the gateway's request log (llmctl.gateway.request_log, beside the state store), each
deployment's desired state and the replicas' events from the store, replays the arrivals through the
simulator with the same autoscaler (sim.shadow) and prints predicted against observed (sim.shadow_compare):
TTFT and end-to-end p50/p90, replicas over time and their changes, scaling decisions, GPU-hours.
`--calibrate` fits the perf factors to the logged requests (llmctl.perf.calibrate.fit_factors) and replays
again with them, showing the errors before and after.

Exit status 1 when something diverges beyond `--threshold` (a latency or GPU-hour error, or a replica series
of another shape or shifted by more than one controller tick), as `llmctl perf validate` exits 1 when a
fidelity target is broken: a CI job or a cron can watch the model's drift from the fleet.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import statistics
import time
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from llmctl.cli.common import STATE
from llmctl.cli.output import console, print_json
from llmctl.errors import LlmctlError

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
DEFAULT_INTERVAL_S = 2.0  # the controller's default tick (ControllerConfig.interval_s)


def parse_duration(text: str, option: str) -> float:
    """`90s`, `30m`, `1h`, `2h30m`, or plain seconds."""
    t = text.strip().lower()
    try:
        return float(t)
    except ValueError:
        pass
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhd])", t)
    if not parts or "".join(n + u for n, u in parts) != t:
        raise LlmctlError(f"{option} {text!r}: write a duration such as 90s, 30m, 1h or 2h30m")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def parse_time(text: str, option: str, before: float) -> float:
    """A moment: `@UNIX_SECONDS`, an ISO 8601 time (2026-12-01T18:00:00, local unless it has an offset), or a
    duration back from `before` (1h)."""
    t = text.strip()
    if t.startswith("@"):
        try:
            return float(t[1:])
        except ValueError:
            raise LlmctlError(f"{option} {text!r}: @ takes unix seconds, e.g. @1796140000") from None
    if "T" in t or t.count("-") == 2:
        from datetime import datetime

        try:
            return datetime.fromisoformat(t).timestamp()
        except ValueError:
            raise LlmctlError(f"{option} {text!r}: not an ISO 8601 time (2026-12-01T18:00:00)") from None
    return before - parse_duration(t, option)


def _sample_times(store: Any, slots: list[str], since: float, until: float) -> dict[str, list[float]]:
    """When the controller scraped each replica: the put-away tick of a stop is its last scrape."""
    return {
        name: [
            float(a)
            for (a,) in store.db.execute(
                "SELECT at FROM metric_samples WHERE replica = ? AND at >= ? AND at < ? ORDER BY at",
                (name, since - 3600.0, until),
            )
        ]
        for name in slots
    }


def _interval(store: Any, slots: list[str], since: float, until: float) -> float:
    """The controller's tick: the median gap between one replica's metric samples in the window."""
    gaps: list[float] = []
    for name in slots:
        ats = [
            float(a)
            for (a,) in store.db.execute(
                "SELECT at FROM metric_samples WHERE replica = ? AND at >= ? AND at < ? ORDER BY at",
                (name, since, until),
            )
        ]
        gaps += [b - a for a, b in itertools.pairwise(ats) if b > a]
    return statistics.median(gaps) if gaps else DEFAULT_INTERVAL_S


def replay_command(
    since: str = typer.Option(
        "1h", "--since", help="Window start: back from --until (90s, 30m, 1h), @UNIX_SECONDS or ISO 8601."
    ),
    until: str | None = typer.Option(
        None, "--until", help="Window end: this long ago, @UNIX_SECONDS or ISO 8601 (default: now)."
    ),
    deployment: str | None = typer.Option(None, "--deployment", "-d", help="Only this deployment."),
    threshold: float = typer.Option(0.1, "--threshold", min=0.0, help="Relative error that is flagged."),
    calibrate: bool = typer.Option(False, "--calibrate", help="Fit the perf factors to the window."),
    time_scale: float | None = typer.Option(
        None, "--time-scale", help="Emulated engines' time scale (default $LLMCTL_EMULATOR_TIME_SCALE or 1)."
    ),
    interval: float | None = typer.Option(
        None, "--interval", help="Controller tick, s (default: from its metric samples)."
    ),
    log_path: Path | None = typer.Option(None, "--log", help="Request log (default: beside the store)."),
    charts: Path | None = typer.Option(None, "--charts", help="Write PNG charts into this folder."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable report."),
    state: Path | None = STATE,
) -> None:
    """Replay a recorded window through the simulator; predicted vs observed, divergence flagged (exit 1)."""
    from llmctl.engines.emulated import TIME_SCALE_ENV
    from llmctl.gateway.request_log import log_path_beside, read_requests, rotated
    from llmctl.state.desired import load_desired
    from llmctl.state.store import Store, default_path

    store_path = Path(state).expanduser() if state else default_path()
    if not store_path.exists():
        raise LlmctlError(f"no state store at {store_path} (--state, or $LLMCTL_STATE)")
    log = log_path or log_path_beside(store_path)
    if not any(p.exists() for p in rotated(log)):
        raise LlmctlError(f"no request log at {log}: the gateway of `llmctl controller` writes it")
    now = time.time()
    end = parse_time(until, "--until", now) if until else now
    start = parse_time(since, "--since", end)
    if start >= end:
        raise LlmctlError("--since: the window is empty")
    scale = time_scale if time_scale is not None else _env_scale(os.environ.get(TIME_SCALE_ENV))
    if not scale > 0:
        raise LlmctlError(f"--time-scale {scale}: must be > 0")
    # An hour before the window is enough to find where the idle clocks stood when it opened.
    read = read_requests(log, start - 3600.0, end)
    if read.skipped:
        console.print(
            f"[yellow]request log: skipped {read.skipped} unreadable line(s), the first at {read.first_bad}[/]",
            highlight=False,
        )
    store = Store(store_path)
    try:
        desired = load_desired(store)
        in_window = [r for r in read.requests if r.at >= start]
        names = sorted({r.deployment for r in in_window})
        if deployment is not None:
            if deployment not in desired:
                known = ", ".join(sorted(desired)) or "none"
                raise LlmctlError(
                    f"--deployment {deployment!r}: no such deployment in the store; known: {known}"
                )
            names = [deployment] if deployment in names else []
        if not names:
            raise LlmctlError(
                f"no requests{f' for {deployment}' if deployment else ''} in {log} between "
                f"{time.strftime('%H:%M:%S', time.localtime(start))} and "
                f"{time.strftime('%H:%M:%S', time.localtime(end))}"
            )
        missing = [n for n in names if n not in desired]
        if missing:
            console.print(f"[yellow]not replayed (no desired state in the store): {', '.join(missing)}[/]")
        from sim.shadow_observed import FleetEvent

        events = [
            FleetEvent(float(a), str(s), str(k))
            for a, s, k in store.db.execute(
                "SELECT at, subject, kind FROM events WHERE at < ? ORDER BY id", (end,)
            )
        ]
        applied = dict(store.db.execute("SELECT name, applied_at FROM deployments").fetchall())
        reports = []
        for name in (n for n in names if n in desired):
            dd = desired[name]
            slots = [s.name for s in dd.slots]
            tick = interval if interval is not None else _interval(store, slots, start, end)
            reports.append(
                _replay_one(
                    dd,
                    [r for r in in_window if r.deployment == name],
                    [r for r in read.requests if r.deployment == name and r.at < start],
                    events,
                    start,
                    end,
                    tick,
                    scale,
                    threshold,
                    calibrate,
                    charts,
                    float(applied.get(name, 0.0)),
                    _sample_times(store, slots, start, end),
                )
            )
    finally:
        store.close()
    divergent = any(r["divergent"] for r in reports)
    if as_json:
        print_json(
            {
                "since": start,
                "until": end,
                "threshold": threshold,
                "divergent": divergent,
                "deployments": reports,
            }
        )
    else:
        for r in reports:
            _print(r, threshold)
    if divergent:
        raise typer.Exit(1)


def _env_scale(raw: str | None) -> float:
    try:
        return float(raw) if raw else 1.0
    except ValueError:
        raise LlmctlError(f"$LLMCTL_EMULATOR_TIME_SCALE {raw!r} is not a number; pass --time-scale") from None


def _replay_one(
    dd: Any,
    requests: list[Any],
    before: list[Any],
    events: list[Any],
    start: float,
    end: float,
    tick: float,
    scale: float,
    threshold: float,
    calibrate: bool,
    charts: Path | None,
    applied_at: float,
    sample_times: dict[str, list[float]],
) -> dict[str, Any]:
    from sim.shadow import Window, replay
    from sim.shadow_compare import report
    from sim.shadow_observed import observed_fleet, tick_times

    slots = [s.name for s in dd.slots]
    obs = observed_fleet(events, dd.name, slots, start, end, sample_times)
    w = Window(
        dd,
        tuple(requests),
        start,
        end - start,
        obs,
        tick,
        last_request_before_s=max(
            [r.at - start for r in before[-1:]] + [applied_at - start] * (applied_at < start)
        )
        if before or applied_at < start
        else None,
        time_scale=scale,
        ticks=tick_times(sample_times, start, end, tick),
    )
    gpus = len(dd.slots[0].gpus) if dd.slots and dd.slots[0].gpus else 1
    try:
        first = replay(w)
    except ValueError as exc:
        raise LlmctlError(str(exc)) from None

    def compare(result: Any) -> dict[str, Any]:
        return report(
            dd.name,
            requests,
            obs.replicas,
            obs.decisions,
            result,
            since=start,
            duration_s=end - start,
            interval_s=tick,
            gpus_per_replica=gpus,
            threshold=threshold,
        )

    out = compare(first.result)
    out |= {
        "generation": dd.generation,
        "interval_s": tick,
        "time_scale": scale,
        "estimated_tokens": sum(1 for r in requests if not r.exact),
        "cold_start_s": {
            "used": first.cold_start_s,
            "modelled": first.modelled_cold_start_s,
            "observed": list(obs.cold_starts_s),
        },
        "notes": [],
    }
    if start < applied_at < end:
        out["notes"].append(
            f"desired state applied inside the window (generation {dd.generation}); replayed with it throughout"
        )
    if calibrate:
        out["calibration"] = _calibrate(w, first, out, compare)
    if charts is not None:
        from sim.shadow_chart import write_replay_charts

        out["charts"] = [
            str(p) for p in write_replay_charts(dd.name, obs.replicas, first.result, obs.decisions, charts)
        ]
    return out


def _calibrate(w: Any, first: Any, before: dict[str, Any], compare: Any) -> dict[str, Any]:
    from sim.shadow_calibrate import calibrate

    fit = calibrate(w)
    after = compare(fit.replayed.result)
    return {
        "fitted": fit.fitted,
        "beyond_physical_range": fit.beyond,  # e.g. a CPU-starved host: its steps cost more than any kernel
        "request_latency_s": fit.request_latency_s,
        "replays": fit.replays,
        "before": {m["name"]: m["error"] for m in before["metrics"]},
        "after": {m["name"]: m["error"] for m in after["metrics"]},
        "replayed": after,  # the whole comparison again, with the fitted factors
    }


def _num(v: float, scale: float = 1.0, digits: int = 0) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v * scale:.{digits}f}"


def _print(r: dict[str, Any], threshold: float) -> None:
    title = (
        f"{r['deployment']}: {r['requests']} request(s) replayed (generation {r['generation']}, tick "
        f"{r['interval_s']:.2f} s, time scale {r['time_scale']:g})"
    )
    table = Table(title=title, title_justify="left")
    for c in ("", "observed", "predicted", "error", ""):
        table.add_column(c, justify="left" if not c else "right")
    for m in r["metrics"]:
        ms = m["name"].endswith("_s")
        unit = 1000.0 if ms else 1.0
        label = m["name"].removesuffix("_s") + (" ms" if ms else "")
        err = m["error"]
        table.add_row(
            label,
            _num(m["observed"], unit, 0 if ms else 4),
            _num(m["predicted"], unit, 0 if ms else 4),
            "-" if math.isnan(err) else f"{err:+.1%}",
            f"[red]> {threshold:.0%}[/]" if m["flagged"] else "",
        )
    rep = r["replicas"]
    shift = "-" if math.isinf(rep["max_shift_s"]) else f"{rep['max_shift_s']:.2f} s"
    table.add_row(
        "replica changes",
        " ".join(str(n) for _, n in rep["observed"]),
        " ".join(str(n) for _, n in rep["predicted"]),
        f"shift {shift}",
        "" if rep["matches"] else f"[red]differs (tolerance {rep['tolerance_s']:.2f} s)[/]",
    )
    console.print(table)
    for d in r["decisions"]:
        o, p = d["observed_t_s"], d["predicted_t_s"]
        console.print(
            f"  decision  observed {_num(o, 1, 2):>8} s  predicted {_num(p, 1, 2):>8} s  {d['predicted']}",
            highlight=False,
        )
    c = r["cold_start_s"]
    console.print(
        f"cold start: replayed with {c['used']:.2f} s (modelled {c['modelled']:.2f} s, "
        f"{len(c['observed'])} measured in the window)",
        highlight=False,
    )
    if r["estimated_tokens"]:
        console.print(
            f"{r['estimated_tokens']} request(s) without usage: token counts estimated", highlight=False
        )
    for note in r["notes"]:
        console.print(f"[yellow]{note}[/]", highlight=False)
    cal = r.get("calibration")
    if cal:
        fitted = ", ".join(f"{k}={v:.4g}" for k, v in cal["fitted"].items())
        console.print(f"calibrated over {cal['replays']} replays: {fitted}", highlight=False)
        for line in cal["beyond_physical_range"]:
            console.print(f"  [yellow]{line}: the host, not the kernels[/]", highlight=False)
        for name, b in cal["before"].items():
            console.print(f"  {name:<14} error {_pct(b)} -> {_pct(cal['after'][name])}", highlight=False)
        shape = cal["replayed"]["replicas"]
        console.print(
            f"  replica changes after: {'match' if shape['matches'] else 'differ'}", highlight=False
        )
    for p in r.get("charts", []):
        console.print(f"chart: {p}")
    console.print(
        "[red]divergent[/]" if r["divergent"] else "[green]within the threshold[/]", highlight=False
    )


def _pct(v: float) -> str:
    return "-" if math.isnan(v) else f"{v:+.1%}"
