"""Model architecture facts: what the performance model and memory fit need, from each model's config.json.

A model not listed here is read from a Hugging Face `config.json` (see `model_from_hf_config`).
EAGLE-3 drafts are public draft heads trained for that exact target model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


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
    # Multi-head latent attention (DeepSeek-V2/V3): each layer caches one latent of kv_lora_rank +
    # qk_rope_head_dim values per token instead of K and V per head; 0 = ordinary K/V heads.
    kv_latent_dim: int = 0
    # Sliding-window attention: `sliding_layers` of the layers attend to the last `sliding_window` tokens
    # only, so their KV cache is bounded by the window (0 = every layer attends to the whole context).
    sliding_window: int = 0
    sliding_layers: int = 0
    # Size of the checkpoint's weights when known (safetensors index metadata.total_size, or estimated from a
    # pre-quantised checkpoint's quantization_config); None = num_params at the serving dtype.
    checkpoint_bytes: float | None = None
    checkpoint_dtype_bytes: float = 2.0  # bytes per weight of an unquantised checkpoint (torch_dtype)
    # A pre-quantised checkpoint's method (fp8, mxfp4, awq, gptq, compressed-tensors, ...): the engine reads
    # it from config.json, so the planner adds no --quantization and sizes weights from checkpoint_bytes.
    quantization: str | None = None

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


def model_from_hf_config(name: str, cfg: Mapping[str, Any], checkpoint_bytes: float | None = None) -> Model:
    """Build a Model from a Hugging Face config.json mapping; see llmctl.catalog.hf_config (imported here, not at
    the top, because that module builds on Model)."""
    from llmctl.catalog.hf_config import model_from_hf_config as from_config

    return from_config(name, cfg, checkpoint_bytes)
