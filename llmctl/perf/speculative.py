"""Speculative decoding (EAGLE-3 style draft heads): when it pays and by how much.

One speculative step = k draft-model steps, then one target step verifying k+1 tokens per sequence.
It emits (1 - a^(k+1)) / (1 - a) tokens per sequence on average for per-token acceptance rate a. At small
batch the target step is memory-bound, so verifying k+1 tokens costs about as much as decoding one and the
accepted tokens are nearly free; as the batch grows the verify step turns compute-bound, costs ~(k+1)x a
plain step, and the draft work plus rejected tokens make it a loss.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmctl.catalog.models import Model
from llmctl.errors import LlmctlError
from llmctl.perf.comm import engine_allreduce_latency
from llmctl.perf.memory import DTYPE_BYTES, kv_heads_per_rank
from llmctl.perf.profile import Profile
from llmctl.perf.step_time import smooth_max, step_model

# Per-token acceptance rate of an EAGLE-3 head on chat traffic. Source: the EAGLE-3 paper (arXiv 2503.01840)
# reports average acceptance lengths of ~5-6.5 tokens with tree drafts of depth ~7-8 on LLaMA-3.1-8B
# (MT-bench); a chain of 3 drafts at a = 0.7 gives 2.5 tokens per step, a conservative match for the chain
# drafting that vLLM and SGLang default to. Real rates depend on the traffic: calibrate.
DEFAULT_ACCEPTANCE_RATE = 0.7
# Draft length. Source: SGLang's EAGLE-3 examples (--speculative-num-steps 3, --speculative-eagle-topk 1,
# --speculative-num-draft-tokens 4) and vLLM's num_speculative_tokens examples of 2-5.
DEFAULT_DRAFT_TOKENS = 3


@dataclass(frozen=True)
class SpecConfig:
    draft_params: float  # parameters of the draft model (EAGLE-3 head: one decoder layer + LM head)
    num_draft_tokens: int = DEFAULT_DRAFT_TOKENS  # k
    acceptance_rate: float = DEFAULT_ACCEPTANCE_RATE  # a, per drafted token
    draft_layers: int = 1
    # Tree drafting (SGLang's --speculative-eagle-topk > 1): every draft step expands `topk` candidates per
    # sequence, and the target verifies `verify_tokens` tree nodes per sequence (--speculative-num-draft-tokens).
    # A chain (topk 1, vLLM) verifies its k drafts plus the bonus token: verify_tokens None = k + 1.
    topk: int = 1
    verify_tokens: int | None = None
    # Mean tokens emitted per step when known (a published acceptance length); None = from acceptance_rate.
    acceptance_length: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.acceptance_rate <= 1.0:
            raise LlmctlError(f"acceptance rate must be in [0, 1], got {self.acceptance_rate}")
        if self.num_draft_tokens < 1:
            raise LlmctlError(f"draft length must be >= 1, got {self.num_draft_tokens}")
        if self.topk < 1:
            raise LlmctlError(f"draft top-k must be >= 1, got {self.topk}")
        if (
            self.acceptance_length is not None
            and not 1.0 <= self.acceptance_length <= self.num_draft_tokens + 1
        ):
            raise LlmctlError(
                f"acceptance length must be in [1, {self.num_draft_tokens + 1}], got {self.acceptance_length}"
            )

    @property
    def query_tokens(self) -> int:
        """Tokens per sequence the target verifies in one step."""
        return self.verify_tokens if self.verify_tokens is not None else self.num_draft_tokens + 1

    @property
    def tokens_per_step(self) -> float:
        """Mean tokens each sequence emits per speculative step."""
        if self.acceptance_length is not None:
            return self.acceptance_length
        return expected_accepted_tokens(self.acceptance_rate, self.num_draft_tokens)


@dataclass(frozen=True)
class SpecStepTime:
    draft_s: float  # all k draft steps
    verify_s: float  # the target step over k+1 tokens per sequence
    tokens_per_seq: float  # expected tokens emitted per sequence

    @property
    def total_s(self) -> float:
        return self.draft_s + self.verify_s

    @property
    def per_token_s(self) -> float:
        return self.total_s / self.tokens_per_seq


def draft_params(model: Model) -> float:
    """Parameters of the model's EAGLE-3 head: the catalog's figure, else 5% of the target (a head is about
    one decoder layer and the LM head). One rule for the desired state, the emulator and the simulator."""
    return model.eagle3_draft_params or 0.05 * model.num_params


def default_spec(model: Model, **overrides: float) -> SpecConfig | None:
    """The EAGLE-3 set-up for a catalog model with a public draft head, or None when it has none."""
    if not model.eagle3_drafts or model.eagle3_draft_params <= 0:
        return None
    k = int(overrides.get("num_draft_tokens", DEFAULT_DRAFT_TOKENS))
    a = float(overrides.get("acceptance_rate", DEFAULT_ACCEPTANCE_RATE))
    return SpecConfig(model.eagle3_draft_params, num_draft_tokens=k, acceptance_rate=a)


# vLLM drafts a chain (num_speculative_tokens k, top-1). Per-token acceptance of EAGLE-3 on Llama-3.1-8B,
# MT-bench, in vLLM: acceptance lengths 2.36 / 2.79 / 3.08 at k = 2 / 3 / 4 (vllm-project/vllm issue #20780),
# i.e. a = 0.76 in (1 - a^(k+1)) / (1 - a) at every k.
VLLM_ACCEPTANCE_RATE = 0.76
# SGLang drafts a tree: --speculative-num-steps 5, --speculative-eagle-topk 4, --speculative-num-draft-tokens 8
# are its defaults (SGLang docs, Speculative Decoding: "Default is 5 / 4 / 8"). Acceptance length of EAGLE-3 on
# Llama-3.1-8B, MT-bench, with 5 draft steps: 4.68 (sgl-project/sglang PR #4247; the run's top-k and draft
# token count are not stated there).
SGLANG_TREE = {"num_steps": 5, "topk": 4, "num_draft_tokens": 8, "acceptance_length": 4.68}


def engine_spec(model: Model, engine: str) -> SpecConfig | None:
    """The EAGLE-3 set-up an engine runs by default for a catalog model (None without a public draft):
    a chain of DEFAULT_DRAFT_TOKENS in vLLM, SGLang's default tree in SGLang."""
    base = default_spec(model)
    if base is None:
        return None
    if engine == "sglang":
        return SpecConfig(
            base.draft_params,
            num_draft_tokens=int(SGLANG_TREE["num_steps"]),
            acceptance_rate=VLLM_ACCEPTANCE_RATE,
            topk=int(SGLANG_TREE["topk"]),
            verify_tokens=int(SGLANG_TREE["num_draft_tokens"]),
            acceptance_length=SGLANG_TREE["acceptance_length"],
        )
    return SpecConfig(
        base.draft_params, num_draft_tokens=base.num_draft_tokens, acceptance_rate=VLLM_ACCEPTANCE_RATE
    )


def expected_accepted_tokens(acceptance_rate: float, num_draft_tokens: int) -> float:
    """Expected tokens per step: accepted drafts plus the target's own token, (1 - a^(k+1)) / (1 - a)."""
    a, k = acceptance_rate, num_draft_tokens
    if a >= 1.0:
        return float(k + 1)
    return (1.0 - a ** (k + 1)) / (1.0 - a)


def draft_step_time(profile: Profile, spec: SpecConfig, batch: int, total_context_tokens: int) -> float:
    """One draft-model step: its (BF16) weights and one layer's KV against HBM, its FLOPs, a fixed cost."""
    m, g, f, tp = profile.model, profile.gpu, profile.factors, profile.tp
    kv_per_token = (
        2 * spec.draft_layers * kv_heads_per_rank(m, tp) * m.head_dim * DTYPE_BYTES[profile.kv_dtype]
    )
    mem_bytes = spec.draft_params * DTYPE_BYTES["bf16"] / tp + total_context_tokens * kv_per_token
    memory_s = mem_bytes / (g.hbm_bandwidth * f.hbm_efficiency)
    compute_s = 2.0 * spec.draft_params / tp * batch * spec.topk / (g.bf16_flops * f.compute_efficiency)
    # A TP-sharded head all-reduces twice per draft layer, like the target.
    comm_s = 2.0 * spec.draft_layers * engine_allreduce_latency(g, tp, f)
    return smooth_max(memory_s, compute_s, f.roofline_sharpness) + comm_s + f.draft_overhead_s


def spec_step_time(profile: Profile, spec: SpecConfig, batch: int, total_context_tokens: int) -> SpecStepTime:
    k = spec.num_draft_tokens
    draft = k * draft_step_time(profile, spec, batch, total_context_tokens)
    verify = step_model(profile).decode(batch, total_context_tokens, query_tokens=spec.query_tokens)
    return SpecStepTime(draft, verify, spec.tokens_per_step)


def per_token_time(
    profile: Profile, batch: int, total_context_tokens: int, spec: SpecConfig | None = None
) -> float:
    """Effective inter-token latency seen by each sequence, with or without speculative decoding."""
    if spec is None:
        return step_model(profile).decode(batch, total_context_tokens)
    return spec_step_time(profile, spec, batch, total_context_tokens).per_token_s


def decode_throughput(
    profile: Profile, batch: int, total_context_tokens: int, spec: SpecConfig | None = None
) -> float:
    """Output tokens per second of the replica decoding `batch` sequences."""
    if batch <= 0:
        return 0.0
    return batch / per_token_time(profile, batch, total_context_tokens, spec)


def spec_speedup(profile: Profile, spec: SpecConfig, batch: int, context: int) -> float:
    """Plain per-token time over speculative per-token time at `batch` sequences of `context` tokens each."""
    total = batch * context
    return per_token_time(profile, batch, total) / per_token_time(profile, batch, total, spec)


def spec_pays_off(profile: Profile, spec: SpecConfig, batch: int, context: int) -> bool:
    """Whether speculative decoding makes per-token time (and so throughput) better at this batch size."""
    return spec_speedup(profile, spec, batch, context) > 1.0


def spec_break_even_batch(
    profile: Profile, spec: SpecConfig, context: int, max_batch: int = 4096
) -> int | None:
    """Smallest batch (powers of two, then bisection) at which speculative decoding stops paying, if any."""
    if not spec_pays_off(profile, spec, 1, context):
        return 1
    lo, hi = 1, 2
    while hi <= max_batch and spec_pays_off(profile, spec, hi, context):
        lo, hi = hi, hi * 2
    if hi > max_batch:
        return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if spec_pays_off(profile, spec, mid, context) else (lo, mid)
    return hi
