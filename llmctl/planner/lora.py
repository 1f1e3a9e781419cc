"""LoRA adapters on a replica: how many stay resident, the rank bound, the engine flags and environment, and
what the adapters cost in memory. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from llmctl.catalog.gpus import GiB
from llmctl.catalog.models import Model
from llmctl.config.adapters import VLLM_RANKS, Adapter
from llmctl.config.playbook import Deployment
from llmctl.engines import sglang, vllm
from llmctl.planner.types import Decision

# Adapters resident on the GPU at once (vLLM --max-loras, SGLang --max-loras-per-batch): every adapter up to
# SGLang's default of 8. vLLM reserves max-loras x max-lora-rank slots of every LoRA-able layer, so beyond
# a handful the reservation, not the adapters, costs KV cache; more adapters are swapped in LRU order.
MAX_RESIDENT = 8
_BF16 = 2.0  # adapters are served in the base model's dtype


@dataclass(frozen=True)
class LoraPlan:
    max_loras: int
    max_rank: int
    preload: tuple[Adapter, ...]  # on the command line: loaded by every replica at start-up
    runtime: tuple[Adapter, ...]  # loaded by the gateway on the replica that first serves one


def lora_plan(dep: Deployment) -> LoraPlan | None:
    if not dep.adapters:
        return None
    top = max(a.rank for a in dep.adapters)
    rank = next(r for r in VLLM_RANKS if r >= top)  # vLLM takes only its listed ranks
    return LoraPlan(
        max_loras=min(len(dep.adapters), MAX_RESIDENT),
        max_rank=rank,
        preload=tuple(a for a in dep.adapters if a.preload),
        runtime=tuple(a for a in dep.adapters if not a.preload),
    )


def lora_args(dep: Deployment, flavour: str) -> list[str]:
    """The engine flags for the deployment's adapters (none without any)."""
    plan = lora_plan(dep)
    if plan is None:
        return []
    preload = [(a.name, a.path) for a in plan.preload]
    build = vllm.lora_args if flavour == "vllm" else sglang.lora_args
    return build(preload, base=dep.name, max_loras=plan.max_loras, max_rank=plan.max_rank)


def lora_env(dep: Deployment, flavour: str) -> dict[str, str]:
    plan = lora_plan(dep)
    if plan is None:
        return {}
    env = vllm.lora_env if flavour == "vllm" else sglang.lora_env
    return env(bool(plan.runtime))


def adapter_bytes(model: Model, rank: int, dtype_bytes: float = _BF16) -> float:
    """One adapter's weights on every linear layer of every block: A (in x r) and B (r x out) for q, k, v, o,
    gate, up and down, so r x (in + out) values each."""
    h, kv = model.hidden_size, model.num_kv_heads * model.head_dim
    q = model.num_attention_heads * model.head_dim
    per_rank = (
        (h + q) + 2 * (h + kv) + (q + h) + 2 * (h + model.intermediate_size) + (model.intermediate_size + h)
    )
    return rank * per_rank * model.num_layers * dtype_bytes


def lora_decision(dep: Deployment, model: Model, tp: int) -> Decision | None:
    plan = lora_plan(dep)
    if plan is None:
        return None
    slots = plan.max_loras * adapter_bytes(model, plan.max_rank) / tp
    later = f", {len(plan.runtime)} loaded on first request" if plan.runtime else ""
    return Decision(
        "LoRA adapters",
        f"{len(dep.adapters)} ({len(plan.preload)} at start-up{later}); {plan.max_loras} resident, rank <= "
        f"{plan.max_rank}",
        f"{plan.max_loras} slots at rank {plan.max_rank} take {slots / GiB:.2f} GiB per GPU, next to the KV "
        f"cache; adapters beyond {plan.max_loras} are swapped in least-recently-used order",
    )
