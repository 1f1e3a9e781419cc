"""The `tenants:` and `pool:` sections of a scenario file (issue #18): several deployments cloned from one
planned playbook deployment, each with its own replica range and priority, sharing a pool of GPUs.

    tenants:                       # the workload's `deployment:` names are these
      - {name: code-a, like: summarise, min_replicas: 0, max_replicas: 4, priority: 0}
    pool: {gpus: 16, gpus_per_host: 8}    # or gpus: auto (the smallest pool meeting every tenant's SLO)

Pure pydantic: sim.scenario validates these with file:line errors; sim.pool_compare runs them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class TenantSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    like: str = ""  # the playbook deployment it copies (engine, model, policy); "": the only one
    min_replicas: int = Field(default=0, ge=0)
    max_replicas: int = Field(default=1, ge=1)
    priority: int = 0
    weight: float = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _range(self) -> TenantSpec:
        if self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas is above max_replicas")
        return self


class PoolSpec(BaseModel):
    """The shared pool. `gpus: auto` searches the smallest pool whose every tenant keeps its SLO attainment
    within `slo_margin` of what its own separate fleet gives it (sim.pool_compare.size_pool)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    gpus: int | Literal["auto"] = "auto"
    gpus_per_host: int = Field(default=8, ge=1)
    slo_margin: float = Field(default=0.01, ge=0, le=1)

    @model_validator(mode="after")
    def _positive(self) -> PoolSpec:
        if self.gpus != "auto" and self.gpus < 1:
            raise ValueError("gpus must be at least 1 (or auto)")
        return self


__all__ = ["PoolSpec", "TenantSpec"]
