"""Replica models beside the fast one, with the same interface (`sim.replica.ReplicaModel`):

- `StepReplica` drives the emulated engine's own `Scheduler` one iteration at a time: the reference the fast
  model is checked against (and the model to use when in doubt; it costs one Python step per iteration).
- `ServiceTimeReplica` replaces the performance model by a service-time hook: `servers` requests are served
  at once, each for `service_time(arrival)` seconds, the rest wait in FIFO order. With exponential or fixed
  times it is an M/M/c or M/D/c queue, which is how the simulator is checked against queueing theory. The
  first token is stamped when service starts, so TTFT is the time spent waiting.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable

from llmctl.engines.emulator.core import Scheduler
from sim.outcome import RequestRecord
from sim.replica import EngineShape
from sim.workload import Arrival

INF = math.inf


class StepReplica:
    """Step-by-step reference: one `Scheduler.step()` per engine iteration."""

    def __init__(self, shape: EngineShape, deployment: str = "") -> None:
        self.shape = shape
        self.deployment = deployment
        self._reset()

    def _reset(self) -> None:
        s = self.shape
        self.sched = Scheduler(s.timer, s.kv_capacity_tokens, s.max_seqs, s.max_batched_tokens)
        self._arrivals: dict[str, Arrival] = {}
        self._first: dict[str, float] = {}
        self._next_id = 0
        self._end = INF
        self._pending_first: tuple[str, ...] = ()
        self._pending_done: tuple[str, ...] = ()
        self._ttfts: list[float] = []
        self._carry: list[RequestRecord] = []

    def add(self, arrival: Arrival, now: float) -> bool:
        if not self.shape.fits(arrival):
            return False
        self._carry = self.advance(now)  # includes what was carried before
        rid = str(self._next_id)
        self._next_id += 1
        self._arrivals[rid] = arrival
        self.sched.add(rid, arrival.prompt_tokens, arrival.output_tokens)
        if self._end == INF:
            self._step(now)
        return True

    def advance(self, until_s: float) -> list[RequestRecord]:
        out, self._carry = self._carry, []
        while self._end <= until_s and self._end < INF:
            t = self._end
            for rid in self._pending_first:
                self._first[rid] = t
                self._ttfts.append(t - self._arrivals[rid].t_s)
            for rid in self._pending_done:
                a = self._arrivals.pop(rid)
                out.append(
                    RequestRecord(
                        a.t_s, self._first.pop(rid), t, a.prompt_tokens, a.output_tokens, self.deployment
                    )
                )
            self._step(t)
        return out

    def _step(self, t: float) -> None:
        result = self.sched.step()
        if result.duration_s <= 0.0:
            # Nothing runnable (idle, or waiting for room): the next add() starts a step.
            self._end = INF
            self._pending_first = self._pending_done = ()
            return
        self._end = t + result.duration_s
        self._pending_first, self._pending_done = result.first_token, result.finished

    def next_event_s(self) -> float:
        return self._carry[0].finish_s if self._carry else self._end

    @property
    def in_flight(self) -> int:
        return len(self._arrivals)

    @property
    def queued(self) -> int:
        return self.sched.num_waiting

    @property
    def kv_usage(self) -> float:
        return self.sched.kv_usage

    @property
    def preemptions(self) -> int:
        return self.sched.preemptions

    def take_ttfts(self) -> list[float]:
        out, self._ttfts = self._ttfts, []
        return out

    def abort_all(self) -> int:
        n = len(self._arrivals)
        self._reset()
        return n


ServiceTime = Callable[[Arrival], float]


class ServiceTimeReplica:
    """`servers` parallel servers with a shared FIFO queue and service times from a hook."""

    def __init__(self, service_time: ServiceTime, servers: int = 1, deployment: str = "") -> None:
        if servers < 1:
            raise ValueError("servers must be >= 1")
        self.service_time = service_time
        self.servers = servers
        self.deployment = deployment
        self._reset()

    def _reset(self) -> None:
        self._busy: list[tuple[float, int, Arrival, float]] = []  # (finish, tie, arrival, start)
        self._waiting: deque[Arrival] = deque()
        self._tie = 0
        self._ttfts: list[float] = []
        self._carry: list[RequestRecord] = []

    def _start(self, a: Arrival, t: float) -> None:
        self._tie += 1
        self._ttfts.append(t - a.t_s)
        heapq.heappush(self._busy, (t + self.service_time(a), self._tie, a, t))

    def add(self, arrival: Arrival, now: float) -> bool:
        self._carry = self.advance(now)  # includes what was carried before
        if len(self._busy) < self.servers:
            self._start(arrival, now)
        else:
            self._waiting.append(arrival)
        return True

    def advance(self, until_s: float) -> list[RequestRecord]:
        out, self._carry = self._carry, []
        busy = self._busy
        while busy and busy[0][0] <= until_s:
            finish, _, a, start = heapq.heappop(busy)
            out.append(RequestRecord(a.t_s, start, finish, a.prompt_tokens, a.output_tokens, self.deployment))
            if self._waiting:
                self._start(self._waiting.popleft(), finish)
        return out

    def next_event_s(self) -> float:
        if self._carry:
            return self._carry[0].finish_s
        return self._busy[0][0] if self._busy else INF

    @property
    def in_flight(self) -> int:
        return len(self._busy) + len(self._waiting)

    @property
    def queued(self) -> int:
        return len(self._waiting)

    @property
    def kv_usage(self) -> float:
        return len(self._busy) / self.servers

    def take_ttfts(self) -> list[float]:
        out, self._ttfts = self._ttfts, []
        return out

    def abort_all(self) -> int:
        n = self.in_flight
        self._reset()
        return n
