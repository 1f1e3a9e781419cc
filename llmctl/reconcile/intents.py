"""What a person may ask of the controller, checked one way for the CLI, the TUI and the controller itself
(which checks again when it carries the intent out: the fleet may have moved meanwhile)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from llmctl.reconcile.actions import Replica
from llmctl.reconcile.phase import Phase, parse
from llmctl.spec.deployment import DesiredDeployment

KINDS: tuple[str, ...] = ("scale", "restart", "stop", "sleep", "wake")


def scale_count(arg: str) -> int | None:
    """The count `llmctl scale` pins, None for 'auto'; ValueError when it is neither."""
    return None if arg in ("", "auto") else int(arg)


def check_intent(
    kind: str, target: str, arg: str, desired: Mapping[str, DesiredDeployment], rows: Sequence[Replica]
) -> str:
    """'' when the intent can be carried out now, else why not (one line)."""
    if kind not in KINDS:
        return f"unknown action {kind!r}; one of: {', '.join(KINDS)}"
    if kind == "scale":
        dep = desired.get(target)
        if dep is None:
            return f"no deployment named {target!r}"
        if dep.backfill_for:
            return (
                f"{target} back-fills {dep.backfill_for}'s idle spare slots: its replicas follow "
                f"{dep.backfill_for}; scale {dep.backfill_for} instead"
            )
        try:
            n = scale_count(arg)
        except ValueError:
            return f"replica count {arg!r}: give a whole number or 'auto'"
        if n is not None and not 0 <= n <= len(dep.slots):
            return f"{target} has {len(dep.slots)} planned slot(s) (scaling.max_replicas); pick 0..{len(dep.slots)}"
        return ""
    row = next((r for r in rows if r.name == target), None)
    if row is None:
        return f"no replica named {target!r}"
    phase = parse(row.phase)
    dep = desired.get(getattr(row, "deployment", ""))
    if phase == Phase.ORPHANED:
        return f"{target} is orphaned: its host is not in the inventory"
    if kind == "restart" and (dep is None or dep.slot(target) is None):
        return f"{target}: its deployment no longer has this slot; re-apply the playbook"
    if kind == "sleep":
        if dep is None or not dep.sleep_mode:
            return f"{target}: its engine runs without sleep mode"
        if phase != Phase.READY:
            return f"{target} is {phase}, not ready"
    if kind == "wake" and phase != Phase.SLEEPING:
        return f"{target} is {phase}, not sleeping"
    return ""
