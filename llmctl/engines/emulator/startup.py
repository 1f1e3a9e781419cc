"""Start-up of the emulated engine: the memory checks real engines make, failing with their own error lines
at the point of their start-up where they fail, and the modelled cold-start and wake-up times.

What each engine does when memory is short (the lines are matched by llmctl.engines.startup_errors):
- weights larger than the GPU: both engines die while loading, in torch's allocator
  (`torch.OutOfMemoryError: CUDA out of memory. Tried to allocate ...`);
- weights fit the card but leave no KV cache under the memory fraction: vLLM
  `ValueError: No available memory for the cache blocks ...`, SGLang
  `RuntimeError: Not enough memory. Please try to increase --mem-fraction-static.`;
- a KV cache smaller than one max-length sequence: vLLM refuses to start (`ValueError: To serve at least
  one request with the model's max seq len ...`); SGLang starts and rejects longer requests one by one.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmctl.catalog.gpus import GiB
from llmctl.engines.emulator.config import EmulatorConfig
from llmctl.errors import LlmctlError
from llmctl.perf.capacity import kv_fit
from llmctl.perf.cold_start import cold_start_time, tier_ladder, wake_time
from llmctl.perf.profile import Profile, make_profile
from llmctl.perf.speculative import SpecConfig
from llmctl.perf.tiers import Tier

VLLM_DOCS = "https://docs.vllm.ai/en/latest/configuration/conserving_memory/"


class StartupError(Exception):
    """The engine would not start: `lines` are what it prints last, `after_s` the modelled seconds into its
    start-up at which it gives up (loading weights, profiling memory)."""

    def __init__(self, lines: tuple[str, ...], after_s: float = 0.0) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines
        self.after_s = after_s


@dataclass(frozen=True)
class Replica:
    profile: Profile
    spec: SpecConfig | None
    kv_capacity: int  # KV-cache tokens of the whole replica


def profile_of(c: EmulatorConfig) -> Profile:
    profile = make_profile(
        c.flavour,
        c.model,
        c.gpu,
        c.dtype,
        c.tp,
        kv_dtype=c.kv_dtype,
        memory_fraction=c.memory_fraction,
        max_batched_tokens=c.max_batched_tokens,
    )
    return profile if c.factors is None else profile.with_factors(c.factors)


def spec_of(c: EmulatorConfig) -> SpecConfig | None:
    return (
        SpecConfig(draft_params=c.draft_params, num_draft_tokens=c.draft_tokens) if c.draft_params else None
    )


def _fail(c: EmulatorConfig, line: str, after_s: float) -> StartupError:
    if c.flavour == "vllm":
        # The engine core dies with the root cause; the API server process then ends on this line.
        tail = (
            "RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}"
        )
        return StartupError(("ERROR EngineCore failed to start.", line, tail), after_s)
    return StartupError(("Scheduler hit an exception: Traceback (most recent call last):", line), after_s)


def prepare(c: EmulatorConfig) -> Replica:
    """The replica's profile and KV capacity, or StartupError with the lines the real engine prints."""
    try:
        profile = profile_of(c)
    except LlmctlError as exc:  # e.g. a TP size that does not divide the heads: refused before loading
        raise _fail(c, f"ValueError: {exc}", 0.0) from None
    spec = spec_of(c)
    fit = kv_fit(profile, spec)
    phases = cold_start_time(profile, draft_params=c.draft_params)
    load_s = phases.disk_read_s + phases.host_to_gpu_s
    if fit.weights > fit.gpu_memory:
        # Loading stops at the first layer that no longer fits: that is the allocation torch reports.
        layer = fit.weights / max(c.model.num_layers, 1)
        loaded = fit.gpu_memory * 0.99
        line = (
            f"torch.OutOfMemoryError: CUDA out of memory. Tried to allocate {layer / GiB:.2f} GiB. "
            f"GPU 0 has a total capacity of {fit.gpu_memory / GiB:.2f} GiB of which "
            f"{(fit.gpu_memory - loaded) / 2**20:.2f} MiB is free. Including non-PyTorch memory, this "
            f"process has {loaded / GiB:.2f} GiB memory in use."
        )
        raise _fail(c, line, phases.engine_init_s + load_s * fit.gpu_memory / fit.weights)
    # Both engines size the KV cache after loading and a profiling run (which is where vLLM compiles).
    profiled_s = phases.engine_init_s + load_s + phases.compile_s
    if fit.kv_capacity_tokens < 1:
        if c.flavour == "vllm":
            line = (
                "ValueError: No available memory for the cache blocks. Try increasing `gpu_memory_utilization` "
                "when initializing the engine."
            )
        else:
            line = "RuntimeError: Not enough memory. Please try to increase --mem-fraction-static."
        raise _fail(c, line, profiled_s)
    if c.flavour == "vllm" and fit.kv_capacity_tokens < c.max_model_len:
        needed = c.max_model_len * fit.kv_bytes_per_token
        line = (
            "ValueError: To serve at least one request with the model's max seq len "
            f"({c.max_model_len}), ({needed / GiB:.2f} GiB KV cache is needed, which is larger than the "
            f"available KV cache memory ({fit.kv_bytes / GiB:.2f} GiB). Based on the available memory, the "
            f"estimated maximum model length is {fit.kv_capacity_tokens}. Try increasing "
            "`gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine. "
            f"See {VLLM_DOCS} for more details."
        )
        raise _fail(c, line, profiled_s)
    return Replica(profile, spec, fit.kv_capacity_tokens)


def cold_start_seconds(c: EmulatorConfig) -> float:
    return cold_start_time(profile_of(c), draft_params=c.draft_params).total_s


def wake_seconds(c: EmulatorConfig) -> float:
    return wake_time(profile_of(c), draft_params=c.draft_params).total_s


def wake_phases(c: EmulatorConfig, level: int) -> tuple[float, float]:
    """(POST /wake_up, POST /collective_rpc reload_weights) modelled seconds after a sleep at `level`: the
    cold-start ladder's time from that tier (llmctl.perf.cold_start.tier_ladder), level 2's re-read of the
    checkpoint being the reload's part."""
    step = tier_ladder(profile_of(c), draft_params=c.draft_params)[
        Tier.ASLEEP_DISCARDED if level == 2 else Tier.ASLEEP_IN_RAM
    ]
    if step.via is not step.tier:  # a device the model gives no sleep mode (CPU): its sleep-mode wake as is
        return wake_seconds(c), 0.0
    return step.total_s - step.reload_s, step.reload_s
