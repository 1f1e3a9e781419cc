"""The cold-start tiers of a replica slot (issue #18): how far a slot is from serving its model.

A slot (a host and the GPUs one replica would use there) stands on one rung of a ladder; each rung up is
cheaper to turn into a running replica and holds more of the host's resources:

    ABSENT            nothing of the model on the host: download the checkpoint, then all of ON_DISK
    ON_DISK           the checkpoint is on the host's local disk: start the engine, read the weights,
                      compile (torch.compile, a cache miss), capture CUDA graphs, warm up
    COMPILE_WARM      as ON_DISK, with the engine's compile cache pre-warmed at provision time (vLLM's
                      torch.compile/inductor artefacts under ~/.cache/vllm/torch_compile_cache, FlashInfer and
                      Triton JIT caches), so compile is a cache hit. CUDA graphs are not cached on disk by
                      either engine: they are captured again on every start
    ASLEEP_DISCARDED  the engine process is alive and asleep with its weights discarded (vLLM sleep level 2;
                      SGLang /release_memory_occupation without --enable-weights-cpu-backup): a wake re-maps
                      memory and re-reads the weights from the page cache or disk; no process start, compile
                      or graph capture
    ASLEEP_IN_RAM     asleep with the weights in host RAM (vLLM sleep level 1; SGLang with
                      --enable-weights-cpu-backup): a wake is a copy over the host link
    RUNNING           serving

The definition lives in the performance model because the rungs are defined by the start-up phases they
skip (llmctl.perf.cold_start.tier_ladder gives each rung's seconds and holdings); llmctl.pool.tiers
re-exports it with the slot record. A higher tier is never slower to reach RUNNING.
"""

from __future__ import annotations

from enum import IntEnum


class Tier(IntEnum):
    ABSENT = 0
    ON_DISK = 1
    COMPILE_WARM = 2
    ASLEEP_DISCARDED = 3  # vLLM sleep level 2 / SGLang memory release
    ASLEEP_IN_RAM = 4  # vLLM sleep level 1
    RUNNING = 5

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def asleep(self) -> bool:
        return self in (Tier.ASLEEP_DISCARDED, Tier.ASLEEP_IN_RAM)

    @property
    def has_process(self) -> bool:
        """An engine process is alive (asleep or serving), so it holds a CUDA context on its GPUs."""
        return self >= Tier.ASLEEP_DISCARDED

    @property
    def sleep_level(self) -> int | None:
        """vLLM's POST /sleep?level= that puts a running replica on this tier; None for other tiers."""
        return _SLEEP_LEVEL.get(self)


_LABELS = {
    Tier.ABSENT: "not present",
    Tier.ON_DISK: "weights on local disk",
    Tier.COMPILE_WARM: "compile cache warm",
    Tier.ASLEEP_DISCARDED: "asleep, weights discarded (level 2)",
    Tier.ASLEEP_IN_RAM: "asleep in RAM (level 1)",
    Tier.RUNNING: "running",
}
_SLEEP_LEVEL = {Tier.ASLEEP_IN_RAM: 1, Tier.ASLEEP_DISCARDED: 2}
