"""Pure autoscaling policies: decide(observation, now) -> Decision, shared by the controller and simulator."""

from llmctl.autoscale.policy import Autoscaler, Bounds, StartupCosts
from llmctl.autoscale.signals import InFlightTarget, Pinned, QueueDepth, Schedule, Signal, TtftSlo, Wish
from llmctl.autoscale.types import Decision, Observation, ReplicaView

__all__ = [
    "Autoscaler",
    "Bounds",
    "Decision",
    "InFlightTarget",
    "Observation",
    "Pinned",
    "QueueDepth",
    "ReplicaView",
    "Schedule",
    "Signal",
    "StartupCosts",
    "TtftSlo",
    "Wish",
]
