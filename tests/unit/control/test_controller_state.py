"""State the controller keeps, right across restarts and surprises (issue: one controller, two drivers):
the restart budget counts consecutive failures; a restarted controller never wakes a scaled-to-zero
deployment; a host missing from the inventory orphans its replicas and the controller goes on; a tick runs
while an apply holds its lock; intents are checked by one rule set for the CLI, the TUI and the controller."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from llmctl.config.inventory import Host, Inventory
from llmctl.control.controller import Controller, ControllerConfig
from llmctl.errors import LlmctlError
from llmctl.fleet.pool import Fleet
from llmctl.reconcile.actions import Start
from llmctl.reconcile.restart import RestartPolicy
from llmctl.spec.deployment import DesiredDeployment, ScalingSpec, Slot
from llmctl.state.desired import put_desired
from llmctl.state.intents import pending, submit
from llmctl.state.records import ReplicaRow, events, put_replica, replicas, writer_lock
from llmctl.state.store import Store


def dep(min_r: int = 0, slots: int = 2, idle: float = 60.0) -> DesiredDeployment:
    return DesiredDeployment(
        name="chat",
        workload="semi-online",
        flavour="vllm",
        route="least_outstanding",
        api_key_env=None,
        scaling=ScalingSpec(min_r, slots, "in_flight", 4, idle),
        cold_start_s=30.0,
        wake_s=2.0,
        sleep_mode=False,
        initial=1,
        slots=tuple(
            Slot(f"chat-{i}", "box", "127.0.0.1", (i,), 8000 + i, ("engine",), {}, "h", "emulated")
            for i in range(slots)
        ),
    )


def row(name: str, phase: str, host: str = "box", **extra: object) -> ReplicaRow:
    return ReplicaRow(name, "chat", host, "127.0.0.1", "0", 8000, 4242, phase, "h", 0.0, 0, "").with_(**extra)


def controller(tmp_path: Path, store: Store, config: ControllerConfig | None = None) -> Controller:
    host = Host(name="box", connection="local", workdir=str(tmp_path / "w"))
    return Controller(Inventory(file="inv.yaml", hosts=(host,)), Fleet([host]), store, config)


def test_the_restart_budget_counts_consecutive_failures_and_backs_off() -> None:
    p = RestartPolicy(max_restarts=3, backoff_base_s=1.0, backoff_cap_s=4.0, stable_after_s=300.0)
    assert [p.delay(n) for n in (1, 2, 3, 4)] == [0.0, 1.0, 2.0, None]
    assert RestartPolicy(max_restarts=9, backoff_cap_s=4.0).delay(8) == 4.0
    assert p.failures_now(3, ready_for_s=301.0) == 0  # a while ready: the count starts over
    assert p.failures_now(3, ready_for_s=10.0) == 3 and p.failures_now(3, None) == 3


async def test_five_separate_crashes_a_while_apart_never_add_up_to_giving_up(tmp_path: Path) -> None:
    # Old code: `restarts` counted lifetime restarts, and the sixth kill -9 met "restarted 5 times already".
    store = Store(tmp_path / "s.db")
    put_desired(store, dep(min_r=1))
    c = controller(tmp_path, store)
    restarted: list[str] = []

    async def restart(d: DesiredDeployment, r: ReplicaRow, why: str) -> ReplicaRow:
        restarted.append(r.name)
        return r

    c.actuator.restart = restart  # type: ignore[method-assign,assignment]
    long_ago = time.time() - 3600
    for n in range(6):
        healed = row("chat-0", "ready", failures=min(n, 1), restarts=n, ready_since=long_ago)
        put_replica(store, healed)
        await c._crashed(healed, dep(min_r=1), "process exited 4242", read_log=False)
    kinds = [e.kind for e in events(store) if e.subject == "chat-0"]
    assert kinds == ["crashed"] * 6 and len(restarted) == 6
    assert all("restart 1/5 now" in e.reason for e in events(store))
    await c.close()


async def test_a_crash_loop_gives_up_after_the_budget(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    put_desired(store, dep(min_r=1))
    c = controller(tmp_path, store, ControllerConfig(max_restarts=2))
    crashing = row("chat-0", "starting", failures=2, restarts=2)
    put_replica(store, crashing)
    await c._crashed(crashing, dep(min_r=1), "process exited 4242", read_log=False)
    [gave_up] = [e for e in events(store) if e.kind == "gave-up"]
    assert "failed 3 times in a row" in gave_up.reason and replicas(store)[0].phase == "failed"
    await c.close()


async def test_a_restarted_controller_keeps_a_scaled_to_zero_deployment_at_zero(tmp_path: Path) -> None:
    # Old code: the idle clock started at controller start, so a restart kept one replica for the idle timeout.
    store = Store(tmp_path / "s.db")
    put_desired(store, dep(min_r=0, idle=60.0))
    store.db.execute("UPDATE deployments SET applied_at = ?", (time.time() - 3600,))
    c = controller(tmp_path, store)
    started: list[object] = []

    async def carry_out(d: DesiredDeployment, actions: list[object], desired: object) -> None:
        started.extend(a for a in actions if isinstance(a, Start))

    c.actuator.carry_out = carry_out  # type: ignore[method-assign,assignment]
    await c._reconcile(dep(min_r=0, idle=60.0), {"chat": dep(min_r=0, idle=60.0)})
    assert started == []
    # A deployment applied just now counts as just used: it keeps one replica for the idle timeout.
    store.db.execute("UPDATE deployments SET applied_at = ?", (time.time(),))
    c.memory.scalers.clear()
    await c._reconcile(dep(min_r=0, idle=60.0), {"chat": dep(min_r=0, idle=60.0)})
    assert [getattr(a, "slot", None) for a in started] == ["chat-0"]
    await c.close()


async def test_a_host_gone_from_the_inventory_orphans_its_replicas_and_the_controller_goes_on(
    tmp_path: Path,
) -> None:
    # Old code: "no host named 'gpu-7'" ended the controller at start; nothing else was managed.
    store = Store(tmp_path / "s.db")
    put_desired(store, dep(min_r=1, slots=1))
    put_replica(store, row("chat-0", "ready", host="gpu-7"))
    c = controller(tmp_path, store)
    await c.adopt()
    await c.tick()
    [orphan] = replicas(store)
    assert orphan.phase == "orphaned" and "'gpu-7' is not in the inventory" in orphan.reason
    assert [e.kind for e in events(store) if e.subject == "chat-0"] == ["orphaned"]
    await c.tick()  # said once; still no exception
    assert [e.kind for e in events(store)].count("orphaned") == 1
    await c.close()


async def test_a_tick_runs_while_an_apply_holds_its_lock(tmp_path: Path) -> None:
    # Old code: every tick was skipped while `llmctl apply` held the lock (up to 900 s of readiness waits).
    store = Store(tmp_path / "s.db")
    put_desired(store, dep(min_r=1, slots=1))
    put_replica(store, row("chat-0", "failed", host="gpu-7"))
    c = controller(tmp_path, store)
    with writer_lock(store):
        await c.tick()
    assert replicas(store)[0].phase == "orphaned"
    await c.close()


def test_intents_are_checked_by_one_rule_set_before_they_are_queued(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    put_desired(store, dep(min_r=1, slots=2))
    put_replica(store, row("chat-0", "ready"))
    with pytest.raises(LlmctlError, match=r"pick 0\.\.2"):
        submit(store, "scale", "chat", "7")
    with pytest.raises(LlmctlError, match="whole number or 'auto'"):
        submit(store, "scale", "chat", "many")
    with pytest.raises(LlmctlError, match="without sleep mode"):
        submit(store, "sleep", "chat-0")
    with pytest.raises(LlmctlError, match="not sleeping"):
        submit(store, "wake", "chat-0")
    assert pending(store) == []
    submit(store, "scale", "chat", "2")
    assert [i.kind for i in pending(store)] == ["scale"]


async def test_policies_get_monotonic_time_and_a_schedule_still_reads_the_time_of_day(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The wall clock says 09:00 UTC; the monotonic clock says 5 s since boot. The schedule must scale to its
    # 08:00 step (3), and the policy's windows run on the monotonic clock.
    from dataclasses import replace

    from llmctl.control import controller as module

    class Clock:
        def time(self) -> float:
            return 20_000 * 86_400.0 + 9 * 3600.0

        def monotonic(self) -> float:
            return 5.0

    monkeypatch.setattr(module, "time", Clock())
    scheduled = replace(
        dep(min_r=1, slots=3),
        scaling=ScalingSpec(1, 3, "schedule", 1, 300, schedule=((8 * 3600.0, 3), (20 * 3600.0, 1))),
    )
    store = Store(tmp_path / "s.db")
    put_desired(store, scheduled)
    c = controller(tmp_path, store)
    (at, obs), decision = c._decide(scheduled, [], None)
    assert at == 5.0 and obs.clock_s == Clock().time()
    assert decision is not None and decision.target == 3 and "schedule at 9.00 h says 3" in decision.reason
    await c.close()


async def test_a_corrupt_deployment_row_is_quarantined_and_the_rest_managed(tmp_path: Path) -> None:
    # Old code: json.loads in load_desired raised JSONDecodeError and ended the controller (and the gateway).
    from dataclasses import replace

    from llmctl.gateway.registry import Registry
    from llmctl.gateway.store_sync import StoreSync

    store = Store(tmp_path / "s.db")
    put_desired(store, dep(min_r=1, slots=1))
    put_desired(store, replace(dep(min_r=1, slots=1), name="other", slots=()))
    put_replica(store, row("chat-0", "ready", host="gpu-7"))
    sync = StoreSync(store, Registry())
    sync.refresh()
    assert set(sync.registry.deployments) == {"chat", "other"}
    store.db.execute("UPDATE deployments SET spec = '{not json' WHERE name = 'chat'")
    c = controller(tmp_path, store)
    await c.tick()
    await c.tick()
    said = [e for e in events(store) if e.kind == "quarantined"]
    assert len(said) == 1 and said[0].subject == "chat" and "not valid JSON" in said[0].reason
    assert replicas(store)[0].phase == "ready"  # left alone: not orphaned, not stopped
    sync.refresh()  # the gateway keeps chat's routes and goes on with the rest
    assert set(sync.registry.deployments) == {"chat", "other"}
    put_desired(store, dep(min_r=1, slots=1))
    await c.tick()
    assert [e.kind for e in events(store) if e.subject in ("chat", "chat-0")][-2:] == ["readable", "orphaned"]
    await c.close()


async def test_a_tick_against_a_locked_store_fails_and_the_controller_goes_on(tmp_path: Path) -> None:
    # Old code: sqlite3.OperationalError "database is locked" ended the controller (at 35 s in the report).
    import sqlite3

    store = Store(tmp_path / "s.db")
    put_desired(store, dep(min_r=1, slots=1))
    put_replica(store, row("chat-0", "ready", host="gpu-7"))
    store.db.execute("PRAGMA busy_timeout = 100")
    said: list[tuple[str, str, str]] = []
    host = Host(name="box", connection="local", workdir=str(tmp_path / "w"))
    c = Controller(
        Inventory(file="inv.yaml", hosts=(host,)), Fleet([host]), store, log=lambda *e: said.append(e)
    )
    holder = sqlite3.connect(store.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        await c.safe_tick()
    finally:
        holder.execute("COMMIT")
        holder.close()
    assert said and said[-1][1] == "tick-failed" and "database is locked" in said[-1][2]
    await c.safe_tick()  # the lock is gone: the next tick does its work
    assert replicas(store)[0].phase == "orphaned"
    await c.close()
