"""A continuous-batching scheduler as a pure state machine: what one engine iteration runs and how long it
takes by the performance model. The emulated engine drives it in real time; the simulator can drive it as
its step-by-step reference.

Policy (vLLM V1's, simplified): each step has a token budget (max-num-batched-tokens). Running sequences go
first: one token each for those decoding, then prompt chunks for those still prefilling; then waiting
sequences are admitted in arrival order while the running cap and the KV cache allow. When decoding would
overflow the KV cache, the newest running sequence is preempted and later recomputed from scratch (its
already-emitted tokens are kept, not sent again). A sequence's first token comes out of the step that
completes its prefill.

KV accounting: a running sequence holds its whole prefill target from admission on (as SGLang reserves a
prompt), then one more slot per decode step. Admission is then a plain "does the prompt fit" check, a
half-prefilled prompt can never be squeezed out by a later admission, and the usage gauge counts the room
a long prompt is about to fill rather than lagging behind it chunk by chunk.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from llmctl.engines.emulator.timing import StepTimer
from llmctl.perf.step_time import StepBatch


@dataclass
class Sequence:
    id: str
    prompt_tokens: int
    max_tokens: int
    generated: int = 0
    computed: int = 0  # tokens whose KV is in the cache
    # Tokens to compute before decoding: the prompt, or prompt + generated when recomputing after preemption.
    prefill_target: int = 0

    @property
    def prefilling(self) -> bool:
        return self.computed < self.prefill_target

    @property
    def held(self) -> int:
        """KV slots reserved for this sequence while it runs."""
        return max(self.computed, self.prefill_target)


@dataclass(frozen=True)
class StepResult:
    duration_s: float
    emitted: dict[str, int] = field(default_factory=dict)  # new tokens per sequence this step
    first_token: tuple[str, ...] = ()
    finished: tuple[str, ...] = ()
    preempted: tuple[str, ...] = ()
    scheduled: tuple[str, ...] = ()  # admitted from the queue this step (again, after a preemption)
    batch: StepBatch = field(default_factory=StepBatch)


class Scheduler:
    def __init__(
        self, model: StepTimer, kv_capacity_tokens: int, max_seqs: int, max_batched_tokens: int
    ) -> None:
        if kv_capacity_tokens < 1 or max_seqs < 1 or max_batched_tokens < 1:
            raise ValueError("capacity, max_seqs and max_batched_tokens must be positive")
        self.model = model
        self.capacity = kv_capacity_tokens
        self.max_seqs = max_seqs
        self.budget = max_batched_tokens
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self.preemptions = 0

    def add(self, seq_id: str, prompt_tokens: int, max_tokens: int) -> None:
        if prompt_tokens < 1 or max_tokens < 1:
            raise ValueError("a request needs at least one prompt token and one output token")
        if prompt_tokens + max_tokens > self.capacity:
            raise ValueError(
                f"{prompt_tokens + max_tokens} tokens can never fit a KV cache of {self.capacity}"
            )
        self.waiting.append(Sequence(seq_id, prompt_tokens, max_tokens, prefill_target=prompt_tokens))

    @property
    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    @property
    def num_running(self) -> int:
        return len(self.running)

    @property
    def num_waiting(self) -> int:
        return len(self.waiting)

    @property
    def kv_used(self) -> int:
        return sum(s.held for s in self.running)

    @property
    def kv_usage(self) -> float:
        """Fraction of the KV cache held, 0..1 (vLLM's kv_cache_usage_perc, SGLang's token_usage)."""
        return self.kv_used / self.capacity

    def abort(self, seq_id: str) -> bool:
        """Drop a request wherever it is (client gone, engine put to sleep); False if it is not here.
        Its KV slots are free from the next step on, as in vLLM's abort path."""
        for i, s in enumerate(self.running):
            if s.id == seq_id:
                del self.running[i]
                return True
        for s in self.waiting:
            if s.id == seq_id:
                self.waiting.remove(s)
                return True
        return False

    def _preempt_newest(self) -> Sequence:
        victim = self.running.pop()
        victim.computed = 0
        victim.prefill_target = victim.prompt_tokens + victim.generated
        self.waiting.appendleft(victim)
        self.preemptions += 1
        return victim

    def step(self) -> StepResult:
        """Run one iteration; a no-op with zero duration when there is nothing to do."""
        preempted: list[str] = []
        # Decoders need one KV slot each this step; make room by preempting the newest if needed.
        while (
            self.running and self.kv_used + sum(1 for s in self.running if not s.prefilling) > self.capacity
        ):
            preempted.append(self._preempt_newest().id)
        budget = self.budget
        decode = [s for s in self.running if not s.prefilling][:budget]
        budget -= len(decode)
        # Decoders not scheduled for lack of budget still keep their slot: the check above counted them.
        free_kv = self.capacity - self.kv_used - sum(1 for s in self.running if not s.prefilling)
        chunks: list[tuple[Sequence, int]] = []
        scheduled: list[str] = []
        for s in self.running:
            if s.prefilling and budget > 0:
                n = min(s.prefill_target - s.computed, budget)
                chunks.append((s, n))
                budget -= n
        while self.waiting and len(self.running) < self.max_seqs and budget > 0:
            s = self.waiting[0]
            # Admit only when the whole prompt fits now, so admission never triggers a preemption.
            if s.prefill_target > free_kv:
                break
            self.waiting.popleft()
            self.running.append(s)
            scheduled.append(s.id)
            n = min(s.prefill_target, budget)
            chunks.append((s, n))
            budget -= n
            free_kv -= s.prefill_target
        if not decode and not chunks:
            return StepResult(0.0, preempted=tuple(preempted))

        batch = StepBatch(
            decode_seqs=len(decode),
            decode_context_tokens=sum(s.computed for s in decode),
            prefill_tokens=sum(n for _, n in chunks),
            prefill_seqs=len(chunks),
            prefill_context_tokens=sum(s.computed for s, _ in chunks),
        )
        duration = self.model.step(batch)
        emitted: dict[str, int] = {}
        first: list[str] = []
        for s in decode:
            s.computed += 1
            s.generated += 1
            emitted[s.id] = 1
        for s, n in chunks:
            s.computed += n
            if not s.prefilling:
                # The step that completes a prefill samples a token; after a preemption it is a new one too.
                if s.generated == 0:
                    first.append(s.id)
                s.generated += 1
                emitted[s.id] = emitted.get(s.id, 0) + 1
        finished = [s.id for s in self.running if s.generated >= s.max_tokens]
        if finished:
            done = set(finished)
            self.running = [s for s in self.running if s.id not in done]
        return StepResult(
            duration, emitted, tuple(first), tuple(finished), tuple(preempted), tuple(scheduled), batch
        )
