"""Model architecture facts: what the performance model and memory fit need, from each model's config.json.

A model not listed here is read from a Hugging Face `config.json` (see `model_from_hf_config`).
EAGLE-3 drafts are public draft heads trained for that exact target model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from llmctl.errors import LlmctlError


@dataclass(frozen=True)
class Model:
    name: str  # Hugging Face repo id
    num_layers: int
    hidden_size: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    num_params: float  # total parameters
    max_context: int
    num_experts: int = 1  # MoE: experts per layer (1 = dense)
    experts_per_token: int = 1
    active_params: float | None = None  # MoE: parameters used per token; None = num_params
    eagle3_drafts: tuple[str, ...] = ()
    eagle3_draft_params: float = 0.0  # size of the draft head, for its cost and memory
    aliases: tuple[str, ...] = field(default=())

    @property
    def params_per_token(self) -> float:
        return self.active_params if self.active_params is not None else self.num_params

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 1


MODELS: dict[str, Model] = {
    m.name: m
    for m in (
        Model(
            "meta-llama/Llama-3.1-8B-Instruct",
            32,
            4096,
            32,
            8,
            128,
            14336,
            128256,
            8.03e9,
            131072,
            eagle3_drafts=("yuhuili/EAGLE3-LLaMA3.1-Instruct-8B",),
            eagle3_draft_params=0.85e9,
            aliases=("llama-3.1-8b", "meta-llama/Llama-3.1-8B", "meta-llama/Meta-Llama-3.1-8B-Instruct"),
        ),
        Model(
            "meta-llama/Llama-3.1-70B-Instruct",
            80,
            8192,
            64,
            8,
            128,
            28672,
            128256,
            70.6e9,
            131072,
            aliases=("llama-3.1-70b", "meta-llama/Llama-3.1-70B", "meta-llama/Meta-Llama-3.1-70B-Instruct"),
        ),
        Model(
            "meta-llama/Llama-3.3-70B-Instruct",
            80,
            8192,
            64,
            8,
            128,
            28672,
            128256,
            70.6e9,
            131072,
            eagle3_drafts=("yuhuili/EAGLE3-LLaMA3.3-Instruct-70B",),
            eagle3_draft_params=1.7e9,
            aliases=("llama-3.3-70b",),
        ),
        Model(
            "Qwen/Qwen3-8B",
            36,
            4096,
            32,
            8,
            128,
            12288,
            151936,
            8.19e9,
            40960,
            eagle3_drafts=("AngelSlim/Qwen3-8B_eagle3",),
            eagle3_draft_params=0.9e9,
            aliases=("qwen3-8b",),
        ),
        Model(
            "Qwen/Qwen3-32B",
            64,
            5120,
            64,
            8,
            128,
            25600,
            151936,
            32.8e9,
            40960,
            eagle3_drafts=("AngelSlim/Qwen3-32B_eagle3",),
            eagle3_draft_params=1.6e9,
            aliases=("qwen3-32b",),
        ),
        # Llama 2 shapes, for the kernel profiles of the fidelity set (Vidur profiles these two). From each
        # repo's config.json: no num_key_value_heads in the 7B (MHA), max_position_embeddings 4096,
        # parameter counts from the model cards (6.74B, 68.98B).
        Model(
            "meta-llama/Llama-2-7b-hf",
            32,
            4096,
            32,
            32,
            128,
            11008,
            32000,
            6.74e9,
            4096,
            aliases=("llama-2-7b",),
        ),
        Model(
            "meta-llama/Llama-2-70b-hf",
            80,
            8192,
            64,
            8,
            128,
            28672,
            32000,
            68.98e9,
            4096,
            aliases=("llama-2-70b",),
        ),
        Model(
            "mistralai/Mistral-7B-Instruct-v0.3",
            32,
            4096,
            32,
            8,
            128,
            14336,
            32768,
            7.25e9,
            32768,
            aliases=("mistral-7b",),
        ),
        Model(
            "mistralai/Mixtral-8x7B-Instruct-v0.1",
            32,
            4096,
            32,
            8,
            128,
            14336,
            32000,
            46.7e9,
            32768,
            num_experts=8,
            experts_per_token=2,
            active_params=12.9e9,
            aliases=("mixtral-8x7b",),
        ),
    )
}


def find_model(name: str) -> Model | None:
    if name in MODELS:
        return MODELS[name]
    wanted = name.lower()
    for model in MODELS.values():
        if wanted == model.name.lower() or wanted in (a.lower() for a in model.aliases):
            return model
    return None


def _int(cfg: Mapping[str, Any], *keys: str) -> int | None:
    for key in keys:
        value = cfg.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def estimate_params(
    layers: int,
    hidden: int,
    heads: int,
    kv_heads: int,
    head_dim: int,
    inter: int,
    vocab: int,
    experts: int = 1,
    tied: bool = False,
) -> float:
    """Parameter count of a Llama-style decoder (attention + gated MLP + embeddings)."""
    attn = hidden * head_dim * (heads + 2 * kv_heads) + heads * head_dim * hidden
    mlp = 3 * hidden * inter * experts
    embed = vocab * hidden * (1 if tied else 2)
    return float(layers * (attn + mlp + 2 * hidden) + embed)


def model_from_hf_config(name: str, cfg: Mapping[str, Any]) -> Model:
    """Build a Model from a Hugging Face config.json mapping (Llama, Qwen, Mistral, Mixtral shapes).

    Raises LlmctlError naming the missing keys when the config lacks what the performance model needs."""
    cfg = cfg.get("text_config", cfg) if isinstance(cfg.get("text_config"), Mapping) else cfg
    layers = _int(cfg, "num_hidden_layers", "n_layer", "num_layers")
    hidden = _int(cfg, "hidden_size", "n_embd", "d_model")
    heads = _int(cfg, "num_attention_heads", "n_head")
    inter = _int(cfg, "intermediate_size", "moe_intermediate_size", "ffn_dim")
    vocab = _int(cfg, "vocab_size")
    missing = [
        k
        for k, v in (
            ("num_hidden_layers", layers),
            ("hidden_size", hidden),
            ("num_attention_heads", heads),
            ("intermediate_size", inter),
            ("vocab_size", vocab),
        )
        if v is None
    ]
    if missing or layers is None or hidden is None or heads is None or inter is None or vocab is None:
        raise LlmctlError(f"model {name!r}: config.json lacks {', '.join(missing)}")
    kv_heads = _int(cfg, "num_key_value_heads", "num_kv_heads") or heads
    head_dim = _int(cfg, "head_dim") or hidden // heads
    experts = _int(cfg, "num_local_experts", "num_experts") or 1
    top_k = _int(cfg, "num_experts_per_tok", "moe_topk") or 1
    tied = bool(cfg.get("tie_word_embeddings", False))
    total = estimate_params(layers, hidden, heads, kv_heads, head_dim, inter, vocab, experts, tied)
    active = estimate_params(layers, hidden, heads, kv_heads, head_dim, inter, vocab, top_k, tied)
    return Model(
        name=name,
        num_layers=layers,
        hidden_size=hidden,
        num_attention_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=inter,
        vocab_size=vocab,
        num_params=total,
        max_context=_int(cfg, "max_position_embeddings", "max_sequence_length", "n_positions") or 4096,
        num_experts=experts,
        experts_per_token=top_k if experts > 1 else 1,
        active_params=active if experts > 1 else None,
    )
