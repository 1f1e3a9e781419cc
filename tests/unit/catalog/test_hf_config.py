"""config.json -> Model on real published configs (fixtures/, sources in fixtures/README.md): parameter counts
against the publishers' figures, KV bytes per token against a hand computation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmctl.catalog.hf_config import model_from_hf_config
from llmctl.catalog.models import MODELS, Model
from llmctl.errors import LlmctlError
from llmctl.perf.memory import kv_bytes_per_token, weight_bytes

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def load(fixture: str) -> Model:
    return model_from_hf_config(
        fixture.replace("__", "/"), json.loads((FIXTURES / f"{fixture}.json").read_text())
    )


# (fixture, published total, published active, how the publisher counts active, source of the figures).
# Conventions: "all" = every parameter a token touches, both embedding tables included (Model.active_params);
# "head" = the input embedding table (a lookup, no FLOPs) left out, the LM head kept (OpenAI, DeepSeek).
PUBLISHED: list[tuple[str, float, float | None, str, str]] = [
    ("meta-llama__Meta-Llama-3.1-405B", 405e9, None, "", "Llama 3.1 model card: 405B"),
    ("meta-llama__Meta-Llama-3.1-8B", 8.03e9, None, "", "Llama 3.1 model card / Hub safetensors: 8.03B"),
    ("Qwen__Qwen3-235B-A22B", 235e9, 22e9, "all", "Qwen3-235B-A22B model card: 235B total, 22B activated"),
    ("Qwen__Qwen3-235B-A22B-FP8", 235e9, 22e9, "all", "Qwen3-235B-A22B-FP8 model card: 235B, 22B activated"),
    ("Qwen__Qwen3-30B-A3B", 30.5e9, 3.3e9, "all", "Qwen3-30B-A3B model card: 30.5B total, 3.3B activated"),
    ("openai__gpt-oss-120b", 116.83e9, 5.13e9, "head", "gpt-oss model card (arXiv 2508.10925) table 1"),
    ("openai__gpt-oss-20b", 20.91e9, 3.61e9, "head", "gpt-oss model card (arXiv 2508.10925) table 1"),
    (
        "deepseek-ai__DeepSeek-V3",
        671e9,
        37e9,
        "head",
        "DeepSeek-V3 README: 671B total, 37B activated (no MTP)",
    ),
    ("deepseek-ai__DeepSeek-R1", 671e9, 37e9, "head", "DeepSeek-R1 README: 671B total, 37B activated"),
    ("mistralai__Mixtral-8x7B-v0.1", 46.7e9, 12.9e9, "all", "Mistral 'Mixtral of experts': 46.7B, 12.9B"),
    ("mistralai__Mixtral-8x22B-v0.1", 141e9, 39e9, "all", "Mistral 'Cheaper, Better...': 141B, 39B active"),
    ("Qwen__Qwen2.5-7B-Instruct", 7.61e9, None, "", "Qwen2.5-7B-Instruct model card: 7.61B"),
    ("microsoft__phi-4", 14.7e9, None, "", "phi-4 on the Hub: 14.7B (safetensors; the card rounds to 14B)"),
    ("google__gemma-2-9b-it", 9.24e9, None, "", "Gemma 2 report table 1: 8,324M + 917M embedding"),
    # Multimodal: the language model only (the vision tower is not counted); published text-model figures.
    ("Qwen__Qwen2.5-VL-7B-Instruct", 7.61e9, None, "", "its LLM is Qwen2.5-7B's (7.61B); 8.29B with vision"),
    ("Qwen__Qwen3-VL-30B-A3B-Instruct", 30.5e9, 3.3e9, "all", "its LLM is Qwen3-30B-A3B's (30.5B, 3.3B)"),
]


def active_as_published(model: Model, convention: str) -> float:
    embed = model.vocab_size * model.hidden_size
    return model.params_per_token - (embed if convention == "head" else 0)


@pytest.mark.parametrize(
    ("fixture", "total", "active", "convention", "source"), PUBLISHED, ids=[p[0] for p in PUBLISHED]
)
def test_parameter_counts_within_2_percent_of_published(
    fixture: str, total: float, active: float | None, convention: str, source: str
) -> None:
    model = load(fixture)
    assert model.num_params == pytest.approx(total, rel=0.02), source
    if active is None:
        assert not model.is_moe and model.active_params is None
    else:
        assert model.is_moe
        assert active_as_published(model, convention) == pytest.approx(active, rel=0.02), source


def test_the_catalog_llama_8b_is_what_its_config_says() -> None:
    # The catalog is a cache of known facts: the same numbers come out of the published config.
    model, known = load("meta-llama__Meta-Llama-3.1-8B"), MODELS["meta-llama/Llama-3.1-8B-Instruct"]
    assert (model.num_layers, model.num_kv_heads, model.head_dim) == (
        known.num_layers,
        known.num_kv_heads,
        128,
    )
    assert model.num_params == pytest.approx(known.num_params, rel=0.001)
    assert kv_bytes_per_token(model, "bf16", 1) == kv_bytes_per_token(known, "bf16", 1)


def test_kv_bytes_per_token_by_hand() -> None:
    bf16 = 2
    # Llama-3.1-405B: 126 layers x (K and V) x 8 KV heads x head_dim 128 x 2 bytes.
    llama = load("meta-llama__Meta-Llama-3.1-405B")
    assert kv_bytes_per_token(llama, "bf16", 1) == 126 * 2 * 8 * 128 * bf16 == 516_096
    assert kv_bytes_per_token(llama, "bf16", 8) == 126 * 2 * 1 * 128 * bf16 == 64_512  # one KV head per rank
    # Qwen3-235B-A22B: 94 x 2 x 4 x 128 x 2; at TP 8 the 4 KV heads are replicated, one per rank.
    qwen = load("Qwen__Qwen3-235B-A22B")
    assert kv_bytes_per_token(qwen, "bf16", 1) == 94 * 2 * 4 * 128 * bf16 == 192_512
    assert kv_bytes_per_token(qwen, "bf16", 8) == 94 * 2 * 1 * 128 * bf16 == 48_128
    # DeepSeek-V3 (MLA): one latent of kv_lora_rank 512 + qk_rope_head_dim 64 per layer, 61 layers, the same on
    # every rank (the latent is not split by heads).
    ds = load("deepseek-ai__DeepSeek-V3")
    assert kv_bytes_per_token(ds, "bf16", 1) == 61 * (512 + 64) * bf16 == 70_272
    assert kv_bytes_per_token(ds, "bf16", 8) == 70_272
    assert kv_bytes_per_token(ds, "fp8", 8) == 61 * 576 * 1
    # gpt-oss-120b: 36 layers, half of them (layer_types) sliding over 128 tokens; 8 KV heads of 64.
    oss = load("openai__gpt-oss-120b")
    full_layer = 2 * 8 * 64 * bf16  # 2048 bytes per token per layer
    assert (oss.sliding_layers, oss.sliding_window) == (18, 128)
    assert kv_bytes_per_token(oss, "bf16", 1) == 36 * full_layer == 73_728  # no context: all counted
    assert kv_bytes_per_token(oss, "bf16", 1, context=8192) == 18 * full_layer + 18 * full_layer * 128 / 8192
    assert kv_bytes_per_token(oss, "bf16", 1, context=100) == 36 * full_layer  # shorter than the window
    # Gemma-2-9B: 42 layers, the 21 even ones slide over 4096 tokens; 8 KV heads of 256.
    gemma = load("google__gemma-2-9b-it")
    layer = 2 * 8 * 256 * bf16
    assert kv_bytes_per_token(gemma, "bf16", 1, context=8192) == 21 * layer + 21 * layer * 4096 / 8192
    # Qwen2.5 carries sliding_window 131072 with use_sliding_window false: every layer is full.
    qwen25 = load("Qwen__Qwen2.5-7B-Instruct")
    assert qwen25.sliding_layers == 0
    assert kv_bytes_per_token(qwen25, "bf16", 1, context=8192) == 28 * 2 * 4 * 128 * bf16


def test_shapes_the_step_model_reads() -> None:
    ds = load("deepseek-ai__DeepSeek-V3")
    assert (ds.num_experts, ds.experts_per_token, ds.intermediate_size, ds.head_dim) == (256, 8, 2048, 192)
    assert ds.quantization == "fp8"
    oss = load("openai__gpt-oss-120b")
    assert (oss.num_experts, oss.experts_per_token, oss.head_dim, oss.quantization) == (128, 4, 64, "mxfp4")
    vl = load("Qwen__Qwen3-VL-30B-A3B-Instruct")  # text_config backbone
    assert (vl.num_layers, vl.hidden_size, vl.num_experts, vl.max_context) == (48, 2048, 128, 262144)
    gemma = load("google__gemma-2-9b-it")  # Gemma ties its LM head to the embeddings by default
    assert gemma.num_params == pytest.approx(load("google__gemma-2-9b-it").num_params)
    assert gemma.head_dim == 256 and gemma.num_attention_heads * gemma.head_dim != gemma.hidden_size


def test_pre_quantised_checkpoints_size_their_own_weights() -> None:
    oss = load("openai__gpt-oss-120b")
    # MXFP4 experts (4.25 bits) and bf16 for the rest: the model card's 60.8 GiB checkpoint, within 2%.
    assert weight_bytes(oss, "bf16") / 2**30 == pytest.approx(60.8, rel=0.02)
    assert weight_bytes(oss, "fp8") == weight_bytes(oss, "bf16")  # loaded as it is, whatever the compute
    fp8 = load("Qwen__Qwen3-235B-A22B-FP8")
    assert fp8.quantization == "fp8"
    assert weight_bytes(fp8, "bf16") == pytest.approx(fp8.num_params, rel=0.02)  # ~1 byte a weight
    exact = model_from_hf_config(
        "x/y", json.loads((FIXTURES / "openai__gpt-oss-120b.json").read_text()), 65e9
    )
    assert weight_bytes(exact, "bf16") == 65e9  # the safetensors index's total_size wins over the estimate
    plain = model_from_hf_config(
        "x/z", json.loads((FIXTURES / "Qwen__Qwen2.5-7B-Instruct.json").read_text()), 15e9
    )
    assert plain.quantization is None
    assert (weight_bytes(plain, "bf16"), weight_bytes(plain, "fp8")) == (15e9, 7.5e9)


@pytest.mark.parametrize(
    ("config", "missing"),
    [
        ({}, "num_hidden_layers, hidden_size, num_attention_heads, intermediate_size, vocab_size"),
        (
            {"num_hidden_layers": 2, "hidden_size": 8, "num_attention_heads": 2, "vocab_size": 8},
            "intermediate_size",
        ),
        ({"text_config": {"hidden_size": "big"}}, "num_hidden_layers, hidden_size"),
    ],
)
def test_a_config_lacking_facts_is_named_not_a_traceback(config: dict[str, object], missing: str) -> None:
    with pytest.raises(LlmctlError, match=f"config.json lacks {missing}"):
        model_from_hf_config("acme/broken", config)
