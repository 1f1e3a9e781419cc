"""GPU pools shared by several deployments (issue #18): a pure allocator that grants, refuses and preempts
with reasons. See llmctl.pool.allocator for the rules."""

from llmctl.pool.allocator import allocate
from llmctl.pool.types import (
    Allocation,
    Demand,
    Grant,
    Holding,
    PoolDecision,
    PoolGpu,
    Preempt,
    Reason,
    Refuse,
    Tenant,
    Wait,
)

__all__ = [
    "Allocation",
    "Demand",
    "Grant",
    "Holding",
    "PoolDecision",
    "PoolGpu",
    "Preempt",
    "Reason",
    "Refuse",
    "Tenant",
    "Wait",
    "allocate",
]
