"""The controller's pool step reads holdings from the replica rows alone: a controller started afresh (nothing
in memory) on a store where a grant was already carried out grants nothing twice, and one whose rows show a
preemption under way waits for the drain instead of preempting again."""

from __future__ import annotations

from pathlib import Path

from llmctl.config.inventory import Host, Inventory
from llmctl.control.controller import Controller
from llmctl.fleet.pool import Fleet
from llmctl.reconcile.actions import Drain, Start
from llmctl.spec.deployment import DesiredDeployment, ScalingSpec, Slot
from llmctl.state.desired import load_desired, put_desired
from llmctl.state.intents import set_scale_override
from llmctl.state.records import ReplicaRow, events, put_replica
from llmctl.state.store import Store


def dep(name: str, priority: int) -> DesiredDeployment:
    slots = tuple(
        Slot(f"{name}-{g}", "box", "127.0.0.1", (g,), 22000 + g, ("engine",), {}, "h", "emulated")
        for g in range(3)
    )
    return DesiredDeployment(
        name=name, workload="semi-online", flavour="vllm", route="least_outstanding", api_key_env=None,
        scaling=ScalingSpec(1, 2, "in_flight", 4, 300), cold_start_s=5.0, wake_s=1.0, sleep_mode=False,
        initial=0, slots=slots, pool="shared", pool_priority=priority,
    )  # fmt: skip


def row(name: str, phase: str) -> ReplicaRow:
    deployment, gpu = name.rsplit("-", 1)
    return ReplicaRow(name, deployment, "box", "127.0.0.1", gpu, 22000, 1, phase, "h", 0.0, 0, "")


def fresh(tmp_path: Path, store: Store) -> Controller:
    host = Host(name="box", connection="local", workdir=str(tmp_path / "w"))
    return Controller(Inventory(file="inv.yaml", hosts=(host,)), Fleet([host]), store)


async def test_a_fresh_controller_repeats_no_grant_and_no_preemption(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    for d in (dep("alpha", 1), dep("beta", 2)):
        put_desired(store, d)
    first = fresh(tmp_path, store)
    moves = first._pools(load_desired(store))
    starts = {(n, a.slot) for n, p in moves.items() for a in p.actions if isinstance(a, Start)}
    assert starts == {("beta", "beta-0"), ("alpha", "alpha-1")}
    await first.close()
    # The grants were carried out, then the controller died; its successor knows only the rows.
    put_replica(store, row("beta-0", "starting"))
    put_replica(store, row("alpha-1", "ready"))
    again = fresh(tmp_path, store)
    assert all(not p.actions for p in again._pools(load_desired(store)).values())
    # beta wants 2 while a preemption for it is under way (alpha-2 draining): the next controller waits
    # for the drain, and says so, instead of preempting again.
    set_scale_override(store, "beta", 2)
    put_replica(store, row("alpha-2", "draining"))
    await again.close()
    again = fresh(tmp_path, store)
    moves = again._pools(load_desired(store))
    assert not any(isinstance(a, Start | Drain) for p in moves.values() for a in p.actions)
    kinds = [(e.subject, e.kind) for e in events(store, 0, 100)]
    assert sorted(kinds[:2]) == [("alpha", "pool-grant"), ("beta", "pool-grant")]
    assert kinds[2:] == [("beta", "pool-wait")]
    await again.close()
