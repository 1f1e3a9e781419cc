"""`llmctl load URL --model NAME`: send open-loop traffic and print TTFT, inter-token and end-to-end latency."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Literal

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from llmctl.bench.load import Outcome, Scheduled, constant_schedule, poisson_schedule, run_load, summarise
from llmctl.cli.output import console, print_json
from llmctl.errors import LlmctlError


def trace_schedule(
    path: Path, duration: float, time_scale: float, rate_scale: float, max_context: int, seed: int
) -> list[Scheduled]:
    """A trace's requests over `duration` seconds (looped if shorter), lengths clipped to the context."""
    import numpy as np

    from sim.workload.traces import load_trace, replay_indices

    if not path.exists():
        raise LlmctlError(f"--trace {path}: no such file")
    loaded = load_trace(str(path))
    try:
        times, rows = replay_indices(loaded, np.random.default_rng(seed), duration, time_scale, rate_scale)
    except ValueError as exc:
        raise LlmctlError(f"--trace {path}: {exc}") from None
    out = []
    for t, i in zip(times, rows, strict=True):
        output = max(1, min(int(loaded.outputs[i]), max_context // 2))
        prompt = max(1, min(int(loaded.prompts[i]), max_context - output))
        out.append(Scheduled(float(t), prompt, output))
    return out


def load_command(
    url: str = typer.Argument(
        "http://127.0.0.1:8080", help="OpenAI-compatible base URL (gateway or replica)."
    ),
    model: str = typer.Option(..., "--model", "-m", help="Model (deployment) name to request."),
    pattern: str = typer.Option(
        "poisson", help="Arrival pattern: constant or poisson (ignored with --trace)."
    ),
    trace: Path | None = typer.Option(
        None,
        help="Replay a trace instead: Azure LLM inference CSV or Mooncake JSONL (one ships in sim/traces).",
    ),
    time_scale: float = typer.Option(
        1.0, help="With --trace: stretch (>1) or squeeze (<1) the trace's time."
    ),
    rate_scale: float = typer.Option(1.0, help="With --trace: multiply its request rate (thinning/copies)."),
    max_context: int = typer.Option(8192, help="With --trace: clip prompt + output to this many tokens."),
    rate: float = typer.Option(2.0, help="Requests per second."),
    duration: float = typer.Option(10.0, help="Seconds of traffic."),
    prompt_tokens: int = typer.Option(256, help="Prompt length in tokens."),
    output_tokens: int = typer.Option(64, help="Tokens generated per request."),
    seed: int = typer.Option(0, help="Seed for Poisson arrivals."),
    api_key_env: str | None = typer.Option(None, help="Environment variable holding the API key."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable summary."),
) -> None:
    """Rehearse traffic against an endpoint and report latency percentiles."""
    kind: Literal["constant", "poisson"]
    if pattern == "constant":
        kind = "constant"
    elif pattern == "poisson":
        kind = "poisson"
    else:
        raise LlmctlError(f"--pattern {pattern!r}: use constant or poisson")
    if rate <= 0 or duration <= 0:
        raise LlmctlError("--rate and --duration must be positive")
    api_key = None
    if api_key_env:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            raise LlmctlError(f"--api-key-env {api_key_env}: that variable is not set")
    if trace is not None:
        schedule = trace_schedule(trace, duration, time_scale, rate_scale, max_context, seed)
        kind_label = f"trace {trace.name}"
    else:
        schedule = (
            constant_schedule(rate, duration, prompt_tokens, output_tokens)
            if kind == "constant"
            else poisson_schedule(rate, duration, prompt_tokens, output_tokens, seed)
        )
        kind_label = f"{kind} {rate:g}/s"
    with Progress(
        TextColumn("[bold]load[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=as_json,
    ) as progress:
        task = progress.add_task("requests", total=len(schedule))

        def done(_: Outcome) -> None:
            progress.advance(task)

        outcomes, wall = asyncio.run(run_load(url, model, schedule, api_key=api_key, on_done=done))
    summary = summarise(outcomes, wall)
    if as_json:
        print_json(summary)
        return
    table = Table(title=f"{len(outcomes)} requests to {url} ({model}), {kind_label} for {duration:g} s")
    for col in ("metric", "p50 ms", "p90 ms", "p99 ms"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for key, label in (("ttft_s", "time to first token"), ("itl_s", "inter-token"), ("e2e_s", "end to end")):
        pcts = summary[key]
        assert isinstance(pcts, dict)
        table.add_row(label, *(f"{pcts[p] * 1000:.1f}" for p in ("p50", "p90", "p99")))
    console.print(table)
    console.print(
        f"succeeded {summary['succeeded']}/{summary['requests']}, "
        f"{summary['requests_per_s']:.1f} req/s, {summary['output_tokens_per_s']:.0f} output tokens/s"
        + (f", errors: {summary['errors']}" if summary["errors"] else "")
    )
    if summary["failed"]:
        raise typer.Exit(1)
