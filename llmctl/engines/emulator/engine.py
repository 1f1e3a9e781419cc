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
from llmctl.engines.emulator.vllm_metrics import RequestTimes

# Queue markers after the token counts: the request ran to its max_tokens, or it was dropped.
FINISHED = -1
ABORTED = -2
# How far (wall seconds) the step clock may fall behind the modelled one and still catch up.
MAX_LAG_S = 0.25


@dataclass
class Pending:
    times: RequestTimes
    queue: asyncio.Queue[int] = field(default_factory=asyncio.Queue)  # token counts, then a marker


class Engine:
    def __init__(self, config: EmulatorConfig, model: StepTimer, kv_capacity: int) -> None:
        self.config = config
        self.scheduler = Scheduler(model, kv_capacity, config.max_seqs, config.max_batched_tokens)
        self.metrics = EngineMetrics(config, kv_capacity)
        self.pending: dict[str, Pending] = {}
        self.sleeping = False
        self._wakeup = asyncio.Event()
        self._ids = itertools.count()

    def submit(self, prompt: int, max_tokens: int) -> tuple[str, Pending]:
        rid = str(next(self._ids))
        self.scheduler.add(rid, prompt, max_tokens)
        pending = self.pending[rid] = Pending(RequestTimes(prompt, max_tokens, time.perf_counter()))
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
        deadline = 0.0  # when the current step ends on the modelled clock (perf_counter seconds)
        while True:
            if not s.has_work:
                self.metrics.state(0, 0, 0.0)
                self._wakeup.clear()
                await self._wakeup.wait()
                deadline = 0.0
                continue
            started = time.perf_counter()
            if started - deadline > MAX_LAG_S:
                # Idle before, or stalled far behind (the machine paused us): the modelled clock restarts
                # now rather than rushing a backlog of steps out at once.
                deadline = started
            result = s.step()
            m = self.metrics
            m.preempted(len(result.preempted))
            m.state(s.num_running, s.num_waiting, s.kv_usage)
            self._admitted(result.scheduled, result.preempted, started)
            # The model says how long this iteration takes on the GPU; waiting it out is the emulation. Each
            # step ends at an absolute deadline, one modelled duration after the previous step's: the Python
            # work between steps and the sleep's own lateness come out of the next wait instead of adding up.
            deadline += result.duration_s * self.config.time_scale
            await asyncio.sleep(max(0.0, deadline - time.perf_counter()))
            # Latencies are taken here, as the engines take them in their output processors: wall time, so
            # at a time scale below 1 they shrink with it.
            now = time.perf_counter()
            completed_prompts = 0
            for rid, n in result.emitted.items():
                pending = self.pending.get(rid)
                if pending is None:  # aborted while this step was running
                    continue
                t = pending.times
                m.latency(first=not t.last_token, seconds=now - (t.last_token or t.arrived))
                if not t.first_token:
                    t.first_token = now
                    completed_prompts += t.prompt_tokens
                t.last_token = now
                t.generated += n
                pending.queue.put_nowait(n)
                m.tokens(generated=n)
            if m.vllm is not None:
                m.vllm.step(completed_prompts, sum(result.emitted.values()))
            for rid in result.finished:
                done = self.pending.pop(rid, None)
                if done is not None:
                    m.request_latency(now - done.times.arrived)
                    m.finished("length")
                    if m.vllm is not None:
                        m.vllm.finished(done.times)
                    done.queue.put_nowait(FINISHED)

    def _admitted(self, scheduled: tuple[str, ...], preempted: tuple[str, ...], at: float) -> None:
        """Note when requests were first scheduled and how often preempted; each admission queries the
        prefix cache with every token it must compute."""
        for rid in preempted:
            if rid in self.pending:
                self.pending[rid].times.preemptions += 1
        if not scheduled:
            return
        targets = {q.id: q.prefill_target for q in self.scheduler.running}
        for rid in scheduled:
            pending = self.pending.get(rid)
            if pending is not None and not pending.times.scheduled:
                pending.times.scheduled = at
            if self.metrics.vllm is not None:
                self.metrics.vllm.admitted(targets.get(rid, 0))
