"""One simulated engine replica, and its fast model.

Every replica model offers the same interface (`ReplicaModel`), so the cluster can use any of them:
`add(arrival, now)` hands it a request, `advance(until_s)` runs it to a time and returns the requests that
finished, `next_event_s()` says when its state next changes, and `in_flight` / `queued` / `kv_usage` /
`take_ttfts()` feed the autoscaler's observations. Replicas are lazy: nothing happens between calls, and
`advance` can be called at any later time; a result never depends on when (or how often) it is called.

`FastReplica` reproduces `llmctl.engines.emulator.core.Scheduler` (vLLM V1-like continuous batching: token
budget, running cap, KV capacity with preempt-and-recompute, chunked prefill) without simulating each decode
step. Steps that carry prefill are computed one by one, exactly as the scheduler does. Between them, while
the batch is pure decode and nothing can be admitted, the batch is constant until a sequence finishes or
the KV cache fills, so the segment is jumped in one go: its duration is the sum of decode step times over a
context growing by the batch size each step, by Simpson's rule on the Euler-Maclaurin integral with its
curvature correction (exact for step times quadratic in the context; the model's are near linear).
A request arriving mid-segment cuts the segment at the end of the step in progress only if it could be
admitted there; otherwise it could not join before the segment ends anyway.

Decoding sequences are kept implicitly: all of them gain one token per step, so each stores the global
decode-step counter at which it joined and at which it will finish (a heap), and the batch's context sum is
one number. A segment costs O(log n) however large the batch. The step-by-step reference (the scheduler
itself) and a fixed-service-time model for queueing checks are in `sim.replica_step`.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from llmctl.engines.emulator.timing import StepTimer
from llmctl.perf.step_time import StepBatch, StepModel
from sim.outcome import RequestRecord
from sim.workload import Arrival

INF = math.inf


@dataclass(frozen=True)
class EngineShape:
    """What one replica runs with: its step timer (`llmctl.engines.emulator.timing.step_timer`) and the
    scheduler's limits. `max_context` is the engine's max model length; longer requests are rejected."""

    timer: StepTimer
    kv_capacity_tokens: int
    max_seqs: int
    max_batched_tokens: int
    max_context: int | None = None
    # The per-request path outside the engine's steps (HTTP, tokenisation, scheduling): a constant delay
    # that every request's first token and finish see (EfficiencyFactors.request_latency_s). Added to the
    # records rather than to the arrivals: a constant delay in front of the engine shifts what it sees
    # without changing it, so the steps and queueing are the same.
    request_latency_s: float = 0.0

    def fits(self, a: Arrival) -> bool:
        total = a.prompt_tokens + a.output_tokens
        return total <= self.kv_capacity_tokens and (self.max_context is None or total <= self.max_context)


class ReplicaModel(Protocol):
    def add(self, arrival: Arrival, now: float) -> bool:
        """Queue a request at `now` (after advancing to it); False when the engine rejects it (too long)."""
        ...

    def advance(self, until_s: float) -> list[RequestRecord]:
        """Run to `until_s`; the requests that finished at or before it, in finishing order."""
        ...

    def next_event_s(self) -> float:
        """When the state next changes (a step or segment ends); inf when idle."""
        ...

    @property
    def in_flight(self) -> int:
        """Requests here and not finished: running plus waiting."""
        ...

    @property
    def queued(self) -> int:
        """Requests waiting for admission (the engine's waiting queue)."""
        ...

    @property
    def kv_usage(self) -> float: ...

    def take_ttfts(self) -> list[float]:
        """TTFTs of the first tokens emitted since the last call (for the TTFT-p95 signal)."""
        ...

    def abort_all(self) -> int:
        """Drop every request (the replica is stopped); how many there were."""
        ...


class _Seq:
    __slots__ = (
        "arrival",
        "computed",
        "fin_g",
        "first_s",
        "g0",
        "generated",
        "max_tokens",
        "prompt",
        "target",
        "tie",
    )

    def __init__(self, arrival: Arrival) -> None:
        self.arrival = arrival
        self.prompt = arrival.prompt_tokens
        self.max_tokens = arrival.output_tokens
        self.generated = 0
        self.computed = 0
        self.target = arrival.prompt_tokens  # prefill target: prompt, or prompt + generated after preemption
        self.first_s = -1.0
        self.g0 = 0  # decode-step counter when it joined the decoders (generated/computed are as of then)
        self.fin_g = -1  # decode-step counter at which it has generated max_tokens; -1: not decoding
        self.tie = 0  # id of its live heap entry; older entries (from before a preemption) are stale


class FastReplica:
    """Event-jumping model of the emulator's scheduler (see the module docstring)."""

    EXACT_SUM_STEPS = 8  # segments this short are summed step by step

    def __init__(self, shape: EngineShape, deployment: str = "") -> None:
        if shape.max_seqs > shape.max_batched_tokens:
            raise ValueError("fast mode needs max_seqs <= max_batched_tokens (every decoder in every step)")
        self.shape = shape
        self.deployment = deployment
        timer = shape.timer
        self._decode_model = timer if isinstance(timer, StepModel) else None
        self._timer = timer
        self.cap = shape.kv_capacity_tokens
        self._reset()

    def _reset(self) -> None:
        self.waiting: deque[_Seq] = deque()
        self.running: dict[_Seq, None] = {}  # admission order, for preempting the newest
        self.prefilling: list[_Seq] = []
        self._heap: list[tuple[int, int, _Seq]] = []  # (fin_g, tie, seq) of decoders; stale entries skipped
        self._tie = 0
        self.G = 0  # decode steps so far
        self.B = 0  # decoders
        self.c_dec = 0  # sum of decoders' computed tokens, as of G
        self.p_held = 0  # KV held by prefilling sequences (their whole targets)
        self.preemptions = 0
        # The step or segment in progress: it started at _start, ends at _end; a segment of _k decode steps
        # of _B sequences from context sum _c0 (pending effects); a mixed step has its effects applied.
        self._start = 0.0
        self._end = INF
        self._seg_k = 0
        self._pending_first: list[_Seq] = []
        self._pending_done: list[_Seq] = []
        self._ttfts: list[float] = []
        self._open = 0
        self._carry: list[RequestRecord] = []  # finished while add() advanced; returned by the next advance

    # --- interface ----------------------------------------------------------------------------------------
    def add(self, arrival: Arrival, now: float) -> bool:
        if not self.shape.fits(arrival):
            return False
        self._carry = self.advance(now)  # includes what was carried before
        s = _Seq(arrival)
        self.waiting.append(s)
        self._open += 1
        if self._end == INF:
            self._compose(now)
        elif self._seg_k and len(self.waiting) == 1 and len(self.running) < self.shape.max_seqs:
            k = self._steps_done(now - self._start)
            if k + 1 < self._seg_k:
                # Free KV at the boundary after the step in progress (the decoders then need B more slots).
                free = self.cap - (self.c_dec + self.B * (k + 1) + self.p_held) - self.B
                if s.target <= free:
                    self._seg_k = k + 1
                    self._end = self._start + self._seg_time(k + 1)
        return True

    def advance(self, until_s: float) -> list[RequestRecord]:
        out = self._carry
        self._carry = []
        while self._end <= until_s and self._end < INF:
            t = self._end
            out.extend(self._complete(t))
            self._compose(t)
        return out

    def next_event_s(self) -> float:
        # Records finished while add() advanced are a change not yet reported: due at once.
        return self._carry[0].finish_s if self._carry else self._end

    @property
    def in_flight(self) -> int:
        return self._open

    @property
    def queued(self) -> int:
        return len(self.waiting)

    @property
    def running_count(self) -> int:
        return len(self.running)

    @property
    def kv_usage(self) -> float:
        return (self.c_dec + self.p_held) / self.cap

    def take_ttfts(self) -> list[float]:
        out, self._ttfts = self._ttfts, []
        return out

    def abort_all(self) -> int:
        n = self._open
        self._reset()
        return n

    # --- timing -------------------------------------------------------------------------------------------
    def _f(self, batch: int, context: float) -> float:
        if self._decode_model is not None:
            return self._decode_model.decode(batch, int(context))
        return self._timer.step(StepBatch(decode_seqs=batch, decode_context_tokens=int(context)))

    def _seg_time(self, k: int) -> float:
        """Seconds of k decode steps of the current segment (batch B from context sum c_dec)."""
        b, c0 = self.B, self.c_dec
        if k <= self.EXACT_SUM_STEPS:
            return sum(self._f(b, c0 + b * j) for j in range(k))
        # sum_{j<k} f(j) ~ integral over [-1/2, k-1/2] (Simpson) - k f''/24 (Euler-Maclaurin, midpoint rule).
        fa = self._f(b, c0 - 0.5 * b)
        fm = self._f(b, c0 + 0.5 * (k - 1) * b)
        fb = self._f(b, c0 + (k - 0.5) * b)
        integral = k * (fa + 4 * fm + fb) / 6
        curvature = 4 * (fa - 2 * fm + fb) / (k * k)
        return integral - k * curvature / 24

    def _steps_done(self, dt: float) -> int:
        """Whole steps of the current segment finished within dt of its start."""
        k_max = self._seg_k
        total = self._end - self._start
        k = min(k_max, max(0, int(dt / total * k_max))) if total > 0 else 0
        while k < k_max and self._seg_time(k + 1) <= dt:
            k += 1
        while k > 0 and self._seg_time(k) > dt:
            k -= 1
        return k

    # --- scheduling ---------------------------------------------------------------------------------------
    def _complete(self, t: float) -> list[RequestRecord]:
        """Effects of the step or segment ending at t."""
        if self._seg_k:
            self.G += self._seg_k
            self.c_dec += self.B * self._seg_k
            self._seg_k = 0
        for s in self._pending_first:
            s.first_s = t
            self._ttfts.append(t - s.arrival.t_s)
        self._pending_first = []
        done = self._pending_done
        self._pending_done = []
        heap = self._heap
        while heap and heap[0][0] <= self.G:
            _, tie, s = heapq.heappop(heap)
            if s.tie != tie or s.fin_g < 0:
                continue  # stale: the sequence was preempted (and maybe re-joined under a new entry)
            self._drop_decoder(s)
            done.append(s)
        out = []
        for s in done:
            a = s.arrival
            out.append(RequestRecord(a.t_s, s.first_s, t, a.prompt_tokens, a.output_tokens, self.deployment))
        self._open -= len(out)
        return out

    def _drop_decoder(self, s: _Seq) -> None:
        s.computed += self.G - s.g0
        s.generated += self.G - s.g0
        s.fin_g = -1
        self.B -= 1
        self.c_dec -= s.computed
        del self.running[s]

    def _join_decoders(self, s: _Seq) -> None:
        s.g0 = self.G
        s.fin_g = self.G + (s.max_tokens - s.generated)
        self.B += 1
        self.c_dec += s.computed
        self._tie += 1
        s.tie = self._tie
        heapq.heappush(self._heap, (s.fin_g, self._tie, s))

    def _preempt_newest(self) -> None:
        victim = next(reversed(self.running))
        if victim.fin_g >= 0:
            self._drop_decoder(victim)  # lazy heap entry goes stale (fin_g = -1)
        else:
            self.prefilling.remove(victim)
            self.p_held -= victim.target
            del self.running[victim]
        victim.computed = 0
        victim.target = victim.prompt + victim.generated
        victim.fin_g = -1
        self.waiting.appendleft(victim)
        self.preemptions += 1

    def _compose(self, t: float) -> None:
        """At a step boundary t: pick the next step (as Scheduler.step does) and schedule its end."""
        self._start = t
        while self.running and self.c_dec + self.p_held + self.B > self.cap:
            self._preempt_newest()
        shape = self.shape
        budget = shape.max_batched_tokens - self.B
        free_kv = self.cap - self.c_dec - self.p_held - self.B
        chunks: list[tuple[_Seq, int]] = []
        for s in self.prefilling:
            if budget <= 0:
                break
            n = min(s.target - s.computed, budget)
            chunks.append((s, n))
            budget -= n
        while self.waiting and len(self.running) < shape.max_seqs and budget > 0:
            s = self.waiting[0]
            if s.target > free_kv:
                break
            self.waiting.popleft()
            self.running[s] = None
            self.prefilling.append(s)
            self.p_held += s.target
            n = min(s.target, budget)
            chunks.append((s, n))
            budget -= n
            free_kv -= s.target
        if not chunks:
            if not self.B:
                self._end = INF
                return
            # Pure decode: constant batch until the next finish or until the KV cache is full.
            k = min(self._heap_min() - self.G, (self.cap - self.c_dec - self.p_held) // self.B)
            self._seg_k = k
            self._end = t + self._seg_time(k)
            return
        batch = StepBatch(
            decode_seqs=self.B,
            decode_context_tokens=self.c_dec,
            prefill_tokens=sum(n for _, n in chunks),
            prefill_seqs=len(chunks),
            prefill_context_tokens=sum(s.computed for s, _ in chunks),
        )
        self._end = t + self._timer.step(batch)
        # Apply the step now (as the scheduler does); first tokens and finishes are stamped at its end.
        self.G += 1
        self.c_dec += self.B
        for s, n in chunks:
            s.computed += n
            if s.computed >= s.target:
                self.prefilling.remove(s)
                self.p_held -= s.target
                if s.generated == 0:
                    self._pending_first.append(s)
                s.generated += 1
                if s.generated >= s.max_tokens:
                    del self.running[s]
                    self._pending_done.append(s)
                else:
                    self._join_decoders(s)

    def _heap_min(self) -> int:
        heap = self._heap
        while heap[0][2].tie != heap[0][1] or heap[0][2].fin_g < 0:
            heapq.heappop(heap)
        return heap[0][0]
