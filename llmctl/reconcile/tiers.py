"""Which cold-start tier (llmctl.perf.tiers) each slot of a deployment stands on, from its replica's phase and
recorded sleep level (issue #18). Pure: the rows come in as plain records.

    replica serving (ready, or draining: it still answers)         -> RUNNING
    replica asleep (or waking) at sleep level 1                    -> ASLEEP_IN_RAM
    replica asleep (or waking) at sleep level 2                    -> ASLEEP_DISCARDED
    no live replica on the slot (none, starting, stopped, backoff) -> the host's floor: COMPILE_WARM where
        facts say its compile cache is warm, else ON_DISK (provisioning puts the weights on local disk)

A starting replica is counted on the floor it started from: it is not serving yet, and a start that fails
leaves the slot there. A sleeping row written before sleep levels were recorded (level 0) slept at level 1,
the only level the controller used then.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

from llmctl.perf.tiers import Tier
from llmctl.reconcile.phase import Phase, parse
from llmctl.spec.deployment import DesiredDeployment

_SLEEP_TIERS = {1: Tier.ASLEEP_IN_RAM, 2: Tier.ASLEEP_DISCARDED}


class TieredReplica(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def phase(self) -> str: ...
    @property
    def sleep_level(self) -> int: ...


def sleep_tier(level: int) -> Tier:
    """The asleep tier of a vLLM sleep level (0: a row from before levels were recorded, which slept at 1)."""
    tier = _SLEEP_TIERS.get(level or 1)
    if tier is None:
        raise ValueError(f"sleep level must be 1 or 2, got {level}")
    return tier


def floor_tier(host: str, compile_warm_hosts: Collection[str] = ()) -> Tier:
    return Tier.COMPILE_WARM if host in compile_warm_hosts else Tier.ON_DISK


def replica_tier(row: TieredReplica, compile_warm_hosts: Collection[str] = ()) -> Tier:
    phase = parse(row.phase)
    if phase in (Phase.READY, Phase.DRAINING):
        return Tier.RUNNING
    if phase in (Phase.SLEEPING, Phase.WAKING):
        return sleep_tier(row.sleep_level)
    return floor_tier(row.host, compile_warm_hosts)


def slot_tiers(
    dep: DesiredDeployment, rows: Sequence[TieredReplica], compile_warm_hosts: Collection[str] = ()
) -> dict[str, Tier]:
    """Each of `dep`'s slots (by name) and its tier."""
    by_name = {r.name: r for r in rows}
    return {
        s.name: replica_tier(by_name[s.name], compile_warm_hosts)
        if s.name in by_name
        else floor_tier(s.host, compile_warm_hosts)
        for s in dep.slots
    }
