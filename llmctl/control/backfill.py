"""Back-fill: an offline deployment borrows the spare slots of an autoscaled one while it does not use them.

A back-fill slot runs only while its owner slot (`Slot.shares_with`) holds no replica of the owner, in any
phase (a sleeping replica keeps part of its GPU memory and must be able to wake at once). The owner's
scale-up stops the borrower before it starts on the slot (`Actuator`, and the surge of a rolling replace);
the controller starts the borrower again once the owner has let the slot go. A batch job against the
back-fill deployment pauses while it has no replica and resumes after, losing nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

from llmctl.control.desired import DesiredDeployment, Slot
from llmctl.state.records import ReplicaRow

# Phases in which a replica holds no GPU: its slot can be lent.
RELEASED = ("stopped",)


def backfill_moves(
    dep: DesiredDeployment, owner_rows: Iterable[ReplicaRow], own_rows: Iterable[ReplicaRow]
) -> tuple[list[tuple[Slot, str]], list[tuple[ReplicaRow, str]]]:
    """What the back-fill deployment `dep` should do now: (slots to start, replicas to stop), with reasons."""
    held = {r.name for r in owner_rows if r.phase not in RELEASED}
    mine = {r.name: r for r in own_rows}
    start: list[tuple[Slot, str]] = []
    stop: list[tuple[ReplicaRow, str]] = []
    for slot in dep.slots:
        row = mine.get(slot.name)
        if slot.shares_with in held:
            if row is not None and row.phase not in ("stopping", *RELEASED):
                stop.append((row, f"gives its GPUs back: {dep.backfill_for} holds {slot.shares_with}"))
        elif row is None or row.phase in RELEASED:
            start.append((slot, f"back-fill: {dep.backfill_for}'s slot {slot.shares_with} is idle"))
    return start, stop


def borrowers(desired: Iterable[DesiredDeployment], owner: str, slot: str) -> set[str]:
    """Names of the back-fill slots on the GPUs of `owner`'s slot `slot`."""
    return {s.name for d in desired if d.backfill_for == owner for s in d.slots if s.shares_with == slot}
