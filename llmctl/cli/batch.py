"""`llmctl batch run|status|cancel`: offline batch jobs in the OpenAI Batch API format against a deployment.

Also runnable as `python -m llmctl.cli.batch ...`, which is how a detached job (`--detach`) starts itself.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from llmctl.batch import jobs
from llmctl.batch.outfile import count_lines
from llmctl.batch.runner import Outcome
from llmctl.batch.session import BatchSpec, execute, prepare
from llmctl.batch.summary import Counters, Summary, eta_s, rate
from llmctl.cli.common import JSON, STATE, open_store
from llmctl.cli.output import console, err_console, print_error, print_json
from llmctl.errors import LlmctlError
from llmctl.gateway.routing import ROUTERS

app = typer.Typer(
    help="Offline batch jobs: an OpenAI Batch API JSONL file through a deployment, resumable.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

ROUTES = ("round_robin", "least_outstanding")


def run_command(
    input_path: Path = typer.Argument(..., metavar="INPUT.jsonl", help="Requests, OpenAI Batch API lines."),
    deployment: str = typer.Option(..., "--deployment", "-d", help="Deployment to send to."),
    output: Path = typer.Option(..., "--output", "-o", help="Results (appended; also the checkpoint)."),
    url: list[str] = typer.Option(
        [], "--url", help="Replica base URL (repeat); default: the deployment's ready replicas in the store."
    ),
    gateway: str | None = typer.Option(
        None, "--gateway", help="Send through the llmctl gateway at this URL."
    ),
    concurrency: int | None = typer.Option(
        None,
        "--concurrency",
        "-c",
        min=1,
        help="Requests in flight (default: sized by the performance model).",
    ),
    route: str = typer.Option("least_outstanding", "--route", help="round_robin or least_outstanding."),
    model: str | None = typer.Option(
        None, "--model", help="Model name put in each body (default: deployment)."
    ),
    strict: bool = typer.Option(False, "--strict", help="Refuse the input if any line is malformed."),
    max_attempts: int = typer.Option(
        8, "--max-attempts", min=1, help="Attempts per request on 5xx/429/timeouts."
    ),
    timeout: float = typer.Option(600.0, "--timeout", min=0.1, help="Seconds per attempt."),
    pause_timeout: float = typer.Option(
        600.0, "--pause-timeout", min=0.1, help="Give up after this long with no replica reachable."
    ),
    grace: float = typer.Option(10.0, "--grace", min=0.0, help="Seconds in-flight requests get on Ctrl-C."),
    api_key_env: str | None = typer.Option(None, "--api-key-env", help="Variable holding the API key."),
    price: float | None = typer.Option(None, "--price-per-gpu-hour", min=0.0, help="Override the price."),
    gpus: int | None = typer.Option(None, "--gpus", min=0, help="GPUs serving the batch (for the cost)."),
    inventory: Path = typer.Option(
        Path("inventory/local.yaml"), "-i", "--inventory", help="Inventory (GPU types, prices), if present."
    ),
    state: Path | None = STATE,
    as_json: bool = JSON,
    detach: bool = typer.Option(False, "--detach", help="Run in the background; see `llmctl batch status`."),
    job: str | None = typer.Option(None, "--job", hidden=True, help="Job id (set by --detach)."),
) -> None:
    """Send every request of INPUT.jsonl that OUTPUT does not hold yet; re-run the same command to resume."""
    if route not in ROUTES or route not in ROUTERS:
        raise LlmctlError(f"--route {route!r}: use one of {', '.join(ROUTES)}")
    spec = BatchSpec(
        input=input_path,
        output=output,
        deployment=deployment,
        urls=list(url),
        gateway=gateway,
        concurrency=concurrency,
        route=route,
        model=model,
        strict=strict,
        max_attempts=max_attempts,
        timeout_s=timeout,
        pause_timeout_s=pause_timeout,
        grace_s=grace,
        api_key_env=api_key_env,
        price_per_gpu_hour=price,
        gpus=gpus,
        inventory=inventory,
        state=state,
    )
    if job is not None:
        _run_job(spec, job)
        return
    prep = prepare(spec)
    _warn_malformed(spec, prep.parsed.malformed)
    if detach:
        _detach(spec, as_json)
        return
    if not as_json:
        err_console.print(
            f"[bold]{deployment}[/]: {len(prep.target.urls)} endpoint(s), concurrency "
            f"{prep.sizing.concurrency} ({prep.sizing.reason})",
            highlight=False,
        )
    summary, outcome = _run_with_progress(spec, prep, show=not as_json)
    _report(summary, outcome, as_json)


def _warn_malformed(spec: BatchSpec, malformed: list[Any]) -> None:
    if not malformed:
        return
    shown = [f"  {spec.input}:{p.line}: {p.reason}" for p in malformed[:20]]
    more = [f"  ... and {len(malformed) - 20} more (all in --json)"] if len(malformed) > 20 else []
    err_console.print(
        f"[yellow]warning:[/] skipping {len(malformed)} malformed line(s) (--strict refuses them):\n"
        + "\n".join(shown + more),
        highlight=False,
        soft_wrap=True,
    )


def _run_with_progress(spec: BatchSpec, prep: Any, show: bool) -> tuple[Summary, Outcome]:
    with Progress(
        TextColumn("[bold]batch[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=err_console,
        disable=not show,
    ) as progress:
        task = progress.add_task("requests", total=len(prep.parsed.requests), info="")

        def tick(c: Counters, elapsed: float) -> None:
            eta = eta_s(c, elapsed)
            info = (
                f"{rate(c.output_tokens, elapsed):,.0f} tok/s  {c.failed} failed  {c.retries} retried"
                f"  ETA {_duration(eta) if eta is not None else '-'}"
                + ("  [yellow]paused: no replica reachable[/]" if c.paused else "")
            )
            progress.update(task, completed=c.already_done + c.done, info=info)

        return asyncio.run(execute(spec, prep, tick))


def _duration(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _exit_code(summary: Summary, outcome: Outcome) -> int:
    if summary.state == "done":
        return 0
    if outcome.signal is not None:
        return 128 + outcome.signal
    return 1


def _report(summary: Summary, outcome: Outcome, as_json: bool) -> None:
    if as_json:
        print_json(summary.to_json())
    else:
        _print_summary(summary, outcome)
    code = _exit_code(summary, outcome)
    if code:
        raise typer.Exit(code)


def _print_summary(s: Summary, outcome: Outcome) -> None:
    table = Table(title=f"batch {s.input} -> {s.output} ({s.deployment}): {s.state}", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    rows = [
        (
            "requests",
            f"{s.requests:,} ({s.already_done:,} already done, {s.skipped_malformed} malformed skipped)",
        ),
        ("sent this run", f"{s.sent:,}: {s.succeeded:,} succeeded, {s.failed:,} failed (error lines)"),
        ("unfinished", f"{s.unfinished:,}"),
        ("retries", f"{s.retries:,} ({s.unavailable:,} attempts found their replica gone or asleep)"),
        ("tokens in / out", f"{s.input_tokens:,} / {s.output_tokens:,}"),
        ("wall time", f"{s.wall_s:.1f} s" + (f" ({s.paused_s:.1f} s paused)" if s.paused_s else "")),
        ("throughput", f"{s.requests_per_s:,.1f} req/s, {s.output_tokens_per_s:,.0f} out tok/s"),
        ("concurrency", f"{s.concurrency}"),
    ]
    if s.cost_usd is not None:
        rows.append(
            (
                "cost",
                f"${s.cost_usd:.4f} (${s.usd_per_million_tokens or 0:.4f}/Mtok, "
                f"${s.usd_per_million_output_tokens or 0:.4f}/M output tok)",
            )
        )
    for what, value in rows:
        table.add_row(what, value)
    console.print(table)
    if s.unfinished:
        why = outcome.reason or f"{len(outcome.gave_up)} request(s) used up their retries"
        console.print(f"{why}: {s.unfinished:,} left; re-run the same command to send only those.")


# -- detached jobs ----------------------------------------------------------------------------------------
def _child_argv(spec: BatchSpec, job_id: str) -> list[str]:
    argv = [sys.executable, "-m", "llmctl.cli.batch", "run", str(spec.input.resolve())]
    argv += ["--deployment", spec.deployment, "--output", str(spec.output.resolve())]
    for u in spec.urls:
        argv += ["--url", u]
    optional: list[tuple[str, object | None]] = [
        ("--gateway", spec.gateway),
        ("--concurrency", spec.concurrency),
        ("--model", spec.model),
        ("--api-key-env", spec.api_key_env),
        ("--price-per-gpu-hour", spec.price_per_gpu_hour),
        ("--gpus", spec.gpus),
    ]
    argv += [x for flag, value in optional if value is not None for x in (flag, str(value))]
    argv += [
        "--route",
        spec.route,
        "--max-attempts",
        str(spec.max_attempts),
        "--timeout",
        str(spec.timeout_s),
    ]
    argv += ["--pause-timeout", str(spec.pause_timeout_s), "--grace", str(spec.grace_s)]
    if spec.inventory is not None:
        argv += ["--inventory", str(spec.inventory.resolve())]
    if spec.strict:
        argv.append("--strict")
    store_path = spec.state or open_store(None).path
    return [*argv, "--state", str(Path(store_path).resolve()), "--job", job_id]


def _detach(spec: BatchSpec, as_json: bool) -> None:
    store = open_store(spec.state)
    job_id = jobs.new_job_id()
    log = spec.output.resolve().with_name(spec.output.name + ".log")
    argv = _child_argv(spec, job_id)
    jobs.create_job(store, job_id, spec.deployment, spec.input.resolve(), spec.output.resolve(), log, argv)
    pid = jobs.spawn(argv, log)
    jobs.set_running(store, job_id, pid)
    if as_json:
        print_json({"job": job_id, "pid": pid, "output": str(spec.output.resolve()), "log": str(log)})
        return
    console.print(f"started batch job [bold]{job_id}[/] (pid {pid}); output {spec.output}, log {log}")
    console.print(
        f"follow it with `llmctl batch status {job_id}`; stop it with `llmctl batch cancel {job_id}`"
    )


def _run_job(spec: BatchSpec, job_id: str) -> None:
    """The detached process: record progress in the store while running, and the end state after."""
    store = open_store(spec.state)
    jobs.set_running(store, job_id, os.getpid())
    try:
        prep = prepare(spec)
        _warn_malformed(spec, prep.parsed.malformed)
        last = [0.0]

        def tick(c: Counters, elapsed: float) -> None:
            now = time.monotonic()
            if now - last[0] >= 1.0:  # one small write a second is plenty for `status`
                last[0] = now
                jobs.set_progress(store, job_id, c, rate(c.output_tokens, elapsed))

        summary, outcome = asyncio.run(execute(spec, prep, tick))
    except LlmctlError as exc:
        jobs.finish_job(store, job_id, "failed", str(exc).splitlines()[0])
        raise
    state = "cancelled" if outcome.signal is not None else summary.state
    jobs.finish_job(store, job_id, state, outcome.reason, summary.to_json())
    _report(summary, outcome, as_json=False)


def status_command(
    job: str | None = typer.Argument(None, metavar="[JOB]", help="Job id; all jobs when left out."),
    state: Path | None = STATE,
    as_json: bool = JSON,
) -> None:
    """Detached batch jobs and their progress."""
    store = open_store(state)
    found = [jobs.get_job(store, job)] if job else jobs.list_jobs(store)
    views = [_view(j) for j in found]
    if as_json:
        print_json(views[0] if job else views)
        return
    if not views:
        console.print("no batch jobs (start one with `llmctl batch run ... --detach`)")
        return
    table = Table(title="batch jobs")
    for col in ("job", "state", "deployment", "done", "failed", "tok/s", "updated", "output"):
        table.add_column(col, justify="right" if col in ("done", "failed", "tok/s") else "left")
    for v in views:
        table.add_row(
            v["job"],
            v["state"] + (" (paused)" if v["paused"] else ""),
            v["deployment"],
            f"{v['done']:,}/{v['total']:,}",
            f"{v['failed']:,}",
            f"{v['tokens_per_s']:,.0f}",
            f"{v['updated_s_ago']:.0f} s ago",
            v["output"],
        )
    console.print(table)
    if job:
        v = views[0]
        if v["message"]:
            console.print(f"message: {v['message']}")
        console.print(f"log: {v['log']}")
        if v["state"] not in ("running", "starting", "done"):
            console.print(f"resume: {shlex.join(v['command'])}")


def _view(j: jobs.Job) -> dict[str, Any]:
    lines = count_lines(Path(j.output))
    return {
        "job": j.id,
        "state": jobs.effective_state(j),
        "deployment": j.deployment,
        "pid": j.pid,
        "host": j.host,
        "total": j.total,
        "done": max(j.done, min(lines, j.total) if j.total else lines),
        "results_in_output": lines,
        "failed": j.failed,
        "input_tokens": j.input_tokens,
        "output_tokens": j.output_tokens,
        "tokens_per_s": j.tokens_per_s,
        "paused": j.paused,
        "updated_s_ago": round(time.time() - j.updated_at, 1),
        "input": j.input,
        "output": j.output,
        "log": j.log,
        "message": j.message,
        "command": j.argv[: j.argv.index("--job")] if "--job" in j.argv else j.argv,
        "summary": j.summary,
    }


def cancel_command(
    job: str = typer.Argument(..., help="Job id (llmctl batch status)."),
    wait: float = typer.Option(30.0, "--wait", min=0.0, help="Seconds to wait for it to write out and exit."),
    force: bool = typer.Option(False, "--force", help="SIGKILL it when still running after --wait."),
    state: Path | None = STATE,
) -> None:
    """Stop a detached job (SIGTERM): it writes every result it has, so re-running it loses nothing."""
    store = open_store(state)
    found = jobs.get_job(store, job)
    before = jobs.effective_state(found)
    after = jobs.cancel(store, found, wait, force)
    if before not in jobs.ACTIVE:
        console.print(f"batch job {job} is not running ({before})")
        return
    done = count_lines(Path(found.output))
    console.print(f"batch job {job}: {after}; {done:,} results in {found.output}")


app.command("run")(run_command)
app.command("status")(status_command)
app.command("cancel")(cancel_command)


def main() -> None:
    try:
        app()
    except LlmctlError as exc:
        print_error(str(exc))
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
