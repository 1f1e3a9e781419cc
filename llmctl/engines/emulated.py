"""The emulated engine: llmctl's own HTTP server that speaks vLLM's or SGLang's API and flags, timed by the
performance model. It takes the same arguments as the engine it imitates, after `--flavour`."""

from __future__ import annotations

from llmctl.engines import sglang, vllm

NAME = "emulated"
PROGRAM: tuple[str, ...] = ("python3", "-m", "llmctl.engines.emulator")
FLAVOURS = {"vllm": vllm, "sglang": sglang}


# The emulated engine cannot ask a GPU what it is; the planner tells it which catalog GPU it stands in for.
GPU_ENV = "LLMCTL_EMULATED_GPU"
# Multiplies every modelled duration (cold start, engine steps): tests and demos run faster than real time.
TIME_SCALE_ENV = "LLMCTL_EMULATOR_TIME_SCALE"
# A profile file (`llmctl perf calibrate -o FILE`): the emulator times its steps with that file's calibrated
# efficiency factors instead of the defaults for its device.
PROFILE_ENV = "LLMCTL_EMULATOR_PROFILE"


def program(flavour: str) -> tuple[str, ...]:
    return (*PROGRAM, "--flavour", flavour)


def env(gpu_type: str) -> dict[str, str]:
    return {GPU_ENV: gpu_type}
