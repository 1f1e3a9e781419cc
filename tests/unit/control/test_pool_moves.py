"""The pool in the reconcile core, as data: desired deployments and replica rows -> each member's actions
(grants start the slot on the granted GPUs; a preempted serving replica drains, one serving nothing stops),
a pooled deployment never starts a replica on its autoscaler's word alone, a stopped member's replicas keep
their GPUs until gone, and the controller says each wait or refusal once."""

from __future__ import annotations

from dataclasses import replace

from llmctl.autoscale.types import Decision
from llmctl.control.pools import PoolEvents
from llmctl.reconcile.actions import Drain, Start, Stop
from llmctl.reconcile.plan import plan_deployment
from llmctl.reconcile.pool import pool_holdings, pool_tick, pools_of
from llmctl.spec.deployment import DesiredDeployment, ScalingSpec, Slot
from llmctl.state.records import ReplicaRow


def dep(
    name: str, priority: int, lo: int = 1, hi: int = 2, workload: str = "semi-online"
) -> DesiredDeployment:
    slots = tuple(
        Slot(f"{name}-{g}", "box", "127.0.0.1", (g,), 22000 + g, ("engine",), {}, "h", "emulated")
        for g in range(3)
    )
    return DesiredDeployment(
        name=name, workload=workload, flavour="vllm", route="least_outstanding", api_key_env=None,
        scaling=ScalingSpec(lo, hi, "in_flight", 4, 300), cold_start_s=5.0, wake_s=1.0, sleep_mode=False,
        initial=0, slots=slots, pool="shared", pool_priority=priority,
    )  # fmt: skip


def row(name: str, phase: str) -> ReplicaRow:
    deployment, gpu = name.rsplit("-", 1)
    return ReplicaRow(name, deployment, "box", "127.0.0.1", gpu, 22000, 1, phase, "h", 0.0, 0, "")


ALPHA, BETA = dep("alpha", 1), dep("beta", 2)


def test_minimums_then_targets_become_starts_on_the_granted_slots() -> None:
    tick = pool_tick("shared", [ALPHA, BETA], [], {"alpha": 2, "beta": 1})
    assert {
        n: [(a.slot, a.reason) for a in acts if isinstance(a, Start)] for n, acts in tick.actions.items()
    } == {
        "beta": [("beta-0", "pool shared: beta replica 1 of its minimum 1")],
        "alpha": [
            ("alpha-1", "pool shared: alpha replica 1 of its minimum 1"),
            ("alpha-2", "pool shared: alpha replica 2 toward its target 2"),
        ],
    }


def test_a_preempted_ready_replica_drains_and_one_still_starting_stops() -> None:
    for phase, kind in (("ready", Drain), ("starting", Stop)):
        rows = [row("beta-0", "ready"), row("alpha-1", "ready"), row("alpha-2", phase)]
        tick = pool_tick("shared", [ALPHA, BETA], rows, {"alpha": 1, "beta": 2})
        (action,) = tick.actions["alpha"]
        assert isinstance(action, kind) and action.replica == "alpha-2"
        assert "preempted for beta (over_target)" in action.reason
        if isinstance(action, Drain):
            assert action.then == "stop"


def test_a_stopped_member_is_no_tenant_but_its_replicas_keep_their_gpus_until_gone() -> None:
    stopped = replace(ALPHA, stopped=True)
    rows = [row("alpha-0", "draining"), row("alpha-1", "ready")]
    tick = pool_tick("shared", [stopped, BETA], rows, {"beta": 2})
    assert [a.slot for a in tick.actions["beta"] if isinstance(a, Start)] == ["beta-2"]
    assert "alpha" not in tick.actions


def test_a_pooled_deployment_starts_only_what_the_pool_grants() -> None:
    rows = [row("alpha-1", "ready"), row("alpha-2", "ready")]
    up = Decision("alpha", current=2, target=3, reason="more", start=1)
    assert plan_deployment(ALPHA, rows, rows, {}, surge="", pinned=None, decision=up).actions == []
    grant = Start("alpha-0", "pool shared: granted")
    assert plan_deployment(
        ALPHA, rows, rows, {}, surge="", pinned=None, decision=up, pool=[grant]
    ).actions == [grant]
    down = Decision("alpha", current=2, target=1, reason="less", stop=1)
    (drain,) = plan_deployment(ALPHA, rows, rows, {}, surge="", pinned=None, decision=down).actions
    assert isinstance(drain, Drain) and drain.replica == "alpha-2"


def test_waits_and_refusals_are_said_once_grants_and_preemptions_every_time() -> None:
    said: list[tuple[str, str, dict[str, object] | None]] = []
    events = PoolEvents(lambda subject, kind, reason, data: said.append((subject, kind, data)))
    rows = [row("beta-0", "ready"), row("alpha-1", "ready"), row("alpha-2", "draining")]
    for _ in range(3):
        events.said(pool_tick("shared", [ALPHA, BETA], rows, {"alpha": 2, "beta": 2}))
    kinds = [(s, k) for s, k, _ in said]
    assert kinds == [("beta", "pool-wait"), ("alpha", "pool-refuse")]
    assert said[0][2] == {"pool": "shared", "tenant": "beta", "reason": "draining", "gpus": ["box:2"]}
    gone = rows[:2]
    events.said(pool_tick("shared", [ALPHA, BETA], gone, {"alpha": 2, "beta": 2}))
    assert [(s, k) for s, k, _ in said[2:]] == [("beta", "pool-grant")]
    assert said[2][2] == {
        "pool": "shared",
        "tenant": "beta",
        "reason": "target",
        "gpus": ["box:2"],
        "slot": "beta-2",
    }


def test_status_shows_who_holds_each_pool_gpu() -> None:
    rows = [row("beta-0", "ready"), row("alpha-1", "sleeping")]
    held = [(f"{h.gpu.host}:{h.gpu.index}", h.replica, h.phase) for h in pool_holdings([ALPHA, BETA], rows)]
    assert held == [("box:0", "beta-0", "ready"), ("box:1", "alpha-1", "sleeping"), ("box:2", "", "")]
    assert list(pools_of([BETA, ALPHA, replace(BETA, name="solo", pool=None)])) == ["shared"]


def test_offline_work_in_the_pool_is_the_first_to_give_way() -> None:
    enrich = dep("enrich", 5, lo=0, hi=3, workload="offline")  # its priority counts only among back-fill
    rows = [row("beta-0", "ready"), row("alpha-1", "ready"), row("enrich-2", "ready")]
    tick = pool_tick("shared", [ALPHA, BETA, enrich], rows, {"alpha": 2, "beta": 1, "enrich": 3})
    (action,) = tick.actions["enrich"]
    assert isinstance(action, Drain) and action.replica == "enrich-2"
    assert "preempted for alpha (backfill_yields): back-fill enrich gives way to alpha" in action.reason


def test_a_changed_spec_is_replaced_in_place_never_by_a_surge_on_ungranted_gpus() -> None:
    rows = [row("alpha-1", "ready").with_(spec_hash="old")]
    (action,) = plan_deployment(ALPHA, rows, rows, {}, surge="", pinned=None, decision=None).actions
    assert isinstance(action, Drain) and (action.replica, action.then) == ("alpha-1", "replace")
