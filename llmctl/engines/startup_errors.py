"""Recognise why an engine failed to start from the tail of its log: the real engines' own error lines
(the emulated engine prints the same ones), each with what to do about it."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class StartupFailure:
    kind: str
    line: str  # the engine's own line
    advice: str


PATTERNS: tuple[tuple[str, re.Pattern[str], str], ...] = (
    (
        "out of memory (weights)",
        re.compile(r"(torch\.OutOfMemoryError|CUDA out of memory).*"),
        "the weights do not fit: use more tensor parallelism, FP8, or a GPU with more memory",
    ),
    (
        "KV cache too small",
        re.compile(r"ValueError: To serve at least one request with the models's max seq len.*"),
        "lower max_context or raise the GPU memory fraction",
    ),
    (
        "out of memory (SGLang)",
        re.compile(r"RuntimeError: Not enough memory\..*"),
        "raise --mem-fraction-static, lower the context length, or use more tensor parallelism",
    ),
    (
        "bad engine argument",
        re.compile(r"^\S*: error: .*|^error: .*", re.MULTILINE),
        "a flag the engine refused: check engine_args against the engine's version",
    ),
)


def recognise(log_tail: str) -> StartupFailure | None:
    """The first known failure in the log text, or None."""
    for kind, pattern, advice in PATTERNS:
        match = pattern.search(log_tail)
        if match:
            return StartupFailure(kind, match.group(0).strip(), advice)
    return None
