"""`llmctl controller` runs the gateway on its own event loop: a reconcile tick blocked in SQLite's busy wait
(another process holds the store locked) no longer stalls /health or requests in the same process."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from llmctl.cli.controller import run_controller
from llmctl.config.inventory import load_inventory
from llmctl.control.controller import Controller, ControllerConfig
from llmctl.state.store import Store
from llmctl.testing.local_fleet import free_port

BLOCK_S = 1.0  # as long as a tick waits on a locked store (twice the controller's busy timeout)


def _poll(url: str, until: float) -> list[float]:
    took = []
    with httpx.Client(timeout=10) as client:
        while time.monotonic() < until:
            t = time.monotonic()
            assert client.get(url).status_code == 200
            took.append(time.monotonic() - t)
            time.sleep(0.02)
    return took


async def test_a_blocked_tick_does_not_stall_the_gateway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inventory = tmp_path / "inv.yaml"
    inventory.write_text("hosts:\n  box: {connection: local}\n")
    store = Store(tmp_path / "state.db")
    ticks: list[float] = []
    real_tick = Controller.tick

    async def blocked_tick(self: Controller) -> None:
        ticks.append(time.monotonic())
        time.sleep(BLOCK_S)  # what sqlite3's busy wait does to the thread that calls it
        await real_tick(self)

    monkeypatch.setattr(Controller, "tick", blocked_tick)
    port, stop = free_port(), asyncio.Event()
    config = ControllerConfig(interval_s=0.05)
    task = asyncio.create_task(
        run_controller(load_inventory(inventory), store, config, ("127.0.0.1", port), stop=stop)
    )
    url = f"http://127.0.0.1:{port}/health"
    while not ticks:
        await asyncio.sleep(0.05)
    took = await asyncio.to_thread(_poll, url, time.monotonic() + 3 * BLOCK_S)
    stop.set()
    await asyncio.wait_for(task, timeout=30)
    assert len(ticks) >= 2  # the controller kept ticking, blocked most of the time
    # On the shared loop, polls landing in a blocked tick waited up to BLOCK_S.
    assert max(took) < BLOCK_S / 2, sorted(took)[-3:]
