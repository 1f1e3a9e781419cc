"""SGLang: how a Shape becomes `python -m sglang.launch_server` arguments (SGLang 0.5.23 parser snapshot)."""

from __future__ import annotations

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
