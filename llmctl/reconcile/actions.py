"""What the controller does, as data: each tick the reconcile core turns a deployment's desired state, its
replicas and the autoscaler's Decision into a list of actions with reasons, and a driver carries them out:
the live actuator over SSH and HTTP (llmctl.control.actuate), the simulator in SimPy (sim.cluster). Neither
decides anything itself, so both make the same moves in the same order.

Rules, in the order `plan_deployment` applies them:
- stopped (`llmctl stop`): drain the ready replicas, stop the rest;
- a rolling replace, one replica at a time (llmctl.reconcile.rollout);
- scaling: wake sleepers first (faster than a cold start), then start free slots in slot order, taking back
  the GPUs a back-fill deployment borrowed there; scale down by draining the highest ready slots, then sleep
  (warm pool, lowest slots) or stop;
- a deployment that does not autoscale is kept at its `initial` slots;
- back-fill (llmctl.reconcile.backfill) lends idle spare slots and takes them back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from llmctl.autoscale.types import Decision
from llmctl.autoscale.victims import scale_down_victims
from llmctl.reconcile.phase import Phase, parse

DrainThen = Literal["sleep", "stop", "replace"]
# The gateway stops routing to a draining replica within two of its store syncs (llmctl.gateway.store_sync,
# every 0.5 s): until then the replica may still receive a request, so it is not idle yet.
DRAIN_SETTLE_S = 1.0


class Replica(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def phase(self) -> str: ...


@dataclass(frozen=True)
class Wake:
    replica: str
    reason: str


@dataclass(frozen=True)
class Start:
    slot: str  # a slot of the deployment: the replica takes its name
    reason: str


@dataclass(frozen=True)
class Drain:
    """Stop routing to the replica; once it is idle (or `drain_timeout_s` passed) it becomes `then`."""

    replica: str
    then: DrainThen
    reason: str


@dataclass(frozen=True)
class Stop:
    replica: str
    reason: str


@dataclass(frozen=True)
class Lend:
    """Start a back-fill replica on an owner's idle spare slot."""

    slot: str  # the back-fill deployment's slot
    owner_slot: str
    reason: str


@dataclass(frozen=True)
class Reclaim:
    """Stop a back-fill replica so that the owner of its GPUs can start there."""

    replica: str
    owner_slot: str
    reason: str


@dataclass(frozen=True)
class Blocked:
    """Not an action: the decision wants more than the planned slots allow (said once, as an event)."""

    reason: str


Action = Wake | Start | Drain | Stop | Lend | Reclaim | Blocked


def slot_index(slots: Sequence[str], name: str) -> int:
    """A replica's position among the slots; one whose slot left the playbook sorts last."""
    return slots.index(name) if name in slots else len(slots)


def scale_actions(
    d: Decision,
    replicas: Sequence[Replica],
    slots: Sequence[str],
    *,
    sleep_mode: bool,
    borrowed: Mapping[str, Sequence[str]] | None = None,
) -> list[Action]:
    """The moves that carry out a changed decision. `borrowed` maps an own slot to the back-fill replicas
    running on its GPUs now, which must go before the slot starts."""
    ordered = sorted(replicas, key=lambda r: (slot_index(slots, r.name), r.name))
    out: list[Action] = []
    for r in [r for r in ordered if parse(r.phase) == Phase.SLEEPING][: d.wake]:
        out.append(Wake(r.name, "scale up: waking is faster than a cold start"))
    taken = {r.name for r in replicas}
    free = [s for s in slots if s not in taken]
    for slot in free[: d.start]:
        for b in (borrowed or {}).get(slot, ()):
            out.append(Reclaim(b, slot, f"{d.deployment} scales up"))
        out.append(Start(slot, f"scale up to {d.target}"))
    if d.start > len(free):
        out.append(
            Blocked(f"wants {d.start} more replica(s), only {len(free)} free slot(s) on the planned GPUs")
        )
    ready = [r for r in ordered if parse(r.phase) == Phase.READY]
    sleepers, stoppers = scale_down_victims(range(len(ready)), d.sleep, d.stop)
    for i in sorted([*sleepers, *stoppers], reverse=True):
        to_sleep = i in sleepers and sleep_mode
        out.append(Drain(ready[i].name, "sleep" if to_sleep else "stop", f"scale down to {d.target}"))
    return out


def keep_initial(
    name: str, initial: int, replicas: Sequence[Replica], slots: Sequence[str], busy: bool
) -> list[Action]:
    """A deployment that does not autoscale runs exactly its first `initial` slots: start the missing ones,
    and drain a replica beyond them (a rolling replace's surge) once no roll is under way (`busy`)."""
    have = {r.name: parse(r.phase) for r in replicas}
    out: list[Action] = [
        Start(s, f"{name} wants {initial} replica(s); {s} is missing")
        for s in slots[:initial]
        if s not in have or have[s] == Phase.STOPPED
    ]
    if not busy:
        for r in replicas:
            if slot_index(slots, r.name) >= initial and have[r.name] == Phase.READY:
                out.append(Drain(r.name, "stop", f"{name} wants {initial} replica(s); {r.name} is extra"))
    return out


def stop_all(replicas: Sequence[Replica]) -> list[Action]:
    """`llmctl stop`: every replica goes; a ready one is drained first so that no request is lost."""
    out: list[Action] = []
    for r in replicas:
        phase = parse(r.phase)
        if phase == Phase.READY:
            out.append(Drain(r.name, "stop", "llmctl stop"))
        elif phase not in (Phase.DRAINING, Phase.STOPPING, Phase.ORPHANED):
            out.append(Stop(r.name, "llmctl stop"))
    return out


def drain_outcome(
    then: DrainThen, busy: int, drained_for_s: float, timeout_s: float, settle_s: float = DRAIN_SETTLE_S
) -> DrainThen | None:
    """What a draining replica becomes now: None while it still serves requests inside the timeout, and for
    the first `settle_s` (the gateway may still send it one until its next store sync); after the timeout it
    is stopped even if busy (its requests are lost) and never put to sleep busy."""
    if drained_for_s < settle_s:
        return None
    if busy and drained_for_s < timeout_s:
        return None
    if busy and then == "sleep":
        return "stop"
    return then
