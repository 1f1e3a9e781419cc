"""One controller tick of a GPU pool for the simulator, as a pure function: the members' autoscaler
Decisions and replicas in, every member's actions out, assembled exactly as the live controller does
(llmctl.control.controller: `_pools`, then `_reconcile`): the reconcile core's pool tick over the members'
targets (llmctl.reconcile.pool.pool_tick: grants become Starts on the granted slots, a preemption a Drain
of a serving replica or a Stop of one serving nothing yet), then each member's plan
(llmctl.reconcile.plan.plan_deployment with the pool's moves: its autoscaler's wakes and scale-downs, never
a cold start of its own). The simulator holds none of that logic; this only calls it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from llmctl.autoscale.types import Decision
from llmctl.reconcile.actions import Action
from llmctl.reconcile.plan import plan_deployment
from llmctl.reconcile.pool import PoolTick, pool_tick
from llmctl.spec.deployment import DesiredDeployment


@dataclass(frozen=True)
class Row:
    """A simulated replica as the reconcile core reads a replica row (the simulator never rolls, so its
    spec hash is always its slot's)."""

    name: str
    deployment: str
    phase: str
    spec_hash: str = ""
    drain_then: str = ""


@dataclass(frozen=True)
class PoolMoves:
    tick: PoolTick
    actions: dict[str, list[Action]]  # per member, in the order to carry them out


def pool_moves(
    pool: str,
    members: Sequence[DesiredDeployment],
    rows: Sequence[Row],
    decisions: Mapping[str, Decision],
) -> PoolMoves:
    """The pool's tick over the members' targets (a member without a Decision is held at its minimum), and
    each member's actions: its plan with the pool's moves and its Decision when that changed something."""
    tick = pool_tick(pool, members, rows, {name: d.target for name, d in decisions.items()})
    actions: dict[str, list[Action]] = {}
    for dep in members:
        d = decisions.get(dep.name)
        plan = plan_deployment(
            dep,
            [r for r in rows if r.deployment == dep.name],
            rows,
            {},
            surge="",
            pinned=None,
            decision=d if d is not None and d.changed else None,
            pool=tick.actions.get(dep.name, ()),
        )
        actions[dep.name] = plan.actions
    return PoolMoves(tick, actions)


__all__ = ["PoolMoves", "Row", "pool_moves"]
