"""LoRA adapters served on a deployment's base model: each is its own model name at the gateway.

deployments:
  - name: chat
    model: meta-llama/Llama-3.1-8B-Instruct
    adapters:
      - {name: sql, path: /models/lora/sql, rank: 16}                 # loaded at start-up
      - {name: support, path: /models/lora/support, rank: 8, preload: false}  # loaded on first request

`preload: true` puts the adapter on the engine's command line (vLLM `--lora-modules`, SGLang `--lora-paths`),
so every replica loads it at start-up. `preload: false` leaves it to the gateway, which asks the replica it
routes the first request to to load it (vLLM `/v1/load_lora_adapter`, SGLang `/load_lora_adapter`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator

# vLLM's --max-lora-rank choices (its 0.33.0 parser); an adapter's rank must fit under the largest.
VLLM_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
# No ':' (SGLang's OpenAI API names an adapter as "base:adapter"), no '=' or ',' (vLLM and SGLang read
# NAME=PATH on their command lines), no '/' (a name with one reads as a Hugging Face repo id).
_ADAPTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class Adapter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    # A directory on the replica's host holding adapter_config.json and the weights, or a repo id.
    path: str = Field(min_length=1)
    rank: int = Field(ge=1, le=VLLM_RANKS[-1])  # LoRA r, from the adapter's adapter_config.json
    preload: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _ADAPTER_NAME.match(value):
            raise ValueError(
                f"{value!r}: use letters, digits, '.', '_' and '-' (at most 64; no ':', '/', '=' or ',')"
            )
        return value

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if "\x00" in value or value != value.strip():
            raise ValueError(f"{value!r} is not a usable path (NUL byte or surrounding spaces)")
        return value


def duplicate_adapter(adapters: Sequence[Adapter]) -> str | None:
    """The first adapter name given twice in one deployment, or None."""
    seen: set[str] = set()
    for adapter in adapters:
        if adapter.name in seen:
            return adapter.name
        seen.add(adapter.name)
    return None


def adapter_name_clash(
    deployments: Sequence[tuple[str, Sequence[Adapter]]],
) -> tuple[int, int, str] | None:
    """Model names are one namespace at the gateway: (deployment index, adapter index, problem) for the first
    adapter named like a deployment or like another deployment's adapter, or None."""
    owners: dict[str, str] = {name: f"deployment {name!r}" for name, _ in deployments}
    for d, (dep, adapters) in enumerate(deployments):
        for a, adapter in enumerate(adapters):
            owner = owners.get(adapter.name)
            if owner is not None:
                return d, a, f"adapter name {adapter.name!r} is already the model name of {owner}"
            owners[adapter.name] = f"an adapter of {dep!r}"
    return None
