"""The dashboard's view of GPU pools (issue #18), derived without a store or a screen: desired deployments and
replica rows -> each pool's GPUs, holders, members, free GPUs and sleepers; events -> each pool's latest
decisions; and the fleet screen's cells made of them."""

from __future__ import annotations

from dataclasses import replace

from rich.text import Text

from llmctl.pool import Grant, PoolGpu, Reason, Refuse
from llmctl.spec.deployment import DesiredDeployment, ScalingSpec, Slot
from llmctl.state.records import Event, ReplicaRow
from llmctl.tui.data import GpuView
from llmctl.tui.pools import PoolSeat, is_pool_event, pool_views
from llmctl.tui.screens.fleet import holder_cell, host_pool_events, member_text, pool_row


def dep(
    name: str,
    pool: str | None,
    priority: int = 0,
    lo: int = 0,
    hi: int = 2,
    host: str = "box",
    workload: str = "online",
    weight: float = 1.0,
) -> DesiredDeployment:
    slots = tuple(
        Slot(f"{name}-{g}", host, "127.0.0.1", (g,), 22000 + g, ("engine",), {}, "h", "emulated")
        for g in range(4)
    )
    return DesiredDeployment(
        name=name, workload=workload, flavour="vllm", route="least_outstanding",
        api_key_env=None, scaling=ScalingSpec(lo, hi, "in_flight", 4, 300), cold_start_s=5.0, wake_s=1.0,
        sleep_mode=True, initial=0, slots=slots, pool=pool, pool_priority=priority,
        pool_weight=weight,
    )  # fmt: skip


def row(name: str, phase: str, host: str = "box") -> ReplicaRow:
    deployment, gpu = name.rsplit("-", 1)
    return ReplicaRow(name, deployment, host, "127.0.0.1", gpu, 22000, 1, phase, "h", 0.0, 0, "")


def event(i: int, kind: str, pool: str | None, subject: str = "chat") -> Event:
    data: dict[str, object] = {} if pool is None else {"pool": pool, "tenant": subject, "reason": "target"}
    return Event(i, 1000.0 + i, subject, kind, f"{kind} #{i}", data)


CHAT, BURST = dep("chat", "a", priority=2, lo=1, hi=4), dep("burst", "a", priority=1, lo=0, hi=1)
HELD = [row("chat-0", "ready"), row("chat-1", "ready"), row("chat-2", "ready"), row("burst-3", "sleeping")]


def test_a_fleet_without_pools_has_no_pool_view() -> None:
    assert pool_views([dep("solo", None)], [row("solo-0", "ready")], [event(1, "pool-grant", "a")]) == ()


def test_two_tenants_one_holding_three_gpus_one_asleep_on_the_last() -> None:
    (pool,) = pool_views([BURST, CHAT, dep("solo", None)], HELD)
    assert pool.name == "a" and pool.hosts == ("box",)
    assert [(s.key, s.replica, s.phase) for s in pool.seats] == [
        ("box:0", "chat-0", "ready"),
        ("box:1", "chat-1", "ready"),
        ("box:2", "chat-2", "ready"),
        ("box:3", "burst-3", "sleeping"),
    ]
    assert (pool.held, pool.free) == (4, ())
    assert [(s.replica, s.deployment, s.gpus) for s in pool.asleep] == [("burst-3", "burst", ("box:3",))]
    # Ranked as the allocator ranks them: the higher priority first.
    assert [(m.name, m.priority, m.min_replicas, m.max_replicas, m.gpus, m.asleep) for m in pool.members] == [
        ("chat", 2, 1, 4, 3, 0),
        ("burst", 1, 0, 1, 1, 1),
    ]
    assert pool.members[0].replicas == ("chat-0", "chat-1", "chat-2")
    assert pool.seat("box", 3) == PoolSeat("a", "box", 3, "burst", "burst-3", "sleeping")
    assert pool.seat("box", 9) is None


def test_a_stopped_replica_frees_its_gpu_and_a_draining_one_still_holds_it() -> None:
    rows = [row("chat-0", "ready"), row("chat-1", "draining"), row("burst-3", "stopped")]
    (pool,) = pool_views([CHAT, BURST], rows)
    assert [(s.key, s.replica) for s in pool.seats if s.replica] == [("box:0", "chat-0"), ("box:1", "chat-1")]
    assert pool.free == ("box:2", "box:3") and pool.asleep == ()
    assert [(m.name, m.replicas) for m in pool.members] == [("chat", ("chat-0", "chat-1")), ("burst", ())]


def test_a_stopped_member_is_no_tenant_but_keeps_what_it_holds_and_backfill_ranks_last() -> None:
    batch = dep("batch", "a", priority=9, workload="offline")
    (pool,) = pool_views([replace(CHAT, stopped=True), BURST, batch], [row("chat-0", "ready")])
    assert [(m.name, m.tenant, m.backfill, m.gpus) for m in pool.members] == [
        ("chat", False, False, 1),
        ("burst", True, False, 0),
        ("batch", True, True, 0),
    ]


def test_each_pool_keeps_its_own_latest_decisions_named_in_their_data() -> None:
    evs = [
        event(1, "pool-grant", "a"),
        event(2, "pool-refuse", "b"),
        event(3, "ready", None),  # not a pool decision
        event(4, "pool-wait", None),  # a pool kind without its data (never parsed out of the words)
        event(5, "pool-preempt", "a", subject="burst-3"),
        event(6, "pool-grant", "a"),
    ]
    assert [is_pool_event(e) for e in evs] == [True, True, False, False, True, True]
    other = dep("other", "b", host="far")
    assert [e.id for e in pool_views([CHAT], [], evs)[0].events] == [1, 5, 6]
    assert pool_views([CHAT], [], evs, limit=0)[0].events == ()
    pools = pool_views([CHAT, other], [], evs, limit=2)
    assert [(p.name, [e.id for e in p.events]) for p in pools] == [("a", [5, 6]), ("b", [2])]
    assert [e.id for e in host_pool_events(pools, "box", 5)] == [5, 6]
    assert [e.id for e in host_pool_events(pools, "far", 5)] == [2]
    assert host_pool_events(pools, "nowhere", 5) == []


def test_the_pool_events_the_controller_writes_are_recognised() -> None:
    from llmctl.control.pools import event_of

    gpus = (PoolGpu("box", 2),)
    for decision in (Grant("chat", gpus, Reason.TARGET, "up"), Refuse("chat", 1, Reason.POOL_FULL, "full")):
        subject, kind, reason, data = event_of("a", decision, "chat-2")
        assert is_pool_event(Event(1, 0.0, subject, kind, reason, data))


def test_fleet_cells_of_a_pool() -> None:
    (pool,) = pool_views([CHAT, BURST], HELD)
    chat, burst = pool.members
    assert (member_text(chat), member_text(burst)) == ("chat p2 3/1-4", "burst p1 1/0-1")
    batch = dep("batch", "a", weight=2.5, workload="offline")
    (stopped,) = pool_views([replace(batch, stopped=True)], [])
    (weighted,) = stopped.members
    assert member_text(weighted) == "batch bf w2.5 0/0-2 (stopped)"
    key, cells = pool_row(pool)
    assert key == "a"
    assert [str(c) for c in cells] == ["a", "chat p2 3/1-4, burst p1 1/0-1", "4/4", "0", "burst-3 on box:3"]


def test_a_gpu_holder_says_its_pool_and_phase_and_others_read_as_before() -> None:
    g = GpuView(3, "H100", 1, 2, 0, "burst-3")
    sleeping = holder_cell(g, PoolSeat("a", "box", 3, "burst", "burst-3", "sleeping"))
    assert isinstance(sleeping, Text) and sleeping.plain == "burst-3 (pool a, sleeping)"
    assert any(str(s.style) == "blue" for s in sleeping.spans)
    assert str(holder_cell(g, PoolSeat("a", "box", 3))) == "free (pool a)"
    assert holder_cell(g, None) == "burst-3"  # no pool: the replica's name alone, as before
    assert str(holder_cell(replace(g, replica=None), None)) == "free"
