"""A Hugging Face `config.json` mapping -> Model: the architecture facts the memory fit and step model need.

Pure (no I/O): the fetching is llmctl.config.hub's. Covers dense GQA decoders (Llama, Qwen2/3, Mistral, Phi-3/4,
Gemma 2/3 with their sliding-window layers), MoE (Mixtral, Qwen2/3-MoE, gpt-oss, DeepSeek-V2/V3 with MLA, shared
experts and leading dense layers) and multimodal wrappers whose language model sits under `text_config` (the
vision tower is not counted: its parameters are well under 2% of these models, and the checkpoint's exact size,
when the hub gives it, includes it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llmctl.catalog.models import Model
from llmctl.errors import LlmctlError

# Bytes per weight of an unquantised checkpoint, from config.json's torch_dtype (or dtype, transformers >= 4.56).
_DTYPE_BYTES = {"bfloat16": 2.0, "float16": 2.0, "float32": 4.0}
# Model types whose config class ties the LM head to the embedding table by default (transformers' Gemma*Config);
# every other family here defaults to untied, so an absent key means what the model's own config class says.
_TIED_BY_DEFAULT = ("gemma", "gemma2", "gemma3", "gemma3_text")


def _int(cfg: Mapping[str, Any], *keys: str) -> int | None:
    for key in keys:
        value = cfg.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


@dataclass(frozen=True)
class _Shape:
    """What one decoder layer holds, in parameters, split the way total and active counts need."""

    attention: float  # per layer, every layer
    dense_mlp: float  # per dense layer
    expert: float  # one routed expert
    shared: float  # shared experts of one MoE layer (always active)
    router: float  # per MoE layer
    moe_layers: int


def _attention_params(cfg: Mapping[str, Any], hidden: int, heads: int, kv_heads: int, head_dim: int) -> float:
    kv_rank = _int(cfg, "kv_lora_rank")
    if kv_rank:
        # Multi-head latent attention (DeepSeek-V2/V3): low-rank query and a compressed KV latent that is
        # expanded per head; the projections as modeling_deepseek defines them.
        nope, rope = _int(cfg, "qk_nope_head_dim") or 128, _int(cfg, "qk_rope_head_dim") or 64
        v_dim = _int(cfg, "v_head_dim") or nope
        q_rank = _int(cfg, "q_lora_rank")
        q = (
            hidden * q_rank + q_rank + q_rank * heads * (nope + rope)
            if q_rank
            else hidden * heads * (nope + rope)
        )
        kv = hidden * (kv_rank + rope) + kv_rank + kv_rank * heads * (nope + v_dim)
        return float(q + kv + heads * v_dim * hidden)
    return float(hidden * head_dim * (heads + 2 * kv_heads) + heads * head_dim * hidden)


def _moe_layer_count(cfg: Mapping[str, Any], layers: int) -> int:
    """How many decoder layers are MoE: DeepSeek's first_k_dense_replace leading dense layers, Qwen-MoE's
    mlp_only_layers and decoder_sparse_step, Llama-4's interleave_moe_layer_step."""
    dense_first = _int(cfg, "first_k_dense_replace") or 0
    only_mlp = cfg.get("mlp_only_layers")
    skip = {i for i in only_mlp if isinstance(i, int)} if isinstance(only_mlp, list) else set()
    step = _int(cfg, "decoder_sparse_step", "interleave_moe_layer_step", "moe_layer_freq") or 1
    count = 0
    for i in range(layers):
        if i < dense_first or i in skip:
            continue
        # Qwen-MoE: layer i is sparse when (i + 1) % step == 0; Llama-4 interleaves the same way.
        if (i + 1) % step == 0:
            count += 1
    return count


def _sliding_layers(cfg: Mapping[str, Any], model_type: str, layers: int) -> tuple[int, int]:
    """(window, layers that use it). Engines bound a sliding layer's KV cache by its window (vLLM's hybrid
    allocator), so those layers cost min(context, window) tokens of KV, not the whole context."""
    window = _int(cfg, "sliding_window")
    if not window or cfg.get("use_sliding_window") is False:
        return 0, 0  # Qwen2/3 carry a window they do not use (use_sliding_window: false)
    types = cfg.get("layer_types")
    if isinstance(types, list) and types:
        return window, sum(1 for t in types if t == "sliding_attention")
    if model_type == "gemma2":
        return window, (layers + 1) // 2  # even layers slide, odd ones are global (modeling_gemma2)
    pattern = _int(cfg, "sliding_window_pattern")
    if model_type.startswith("gemma3"):
        pattern = pattern or 6  # Gemma 3: five local layers, then one global
        return window, layers - layers // pattern
    max_pos = _int(cfg, "max_position_embeddings") or 0
    # Mistral-7B-v0.1 style: every layer slides; a window at or past the context bounds nothing.
    return (window, layers) if window < max_pos else (0, 0)


def _quantization(cfg: Mapping[str, Any]) -> tuple[str | None, float | None, bool]:
    """(method, bits per quantised weight, experts_only) of a pre-quantised checkpoint's quantization_config."""
    q = cfg.get("quantization_config")
    if not isinstance(q, Mapping):
        return None, None, False
    method = str(q.get("quant_method") or "unknown").lower()
    if method in ("fp8", "fbgemm_fp8"):
        return "fp8", 8.0, False
    if method == "mxfp4":
        # gpt-oss: only the routed experts are MXFP4 (4-bit values + one 8-bit scale per 32); attention, router
        # and embeddings stay bf16 (modules_to_not_convert).
        return "mxfp4", 4.25, True
    if method in ("awq", "gptq"):
        bits = float(_int(q, "bits", "w_bit") or 4)
        group = _int(q, "group_size", "q_group_size") or 128
        return method, bits + 32.0 / max(group, 1), False  # a 16-bit scale and zero per group
    if method == "compressed-tensors":
        groups = q.get("config_groups")
        first: Any = next(iter(groups.values()), None) if isinstance(groups, Mapping) else None
        weights: Any = first.get("weights") if isinstance(first, Mapping) else None
        num_bits = _int(weights, "num_bits") if isinstance(weights, Mapping) else None
        bits = float(num_bits or 8)
        return "compressed-tensors", bits + (16.0 / 128 if bits < 8 else 0.0), False
    if method == "modelopt":
        algo = str(q.get("quant_algo") or "").upper()
        return ("nvfp4", 4.5, False) if "FP4" in algo else ("fp8", 8.0, False)
    if method == "bitsandbytes":
        return "bitsandbytes", 4.5 if q.get("load_in_4bit") else 8.0, False
    return method, None, False


def model_from_hf_config(name: str, cfg: Mapping[str, Any], checkpoint_bytes: float | None = None) -> Model:
    """Build a Model from a Hugging Face config.json mapping. `checkpoint_bytes`, when known (the safetensors
    index's metadata.total_size), is the exact size of the weights and replaces the estimate.

    Raises LlmctlError naming the missing keys when the config lacks what the performance model needs."""
    outer = cfg
    text = cfg.get("text_config")
    if isinstance(text, Mapping):
        cfg = text  # multimodal wrapper: the language model is what is served token by token
    layers = _int(cfg, "num_hidden_layers", "n_layer", "num_layers")
    hidden = _int(cfg, "hidden_size", "n_embd", "d_model")
    heads = _int(cfg, "num_attention_heads", "n_head")
    inter = _int(cfg, "intermediate_size", "moe_intermediate_size", "ffn_dim")
    vocab = _int(cfg, "vocab_size") or _int(outer, "vocab_size")
    needed = {
        "num_hidden_layers": layers,
        "hidden_size": hidden,
        "num_attention_heads": heads,
        "intermediate_size": inter,
        "vocab_size": vocab,
    }
    missing = [k for k, v in needed.items() if v is None or v <= 0]
    if missing or layers is None or hidden is None or heads is None or inter is None or vocab is None:
        raise LlmctlError(f"model {name!r}: config.json lacks {', '.join(missing)}")
    model_type = str(cfg.get("model_type") or outer.get("model_type") or "")
    kv_heads = _int(cfg, "num_key_value_heads", "num_kv_heads") or heads
    kv_rank = _int(cfg, "kv_lora_rank") or 0
    rope_dim = _int(cfg, "qk_rope_head_dim") or 0
    head_dim = _int(cfg, "head_dim") or hidden // heads
    if kv_rank:
        head_dim = (
            _int(cfg, "qk_nope_head_dim") or 128
        ) + rope_dim  # the query/key width attention multiplies
    experts = _int(cfg, "num_local_experts", "n_routed_experts", "num_experts") or 1
    top_k = _int(cfg, "num_experts_per_tok", "experts_per_token", "moe_topk") or 1
    moe_inter = _int(cfg, "moe_intermediate_size") or inter
    tie = cfg.get("tie_word_embeddings", outer.get("tie_word_embeddings", model_type in _TIED_BY_DEFAULT))
    tied = bool(tie)

    attention = _attention_params(cfg, hidden, heads, kv_heads, head_dim)
    if experts > 1:
        shared_count = _int(cfg, "n_shared_experts", "num_shared_experts") or 0
        shared_inter = _int(cfg, "shared_expert_intermediate_size") or shared_count * moe_inter
        if model_type.startswith("llama4"):
            shared_inter = inter  # Llama-4: one shared expert of intermediate_size beside the routed ones
        dense_inter = _int(cfg, "intermediate_size_mlp") or inter
        shape = _Shape(
            attention=attention,
            dense_mlp=3.0 * hidden * dense_inter,
            expert=3.0 * hidden * moe_inter,
            shared=3.0 * hidden * shared_inter,
            router=float(hidden * experts),
            moe_layers=_moe_layer_count(cfg, layers),
        )
    else:
        shape = _Shape(attention, 3.0 * hidden * inter, 0.0, 0.0, 0.0, 0)
    norms = float(layers * 2 * hidden + hidden)
    embed = float(vocab * hidden)
    head = 0.0 if tied else embed
    dense_layers = layers - shape.moe_layers
    body = layers * shape.attention + dense_layers * shape.dense_mlp + norms
    moe_fixed = shape.moe_layers * (shape.shared + shape.router)
    routed_total = shape.moe_layers * experts * shape.expert
    total = body + moe_fixed + routed_total + embed + head
    # Active: what one token's forward pass touches, embedding table included, as num_params counts it (the
    # step model takes both embedding matrices back out of it for its linear FLOPs).
    active = body + moe_fixed + shape.moe_layers * top_k * shape.expert + embed + head

    window, sliding = _sliding_layers(cfg, model_type, layers)
    method, bits, experts_only = _quantization(outer if "quantization_config" in outer else cfg)
    dtype_name = str(cfg.get("torch_dtype") or cfg.get("dtype") or outer.get("torch_dtype") or "bfloat16")
    dtype_bytes = _DTYPE_BYTES.get(dtype_name, 2.0)
    if checkpoint_bytes is None and method is not None and bits is not None:
        quantised = routed_total if experts_only else total - embed - head - norms
        checkpoint_bytes = quantised * bits / 8.0 + (total - quantised) * 2.0
    if checkpoint_bytes is None and method is not None:
        checkpoint_bytes = total * 2.0  # a method we cannot size: assume bf16, the safe side of the fit
    return Model(
        name=name,
        num_layers=layers,
        hidden_size=hidden,
        num_attention_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=moe_inter if experts > 1 else inter,
        vocab_size=vocab,
        num_params=total,
        max_context=_int(cfg, "max_position_embeddings", "max_sequence_length", "n_positions") or 4096,
        num_experts=experts,
        experts_per_token=top_k if experts > 1 else 1,
        active_params=active if experts > 1 else None,
        kv_latent_dim=kv_rank + rope_dim if kv_rank else 0,
        sliding_window=window,
        sliding_layers=sliding,
        checkpoint_bytes=checkpoint_bytes,
        checkpoint_dtype_bytes=dtype_bytes,
        quantization=method,
    )
