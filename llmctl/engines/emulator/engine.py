"""The asyncio driver of the emulated engine: one loop steps the pure scheduler (core.py) and waits out each
step's modelled duration, then hands the step's tokens to the waiting HTTP handlers."""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field

from llmctl.engines.emulator.config import EmulatorConfig
from llmctl.engines.emulator.core import Scheduler
from llmctl.engines.emulator.metrics import EngineMetrics
from llmctl.engines.emulator.timing import StepTimer

# Queue markers after the token counts: the request ran to its max_tokens, or it was dropped.
FINISHED = -1
ABORTED = -2


@dataclass
class Pending:
    queue: asyncio.Queue[int] = field(default_factory=asyncio.Queue)  # token counts, then a marker
    arrived: float = field(default_factory=time.perf_counter)
    last: float = 0.0  # when its latest token came out; 0 before the first


class Engine:
    def __init__(self, config: EmulatorConfig, model: StepTimer, kv_capacity: int) -> None:
        self.config = config
        self.scheduler = Scheduler(model, kv_capacity, config.max_seqs, config.max_batched_tokens)
        self.metrics = EngineMetrics(config.flavour, config.served_names[0])
        self.pending: dict[str, Pending] = {}
        self.sleeping = False
        self._wakeup = asyncio.Event()
        self._ids = itertools.count()

    def submit(self, prompt: int, max_tokens: int) -> tuple[str, Pending]:
        rid = str(next(self._ids))
        self.scheduler.add(rid, prompt, max_tokens)
        pending = self.pending[rid] = Pending()
        self.metrics.tokens(prompt=prompt)
        self._wakeup.set()
        return rid, pending

    def abort(self, rid: str) -> None:
        """Drop a request that has not finished (its client went away, or the engine is put to sleep)."""
        pending = self.pending.pop(rid, None)
        if pending is None:
            return
        self.scheduler.abort(rid)
        self.metrics.finished("abort")
        pending.queue.put_nowait(ABORTED)

    def abort_all(self) -> int:
        unfinished = list(self.pending)
        for rid in unfinished:
            self.abort(rid)
        return len(unfinished)

    async def run(self) -> None:
        s = self.scheduler
        while True:
            if not s.has_work:
                self.metrics.state(0, 0, 0.0)
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            result = s.step()
            self.metrics.preempted(len(result.preempted))
            self.metrics.state(s.num_running, s.num_waiting, s.kv_usage)
            # The model says how long this iteration takes on the GPU; waiting it out is the emulation.
            await asyncio.sleep(result.duration_s * self.config.time_scale)
            # Latencies are taken here, as the engines take them in their output processors: wall time, so
            # at a time scale below 1 they shrink with it.
            now = time.perf_counter()
            m = self.metrics
            for rid, n in result.emitted.items():
                pending = self.pending.get(rid)
                if pending is None:  # aborted while this step was running
                    continue
                m.latency(first=not pending.last, seconds=now - (pending.last or pending.arrived))
                pending.last = now
                pending.queue.put_nowait(n)
                m.tokens(generated=n)
            for rid in result.finished:
                done = self.pending.pop(rid, None)
                if done is not None:
                    m.request_latency(now - done.arrived)
                    m.finished("length")
                    done.queue.put_nowait(FINISHED)
