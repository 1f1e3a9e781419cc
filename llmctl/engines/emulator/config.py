"""The emulated engine's settings, read from the same command line the real engine would get."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from llmctl.catalog.gpus import get_gpu
from llmctl.catalog.models import Model
from llmctl.config.models import resolve_model
from llmctl.engines.emulated import GPU_ENV, PROFILE_ENV, TIME_SCALE_ENV
from llmctl.engines.emulator.lora import AdapterNotFound, LoraSettings, read_adapter
from llmctl.engines.flagspec import FlagSpec
from llmctl.engines.flagtypes import convert
from llmctl.engines.snapshots import load_flagspec
from llmctl.errors import LlmctlError
from llmctl.perf.factors import EfficiencyFactors
from llmctl.perf.speculative import DEFAULT_DRAFT_TOKENS, draft_params

# The planner always sets the GPU; a hand-started emulator stands in for the most common serving card.
DEFAULT_GPU = "H100-SXM"


@dataclass(frozen=True)
class EmulatorConfig:
    flavour: str  # vllm | sglang
    model: Model
    served_names: tuple[str, ...]
    host: str
    port: int
    tp: int
    dtype: str  # bf16 | fp8
    kv_dtype: str
    max_model_len: int
    max_seqs: int
    max_batched_tokens: int
    memory_fraction: float
    draft_params: float  # EAGLE-3 draft size, 0 without speculative decoding
    draft_tokens: int  # tokens drafted per step (vLLM num_speculative_tokens, SGLang --speculative-num-steps)
    sleep_mode: bool  # vLLM --enable-sleep-mode (with VLLM_SERVER_DEV_MODE=1) / SGLang --enable-memory-saver
    metrics: bool  # SGLang serves /metrics only with --enable-metrics
    api_keys: tuple[str, ...]  # vLLM takes several (--api-key A B); empty: no key is asked for
    gpu: str
    time_scale: float
    kv_cache_dtype: str = "auto"  # the flag as given (vLLM reports it in cache_config_info)
    load_tracking: bool = False  # vLLM --enable-server-load-tracking: /load counts requests in flight
    factors: EfficiencyFactors | None = None  # from LLMCTL_EMULATOR_PROFILE; None: the device's defaults
    lora: LoraSettings | None = None  # vLLM/SGLang --enable-lora; None: no adapters are served


class UsageError(Exception):
    """Bad command line: reported like argparse (exit status 2)."""


class ConfigError(Exception):
    """The flags parse but the replica cannot be set up (unknown model or GPU, bad environment): the real
    engines fail these after parsing, with exit status 1, so the emulator does too."""


def _get(spec: FlagSpec, values: dict[str, object], dest: str, default: object) -> object:
    raw = values.get(dest)
    if raw is None:
        return default
    if isinstance(raw, bool | list):
        return raw
    flag = next(f for f in spec.flags if f.dest == dest)
    return convert(spec.engine, flag.type, str(raw), flag.default)


def parse_config(flavour: str, argv: list[str], environ: dict[str, str] | None = None) -> EmulatorConfig:
    env = os.environ if environ is None else environ
    spec = load_flagspec("vllm" if flavour == "vllm" else "sglang")
    problems = spec.validate(argv)
    if problems:
        raise UsageError("; ".join(str(p) for p in problems))
    v = spec.values(argv)
    if flavour == "vllm":
        name = str(v.get("model_tag") or v.get("model") or "")
        dests = {
            "tp": "tensor_parallel_size",
            "len": "max_model_len",
            "seqs": "max_num_seqs",
            "batched": "max_num_batched_tokens",
            "mem": "gpu_memory_utilization",
        }
        defaults = {"tp": 1, "seqs": 256, "batched": 8192, "mem": 0.92, "port": 8000, "host": "0.0.0.0"}
        if get_gpu(_gpu(env.get(GPU_ENV) or DEFAULT_GPU)).is_cpu:
            # vLLM's own defaults for its API server on the CPU platform (EngineArgs._set_default_args).
            defaults |= {"seqs": 128, "batched": 2048}
        sleep = bool(v.get("enable_sleep_mode")) and env.get("VLLM_SERVER_DEV_MODE") == "1"
        metrics = True
    else:
        name = str(v.get("model_path") or "")
        dests = {
            "tp": "tp_size",
            "len": "context_length",
            "seqs": "max_running_requests",
            "batched": "chunked_prefill_size",
            "mem": "mem_fraction_static",
        }
        defaults = {"tp": 1, "seqs": 256, "batched": 8192, "mem": 0.88, "port": 30000, "host": "127.0.0.1"}
        sleep = bool(v.get("enable_memory_saver"))
        metrics = bool(v.get("enable_metrics"))
    if not name:
        raise UsageError("the model is required")
    try:
        model = resolve_model(name, Path.cwd())
    except Exception as exc:  # a real engine fails the same way, after parsing: it cannot load the config
        raise ConfigError(str(exc)) from None
    max_len = _get(spec, v, dests["len"], None)
    served = v.get("served_model_name")
    quant = v.get("quantization")
    kv = str(v.get("kv_cache_dtype") or "auto")
    draft, draft_tokens = 0.0, DEFAULT_DRAFT_TOKENS
    if flavour == "vllm" and v.get("speculative_config"):
        draft = draft_params(model)
        settings = json.loads(str(v["speculative_config"]))
        if isinstance(settings, dict) and isinstance(settings.get("num_speculative_tokens"), int):
            draft_tokens = settings["num_speculative_tokens"]
    if flavour == "sglang" and v.get("speculative_algorithm"):
        draft = draft_params(model)
        draft_tokens = int(str(_get(spec, v, "speculative_num_steps", DEFAULT_DRAFT_TOKENS)))
        if v.get("max_running_requests") is None:
            defaults["seqs"] = 48  # SGLang caps EAGLE batches at 48 unless told otherwise
    return EmulatorConfig(
        flavour=flavour,
        model=model,
        served_names=tuple(served) if isinstance(served, list) else (str(served),) if served else (name,),
        host=str(v.get("host") or defaults["host"]),
        port=int(str(v.get("port") or defaults["port"])),
        tp=int(str(_get(spec, v, dests["tp"], defaults["tp"]))),
        dtype="fp8" if quant == "fp8" else "bf16",
        kv_dtype="fp8" if kv.startswith("fp8") else "bf16",
        max_model_len=int(str(max_len)) if max_len not in (None, "auto", -1) else model.max_context,
        max_seqs=int(str(_get(spec, v, dests["seqs"], defaults["seqs"]))),
        max_batched_tokens=int(str(_get(spec, v, dests["batched"], defaults["batched"]))),
        memory_fraction=float(str(_get(spec, v, dests["mem"], defaults["mem"]))),
        draft_params=draft,
        draft_tokens=max(1, draft_tokens),
        sleep_mode=sleep,
        metrics=metrics,
        api_keys=_api_keys(flavour, v.get("api_key") or _config_file_key(flavour, v.get("config")), env),
        gpu=_gpu(env.get(GPU_ENV) or DEFAULT_GPU),
        time_scale=_time_scale(env.get(TIME_SCALE_ENV) or "1.0"),
        kv_cache_dtype=kv,
        load_tracking=flavour == "vllm" and bool(v.get("enable_server_load_tracking")),
        factors=_factors(env.get(PROFILE_ENV)),
        lora=lora_settings(flavour, spec, v, env),
    )


def _gpu(name: str) -> str:
    try:
        return get_gpu(name).name
    except LlmctlError as exc:
        raise ConfigError(f"{GPU_ENV}: {exc}") from None


def _factors(path: str | None) -> EfficiencyFactors | None:
    """Only the file's factors are taken: model, device and limits come from the command line and
    LLMCTL_EMULATED_GPU as always, so one calibrated file can time a replica started with other flags."""
    if not path:
        return None
    from llmctl.bench.profile_file import load_profile_file  # yaml, and only when a file is given

    try:
        return load_profile_file(path).factors
    except LlmctlError as exc:
        raise ConfigError(f"{PROFILE_ENV}: {exc}") from None


def _time_scale(raw: str) -> float:
    try:
        scale = float(raw)
    except ValueError:
        scale = -1.0
    if not scale >= 0.0 or math.isinf(scale):
        raise ConfigError(f"{TIME_SCALE_ENV} must be a finite number >= 0, got {raw!r}")
    return scale


def _config_file_key(flavour: str, path: object) -> object:
    """SGLang's `--config FILE`: a YAML mapping of its flags, under which the command line's win. The
    emulator reads the one llmctl writes there, the API key (llmctl.engines.api_key)."""
    if flavour != "sglang" or not path:
        return None
    try:
        data = yaml.safe_load(Path(str(path)).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"the config file {path} is not a mapping of flags")
    return data.get("api-key") or data.get("api_key")


def _api_keys(flavour: str, raw: object, env: Mapping[str, str]) -> tuple[str, ...]:
    if flavour == "sglang":
        return (str(raw),) if raw else ()  # one key; SGLang reads no environment variable for it
    if isinstance(raw, list):
        return tuple(str(k) for k in raw)
    if raw:
        return (str(raw),)
    return (env["VLLM_API_KEY"],) if env.get("VLLM_API_KEY") else ()


def prompt_tokens(text: str) -> int:
    # About four characters per token for English text with BPE vocabularies; the emulator has no tokenizer.
    return max(1, math.ceil(len(text) / 4))


def lora_settings(
    flavour: str, spec: FlagSpec, v: dict[str, object], env: Mapping[str, str]
) -> LoraSettings | None:
    """The LoRA flags as each engine reads them. vLLM: --enable-lora, --max-loras (1), --max-cpu-loras
    (max-loras), --max-lora-rank (16), --lora-modules NAME=PATH or JSON; the load/unload endpoints only with
    VLLM_ALLOW_RUNTIME_LORA_UPDATING 1 or true. SGLang: --enable-lora (implied by --lora-paths),
    --max-loras-per-batch (8), --max-loaded-loras (no bound), --lora-paths PATH, NAME=PATH or JSON."""
    if flavour == "vllm":
        if not v.get("enable_lora"):
            return None
        slots = int(str(_get(spec, v, "max_loras", 1)))
        cached = int(str(_get(spec, v, "max_cpu_loras", None) or slots))
        rank = int(str(_get(spec, v, "max_lora_rank", 16)))
        runtime = env.get("VLLM_ALLOW_RUNTIME_LORA_UPDATING", "0").strip().lower() in ("1", "true")
        entries, keys = v.get("lora_modules") or [], ("name", "path")
    else:
        if not (v.get("enable_lora") or v.get("lora_paths")):
            return None
        slots = int(str(_get(spec, v, "max_loras_per_batch", 8)))
        cached = int(str(_get(spec, v, "max_loaded_loras", None) or 1_000_000))
        rank = int(str(_get(spec, v, "max_lora_rank", None) or 64))
        runtime = True
        entries, keys = v.get("lora_paths") or [], ("lora_name", "lora_path")
    static = tuple(_lora_entry(str(e), keys) for e in entries if e) if isinstance(entries, list) else ()
    for name, path in static:
        try:
            read_adapter(path)
        except AdapterNotFound:
            # vLLM loads its --lora-modules at start-up and stops on the first that fails, in these words.
            raise ConfigError(f"Loading lora {name} failed: No adapter found for {path}") from None
    return LoraSettings(max(1, slots), max(slots, cached), rank, static, runtime)


def _lora_entry(item: str, keys: tuple[str, str]) -> tuple[str, str]:
    """(name, path) from NAME=PATH, a JSON object or (SGLang) a bare PATH, named by itself."""
    if "=" in item and "," not in item:
        name, path = item.split("=", 1)
        return name, path
    try:
        data = json.loads(item)
    except json.JSONDecodeError:
        if keys[0] == "lora_name":
            return item, item
        raise UsageError(f"Invalid JSON format for --lora-modules: {item}") from None
    if not isinstance(data, dict) or not data.get(keys[0]) or not data.get(keys[1]):
        raise UsageError(f"Invalid fields for LoRA adapter: {item}")
    return str(data[keys[0]]), str(data[keys[1]])
