"""What an apply changes, for people: the plan against the replicas the store records (start, replace, keep,
stop). The controller carries the change out (llmctl.reconcile.rollout); this is what `llmctl apply` shows
before it asks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from llmctl.planner import Plan, PlannedReplica
from llmctl.spec.from_plan import spec_hash
from llmctl.state.records import ReplicaRow


@dataclass
class Diff:
    start: list[PlannedReplica] = field(default_factory=list)
    replace: list[tuple[ReplicaRow, PlannedReplica]] = field(default_factory=list)
    keep: list[ReplicaRow] = field(default_factory=list)
    stop: list[ReplicaRow] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.start or self.replace or self.stop)


def diff(plan: Plan, current: Sequence[ReplicaRow]) -> Diff:
    """What an apply changes. Replicas the controller started on spare slots (scale-up) or put to sleep
    stay as they are unless their slot's spec changed: re-applying the same playbook changes nothing."""
    d = Diff()
    by_name = {r.name: r for r in current}
    for r in plan.replicas:
        old = by_name.get(r.name)
        if old is None or old.phase in ("failed", "stopped"):
            d.start.append(r)
        elif old.spec_hash != spec_hash(r):
            d.replace.append((old, r))
        else:
            d.keep.append(old)
    for r in (*plan.spares, *plan.backfill, *plan.pooled):
        old = by_name.get(r.name)
        if old is None:
            continue
        if old.spec_hash != spec_hash(r) and old.phase not in ("failed", "stopped"):
            d.replace.append((old, r))
        else:
            d.keep.append(old)
    planned = {r.name for r in (*plan.replicas, *plan.spares, *plan.backfill, *plan.pooled)}
    d.stop = [r for r in current if r.name not in planned]
    return d
