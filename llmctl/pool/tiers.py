"""Cold-start tiers per replica slot (issue #18), as data: the `Tier` ladder (defined with the performance
model that times it, llmctl.perf.tiers) and `SlotTier`, where one slot stands on it.

    ABSENT -> ON_DISK -> COMPILE_WARM -> ASLEEP_DISCARDED (vLLM level 2) -> ASLEEP_IN_RAM (level 1) -> RUNNING

llmctl.perf.cold_start.tier_ladder gives each rung's seconds to RUNNING and what it holds (GPU memory, host
RAM, disk); llmctl.pool.cold_policy picks the rungs a deployment's TTFT target needs and checks that the
slots kept on them fit their hosts; llmctl.pool.transitions says how a granted slot comes up from its tier.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmctl.perf.tiers import Tier

__all__ = ["SlotTier", "Tier"]


@dataclass(frozen=True, order=True)
class SlotTier:
    """Where one slot stands: `model` on `host`'s GPUs `gpus` (indices, as llmctl.pool.types.PoolGpu has
    them), at `tier`. `deployment` names the deployment the slot is kept for; empty for a model's slot any
    deployment of that model may take. A tier below ASLEEP_DISCARDED holds no GPU, so `gpus` may be empty."""

    host: str
    gpus: tuple[int, ...]
    model: str
    tier: Tier
    deployment: str = ""

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError(f"SlotTier {self.model!r}: host must be set")
        if self.tier.has_process and not self.gpus:
            raise ValueError(f"SlotTier {self.host}/{self.model}: a slot {self.tier.label} needs its GPUs")
        if len(set(self.gpus)) != len(self.gpus):
            raise ValueError(f"SlotTier {self.host}/{self.model}: GPU indices repeat: {self.gpus}")

    @property
    def gpu_keys(self) -> tuple[tuple[str, int], ...]:
        """The slot's GPUs as llmctl.pool.types.PoolGpu keys."""
        return tuple((self.host, i) for i in self.gpus)

    def at(self, tier: Tier) -> SlotTier:
        return SlotTier(self.host, self.gpus, self.model, tier, self.deployment)
