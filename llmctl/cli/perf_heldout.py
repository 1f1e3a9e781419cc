"""`llmctl perf heldout --url URL --profile-file P`: a calibrated profile against a live engine on loads
the calibration never saw (issue #16): Poisson at a light and a near-saturation rate and a slice of the
Azure trace, each measured on the engine and predicted by the simulator for the same arrivals; prints
them side by side with ratios and pass/fail against the targets (llmctl.bench.heldout.TARGETS).

Calibrate right before (`llmctl perf calibrate --url ...`): a shared machine's speed drifts. Exits 1 when a
target is missed, as `llmctl perf validate` does.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from llmctl.cli.output import console, err_console, print_json
from llmctl.errors import LlmctlError

if TYPE_CHECKING:  # the simulator (simpy) and httpx load only when the command runs
    from llmctl.bench.heldout import HeldoutLoad
    from sim.replica import EngineShape

LOADS = ("poisson-light", "poisson-high", "azure-slice")
DEFAULT_TRACE = Path(__file__).resolve().parents[2] / "sim" / "traces" / "AzureLLMInferenceTrace_conv.csv"


def engine_kv_tokens(url: str) -> int | None:
    """The engine's KV-cache size in tokens from vLLM's `cache_config_info` gauge, None if it has none."""
    import httpx

    try:
        text = httpx.get(f"{url.rstrip('/')}/metrics", timeout=10).text
    except httpx.HTTPError:
        return None
    line = next((x for x in text.splitlines() if x.startswith("vllm:cache_config_info{")), None)
    if line is None:
        return None
    labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
    try:
        return int(labels["num_gpu_blocks"]) * int(labels["block_size"])
    except (KeyError, ValueError):
        return None


def build_loads(
    engine: EngineShape,
    names: list[str],
    *,
    prompt: int,
    output: int,
    light: float,
    high: float,
    trace_share: float,
    trace: Path,
    trace_start: int,
    trace_mean_prompt: float,
    requests: int,
    seed: int,
) -> tuple[list[HeldoutLoad], dict[str, float]]:
    """The loads asked for, and the predicted capacity (req/s) each one's rate is a share of."""
    from llmctl.bench.heldout import capacity_req_s, poisson_load, trace_load, trace_slice

    loads: list[HeldoutLoad] = []
    capacities: dict[str, float] = {}
    poisson_cap = capacity_req_s(engine, [(prompt, output)])
    for i, (name, share) in enumerate((("poisson-light", light), ("poisson-high", high))):
        if name in names:
            loads.append(poisson_load(name, share, poisson_cap, requests, prompt, output, seed + i))
            capacities[name] = poisson_cap
    if "azure-slice" in names:
        from sim.workload.traces import load_trace

        if not trace.exists():
            raise LlmctlError(f"--trace {trace}: no such file")
        loaded = load_trace(str(trace))
        max_context = engine.max_context or 2048
        try:
            rows = trace_slice(loaded, requests, trace_mean_prompt, max_context, trace_start)
        except ValueError as exc:
            raise LlmctlError(f"--trace {trace}: {exc}") from None
        cap = capacity_req_s(engine, [(p, o) for _, p, o in rows])
        loads.append(trace_load("azure-slice", trace_share, cap, rows, requests / (trace_share * cap)))
        capacities["azure-slice"] = cap
    return loads, capacities


def measure(url: str, model: str, load: HeldoutLoad, quiet: bool) -> dict[str, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from llmctl.bench.load import Outcome, run_load, summarise

    with Progress(
        TextColumn(f"[bold]{load.name}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=quiet,
    ) as progress:
        task = progress.add_task("requests", total=len(load.schedule))

        def done(_: Outcome) -> None:
            progress.advance(task)

        outcomes, wall = asyncio.run(run_load(url, model, load.schedule, on_done=done))
    return summarise(outcomes, wall)


def heldout_command(
    url: str = typer.Option(..., "--url", help="OpenAI-compatible base URL of the engine"),
    profile_file: Path = typer.Option(
        ..., "--profile-file", help="the calibrated profile (`llmctl perf calibrate --url ... -o FILE`)"
    ),
    served_model: str = typer.Option(
        ..., "--served-model-name", "--model", help="model name the server expects"
    ),
    max_num_seqs: int = typer.Option(128, "--max-num-seqs", min=1, help="the engine's --max-num-seqs"),
    max_batched_tokens: int = typer.Option(
        2048, "--max-batched-tokens", min=1, help="the engine's token budget per step (vLLM CPU default 2048)"
    ),
    max_model_len: int = typer.Option(2048, "--max-model-len", min=2, help="the engine's --max-model-len"),
    kv_tokens: int | None = typer.Option(
        None,
        "--kv-tokens",
        help="KV-cache tokens (default: the engine's /metrics, else the model's estimate)",
    ),
    loads_opt: str = typer.Option(",".join(LOADS), "--loads", help=f"comma-separated, of {', '.join(LOADS)}"),
    prompt_tokens: int = typer.Option(48, "--prompt-tokens", min=1, help="Poisson loads' prompt length"),
    output_tokens: int = typer.Option(48, "--output-tokens", min=2, help="Poisson loads' output length"),
    light: float = typer.Option(0.3, "--light", min=0.01, help="light rate, share of predicted capacity"),
    high: float = typer.Option(0.8, "--high", min=0.01, help="near-saturation rate, share of capacity"),
    trace: Path = typer.Option(DEFAULT_TRACE, "--trace", help="Azure LLM inference CSV (or Mooncake JSONL)"),
    trace_share: float = typer.Option(
        0.6, "--trace-share", min=0.01, help="trace slice's rate, share of capacity"
    ),
    trace_start: int = typer.Option(0, "--trace-start", min=0, help="first trace row of the slice"),
    trace_mean_prompt: float = typer.Option(
        64.0, "--trace-mean-prompt", min=1.0, help="scale the slice's lengths to this mean prompt"
    ),
    requests: int = typer.Option(24, "--requests", min=2, help="requests per load"),
    seed: int = typer.Option(1, "--seed", help="seed of the Poisson arrivals"),
    chart: Path | None = typer.Option(None, "--chart", help="write a PNG of predicted/measured per load"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Measure held-out loads on a live engine and compare them with the simulator's prediction."""
    from llmctl.bench.heldout import Row, compare, simulate_schedule, summarise_records
    from llmctl.bench.heldout_report import markdown_table, verdicts, write_chart
    from llmctl.bench.profile_file import load_profile_file
    from llmctl.engines.emulator.timing import step_timer
    from llmctl.perf.capacity import kv_capacity_tokens
    from sim.replica import EngineShape

    names = [n.strip() for n in loads_opt.split(",") if n.strip()]
    unknown = [n for n in names if n not in LOADS]
    if unknown or not names:
        raise LlmctlError(f"--loads: unknown {', '.join(unknown) or '(none)'}; known: {', '.join(LOADS)}")
    profile = load_profile_file(profile_file)
    kv = kv_tokens or engine_kv_tokens(url) or kv_capacity_tokens(profile)
    engine = EngineShape(
        step_timer(profile, None),
        kv,
        max_num_seqs,
        max_batched_tokens,
        max_model_len,
        request_latency_s=profile.factors.request_latency_s,
    )
    loads, capacities = build_loads(
        engine,
        names,
        prompt=prompt_tokens,
        output=output_tokens,
        light=light,
        high=high,
        trace_share=trace_share,
        trace=trace,
        trace_start=trace_start,
        trace_mean_prompt=trace_mean_prompt,
        requests=requests,
        seed=seed,
    )
    rows: list[Row] = []
    per_load: list[dict[str, Any]] = []
    for load in loads:
        err_console.print(
            f"{load.name}: {load.kind}, {len(load.schedule)} requests over {load.duration_s:.0f} s "
            f"({load.share:.0%} of the predicted {capacities[load.name]:.3f} req/s)",
            highlight=False,
        )
        measured = measure(url, served_model, load, as_json and not err_console.is_terminal)
        if measured["failed"]:
            # The simulator serves every request; a failed one is missing from the measured percentiles only.
            err_console.print(f"  [yellow]{measured['failed']} requests failed:[/] {measured['errors']}")
        predicted = summarise_records(simulate_schedule(engine, load.schedule, load.duration_s))
        load_rows = compare(load.name, measured, predicted)
        rows.extend(load_rows)
        misses = [r.metric for r in load_rows if not r.passed]
        e2e = next(r for r in load_rows if r.metric == "e2e_s p50")
        verdict = "all within targets" if not misses else "missed: " + ", ".join(misses)
        err_console.print(
            f"  e2e p50 measured {e2e.measured:.2f} s, predicted {e2e.predicted:.2f} s; {verdict}",
            highlight=False,
        )
        per_load.append(
            {
                "name": load.name,
                "kind": load.kind,
                "share": load.share,
                "capacity_req_s": capacities[load.name],
                "rate_req_s": load.rate_req_s,
                "duration_s": load.duration_s,
                "requests": len(load.schedule),
                "measured": measured,
                "predicted": predicted,
            }
        )
    if chart is not None:
        write_chart(rows, chart, f"held out: {profile.name}")
    summary = verdicts(rows)
    report = {
        "profile": profile.name,
        "url": url,
        "kv_tokens": kv,
        "max_num_seqs": max_num_seqs,
        "max_batched_tokens": max_batched_tokens,
        "loads": per_load,
        "rows": [{**vars(r), "ratio": r.ratio, "passed": r.passed} for r in rows],
        "verdicts": {k: {"passed": ok, "of": n} for k, (ok, n) in summary.items()},
    }
    if as_json:
        print_json(report)
    else:
        console.print(markdown_table(rows), highlight=False)
        console.print(
            "targets: " + ", ".join(f"{k} {ok}/{n} within" for k, (ok, n) in summary.items()), highlight=False
        )
    if any(not r.passed for r in rows):
        raise typer.Exit(1)
