"""Which ready replicas a scale-down takes, shared by the controller and the simulator.

The decision says how many to put to sleep and how many to stop; slots decide which. Sleepers come from the
lowest slots, so the warm pool sits on the first slots, which a deployment always plans; stops come from the
highest, the spare slots the planner placed for scale-up. That leaves the spare slots' GPUs free, for other
work on them (back-fill) and for the next scale-up.
"""

from __future__ import annotations

from collections.abc import Sequence


def scale_down_victims(ready_slots: Sequence[int], sleep: int, stop: int) -> tuple[list[int], list[int]]:
    """(slots to put to sleep, slots to stop) among the ready replicas' slot indices."""
    ordered = sorted(ready_slots)
    sleepers = ordered[: max(0, sleep)]
    rest = [s for s in reversed(ordered) if s not in sleepers]
    return sleepers, rest[: max(0, stop)]
