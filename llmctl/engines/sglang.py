"""SGLang: how a Shape becomes `python -m sglang.launch_server` arguments (SGLang 0.5.23 parser snapshot)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # types only: planner imports these builders, so importing it back would be a cycle
    from llmctl.planner.types import Shape

NAME = "sglang"
DEFAULT_VERSION = "0.5.23"
PROGRAM: tuple[str, ...] = ("python3", "-m", "sglang.launch_server")
DEFAULT_PORT = 30000
HEALTH_PATH = "/health"
# EAGLE-3 with a chain of 3 draft steps, top-1, 4 draft tokens: the configuration in SGLang's speculative
# decoding docs; deeper trees pay off only at batch 1.
EAGLE3_STEPS, EAGLE3_TOPK, EAGLE3_DRAFT_TOKENS = 3, 1, 4


def build_args(shape: Shape, *, bind: str, port: int, served_name: str) -> list[str]:
    args = [
        "--model-path",
        shape.model,
        "--served-model-name",
        served_name,
        "--host",
        bind,
        "--port",
        str(port),
        "--tp-size",
        str(shape.tp),
        "--context-length",
        str(shape.max_context),
        "--mem-fraction-static",
        f"{shape.memory_fraction:g}",
        # SGLang forces 48 running requests with EAGLE unless told otherwise; say it explicitly either way.
        "--max-running-requests",
        str(shape.max_num_seqs),
        "--chunked-prefill-size",
        str(shape.max_batched_tokens),
        "--enable-metrics",
    ]
    if shape.quantization == "fp8":
        args += ["--quantization", "fp8"]
    if shape.kv_cache_dtype == "fp8":
        args += ["--kv-cache-dtype", "fp8_e4m3"]
    if shape.speculative_draft:
        args += [
            "--speculative-algorithm",
            "EAGLE3",
            "--speculative-draft-model-path",
            shape.speculative_draft,
            "--speculative-num-steps",
            str(EAGLE3_STEPS),
            "--speculative-eagle-topk",
            str(EAGLE3_TOPK),
            "--speculative-num-draft-tokens",
            str(EAGLE3_DRAFT_TOKENS),
        ]
    if shape.sleep_mode:
        args += ["--enable-memory-saver"]
    return args


def env(shape: Shape) -> dict[str, str]:
    return {}


# LoRA (SGLang's LoRA serving docs, docs.sglang.io/advanced_features/lora): `--lora-paths` takes PATH,
# NAME=PATH or JSON {"lora_name", "lora_path", "pinned"}; `/load_lora_adapter` and `/unload_lora_adapter` are
# always served with --enable-lora; the OpenAI endpoints name an adapter as model "base:adapter".
LOAD_LORA_PATH = "/load_lora_adapter"
UNLOAD_LORA_PATH = "/unload_lora_adapter"


def lora_args(preload: Sequence[tuple[str, str]], *, base: str, max_loras: int, max_rank: int) -> list[str]:
    """`--enable-lora` with the batch's adapter slots, the rank bound and the adapters loaded at start-up.
    `--lora-target-modules all`: SGLang infers the modules from the start-up adapters only, and one loaded
    later on other modules would be refused; covering all costs a little compute per step (its docs)."""
    args = [
        "--enable-lora",
        "--max-loras-per-batch",
        str(max_loras),
        "--max-lora-rank",
        str(max_rank),
        "--lora-target-modules",
        "all",
    ]
    if preload:
        paths = [
            json.dumps({"lora_name": name, "lora_path": path}, separators=(",", ":"))
            for name, path in preload
        ]
        args += ["--lora-paths", *paths]
    return args


def lora_env(runtime_loading: bool) -> dict[str, str]:
    return {}  # SGLang needs no switch for its load/unload endpoints


def adapter_model(base: str, adapter: str) -> str:
    """The `model` an OpenAI request names an adapter by."""
    return f"{base}:{adapter}"
