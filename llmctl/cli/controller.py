"""`llmctl controller`, `llmctl gateway` and `llmctl up`: the long-running parts, in the foreground.

`controller` runs the reconcile loop and (unless --no-gateway) the gateway in one process, so held requests
wake the controller at once; `gateway` runs the gateway alone against the store (the controller then reads
the demand it records); `up PLAYBOOK` applies a playbook, then runs both until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

import typer
from aiohttp import web

from llmctl.cli.common import ACCEPT_NEW, INVENTORY, KNOWN_HOSTS, STATE, fleet_for, open_store
from llmctl.cli.output import console
from llmctl.config.inventory import Inventory, load_inventory
from llmctl.control.controller import Controller, ControllerConfig, Trace
from llmctl.errors import LlmctlError
from llmctl.gateway.in_thread import GatewayThread
from llmctl.gateway.registry import Registry
from llmctl.gateway.request_log import RequestLog, log_path_beside
from llmctl.gateway.server import Gateway, check_bind
from llmctl.gateway.store_sync import StoreSync
from llmctl.state.machine_lock import machine_lock
from llmctl.state.records import writer_lock
from llmctl.state.store import Store

CONTROLLER_BUSY_MS = 500
INTERVAL = typer.Option(2.0, "--interval", help="Seconds between health checks (reconcile ticks).")
MAX_RESTARTS = typer.Option(5, "--max-restarts", help="Restarts of a crashing replica before giving up.")
GATEWAY_HOST = typer.Option("127.0.0.1", "--gateway-host", help="Address the gateway listens on.")
GATEWAY_PORT = typer.Option(8080, "--gateway-port", min=1, max=65535, help="Port the gateway listens on.")


def _log(subject: str, kind: str, reason: str) -> None:
    colour = {"crashed": "red", "gave-up": "bold red", "failed": "red", "scale": "cyan", "ready": "green"}
    console.print(f"[{colour.get(kind, 'dim')}]{kind:<10}[/] {subject}: {reason}", highlight=False)


async def _until_signalled(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


async def _serve_gateway(
    store: Store,
    inv: Inventory | None,
    host: str,
    port: int,
    stop: asyncio.Event,
    on_demand: Callable[[str], None] | None,
) -> Callable[[], Awaitable[None]]:
    registry = Registry(on_demand=on_demand)
    sync = StoreSync(
        store, registry, inv, on_problem=lambda line: console.print(f"[yellow]{line}[/]", highlight=False)
    )
    sync.refresh()
    for name, problem in sorted(sync.refused.items()):
        console.print(f"[yellow]gateway does not serve {name}[/]: {problem}", highlight=False)
    check_bind(host, registry)
    runner = Gateway(registry, request_log=RequestLog(log_path_beside(store.path))).runner()
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        raise LlmctlError(f"gateway cannot listen on {host}:{port}: {exc.strerror}") from None
    task = asyncio.create_task(sync.run(stop))
    console.print(f"gateway on http://{host}:{port}/v1 ({len(registry.deployments)} deployment(s))")

    async def close() -> None:
        registry.close()  # held requests are answered now, not after their hold timeout
        await task
        await runner.cleanup()

    return close


async def run_controller(
    inv: Inventory,
    store: Store,
    config: ControllerConfig,
    gateway: tuple[str, int] | None,
    accept_new: bool = False,
    known_hosts: Path | None = None,
    stop: asyncio.Event | None = None,
    trace: Trace | None = None,
) -> None:
    stop = stop or asyncio.Event()
    await _until_signalled(stop)
    # While someone holds the database locked, a tick fails after this long and is retried; the gateway runs
    # on its own loop in a thread (llmctl.gateway.in_thread), so these waits never stall its requests.
    store.db.execute(f"PRAGMA busy_timeout = {CONTROLLER_BUSY_MS}")
    async with fleet_for(list(inv.hosts), accept_new, known_hosts) as fleet:
        controller = Controller(inv, fleet, store, config, log=_log, trace=trace)
        loop = asyncio.get_running_loop()

        def wake_controller(_deployment: str) -> None:
            loop.call_soon_threadsafe(controller.kick.set)  # called on the gateway's loop

        async def serve(gateway_stop: asyncio.Event) -> Callable[[], Awaitable[None]]:
            assert gateway is not None
            own = Store(store.path)  # a connection of the gateway's thread
            close = await _serve_gateway(own, inv, *gateway, gateway_stop, wake_controller)

            async def close_all() -> None:
                await close()
                own.close()

            return close_all

        gateway_thread = GatewayThread(serve) if gateway else None
        if gateway_thread is not None:
            await gateway_thread.start()
        console.print(f"controller: every {config.interval_s:g} s, state {store.path}; Ctrl-C to stop")
        try:
            await controller.run(stop)
        finally:
            stop.set()
            if gateway_thread is not None:
                await gateway_thread.close()
            await controller.close()


def controller_command(
    inventory: Path = INVENTORY,
    interval: float = INTERVAL,
    max_restarts: int = MAX_RESTARTS,
    gateway: bool = typer.Option(True, "--gateway/--no-gateway", help="Run the gateway in this process."),
    gateway_host: str = GATEWAY_HOST,
    gateway_port: int = GATEWAY_PORT,
    state: Path | None = STATE,
    accept_new_host_keys: bool = ACCEPT_NEW,
    known_hosts: Path | None = KNOWN_HOSTS,
) -> None:
    """Keep replicas healthy and sized: health checks, restarts with backoff, metrics, autoscaling."""
    if interval <= 0 or max_restarts < 0:
        raise LlmctlError("--interval must be positive and --max-restarts at least 0")
    inv = load_inventory(inventory)
    store = open_store(state)
    config = ControllerConfig(interval_s=interval, max_restarts=max_restarts)
    with machine_lock("controller", store.path), writer_lock(store, "controller"):
        asyncio.run(
            run_controller(
                inv,
                store,
                config,
                (gateway_host, gateway_port) if gateway else None,
                accept_new_host_keys,
                known_hosts,
            )
        )


def gateway_command(
    inventory: Path | None = typer.Option(
        None, "-i", "--inventory", help="Inventory (to reach local replicas)."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8080, "--port", min=1, max=65535, help="Port to listen on."),
    state: Path | None = STATE,
) -> None:
    """Run only the OpenAI-compatible gateway, routing to the ready replicas the store lists."""
    inv = load_inventory(inventory) if inventory else None
    store = open_store(state)

    async def go() -> None:
        stop = asyncio.Event()
        await _until_signalled(stop)
        close = await _serve_gateway(store, inv, host, port, stop, None)
        await stop.wait()
        await close()

    asyncio.run(go())
