"""What the pool allocator sees and what it decides: plain, frozen data (llmctl.pool.allocator decides)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

# Deployment name -> the replica count its autoscaler wants now (before the pool has its say).
Demand = Mapping[str, int]


@dataclass(frozen=True, order=True)
class PoolGpu:
    """One GPU of the pool. A replica's GPUs are all on one host (tensor parallelism does not cross hosts)."""

    host: str
    index: int
    gpu_type: str = ""

    @property
    def key(self) -> tuple[str, int]:
        return (self.host, self.index)


@dataclass(frozen=True)
class Tenant:
    """A deployment that draws from the pool. Higher `priority` wins; `weight` only shares the pool among
    tenants of equal priority. A `backfill` tenant (offline work) runs on GPUs nobody else wants: it is the
    first to give way, ranks below every serving tenant whatever its priority, and never preempts one."""

    name: str
    priority: int = 0
    min_replicas: int = 0
    max_replicas: int = 1
    gpus_per_replica: int = 1
    gpu_type: str | None = None  # None: any GPU of the pool
    backfill: bool = False
    weight: float = 1.0

    def __post_init__(self) -> None:
        if not 0 <= self.min_replicas <= self.max_replicas:
            raise ValueError(f"{self.name}: need 0 <= min_replicas <= max_replicas")
        if self.gpus_per_replica < 1:
            raise ValueError(f"{self.name}: gpus_per_replica must be at least 1")
        if self.weight <= 0:
            raise ValueError(f"{self.name}: weight must be positive")

    @property
    def rank(self) -> tuple[int, int]:
        """Who wins: any serving tenant over any back-fill one, then the higher priority."""
        return (0 if self.backfill else 1, self.priority)

    def target(self, demand: Demand) -> int:
        """The autoscaler's wish clamped to [min, max]; a tenant without one is held at its minimum."""
        return max(self.min_replicas, min(self.max_replicas, demand.get(self.name, self.min_replicas)))

    def fits(self, gpu: PoolGpu) -> bool:
        return self.gpu_type is None or gpu.gpu_type == self.gpu_type


@dataclass(frozen=True)
class Holding:
    """A replica that holds pool GPUs now. A draining one still holds them until it is gone."""

    tenant: str
    replica: str
    gpus: tuple[PoolGpu, ...]
    draining: bool = False

    @property
    def host(self) -> str:
        return self.gpus[0].host if self.gpus else ""


class Reason(StrEnum):
    MIN_REPLICAS = "min_replicas"  # granted to reach a minimum; preempted: a minimum taken for a higher one's
    TARGET = "target"  # granted toward the autoscaler's target
    PRIORITY = "priority"  # preempted: above its minimum, and a higher-priority tenant needs the GPUs
    OVER_TARGET = "over_target"  # preempted: above its own target, so nobody loses what it asked for
    BACKFILL_YIELDS = "backfill_yields"  # preempted: offline work always gives way first
    DRAINING = "draining"  # waits: its GPUs are promised, a drain must finish first
    NO_FIT = "no_fit"  # refused: no host of the pool can ever hold one replica of this shape
    POOL_FULL = "pool_full"  # refused: it would fit, but nothing may be taken for it now


@dataclass(frozen=True)
class Grant:
    """Start one replica of `tenant` on these GPUs (all free now, on one host)."""

    tenant: str
    gpus: tuple[PoolGpu, ...]
    reason: Reason
    detail: str

    @property
    def host(self) -> str:
        return self.gpus[0].host


@dataclass(frozen=True)
class Preempt:
    """Drain `replica` of `tenant`, then stop it, so that `for_tenant` can start on its GPUs. Never an
    immediate stop: the GPUs are granted in a later call, once the holding is gone."""

    tenant: str
    replica: str
    for_tenant: str
    reason: Reason
    detail: str


@dataclass(frozen=True)
class Wait:
    """One replica of `tenant` is placed on these GPUs, some of which are still draining: granted later."""

    tenant: str
    gpus: tuple[PoolGpu, ...]
    reason: Reason
    detail: str


@dataclass(frozen=True)
class Refuse:
    """`tenant` wanted `wanted` more replica(s) than it gets now."""

    tenant: str
    wanted: int
    reason: Reason
    detail: str


PoolDecision = Grant | Preempt | Wait | Refuse


@dataclass(frozen=True)
class Allocation:
    """One allocator call's decisions, in the order they were made (each becomes an event)."""

    decisions: tuple[PoolDecision, ...]

    @property
    def grants(self) -> list[Grant]:
        return [d for d in self.decisions if isinstance(d, Grant)]

    @property
    def preemptions(self) -> list[Preempt]:
        return [d for d in self.decisions if isinstance(d, Preempt)]

    @property
    def waits(self) -> list[Wait]:
        return [d for d in self.decisions if isinstance(d, Wait)]

    @property
    def refusals(self) -> list[Refuse]:
        return [d for d in self.decisions if isinstance(d, Refuse)]
