"""Build a small random LoRA adapter for a local Llama-shaped checkpoint, in PEFT's on-disk layout (what vLLM
and SGLang read): adapter_config.json and adapter_model.safetensors with lora_A (r x in) and lora_B
(out x r) for q_proj and v_proj of every layer. No hub access and no peft: written directly.

    python -m llmctl.testing.tiny_adapter BASE_MODEL_DIR OUT_DIR [--rank 8]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from llmctl.testing.tiny_model import _bf16, write_safetensors

TARGETS = ("q_proj", "v_proj")


def build_adapter(base: Path, out: Path, rank: int = 8, seed: int = 0) -> Path:
    cfg = json.loads((base / "config.json").read_text())
    hidden, layers = int(cfg["hidden_size"]), int(cfg["num_hidden_layers"])
    head_dim = int(cfg.get("head_dim") or hidden // int(cfg["num_attention_heads"]))
    outs = {
        "q_proj": int(cfg["num_attention_heads"]) * head_dim,
        "v_proj": int(cfg["num_key_value_heads"]) * head_dim,
    }
    rng = np.random.default_rng(seed)
    tensors: dict[str, tuple[tuple[int, ...], bytes]] = {}
    for i in range(layers):
        for module in TARGETS:
            prefix = f"base_model.model.model.layers.{i}.self_attn.{module}"
            a = rng.standard_normal((rank, hidden), dtype=np.float32) * 0.02
            b = rng.standard_normal((outs[module], rank), dtype=np.float32) * 0.02
            tensors[f"{prefix}.lora_A.weight"] = ((rank, hidden), _bf16(a))
            tensors[f"{prefix}.lora_B.weight"] = ((outs[module], rank), _bf16(b))
    out.mkdir(parents=True, exist_ok=True)
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": str(base),
        "r": rank,
        "lora_alpha": 2 * rank,
        "lora_dropout": 0.0,
        "target_modules": list(TARGETS),
        "bias": "none",
        "fan_in_fan_out": False,
    }
    (out / "adapter_config.json").write_text(json.dumps(config, indent=1))
    write_safetensors(out / "adapter_model.safetensors", tensors)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("base", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--rank", type=int, default=8)
    args = parser.parse_args(argv)
    print(build_adapter(args.base, args.out, args.rank))


if __name__ == "__main__":
    main()
