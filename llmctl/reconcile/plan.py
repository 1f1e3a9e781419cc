"""One deployment's actions for this tick, assembled from the rules (llmctl.reconcile.actions, .rollout,
.backfill) in one place: the live controller calls this; the simulator, whose fleets neither roll nor stop,
calls `scale_actions` the same way for the scaling part."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from llmctl.autoscale.types import Decision
from llmctl.reconcile.actions import (
    Action,
    Blocked,
    Drain,
    Reclaim,
    Start,
    keep_initial,
    scale_actions,
    stop_all,
)
from llmctl.reconcile.backfill import backfill_actions, borrowed_slots
from llmctl.reconcile.phase import Phase, parse
from llmctl.reconcile.rollout import MOVING, RollStep, VersionedReplica, roll
from llmctl.spec.deployment import DesiredDeployment


@dataclass(frozen=True)
class DeploymentPlan:
    actions: list[Action] = field(default_factory=list)
    roll: RollStep = field(default_factory=RollStep)
    scaled_by_policy: bool = False  # the autoscaler (or a pin) sizes it: the caller asks for a Decision
    scaled: bool = (
        False  # the decision moved something (worth an event; a decision with nothing to move is not)
    )


def plan_deployment(
    dep: DesiredDeployment,
    rows: Sequence[VersionedReplica],
    every_row: Sequence[VersionedReplica],
    desired: Mapping[str, DesiredDeployment],
    *,
    surge: str,
    pinned: int | None,
    decision: Decision | None,
    fill: bool = False,
    pool: Sequence[Action] = (),
) -> DeploymentPlan:
    """`rows` are the deployment's replicas, `every_row` the fleet's (back-fill looks at its owner's);
    `decision` is the autoscaler's when it changed something this tick, else None. `fill`: a new generation
    is being reconciled, so an autoscaled deployment starts its `initial` slots too (the autoscaler takes
    over from there). `pool`: a pooled deployment's actions from its pool's step (llmctl.reconcile.pool)."""
    if dep.stopped:
        return DeploymentPlan(stop_all(rows))
    if dep.pool:
        return _pooled(dep, rows, decision, pool)
    if dep.backfill_for:
        owner = [r for r in every_row if r.name in {s.shares_with for s in dep.slots}]
        return DeploymentPlan(backfill_actions(dep, owner, rows))
    borrowed = borrowed_slots(desired.values(), dep.name, every_row)
    step = roll(dep, rows, surge, borrowed)
    actions = list(step.actions)
    slots = [s.name for s in dep.slots]
    by_policy = pinned is not None or dep.scaling.autoscaled
    scaled: list[Action] = []
    if not by_policy:
        actions += keep_initial(dep.name, dep.initial, rows, slots, busy=step.busy or bool(step.surge))
    else:
        if fill and pinned is None:
            actions += [
                a for a in keep_initial(dep.name, dep.initial, rows, slots, busy=True) if isinstance(a, Start)
            ]
        if decision is not None and decision.changed:
            moves = scale_actions(decision, rows, slots, sleep_mode=dep.sleep_mode, borrowed=borrowed)
            # While a roll is under way it owns the scale-down: a drain of the autoscaler's would fight it.
            scaled = [a for a in moves if not (step.busy and isinstance(a, Drain))]
    once = _once(actions + scaled)
    return DeploymentPlan(
        once, step, by_policy, scaled=any(a in once for a in scaled if not isinstance(a, Blocked))
    )


def _pooled(
    dep: DesiredDeployment,
    rows: Sequence[VersionedReplica],
    decision: Decision | None,
    pool: Sequence[Action],
) -> DeploymentPlan:
    """A pool member starts only where the pool grants; its rolls replace in place (a surge would take
    GPUs nobody granted) and its autoscaler's wakes and scale-downs are carried out as usual."""
    phase = {r.name: parse(r.phase) for r in rows}
    held = replace(dep, slots=tuple(s for s in dep.slots if s.name in phase))
    step = roll(held, rows)
    rolled = [a for a in step.actions if not (isinstance(a, Start) and phase.get(a.slot) == Phase.STOPPED)]
    scaled: list[Action] = []
    if decision is not None and decision.changed:
        moves = scale_actions(decision, rows, [s.name for s in dep.slots], sleep_mode=dep.sleep_mode)
        scaled = [
            a
            for a in moves
            if not isinstance(a, Start | Blocked | Reclaim) and not (step.busy and isinstance(a, Drain))
        ]
    once = _once([*rolled, *pool, *scaled])
    return DeploymentPlan(
        once,
        replace(step, surge=""),
        True,
        scaled=any(a in once for a in scaled) or any(a in once for a in pool),
    )


def _once(actions: list[Action]) -> list[Action]:
    """The first action on a replica or slot wins: two rules may name the same one in a tick."""
    seen: set[str] = set()
    out: list[Action] = []
    for a in actions:
        key = getattr(a, "replica", None) or getattr(a, "slot", None)
        if key is not None and key in seen:
            continue
        if key is not None:
            seen.add(key)
        out.append(a)
    return out


def converged(dep: DesiredDeployment, rows: Sequence[VersionedReplica], step: RollStep) -> bool:
    """The deployment is as its generation asks: nothing left to roll, start or stop."""
    phases = [parse(r.phase) for r in rows]
    if dep.stopped:
        return not rows
    if step.busy or step.surge or step.actions or any(p in (*MOVING, Phase.DRAINING) for p in phases):
        return False
    if dep.backfill_for or dep.pool or dep.scaling.autoscaled:
        return True
    have = {r.name: parse(r.phase) for r in rows}
    return all(have.get(s.name) in (Phase.READY, Phase.FAILED) for s in dep.slots[: dep.initial])
