"""Performance profiles: one (engine, model, GPU, dtype, TP) resolved from the catalogs, plus its factors.

A profile is what every user of the performance model holds: the planner asks it for capacity, the emulated
engine for the time of an iteration, the simulator for cheap per-step times. Its name is
`engine/model/gpu/dtype/tpN`, e.g. `vllm/meta-llama/Llama-3.1-8B-Instruct/H100-SXM/fp8/tp1`; on a CPU host
the device is `CPU-x86-AVX512-<cores>c[-<GiB>GiB]`, e.g. `vllm/Qwen/Qwen3-8B/CPU-x86-AVX512-32c-192GiB/bf16/tp1`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from llmctl.catalog.gpus import GPU, get_gpu
from llmctl.catalog.models import Model, find_model
from llmctl.errors import LlmctlError
from llmctl.perf.cold_start import ColdStartFactors, default_cold_start
from llmctl.perf.factors import ENGINES, EfficiencyFactors, default_factors, factors_from_mapping
from llmctl.perf.memory import DTYPE_BYTES

DTYPES = ("bf16", "fp8")
# The engines' own defaults for the share of GPU memory they manage: vLLM --gpu-memory-utilization 0.9
# (vLLM engine arguments docs); SGLang picks --mem-fraction-static per GPU size, ~0.88 on 80 GB cards
# (SGLang server arguments docs).
DEFAULT_MEMORY_FRACTION = {"vllm": 0.90, "sglang": 0.88}


# Top-level keys of a profile file; `calibration` is informational (written by `llmctl perf calibrate`).
PROFILE_FILE_KEYS = ("profile", "kv_dtype", "memory_fraction", "cuda_graphs", "factors", "calibration")


@dataclass(frozen=True)
class Profile:
    engine: str
    model: Model
    gpu: GPU
    dtype: str  # weight (and GEMM) dtype
    tp: int
    kv_dtype: str = "bf16"
    memory_fraction: float = 0.90
    cuda_graphs: bool = True  # False = --enforce-eager (vLLM) / --disable-cuda-graph (SGLang)
    # Tokens one engine step may carry (--max-num-batched-tokens / --chunked-prefill-size): sizes the
    # activation memory reserved next to the KV cache, so planner, emulator and simulator agree on capacity.
    max_batched_tokens: int = 8192
    factors: EfficiencyFactors = field(default_factory=EfficiencyFactors)
    cold_start: ColdStartFactors = field(default_factory=ColdStartFactors)
    # An explicit KV-cache size in bytes (VLLM_CPU_KVCACHE_SPACE on a CPU host) instead of what the memory
    # fraction leaves; None: from the memory fraction (GPU) or the host-memory fit (CPU, see perf.memory).
    kv_cache_bytes: float | None = None

    @property
    def name(self) -> str:
        return f"{self.engine}/{self.model.name}/{self.gpu.name}/{self.dtype}/tp{self.tp}"

    def with_factors(self, factors: EfficiencyFactors) -> Profile:
        return replace(self, factors=factors)


def make_profile(
    engine: str,
    model: str | Model,
    gpu: str | GPU,
    dtype: str = "bf16",
    tp: int = 1,
    *,
    kv_dtype: str | None = None,
    memory_fraction: float | None = None,
    cuda_graphs: bool = True,
    max_batched_tokens: int = 8192,
    factor_overrides: dict[str, float] | None = None,
    kv_cache_bytes: float | None = None,
) -> Profile:
    """Resolve a profile from catalog names (or a resolved Model and device), with default factors for that
    engine and device. A local model directory is resolved by the playbook loader, which hands the Model on:
    a name here is looked up in the catalog only."""
    engine = engine.lower()
    if engine not in ENGINES:
        raise LlmctlError(f"unknown engine {engine!r}; known: {', '.join(ENGINES)}")
    resolved_model = model if isinstance(model, Model) else find_model(model)
    if resolved_model is None:
        raise LlmctlError(
            f"unknown model {model!r}; use a catalog name or a Hugging Face repo id in the catalog"
        )
    resolved_gpu = gpu if isinstance(gpu, GPU) else get_gpu(gpu)
    if dtype not in DTYPES:
        raise LlmctlError(f"unknown dtype {dtype!r}; known: {', '.join(DTYPES)}")
    if resolved_gpu.is_cpu and (dtype == "fp8" or kv_dtype == "fp8"):
        raise LlmctlError(
            f"{resolved_gpu.name}: vLLM's CPU backend serves bf16 weights and KV cache, not fp8"
        )
    if resolved_gpu.is_cpu and tp != 1:
        # The CPU device is one socket (vLLM binds a rank to one NUMA node); llmctl plans CPU replicas at TP 1.
        raise LlmctlError(f"{resolved_gpu.name}: CPU profiles are tp1, got tp{tp}")
    if resolved_gpu.is_cpu and engine != "vllm":
        raise LlmctlError(
            f"{resolved_gpu.name}: only vllm runs on CPU hosts (SGLang has no CPU build on PyPI)"
        )
    kv = kv_dtype or "bf16"
    if kv not in DTYPE_BYTES:
        raise LlmctlError(f"unknown kv dtype {kv!r}; known: {', '.join(DTYPE_BYTES)}")
    if tp < 1 or tp & (tp - 1):
        raise LlmctlError(f"tensor parallel size must be a power of two >= 1, got {tp}")
    if resolved_model.num_attention_heads % tp:
        raise LlmctlError(
            f"{resolved_model.name} has {resolved_model.num_attention_heads} heads, not divisible by tp {tp}"
        )
    fraction = DEFAULT_MEMORY_FRACTION[engine] if memory_fraction is None else memory_fraction
    if not 0.0 < fraction <= 1.0:
        raise LlmctlError(f"memory fraction must be in (0, 1], got {fraction}")
    factors = default_factors(engine, resolved_gpu).with_overrides(factor_overrides or {})
    return Profile(
        engine=engine,
        model=resolved_model,
        gpu=resolved_gpu,
        dtype=dtype,
        tp=tp,
        kv_dtype=kv,
        memory_fraction=fraction,
        cuda_graphs=cuda_graphs,
        max_batched_tokens=max_batched_tokens,
        factors=factors,
        cold_start=default_cold_start(engine, resolved_gpu),
        kv_cache_bytes=kv_cache_bytes,
    )


def parse_profile_name(name: str) -> tuple[str, str, str, str, int]:
    """Split `engine/model/gpu/dtype/tpN` into its keys. The model id may itself contain slashes."""
    parts = name.strip().strip("/").split("/")
    if len(parts) < 5 or not parts[-1].lower().startswith("tp") or not parts[-1][2:].isdigit():
        raise LlmctlError(
            f"bad profile name {name!r}; expected engine/model/gpu/dtype/tpN, "
            "e.g. vllm/meta-llama/Llama-3.1-8B-Instruct/H100-SXM/fp8/tp1"
        )
    return parts[0], "/".join(parts[1:-3]), parts[-3], parts[-2], int(parts[-1][2:])


def resolve_profile(name: str, **options: Any) -> Profile:
    """A profile from its name; keyword options as for `make_profile`."""
    engine, model, gpu, dtype, tp = parse_profile_name(name)
    return make_profile(engine, model, gpu, dtype, tp, **options)


def profile_to_dict(profile: Profile) -> dict[str, Any]:
    """The profile-file form: keys, memory fraction and every factor (so a file is complete on its own)."""
    return {
        "profile": profile.name,
        "kv_dtype": profile.kv_dtype,
        "memory_fraction": profile.memory_fraction,
        "cuda_graphs": profile.cuda_graphs,
        "factors": profile.factors.as_dict(),
    }


def profile_from_mapping(data: Any, *, source: str, base: Profile | None = None) -> Profile:
    """Build a profile from a parsed profile file. `base` supplies the keys when the file has none."""
    if not isinstance(data, dict):
        raise LlmctlError(f"{source}: a profile file must be a mapping")
    unknown = sorted(str(k) for k in data if k not in PROFILE_FILE_KEYS)
    if unknown:
        raise LlmctlError(
            f"{source}: unknown key(s) {', '.join(unknown)}; known: {', '.join(PROFILE_FILE_KEYS)}"
        )
    name = data.get("profile")
    if name is None and base is None:
        raise LlmctlError(f"{source}: missing 'profile' (engine/model/gpu/dtype/tpN)")
    kv = data.get("kv_dtype")
    fraction = data.get("memory_fraction")
    graphs = data.get("cuda_graphs", base.cuda_graphs if base else True)
    if kv is not None and not isinstance(kv, str):
        raise LlmctlError(f"{source}: kv_dtype: expected a string, got {kv!r}")
    if fraction is not None and (isinstance(fraction, bool) or not isinstance(fraction, int | float)):
        raise LlmctlError(f"{source}: memory_fraction: expected a number, got {fraction!r}")
    if not isinstance(graphs, bool):
        raise LlmctlError(f"{source}: cuda_graphs: expected true or false, got {graphs!r}")
    try:
        if isinstance(name, str):
            profile = resolve_profile(
                name,
                kv_dtype=kv,
                cuda_graphs=graphs,
                memory_fraction=None if fraction is None else float(fraction),
            )
        elif base is not None and name is None:
            profile = replace(
                base,
                kv_dtype=kv or base.kv_dtype,
                cuda_graphs=graphs,
                memory_fraction=base.memory_fraction if fraction is None else float(fraction),
            )
        else:
            raise LlmctlError(f"profile: expected a name string, got {name!r}")
    except LlmctlError as exc:
        raise LlmctlError(f"{source}: {exc}") from None
    factors = factors_from_mapping(data.get("factors", {}), base=profile.factors, source=source)
    return profile.with_factors(factors)
