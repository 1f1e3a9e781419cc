"""`llmctl demo`: the whole product on one machine with no GPU and no SSH.

Rolls out playbooks/local-demo.yaml (online, offline and semi-online deployments) on inventory/local.yaml
with emulated engines, runs the controller and the gateway, sends Poisson traffic to every deployment
through the gateway, then shows latency, replica status and the controller's events. Emulated time runs
faster than real time (--time-scale) so cold starts take seconds, not minutes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

import llmctl
from llmctl.bench.load import Outcome, poisson_schedule, run_load, summarise
from llmctl.cli.controller import run_controller
from llmctl.cli.output import console
from llmctl.cli.rollout import record_apply, record_stop, settle_apply, settle_stop, show_status
from llmctl.config.inventory import Inventory, load_inventory
from llmctl.control.controller import ControllerConfig
from llmctl.engines.emulated import TIME_SCALE_ENV
from llmctl.errors import LlmctlError
from llmctl.planning import plan_and_desired
from llmctl.spec.deployment import DesiredDeployment
from llmctl.state.desired import load_desired
from llmctl.state.machine_lock import machine_lock
from llmctl.state.records import events, replicas, writer_lock
from llmctl.state.store import Store, default_path

SOURCE_ROOT = Path(llmctl.__file__).resolve().parents[1]


def _shipped(relative: str) -> Path:
    here = Path(relative)
    return here if here.exists() else SOURCE_ROOT / relative


def demo_command(
    playbook: Path = typer.Option(None, help="Playbook (default playbooks/local-demo.yaml)."),
    inventory: Path = typer.Option(
        None, "-i", "--inventory", help="Inventory (default inventory/local.yaml)."
    ),
    duration: float = typer.Option(15.0, help="Seconds of traffic per deployment."),
    rate: float = typer.Option(3.0, help="Requests per second per deployment (Poisson)."),
    time_scale: float = typer.Option(0.05, help="Emulated seconds per real second (1 = real time)."),
    gateway_port: int = typer.Option(8080, "--gateway-port", help="Port of the gateway."),
    keep: bool = typer.Option(
        False, "--keep", help="Leave replicas running (stop them with llmctl stop --all)."
    ),
    state: Path | None = typer.Option(
        None, "--state", help="State store (default: demo.db beside the usual one)."
    ),
    tui: bool | None = typer.Option(
        None, "--tui/--no-tui", help="End in the live dashboard (default: when run in a terminal)."
    ),
) -> None:
    """Roll out the local demo, run the controller and gateway, send traffic, show what happened."""
    if duration <= 0 or rate <= 0 or time_scale <= 0:
        raise LlmctlError("--duration, --rate and --time-scale must be positive")
    os.environ[TIME_SCALE_ENV] = str(time_scale)
    pb = playbook or _shipped("playbooks/local-demo.yaml")
    inv = load_inventory(inventory or _shipped("inventory/local.yaml"))
    store = Store(state or default_path().with_name("demo.db"))
    _plan, desired = plan_and_desired(pb, inv)
    console.rule(f"[bold]1. apply[/] {pb} on {inv.file} (emulated engines, time x{time_scale:g})")
    with writer_lock(store):
        _apply(inv, store, desired)
    console.rule("[bold]2. controller + gateway[/], traffic through the gateway")
    with machine_lock("controller", store.path), writer_lock(store, "controller"):
        asyncio.run(_operate(inv, store, gateway_port, duration, rate))
    console.rule("[bold]3. status[/]")
    show_status(replicas(store))
    recent = events(store, 0, 15)
    table = Table(title="latest events (llmctl events)", title_justify="left")
    for col in ("time", "subject", "kind", "reason"):
        table.add_column(col, overflow="fold")
    for e in recent:
        table.add_row(time.strftime("%H:%M:%S", time.localtime(e.at)), e.subject, e.kind, e.reason)
    console.print(table)
    if tui if tui is not None else (sys.stdin.isatty() and sys.stdout.isatty()):
        _dashboard(inv, store, gateway_port, rate)
    if not keep:
        _stop_all(inv, store)
        console.print("replicas stopped (pass --keep to leave them running)")
    console.print(f"state store: {store.path}")


def _apply(inv: Inventory, store: Store, desired: list[DesiredDeployment]) -> None:
    result = settle_apply(inv, store, record_apply(store, desired), 300.0, False, None)
    if not result.ok:
        raise LlmctlError(result.detail)


async def _operate(inv: Inventory, store: Store, port: int, duration: float, rate: float) -> None:
    stop = asyncio.Event()
    controller = asyncio.create_task(
        run_controller(inv, store, ControllerConfig(interval_s=1.0), ("127.0.0.1", port), stop=stop)
    )
    await asyncio.sleep(1.0)  # let the gateway bind before traffic
    if controller.done():
        await controller  # raises what stopped it (e.g. the port is taken)
    url = f"http://127.0.0.1:{port}"
    names = sorted(load_desired(store))
    schedules = {n: poisson_schedule(rate, duration, 256, 64, seed=i) for i, n in enumerate(names)}
    with Progress(
        TextColumn("[bold]{task.description}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        tasks = {n: progress.add_task(n, total=len(s)) for n, s in schedules.items()}

        async def send(name: str) -> tuple[str, list[Outcome], float]:
            def done(_: Outcome) -> None:
                progress.advance(tasks[name])

            outcomes, wall = await run_load(url, name, schedules[name], on_done=done)
            return name, outcomes, wall

        results = await asyncio.gather(*(send(n) for n in names))
    stop.set()
    await controller
    table = Table(title=f"traffic through the gateway ({url}/v1)", title_justify="left")
    for col in ("deployment", "ok", "TTFT p50 ms", "TTFT p99 ms", "ITL p50 ms", "e2e p99 ms"):
        table.add_column(col, justify="left" if col == "deployment" else "right")
    for name, outcomes, wall in results:
        s = summarise(outcomes, wall)
        ttft, itl, e2e = s["ttft_s"], s["itl_s"], s["e2e_s"]
        assert isinstance(ttft, dict) and isinstance(itl, dict) and isinstance(e2e, dict)
        table.add_row(
            name,
            f"{s['succeeded']}/{s['requests']}",
            f"{ttft['p50'] * 1000:.1f}",
            f"{ttft['p99'] * 1000:.1f}",
            f"{itl['p50'] * 1000:.2f}",
            f"{e2e['p99'] * 1000:.1f}",
        )
    console.print(table)
    console.print(
        "[dim]timings are emulated time scaled by --time-scale; `llmctl perf show` gives real-time figures[/]"
    )


def _dashboard(inv: Inventory, store: Store, port: int, rate: float) -> None:
    """The live dashboard over the running demo: the controller and a trickle of traffic run as processes
    beside it (as they would on a real deployment) until the dashboard is closed."""
    from llmctl.tui.app import DashboardApp

    llmctl = [sys.executable, "-m", "llmctl.cli.main"]
    controller = subprocess.Popen(
        [*llmctl, "controller", "-i", inv.file, "--state", str(store.path), "--gateway-port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    traffic = [
        subprocess.Popen(
            [
                *llmctl,
                "load",
                f"http://127.0.0.1:{port}",
                "--model",
                name,
                "--rate",
                str(rate / 2),
                "--duration",
                "86400",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name in sorted(load_desired(store))
    ]
    try:
        DashboardApp(store.path, inventory=Path(inv.file), refresh_s=1.0).run()
    finally:
        for p in [*traffic, controller]:
            p.send_signal(signal.SIGTERM)
        for p in [*traffic, controller]:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


def _stop_all(inv: Inventory, store: Store) -> None:
    names = set(load_desired(store))
    if names:
        settle_stop(inv, store, record_stop(store, names), 120.0, False, None)
