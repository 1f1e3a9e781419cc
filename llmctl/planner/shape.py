"""Shape one replica: apply the workload-class preset to a model on a GPU type, and check it fits in memory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from llmctl.catalog.gpus import GPU, GPUS, GiB, find_gpu
from llmctl.catalog.models import Model
from llmctl.config.playbook import Deployment
from llmctl.engines import sglang, vllm
from llmctl.perf.capacity import max_throughput
from llmctl.perf.cold_start import cold_start_time, wake_time
from llmctl.perf.memory import MemoryFit, memory_fit
from llmctl.perf.profile import Profile, make_profile
from llmctl.perf.speculative import SpecConfig, draft_params
from llmctl.planner.lora import lora_decision
from llmctl.planner.presets import PRESETS
from llmctl.planner.types import Decision, Shape

ENGINE_VERSIONS = {"vllm": vllm.DEFAULT_VERSION, "sglang": sglang.DEFAULT_VERSION}
# Context (prompt + output) of the typical sequence behind the plan's throughput estimate; a mid-sized chat
# or enrichment request. The estimate is the performance model's, at the largest batch the KV cache allows.
ESTIMATE_CONTEXT = 2048


class DoesNotFit(Exception):
    """No configuration of this deployment fits the GPUs; the message says what was tried and what would fit.
    `field` names the deployment's playbook field that asks for the impossible, where one does (e.g. engine:
    sglang on a CPU host), so the error can point at its line."""

    def __init__(self, message: str, field: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class _Candidate:
    tp: int
    weights: str
    kv: str
    fit: MemoryFit


def flavour_of(dep: Deployment) -> tuple[str, str, Decision]:
    """(engine, flavour, decision): which engine runs and which engine's API and flags it speaks."""
    preset = PRESETS[dep.workload]
    if dep.engine == "emulated":
        flavour = dep.emulate or preset.engine
        return (
            "emulated",
            flavour,
            Decision(
                "engine", f"emulated ({flavour})", "engine: emulated rehearses the rollout without GPUs"
            ),
        )
    if dep.engine == "auto":
        return preset.engine, preset.engine, Decision("engine", preset.engine, preset.engine_reason)
    return dep.engine, dep.engine, Decision("engine", dep.engine, "set in the playbook")


def checkpoint_compute_dtype(model: Model, gpu: GPU) -> str:
    """The dtype a pre-quantised checkpoint's GEMMs run in: FP8 checkpoints on FP8 tensor cores (W8A8), every
    other one (int4, MXFP4, FP8 on an A100 via Marlin) dequantises to bf16. bf16 for an unquantised model."""
    return "fp8" if model.quantization == "fp8" and gpu.supports_fp8 and not gpu.is_cpu else "bf16"


def _gib(value: float) -> str:
    return f"{value / GiB:.1f} GiB"


def shape_replica(dep: Deployment, model: Model, gpu: GPU, gpus_on_host: int) -> Shape:
    """The replica shape for `dep` on hosts with `gpus_on_host` GPUs of type `gpu`; raises DoesNotFit."""
    preset = PRESETS[dep.workload]
    serving = dep.serving
    engine, flavour, engine_decision = flavour_of(dep)
    decisions = [engine_decision]

    max_context = min(serving.max_context or preset.max_context, model.max_context)
    if serving.max_context and serving.max_context > model.max_context:
        raise DoesNotFit(
            f"max_context {serving.max_context} exceeds {model.name}'s {model.max_context} tokens"
        )
    concurrency = serving.concurrency or preset.concurrency
    required_tokens = max_context * concurrency

    draft: str | None = None
    if serving.speculative == "eagle3" or (serving.speculative == "auto" and preset.speculative):
        if model.eagle3_drafts:
            draft = model.eagle3_drafts[0]
            decisions.append(
                Decision(
                    "speculative decoding",
                    f"EAGLE-3 ({draft})",
                    preset.speculative_reason if serving.speculative == "auto" else "set in the playbook",
                )
            )
        elif serving.speculative == "eagle3":
            raise DoesNotFit(f"speculative: eagle3 but no EAGLE-3 draft is known for {model.name}")
        else:
            decisions.append(
                Decision("speculative decoding", "off", f"no EAGLE-3 draft is known for {model.name}")
            )
    else:
        reason = preset.speculative_reason if serving.speculative == "auto" else "set in the playbook"
        decisions.append(Decision("speculative decoding", "off", reason))
    draft_params = model.eagle3_draft_params if draft else 0.0

    prequantised = model.quantization
    if prequantised and serving.quantization == "fp8":
        raise DoesNotFit(
            f"quantization: fp8 but {model.name} is a pre-quantised {prequantised} checkpoint, loaded as it is; "
            "set quantization: auto",
            field=("serving", "quantization"),
        )
    if serving.quantization == "fp8" and not gpu.supports_fp8:
        raise DoesNotFit(f"quantization: fp8 but {gpu.name} has no FP8 tensor cores")
    if prequantised:
        # The checkpoint's own weights (its size is the fit's); `weights` is only the dtype its GEMMs run in.
        weights = checkpoint_compute_dtype(model, gpu)
    else:
        weights = (
            "fp8"
            if serving.quantization == "fp8" or (serving.quantization == "auto" and gpu.supports_fp8)
            else "bf16"
        )
    kv_options = {"auto": ("bf16", "fp8"), "bf16": ("bf16",), "fp8": ("fp8",)}[serving.kv_cache_dtype]
    # Engines shard attention heads across ranks: a TP size must divide the head count.
    if serving.tensor_parallel == "auto":
        tps = [
            tp for tp in preset.tp_preference if tp <= gpus_on_host and model.num_attention_heads % tp == 0
        ]
    else:
        tps = [serving.tensor_parallel]
        if model.num_attention_heads % serving.tensor_parallel:
            raise DoesNotFit(
                f"tensor_parallel {serving.tensor_parallel} does not divide {model.name}'s "
                f"{model.num_attention_heads} attention heads"
            )
        if serving.tensor_parallel > gpus_on_host:
            raise DoesNotFit(
                f"tensor_parallel {serving.tensor_parallel} needs {serving.tensor_parallel} "
                f"{gpu.name} on one host; the largest such host has {gpus_on_host}"
            )

    # vLLM needs a step to hold at least one whole prompt when chunked prefill is off; keep it >= the context.
    batched = max(preset.max_batched_tokens, max_context) if flavour == "vllm" else preset.max_batched_tokens

    def fit(tp: int, w: str, kv: str, on: GPU = gpu) -> MemoryFit:
        return memory_fit(
            model,
            on,
            tp=tp,
            weight_dtype=w,
            kv_dtype=kv,
            memory_fraction=serving.gpu_memory_fraction,
            step_tokens=batched,
            draft_params=draft_params,
            context=max_context,
        )

    tried: list[_Candidate] = []
    chosen: _Candidate | None = None
    for tp in tps:
        for kv in kv_options:
            cand = _Candidate(tp, weights, kv, fit(tp, weights, kv))
            tried.append(cand)
            if cand.fit.kv_capacity_tokens >= required_tokens:
                chosen = cand
                break
        if chosen:
            break
    if chosen is None:
        raise DoesNotFit(
            _explain(dep, model, gpu, gpus_on_host, tried, required_tokens, max_context, concurrency, fit)
        )

    tp_reason = preset.tp_reason if serving.tensor_parallel == "auto" else "set in the playbook"
    if serving.tensor_parallel == "auto" and chosen.tp != tps[0]:
        tp_reason = f"TP {tps[0]} does not fit {required_tokens} KV tokens next to the weights"
    decisions.append(Decision("tensor parallel", str(chosen.tp), tp_reason))
    if prequantised:
        decisions.append(
            Decision(
                "weights",
                f"{prequantised} (pre-quantised checkpoint)",
                f"{model.name} ships {prequantised} weights ({_gib(chosen.fit.weights * chosen.tp)}); the engine "
                "reads its quantization_config, so no --quantization is added",
            )
        )
    elif weights == "fp8":
        decisions.append(
            Decision(
                "weights",
                "fp8",
                preset.fp8_reason if serving.quantization == "auto" else "set in the playbook",
            )
        )
    else:
        decisions.append(
            Decision(
                "weights",
                "bf16",
                f"{gpu.name} has no FP8 tensor cores" if not gpu.supports_fp8 else "set in the playbook",
            )
        )
    kv_reason = (
        "bf16 KV cache does not fit the context and concurrency"
        if chosen.kv == "fp8" and serving.kv_cache_dtype == "auto"
        else "full-precision KV cache fits"
        if serving.kv_cache_dtype == "auto"
        else "set in the playbook"
    )
    decisions.append(Decision("KV cache", chosen.kv, kv_reason))
    decisions.append(
        Decision(
            "memory",
            f"{chosen.fit.kv_capacity_tokens} KV tokens",
            f"{_gib(chosen.fit.weights)} weights + {_gib(chosen.fit.activations + chosen.fit.overhead)} "
            f"overheads per GPU leave {_gib(chosen.fit.kv_bytes)} for {concurrency} x {max_context} "
            "tokens",
        )
    )
    sleep = preset.sleep_mode
    decisions.append(Decision("sleep mode", "on" if sleep else "off", preset.sleep_reason))
    lora = lora_decision(dep, model, chosen.tp)
    if lora is not None:
        decisions.append(lora)
    max_seqs = max(1, min(preset.max_num_seqs, chosen.fit.kv_capacity_tokens // 256))
    profile = make_profile(
        flavour,
        model,
        gpu,
        weights,
        chosen.tp,
        kv_dtype=chosen.kv,
        memory_fraction=serving.gpu_memory_fraction,
        max_batched_tokens=batched,
    )
    spec = SpecConfig(draft_params=draft_params) if draft else None
    est_context = min(ESTIMATE_CONTEXT, max_context)
    best = max_throughput(profile, est_context, spec=spec, max_seqs=max_seqs)
    return Shape(
        engine=engine,
        flavour=flavour,
        engine_version=dep.engine_version or ENGINE_VERSIONS[flavour],
        model=model.name,
        model_spec=model,
        gpu_type=gpu.name,
        tp=chosen.tp,
        quantization="fp8" if weights == "fp8" and not prequantised else "none",
        kv_cache_dtype=chosen.kv,
        speculative_draft=draft,
        max_context=max_context,
        concurrency=concurrency,
        max_num_seqs=max_seqs,
        max_batched_tokens=batched,
        memory_fraction=serving.gpu_memory_fraction,
        sleep_mode=sleep,
        kv_capacity_tokens=chosen.fit.kv_capacity_tokens,
        weights_gib_per_gpu=chosen.fit.weights / GiB,
        kv_gib_per_gpu=chosen.fit.kv_bytes / GiB,
        est_context=est_context,
        est_batch=best.batch if best else 0,
        est_tokens_per_s=best.tokens_per_s if best else 0.0,
        decisions=tuple(decisions),
    )


def _explain(
    dep: Deployment,
    model: Model,
    gpu: GPU,
    gpus_on_host: int,
    tried: list[_Candidate],
    required_tokens: int,
    max_context: int,
    concurrency: int,
    fit: Callable[..., MemoryFit],
) -> str:
    # Ties (nothing fits at all) go to the largest TP tried: the most useful base for suggestions.
    best = max(tried, key=lambda c: (c.fit.kv_capacity_tokens, c.tp)) if tried else None
    kv_per_token = best.fit.kv_bytes_per_token if best else 0.0
    needed = (best.fit.needed_without_kv + required_tokens * kv_per_token) if best else 0.0
    lines = [
        f"deployment {dep.name!r}: {model.name} does not fit on {gpu.name} "
        f"({_gib(gpu.memory_bytes)} per GPU, {dep.serving.gpu_memory_fraction:g} usable, at most {gpus_on_host} "
        "per host)."
    ]
    if best:
        lines.append(
            f"  best try: TP {best.tp}, {best.weights} weights, {best.kv} KV needs {_gib(needed)} per GPU "
            f"(weights {_gib(best.fit.weights)}, overheads {_gib(best.fit.activations + best.fit.overhead)}, "
            f"KV for {concurrency} x {max_context} tokens {_gib(required_tokens * kv_per_token)}); "
            f"available {_gib(best.fit.budget)}."
        )
    options: list[str] = []
    if best:

        def fits(trial: MemoryFit) -> bool:
            return trial.kv_capacity_tokens >= required_tokens

        bigger_tp = next(
            (tp for tp in (2, 4, 8, 16) if tp > best.tp and fits(fit(tp, best.weights, best.kv))), None
        )
        if bigger_tp:
            options.append(f"tensor_parallel: {bigger_tp} (needs a host with {bigger_tp} x {gpu.name})")
        if (
            not model.quantization
            and best.weights == "bf16"
            and gpu.supports_fp8
            and fits(fit(best.tp, "fp8", best.kv))
        ):
            options.append("quantization: fp8")
        if best.kv == "bf16" and fits(fit(best.tp, best.weights, "fp8")):
            options.append("kv_cache_dtype: fp8")
        shorter = (best.fit.kv_capacity_tokens // concurrency) // 256 * 256
        if shorter >= 256:
            options.append(f"max_context: {shorter} (at concurrency {concurrency})")
        if best.fit.kv_capacity_tokens // max_context >= 1:
            options.append(
                f"concurrency: {best.fit.kv_capacity_tokens // max_context} (at max_context {max_context})"
            )
        bigger = [
            g.name
            for g in GPUS.values()
            if g.memory_bytes > gpu.memory_bytes
            and fits(fit(best.tp, best.weights if g.supports_fp8 else "bf16", best.kv, on=g))
        ]
        if bigger:
            options.append(f"a GPU with more memory ({', '.join(bigger)}) at TP {best.tp}")
    lines.append(
        "  would fit: "
        + (
            "; ".join(options)
            if options
            else "nothing on this inventory; use a smaller model or more GPUs per host"
        )
    )
    return "\n".join(lines)


def shape_profile(shape: Shape) -> Profile:
    """The performance-model profile of a planned replica shape (for cold-start, wake-up and step times).

    Built from the Model the shape carries, never by name: a local model directory is not in the catalog.
    A CPU replica's KV cache is the explicit size it is started with (VLLM_CPU_KVCACHE_SPACE)."""
    gpu = find_gpu(shape.gpu_type)
    prequantised_fp8 = gpu is not None and checkpoint_compute_dtype(shape.model_spec, gpu) == "fp8"
    return make_profile(
        shape.flavour,
        shape.model_spec,
        shape.gpu_type,
        "fp8" if shape.quantization == "fp8" or prequantised_fp8 else "bf16",
        shape.tp,
        kv_dtype=shape.kv_cache_dtype,
        memory_fraction=shape.memory_fraction,
        max_batched_tokens=shape.max_batched_tokens,
        kv_cache_bytes=shape.kv_gib_per_gpu * GiB if shape.device == "cpu" else None,
    )


def shape_draft_params(shape: Shape) -> float:
    """The EAGLE-3 head the replica loads beside its weights, 0 without speculative decoding."""
    return draft_params(shape.model_spec) if shape.speculative_draft else 0.0


def startup_costs(shape: Shape) -> tuple[float, float]:
    """(cold start, wake-up) seconds of a replica of this shape, from its profile and its draft head: the same
    figures the emulated engine takes to start and wake (llmctl.engines.emulator.startup)."""
    profile, draft = shape_profile(shape), shape_draft_params(shape)
    return cold_start_time(profile, draft_params=draft).total_s, wake_time(
        profile, draft_params=draft
    ).total_s
