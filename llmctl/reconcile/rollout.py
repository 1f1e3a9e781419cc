"""A rolling replace, planned one step per tick: after an apply changes a slot's spec, its replica is
replaced one at a time, the controller's health checks and scaling going on meanwhile.

With a free slot, the roll first surges: a replica of the new spec starts there and is ready before the old
one drains, so capacity never drops; the surge replica goes once nothing is left to replace. Without one, the
old replica drains, stops and starts again on the new spec (one replica down at a time). A replica of the
new spec that fails halts the roll: the rest keep the old spec and go on serving.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from llmctl.reconcile.actions import Action, Drain, Reclaim, Start, Stop, slot_index
from llmctl.reconcile.phase import Phase, parse
from llmctl.spec.deployment import DesiredDeployment


class VersionedReplica(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def phase(self) -> str: ...

    @property
    def spec_hash(self) -> str: ...

    @property
    def drain_then(self) -> str: ...


# Phases in which a replica is on its way somewhere: the roll waits for it before the next step.
MOVING = (Phase.STARTING, Phase.WAKING, Phase.BACKOFF, Phase.STOPPING)


@dataclass(frozen=True)
class RollStep:
    actions: list[Action] = field(default_factory=list)
    busy: bool = False  # a roll is under way: scale-downs of extras wait
    surge: str = ""  # the surge replica to remember ("" when none)
    halted: str = ""  # why the roll stopped, when it did


def roll(
    dep: DesiredDeployment,
    replicas: Sequence[VersionedReplica],
    surge: str = "",
    borrowed: Mapping[str, Sequence[str]] | None = None,
) -> RollStep:
    """This tick's step of the roll of `dep`; `surge` is the step before's, `borrowed` as in scale_actions."""
    slots = {s.name: s for s in dep.slots}
    names = [s.name for s in dep.slots]
    ordered = sorted(replicas, key=lambda r: (slot_index(names, r.name), r.name))
    phase = {r.name: parse(r.phase) for r in ordered}
    gone = [
        r for r in ordered if r.name not in slots and phase[r.name] not in (Phase.STOPPING, Phase.ORPHANED)
    ]
    actions: list[Action] = [
        Drain(r.name, "stop", "no longer in the playbook")
        if phase[r.name] == Phase.READY
        else Stop(r.name, "no longer in the playbook")
        for r in gone
        if phase[r.name] != Phase.DRAINING
    ]
    current = {r.name for r in ordered if r.name in slots and r.spec_hash == slots[r.name].spec_hash}
    failed = [n for n in current if phase[n] == Phase.FAILED]
    outdated = [
        r
        for r in ordered
        if r.name in slots and r.name not in current and phase[r.name] not in (Phase.STOPPING, Phase.ORPHANED)
    ]
    moving = any(
        phase[r.name] in MOVING or (phase[r.name] == Phase.DRAINING and r.drain_then == "replace")
        for r in ordered
    )
    if failed and outdated:
        left = ", ".join(r.name for r in outdated)
        return RollStep(
            actions, False, surge, f"{', '.join(sorted(failed))} failed; kept {left} on the old spec"
        )
    if not outdated:
        if surge and not moving:
            if phase.get(surge) == Phase.READY:
                actions.append(Drain(surge, "stop", "surge no longer needed: the roll is done"))
            return RollStep(actions, False, "")
        return RollStep(actions, bool(surge) and moving, surge)  # nothing to roll: busy only finishing one
    if moving:
        return RollStep(actions, True, surge)
    old = outdated[0]
    p = phase[old.name]
    if p in (Phase.FAILED, Phase.STOPPED):
        actions.append(Start(old.name, "spec changed"))
    elif p == Phase.SLEEPING:
        actions.append(Stop(old.name, "spec changed: a sleeping replica is stopped, not woken"))
    elif p == Phase.READY:
        free = [n for n in names if n not in phase]
        if not surge and free:
            why = f"{free[0]} surges while {old.name} is replaced"
            actions += [Reclaim(b, free[0], why) for b in (borrowed or {}).get(free[0], ())]
            actions.append(Start(free[0], f"surge while {old.name} is replaced"))
            return RollStep(actions, True, free[0])
        actions.append(Drain(old.name, "replace", "spec changed: replacing"))
    return RollStep(actions, True, surge)
