"""Build small random-weight Llama-shaped checkpoints on local disk, for tests against a real engine.

No hub access: config.json, model.safetensors (bf16, written directly), a byte-level BPE tokenizer trained on
the spot with `tokenizers`, and a chat template. vLLM's CPU attention kernel refuses head_dim 16, so both
sizes use head_dim 64. Random weights generate gibberish, which is all a serving test needs.

    python -m llmctl.testing.tiny_model OUT_DIR [--size tiny|small]
"""

from __future__ import annotations

import argparse
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
SPECIAL = ["<unk>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>"]
_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Serving large language models needs memory for weights and for the KV cache.",
    "A replica answers completions, chat completions and streaming requests.",
    "Tensor parallelism splits every layer across GPUs; pipelines split the layers.",
    "0123456789 + - * / = ( ) [ ] { } < > , . ; : ! ? ' \" # $ % & @",
    "hello world, how are you today? I am fine, thank you.",
]


@dataclass(frozen=True)
class Size:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int = 512
    head_dim: int = 64
    max_position: int = 2048


SIZES = {
    # Fast start-up for functional tests: about 1.4 M parameters, 3 MB on disk.
    "tiny": Size(hidden=256, layers=2, heads=4, kv_heads=2, intermediate=512),
    # About 100 M parameters (about 200 MB in bf16): step times large enough to calibrate against.
    "small": Size(hidden=768, layers=16, heads=12, kv_heads=4, intermediate=2048),
}


def num_params(size: Size) -> int:
    h, d = size.hidden, size.head_dim
    attn = h * size.heads * d * 2 + h * size.kv_heads * d * 2
    mlp = 3 * h * size.intermediate
    return size.layers * (attn + mlp + 2 * h) + 2 * size.vocab * h + h


def _bf16(array: np.ndarray[Any, Any]) -> bytes:
    """float32 -> bfloat16 bytes (round to nearest even), the dtype the checkpoint declares."""
    bits = np.ascontiguousarray(array, dtype=np.float32).view(np.uint32)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16).tobytes()


def _tensors(size: Size, rng: np.random.Generator) -> dict[str, tuple[tuple[int, ...], bytes]]:
    h, d = size.hidden, size.head_dim

    def normal(*shape: int) -> tuple[tuple[int, ...], bytes]:
        return shape, _bf16(rng.standard_normal(shape, dtype=np.float32) * 0.02)

    def ones(n: int) -> tuple[tuple[int, ...], bytes]:
        return (n,), _bf16(np.ones(n, dtype=np.float32))

    out = {"model.embed_tokens.weight": normal(size.vocab, h), "model.norm.weight": ones(h)}
    out["lm_head.weight"] = normal(size.vocab, h)
    for i in range(size.layers):
        p = f"model.layers.{i}."
        out[p + "self_attn.q_proj.weight"] = normal(size.heads * d, h)
        out[p + "self_attn.k_proj.weight"] = normal(size.kv_heads * d, h)
        out[p + "self_attn.v_proj.weight"] = normal(size.kv_heads * d, h)
        out[p + "self_attn.o_proj.weight"] = normal(h, size.heads * d)
        out[p + "mlp.gate_proj.weight"] = normal(size.intermediate, h)
        out[p + "mlp.up_proj.weight"] = normal(size.intermediate, h)
        out[p + "mlp.down_proj.weight"] = normal(h, size.intermediate)
        out[p + "input_layernorm.weight"] = ones(h)
        out[p + "post_attention_layernorm.weight"] = ones(h)
    return out


def write_safetensors(path: Path, tensors: dict[str, tuple[tuple[int, ...], bytes]]) -> None:
    """The safetensors layout: u64 little-endian header length, JSON header, then the raw tensor bytes."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (shape, data) in tensors.items():
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the format pads the header to 8 bytes
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for _, data in tensors.values():
            f.write(data)


def _tokenizer(out: Path, vocab: int) -> int:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer)
    tok.save(str(out / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "chat_template": CHAT_TEMPLATE,
        "model_max_length": 2048,
        "clean_up_tokenization_spaces": False,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=1))
    (out / "special_tokens_map.json").write_text(
        json.dumps({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"})
    )
    return int(tok.get_vocab_size())


def build_model(out: Path, size_name: str = "tiny", seed: int = 0) -> Path:
    """Write the checkpoint into `out` (created); returns `out`. Idempotent: a complete one is kept."""
    size = SIZES[size_name]
    out.mkdir(parents=True, exist_ok=True)
    if (out / "config.json").exists() and (out / "model.safetensors").exists():
        return out
    tokens = _tokenizer(out, size.vocab)
    if tokens > size.vocab:
        raise ValueError(f"tokenizer has {tokens} tokens, more than the model's vocabulary {size.vocab}")
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": size.hidden,
        "intermediate_size": size.intermediate,
        "num_hidden_layers": size.layers,
        "num_attention_heads": size.heads,
        "num_key_value_heads": size.kv_heads,
        "head_dim": size.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": size.max_position,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "vocab_size": size.vocab,
        "tie_word_embeddings": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "torch_dtype": "bfloat16",
    }
    (out / "generation_config.json").write_text(json.dumps({"bos_token_id": 1, "eos_token_id": 2}))
    # Written last: a directory with config.json and the weights is a complete model.
    write_safetensors(out / "model.safetensors", _tensors(size, np.random.default_rng(seed)))
    (out / "config.json").write_text(json.dumps(config, indent=1))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--size", choices=sorted(SIZES), default="tiny")
    args = ap.parse_args(argv)
    path = build_model(args.out, args.size)
    print(f"{path} ({num_params(SIZES[args.size]) / 1e6:.1f} M parameters)")


if __name__ == "__main__":
    main()
