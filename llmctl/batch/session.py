"""One batch run from start to summary, without the terminal: read and check the input, find the replicas
and size concurrency, open the output (the checkpoint), run, summarise. The CLI adds progress display and
detaching; tests and the benchmark call this directly."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from llmctl.batch.inputs import ParsedInput, mean_tokens, parse_lines
from llmctl.batch.outfile import OutputFile
from llmctl.batch.runner import BatchRunner, Outcome, RunOptions
from llmctl.batch.sizing import Sizing, size_concurrency
from llmctl.batch.summary import Cost, Counters, Summary, summarise
from llmctl.batch.target import Target, from_store, refresher
from llmctl.config.inventory import Inventory, load_inventory
from llmctl.errors import LlmctlError
from llmctl.state.store import Store


@dataclass
class BatchSpec:
    input: Path
    output: Path
    deployment: str
    urls: list[str] = field(default_factory=list)  # replica base URLs; empty: from the state store
    gateway: str | None = None  # send everything through this llmctl gateway instead
    concurrency: int | None = None  # None: sized from the performance model
    route: str = "least_outstanding"
    model: str | None = None  # served model name put in each body; None: the deployment name
    strict: bool = False
    max_attempts: int = 8
    timeout_s: float = 600.0
    pause_timeout_s: float = 600.0
    grace_s: float = 10.0
    api_key_env: str | None = None
    price_per_gpu_hour: float | None = None
    gpus: int | None = None
    inventory: Path | None = None
    state: Path | None = None


@dataclass
class Prepared:
    parsed: ParsedInput
    target: Target
    sizing: Sizing
    api_key: str | None
    store: Store
    inventory: Inventory | None


def read_input(path: Path, strict: bool) -> ParsedInput:
    """Parse the input; duplicates always refuse the run, malformed lines only with `strict`."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            parsed = parse_lines(f)
    except FileNotFoundError:
        raise LlmctlError(f"{path}: no such input file") from None
    except OSError as exc:
        raise LlmctlError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if parsed.duplicates:
        raise LlmctlError(
            f"{len(parsed.duplicates)} duplicate custom_id(s); each request needs its own:\n"
            + parsed.describe(str(path), parsed.duplicates)
        )
    if strict and parsed.malformed:
        raise LlmctlError(
            f"{len(parsed.malformed)} malformed line(s) (--strict; nothing was sent):\n"
            + parsed.describe(str(path), parsed.malformed)
        )
    if not parsed.requests:
        raise LlmctlError(f"{path}: no valid requests")
    return parsed


def _inventory(path: Path | None) -> Inventory | None:
    if path is None or not path.exists():
        return None
    return load_inventory(path)


def prepare(spec: BatchSpec) -> Prepared:
    parsed = read_input(spec.input, spec.strict)
    inventory = _inventory(spec.inventory)
    store = Store(spec.state)
    stored = from_store(store, spec.deployment, inventory)
    if stored is None and not (spec.urls or spec.gateway):
        raise LlmctlError(
            f"deployment {spec.deployment!r} is not in the state store ({store.path}); "
            "apply it first, or give replica URLs with --url (or the gateway with --gateway)"
        )
    target = stored or Target(spec.deployment, [])
    if spec.gateway:
        target.urls = [spec.gateway.rstrip("/")]
    elif spec.urls:
        target.urls = [u.rstrip("/") for u in spec.urls]
    if spec.gpus is not None:
        target.gpus = spec.gpus
    if spec.price_per_gpu_hour is not None:
        target.price_per_gpu_hour = spec.price_per_gpu_hour
    sizing = size_concurrency(target.shapes, mean_tokens(parsed.requests), override=spec.concurrency)
    key_env = spec.api_key_env or target.api_key_env
    api_key = None
    if key_env:
        api_key = os.environ.get(key_env)
        if not api_key:
            raise LlmctlError(f"the API key variable {key_env} is not set")
    return Prepared(parsed, target, sizing, api_key, store, inventory)


Tick = Callable[[Counters, float], None]


async def execute(
    spec: BatchSpec, prep: Prepared, on_tick: Tick | None = None, tick_s: float = 0.5
) -> tuple[Summary, Outcome]:
    """Run what the output does not hold yet; returns the summary of this run."""
    output = OutputFile(spec.output)
    checkpoint = output.open()
    try:
        wanted = {r.custom_id for r in prep.parsed.requests}
        todo = [r for r in prep.parsed.requests if r.custom_id not in checkpoint.done]
        counters = Counters(
            total=len(prep.parsed.requests),
            already_done=sum(1 for cid in checkpoint.done if cid in wanted),
        )
        options = RunOptions(
            concurrency=prep.sizing.concurrency,
            model=spec.model or spec.deployment,
            route=spec.route,
            timeout_s=spec.timeout_s,
            max_attempts=spec.max_attempts,
            pause_timeout_s=spec.pause_timeout_s,
            grace_s=spec.grace_s,
            api_key=prep.api_key,
        )
        refresh = None
        if prep.target.in_store and not (spec.urls or spec.gateway):
            refresh = refresher(prep.store, spec.deployment, prep.inventory)
        runner = BatchRunner(
            prep.target.urls, options, output, counters, refresh=refresh, keys=prep.target.keys
        )
        started = time.monotonic()
        ticker = None
        if on_tick is not None:
            ticker = asyncio.create_task(_tick(on_tick, counters, started, tick_s))
        runner.install_signal_handlers()
        try:
            outcome = await runner.run(todo)
        finally:
            runner.remove_signal_handlers()
            if ticker is not None:
                ticker.cancel()
        wall = time.monotonic() - started
        if on_tick is not None:
            on_tick(counters, wall)
    finally:
        output.close()
    t = prep.target
    cost = Cost(t.gpus, t.price_per_gpu_hour) if t.gpus and t.price_per_gpu_hour is not None else None
    summary = summarise(
        counters,
        deployment=spec.deployment,
        input_path=str(spec.input),
        output_path=str(spec.output),
        wall_s=wall,
        interrupted=outcome.interrupted,
        malformed=prep.parsed.malformed,
        concurrency=prep.sizing.concurrency,
        concurrency_reason=prep.sizing.reason,
        cost=cost,
    )
    return summary, outcome


async def _tick(on_tick: Tick, counters: Counters, started: float, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        on_tick(counters, time.monotonic() - started)
