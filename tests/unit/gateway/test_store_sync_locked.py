"""The gateway's store sync under a locked or failing store: passes run in a worker thread, so the event loop
(requests, /health) never waits on SQLite, and a failing pass is said once and retried, never the end of the
task. Old code: refresh ran on the event loop (sqlite's 10 s busy wait stalled /health 7.5-9.6 s) and the
first exception ended the sync task silently, its routes frozen from then on."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from llmctl.gateway.registry import Registry
from llmctl.gateway.store_sync import StoreSync
from llmctl.spec.deployment import DesiredDeployment, ScalingSpec
from llmctl.state.desired import put_desired
from llmctl.state.store import Store


def dep(name: str) -> DesiredDeployment:
    return DesiredDeployment(
        name,
        "online",
        "vllm",
        "least_outstanding",
        None,
        ScalingSpec(1, 1, "in_flight", 4, 60),
        30.0,
        2.0,
        False,
        1,
    )


async def test_a_locked_store_never_stalls_the_event_loop(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    put_desired(store, dep("chat"))
    sync = StoreSync(store, Registry(), on_problem=lambda line: None)
    stop = asyncio.Event()
    task = asyncio.create_task(sync.run(stop, interval_s=0.05))
    holder = sqlite3.connect(store.path, isolation_level=None)
    gaps: list[float] = []
    try:
        await asyncio.sleep(0.3)
        assert "chat" in sync.registry.deployments
        holder.execute("BEGIN IMMEDIATE")  # a writer holds the lock: the sync's demand write must wait
        last = time.monotonic()
        for _ in range(40):  # 2 s of a heartbeat every 50 ms
            await asyncio.sleep(0.05)
            now = time.monotonic()
            gaps.append(now - last)
            last = now
        holder.execute("COMMIT")
        put_desired(store, dep("new"))
        for _ in range(100):
            if "new" in sync.registry.deployments:
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task
        holder.close()
    assert max(gaps) < 0.5, max(gaps)
    assert "new" in sync.registry.deployments  # the task lived through it and caught up


async def test_a_failing_pass_is_said_once_and_the_next_one_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path / "s.db")
    put_desired(store, dep("chat"))
    said: list[str] = []
    sync = StoreSync(store, Registry(), on_problem=said.append)
    real = sync._read
    failures = iter([True, True, True])

    def flaky(s: Store):  # type: ignore[no-untyped-def]
        if next(failures, False):
            raise sqlite3.OperationalError("database is locked")
        return real(s)

    monkeypatch.setattr(sync, "_read", flaky)
    stop = asyncio.Event()
    task = asyncio.create_task(sync.run(stop, interval_s=0.02))
    for _ in range(200):
        if "chat" in sync.registry.deployments:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await task
    assert "chat" in sync.registry.deployments
    assert said == [
        "gateway: store sync failed, retrying: OperationalError: database is locked",
        "gateway: store sync recovered",
    ]
