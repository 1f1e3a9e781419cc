"""The emulated engine's step clock keeps the model's time: each step ends one modelled duration after the
previous one, so the Python work between steps and the sleeps' lateness do not add up over a request. Run on
a fake clock (each step's bookkeeping costs 2 ms of it), so the check does not depend on this machine."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from llmctl.engines.emulator import engine as engine_module
from llmctl.engines.emulator.config import parse_config
from llmctl.engines.emulator.engine import FINISHED, Engine
from llmctl.engines.emulator.startup import prepare
from llmctl.perf.step_time import StepBatch

STEP_S, WORK_S, TOKENS = 0.010, 0.002, 50


class _Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def perf_counter(self) -> float:
        return self.t


class _Timer:
    """Every step takes STEP_S by the model; computing it costs WORK_S of the (fake) wall clock."""

    def __init__(self, clock: _Clock) -> None:
        self.clock = clock

    def step(self, batch: StepBatch) -> float:
        self.clock.t += WORK_S
        return STEP_S


@pytest.mark.parametrize("scale", [1.0, 0.2])
async def test_a_request_takes_its_modelled_steps_and_no_more(
    monkeypatch: pytest.MonkeyPatch, scale: float
) -> None:
    clock = _Clock()
    real_sleep = asyncio.sleep

    async def sleep(seconds: float, *args: Any) -> None:
        clock.t += seconds
        await real_sleep(0)

    monkeypatch.setattr(engine_module, "time", clock)
    monkeypatch.setattr(asyncio, "sleep", sleep)
    config = parse_config(
        "vllm", ["meta-llama/Llama-3.1-8B-Instruct"], {"LLMCTL_EMULATOR_TIME_SCALE": str(scale)}
    )
    engine = Engine(config, _Timer(clock), prepare(config).kv_capacity)
    loop = asyncio.create_task(engine.run())
    try:
        _, pending = engine.submit(16, TOKENS)
        while await pending.queue.get() != FINISHED:
            pass
    finally:
        loop.cancel()
    t = pending.times
    # One step per token, each its modelled time: the bookkeeping is inside it, not added after it (the
    # sleep-for-a-duration engine took TOKENS * (STEP_S * scale + WORK_S)).
    assert t.last_token - t.arrived == pytest.approx(TOKENS * STEP_S * scale, abs=1e-9)
