"""The emulated engine: llmctl's own HTTP server that speaks vLLM's or SGLang's API and flags, timed by the
performance model. It takes the same arguments as the engine it imitates, after `--flavour`."""

from __future__ import annotations

from llmctl.engines import sglang, vllm

NAME = "emulated"
PROGRAM: tuple[str, ...] = ("python3", "-m", "llmctl.engines.emulator")
FLAVOURS = {"vllm": vllm, "sglang": sglang}


def program(flavour: str) -> tuple[str, ...]:
    return (*PROGRAM, "--flavour", flavour)
