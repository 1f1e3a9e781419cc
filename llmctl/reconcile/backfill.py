"""Back-fill: an offline deployment borrows the spare slots of an autoscaled one while it does not use them.

A back-fill slot runs only while its owner slot (`Slot.shares_with`) holds no replica of the owner, in any
phase (a sleeping replica keeps part of its GPU memory and must be able to wake at once). The owner's
scale-up takes the slot back before it starts there (llmctl.reconcile.actions, Reclaim); the borrower is lent
the slot again once the owner has let it go. A batch job against the back-fill deployment pauses while it
has no replica and resumes after, losing nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from llmctl.reconcile.actions import Action, Lend, Reclaim, Replica
from llmctl.reconcile.phase import Phase, parse
from llmctl.spec.deployment import DesiredDeployment

# Phases in which a replica holds no GPU: its slot can be lent.
RELEASED = (Phase.STOPPED,)


def backfill_actions(
    dep: DesiredDeployment, owner_rows: Iterable[Replica], own_rows: Iterable[Replica]
) -> list[Action]:
    """What the back-fill deployment `dep` should do now: lend idle owner slots, give held ones back."""
    held = {r.name for r in owner_rows if parse(r.phase) not in RELEASED}
    mine = {r.name: parse(r.phase) for r in own_rows}
    out: list[Action] = []
    for slot in dep.slots:
        phase = mine.get(slot.name)
        if slot.shares_with in held:
            if phase is not None and phase not in (Phase.STOPPING, *RELEASED):
                why = f"gives its GPUs back: {dep.backfill_for} holds {slot.shares_with}"
                out.append(Reclaim(slot.name, slot.shares_with, why))
        elif phase is None or phase in RELEASED:
            why = f"back-fill: {dep.backfill_for}'s slot {slot.shares_with} is idle"
            out.append(Lend(slot.name, slot.shares_with, why))
    return out


def borrowed_slots(
    desired: Iterable[DesiredDeployment], owner: str, rows: Sequence[Replica]
) -> Mapping[str, list[str]]:
    """For each slot of `owner`: the back-fill replicas (in `rows`, not already stopping) on its GPUs now."""
    live = {r.name for r in rows if parse(r.phase) not in (Phase.STOPPING, *RELEASED)}
    out: dict[str, list[str]] = {}
    for d in desired:
        if d.backfill_for != owner:
            continue
        for s in d.slots:
            if s.name in live:
                out.setdefault(s.shares_with, []).append(s.name)
    return out
