"""How long one engine step takes: the performance model's step time, or with EAGLE-3 speculative decoding
the speculative cost per emitted token. Pure."""

from __future__ import annotations

from typing import Protocol

from llmctl.perf.profile import Profile
from llmctl.perf.speculative import SpecConfig, spec_step_time
from llmctl.perf.step_time import StepBatch, step_model


class StepTimer(Protocol):
    def step(self, batch: StepBatch) -> float: ...


class SpeculativeTimer:
    """Decode-only steps take the speculative time per emitted token (draft + verify over the expected
    accepted tokens). The scheduler still emits one token per sequence per step: over many steps that gives
    the same tokens/s and inter-token latency as emitting ~tokens_per_seq every (draft + verify), without
    teaching the scheduler about acceptance. Steps with prefill run plain, as both engines verify drafts
    only for decoding sequences."""

    def __init__(self, profile: Profile, spec: SpecConfig) -> None:
        self.profile = profile
        self.spec = spec
        self.plain = step_model(profile)

    def step(self, batch: StepBatch) -> float:
        if batch.prefill_tokens or not batch.decode_seqs:
            return self.plain.step(batch)
        return spec_step_time(
            self.profile, self.spec, batch.decode_seqs, batch.decode_context_tokens
        ).per_token_s


def step_timer(profile: Profile, spec: SpecConfig | None) -> StepTimer:
    return step_model(profile) if spec is None else SpeculativeTimer(profile, spec)
