"""Start-up of the emulated engine: the memory check real engines make (failing with their own error lines)
and the modelled cold-start and wake-up times."""

from __future__ import annotations

from llmctl.catalog.gpus import GiB
from llmctl.engines.emulator.config import EmulatorConfig
from llmctl.perf.capacity import kv_fit
from llmctl.perf.cold_start import cold_start_time, wake_time
from llmctl.perf.profile import Profile, make_profile
from llmctl.perf.speculative import SpecConfig


class StartupError(Exception):
    """The engine would not start; the message is the engine's own last error line."""


def profile_of(c: EmulatorConfig) -> Profile:
    return make_profile(
        c.flavour,
        c.model,
        c.gpu,
        c.dtype,
        c.tp,
        kv_dtype=c.kv_dtype,
        memory_fraction=c.memory_fraction,
        max_batched_tokens=c.max_batched_tokens,
    )


def spec_of(c: EmulatorConfig) -> SpecConfig | None:
    return (
        SpecConfig(draft_params=c.draft_params, num_draft_tokens=c.draft_tokens) if c.draft_params else None
    )


def kv_capacity(c: EmulatorConfig) -> int:
    """KV tokens of the replica, or StartupError with the message the real engine prints."""
    fit = kv_fit(profile_of(c), spec_of(c))
    if fit.needed_without_kv > fit.gpu_memory:
        if c.flavour == "vllm":
            # Loading fails on the first layer that no longer fits, so that is the allocation torch reports.
            layer = fit.weights / max(c.model.num_layers, 1)
            loaded = fit.gpu_memory * 0.99
            raise StartupError(
                f"torch.OutOfMemoryError: CUDA out of memory. Tried to allocate {layer / GiB:.2f} GiB. "
                f"GPU 0 has a total capacity of {fit.gpu_memory / GiB:.2f} GiB of which "
                f"{(fit.gpu_memory - loaded) / 2**20:.2f} MiB is free. Including non-PyTorch memory, this "
                f"process has {loaded / GiB:.2f} GiB memory in use."
            )
        raise StartupError("RuntimeError: Not enough memory. Please try to increase --mem-fraction-static.")
    if fit.kv_capacity_tokens < c.max_model_len:
        if c.flavour == "vllm":
            per_token = fit.kv_bytes_per_token
            estimated = fit.kv_capacity_tokens
            raise StartupError(
                "ValueError: To serve at least one request with the models's max seq len "
                f"({c.max_model_len}), ({c.max_model_len * per_token / GiB:.2f} GiB KV cache is needed, which is "
                f"larger than the available KV cache memory ({fit.kv_bytes / GiB:.2f} GiB). Based on the available"
                f" memory, the estimated maximum model length is {estimated}. Try increasing "
                "`gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine."
            )
        raise StartupError("RuntimeError: Not enough memory. Please try to increase --mem-fraction-static.")
    return fit.kv_capacity_tokens


def cold_start_seconds(c: EmulatorConfig) -> float:
    return cold_start_time(profile_of(c), draft_params=c.draft_params).total_s


def wake_seconds(c: EmulatorConfig) -> float:
    return wake_time(profile_of(c)).total_s
