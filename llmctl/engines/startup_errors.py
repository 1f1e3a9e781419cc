"""Why an engine failed to start, read from the tail of its log. The patterns match the real vLLM and SGLang
lines (the emulated engine prints the same ones), so the rollout code can use them on any replica's log.

Wording checked against real logs: vLLM V1 says "models's max seq len" up to late 2025 and "model's" since;
vLLM V0 said "The model's max seq len (N) is larger than the maximum number of tokens ...".
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class StartupFailure:
    kind: str  # key of STARTUP_FAILURE_PATTERNS
    line: str  # the engine's own line, as printed
    reason: str  # what it means and what to change


@dataclass(frozen=True)
class FailurePattern:
    regex: re.Pattern[str]
    reason: str


# Most specific first: recognise() reports the first kind that matches anywhere in the log.
STARTUP_FAILURE_PATTERNS: dict[str, FailurePattern] = {
    "kv_cache_too_small": FailurePattern(
        re.compile(
            r"ValueError: (To serve at least one request with the models?'s max seq len"
            r"|The model's max seq len \(\d+\) is larger than the maximum number of tokens"
            r"|No available memory for the cache blocks).*"
        ),
        "the KV cache cannot hold one max-length sequence: lower the context length, raise the GPU memory "
        "fraction, use FP8 KV cache or more tensor parallelism",
    ),
    "memory_held": FailurePattern(
        # vLLM checks free memory at start-up (GPU: "Free memory on device ..."; CPU backend: "Available
        # memory on node N ..."), and on the CPU backend again when it allocates VLLM_CPU_KVCACHE_SPACE.
        re.compile(
            r"ValueError: (Free memory on device|Available memory on node) \S+ \([\d.]+/[\d.]+ GiB\) on "
            r"(startup is less than desired [CG]PU memory utilization"
            r"|kv cache allocation is less than requested memory for kv).*"
        ),
        "other processes hold the memory the engine needs (leftovers of an earlier run, or another "
        "workload): free it, or lower the memory fraction or the KV cache size",
    ),
    "weights_out_of_memory": FailurePattern(
        re.compile(r"(torch\.OutOfMemoryError|torch\.cuda\.OutOfMemoryError): CUDA out of memory\..*"),
        "the weights do not fit in GPU memory: use more tensor parallelism, FP8 weights or a bigger GPU",
    ),
    "sglang_not_enough_memory": FailurePattern(
        re.compile(r"RuntimeError: Not enough memory\. Please try to increase --mem-fraction-static\..*"),
        "SGLang found no room for the KV cache pool: raise --mem-fraction-static, lower the context length "
        "or use more tensor parallelism",
    ),
    "bad_argument": FailurePattern(
        # argparse: "usage: ..." then "<prog>: error: <message>"; the emulator prints "error: <message>".
        re.compile(r"^(?:\S+: )?error: .*", re.MULTILINE),
        "the engine refused a command-line flag: check engine_args against the engine's version",
    ),
}


def recognise(log_tail: str) -> StartupFailure | None:
    """The first known start-up failure found in `log_tail`, or None when the log shows none."""
    for kind, pattern in STARTUP_FAILURE_PATTERNS.items():
        match = pattern.regex.search(log_tail)
        if match:
            return StartupFailure(kind, match.group(0).strip(), pattern.reason)
    return None
