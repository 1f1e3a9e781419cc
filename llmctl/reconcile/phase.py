"""A replica's phase as an explicit state machine: one enum and the moves between phases that are legal.
The store keeps the phase in its own column; the reason beside it is words for people, never parsed."""

from __future__ import annotations

from enum import StrEnum

from llmctl.autoscale.types import Phase as ScalerPhase


class Phase(StrEnum):
    STARTING = "starting"  # launched, health not yet 200
    READY = "ready"  # serving: the gateway routes to it
    DRAINING = "draining"  # no new requests; becomes `drain_then` once idle
    SLEEPING = "sleeping"  # weights offloaded, process kept (sleep mode)
    WAKING = "waking"
    BACKOFF = "backoff"  # crashed; restarts at `retry_at`
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = (
        "failed"  # given up, or a stop that could not be confirmed; a person (restart, apply) moves it on
    )
    ORPHANED = "orphaned"  # its host left the inventory: nothing reaches it until the host is back


class IllegalTransition(ValueError):
    def __init__(self, replica: str, old: Phase, new: Phase) -> None:
        super().__init__(f"{replica}: {old} -> {new} is not a legal phase change")
        self.replica, self.old, self.new = replica, old, new


_ANY_LIVE = frozenset(
    {Phase.STARTING, Phase.READY, Phase.DRAINING, Phase.SLEEPING, Phase.WAKING, Phase.BACKOFF}
)

TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    Phase.STARTING: frozenset({Phase.READY, Phase.BACKOFF, Phase.FAILED, Phase.STOPPING, Phase.ORPHANED}),
    Phase.READY: frozenset({Phase.DRAINING, Phase.BACKOFF, Phase.FAILED, Phase.STOPPING, Phase.ORPHANED}),
    Phase.DRAINING: frozenset(
        {Phase.SLEEPING, Phase.STOPPING, Phase.READY, Phase.BACKOFF, Phase.FAILED, Phase.ORPHANED}
    ),
    Phase.SLEEPING: frozenset({Phase.WAKING, Phase.STOPPING, Phase.STOPPED, Phase.ORPHANED}),
    Phase.WAKING: frozenset({Phase.READY, Phase.STOPPING, Phase.BACKOFF, Phase.FAILED, Phase.ORPHANED}),
    Phase.BACKOFF: frozenset({Phase.STARTING, Phase.FAILED, Phase.STOPPING, Phase.STOPPED, Phase.ORPHANED}),
    Phase.STOPPING: frozenset({Phase.STOPPED, Phase.FAILED}),
    Phase.STOPPED: frozenset({Phase.STARTING}),
    Phase.FAILED: frozenset({Phase.STARTING, Phase.STOPPING, Phase.STOPPED, Phase.ORPHANED}),
    Phase.ORPHANED: _ANY_LIVE | {Phase.STOPPING, Phase.STOPPED, Phase.FAILED},
}

# What the autoscaler counts: a replica in backoff is capacity on its way; one being stopped or orphaned is
# not capacity at all.
_SCALER: dict[Phase, ScalerPhase] = {
    Phase.STARTING: "starting",
    Phase.BACKOFF: "starting",
    Phase.WAKING: "waking",
    Phase.READY: "ready",
    Phase.DRAINING: "draining",
    Phase.SLEEPING: "sleeping",
    Phase.STOPPING: "stopped",
    Phase.STOPPED: "stopped",
    Phase.FAILED: "failed",
    Phase.ORPHANED: "failed",
}


def parse(value: str) -> Phase:
    """A phase read from the store; an unknown word (written by another version) reads as failed."""
    try:
        return Phase(value)
    except ValueError:
        return Phase.FAILED


def check(replica: str, old: Phase, new: Phase) -> Phase:
    """`new`, if the machine allows old -> new (staying put is always allowed); else IllegalTransition."""
    if old != new and new not in TRANSITIONS[old]:
        raise IllegalTransition(replica, old, new)
    return new


def scaler_phase(p: Phase) -> ScalerPhase:
    return _SCALER[p]
