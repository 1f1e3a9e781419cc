"""vLLM: how a Shape becomes `vllm serve` arguments (flags as in the vLLM 0.33.0 parser snapshot)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # types only: planner imports these builders, so importing it back would be a cycle
    from llmctl.planner.types import Shape

NAME = "vllm"
DEFAULT_VERSION = "0.33.0"
PROGRAM: tuple[str, ...] = ("vllm", "serve")
DEFAULT_PORT = 8000
HEALTH_PATH = "/health"
# /sleep, /wake_up and /is_sleeping are development endpoints: vLLM serves them only with this variable set.
SLEEP_ENV = {"VLLM_SERVER_DEV_MODE": "1"}
# EAGLE-3 draft length: 3 speculative tokens is the setting vLLM's and the EAGLE-3 authors' examples use.
EAGLE3_TOKENS = 3


def build_args(shape: Shape, *, bind: str, port: int, served_name: str) -> list[str]:
    args = [
        shape.model,
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


def env(shape: Shape) -> dict[str, str]:
    return dict(SLEEP_ENV) if shape.sleep_mode else {}
