"""Log lines in the shape of the imitated engine's, on stderr (where both engines log), so an operator
reading a replica's log, and llmctl's start-up failure recogniser, see what a real engine would print."""

from __future__ import annotations

import sys
import time


def log(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def engine_log(flavour: str, message: str, level: str = "INFO", source: str = "api_server.py") -> None:
    now = time.time()
    if flavour == "vllm":
        # vLLM: "INFO 03-25 16:01:40 [api_server.py:1024] message"
        log(f"{level} {time.strftime('%m-%d %H:%M:%S', time.localtime(now))} [{source}] {message}")
    else:
        # SGLang: "[2025-03-03 06:49:28] message"
        log(f"[{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(now))}] {message}")
