"""Conformance of the emulated vLLM's LoRA serving to the real one: both started with --enable-lora, one
adapter on the command line (--lora-modules) and VLLM_ALLOW_RUNTIME_LORA_UPDATING=1; the same requests load
a second adapter at run time, use both, refuse the usual mistakes and unload it. Answers are reduced to their
structure as in llmctl.bench.conformance (which this reuses), except the load and unload answers, whose
text is vLLM's fixed sentence and is compared whole."""

from __future__ import annotations

import json
from collections.abc import Mapping

from llmctl.bench.conformance import Probe, Row, collect, compare
from llmctl.bench.conformance_observe import (
    MAX_TOKENS,
    OBSERVERS,
    Context,
    Exchange,
    Json,
    obj,
    observe_metrics,
    shape,
    status_of,
)

# Accepted differences, check name -> why (as llmctl.bench.conformance.DELIBERATE).
_BARE = (
    "vLLM answers a load or unload with a bare Response, no Content-Type; aiohttp always sends one "
    "(application/octet-stream); the body, vLLM's sentence, is compared whole"
)
LORA_DELIBERATE = {"lora.load.content_type": _BARE, "lora.unload.content_type": _BARE}

STATIC = "sql"  # the adapter on the command line
RUNTIME = "legal"  # the adapter loaded by /v1/load_lora_adapter


def lora_probes(model: str, runtime_path: str) -> dict[str, Probe]:
    """In order: the loaded state before, the load and its refusals, use, unload, and /metrics last."""
    prompt, done = "Hello, my name is", {"max_tokens": MAX_TOKENS, "ignore_eos": True}
    messages: list[Json] = [{"role": "user", "content": "Hello there"}]
    load, unload = "/v1/load_lora_adapter", "/v1/unload_lora_adapter"
    cmpl, chat = "/v1/completions", "/v1/chat/completions"
    return {
        "lora.models": Probe("GET", "/v1/models", observe="adapter_cards"),
        "lora.completion": Probe("POST", cmpl, {"model": STATIC, "prompt": prompt, **done}, observe="whole"),
        "lora.error.not_loaded": Probe("POST", cmpl, {"model": RUNTIME, "prompt": prompt}),
        "lora.load": Probe("POST", load, {"lora_name": RUNTIME, "lora_path": runtime_path}, observe="text"),
        "lora.error.load_again": Probe("POST", load, {"lora_name": RUNTIME, "lora_path": runtime_path}),
        "lora.error.load_base_name": Probe("POST", load, {"lora_name": model, "lora_path": runtime_path}),
        "lora.error.load_missing_path": Probe(
            "POST", load, {"lora_name": "x", "lora_path": "/no/such/adapter"}
        ),
        "lora.error.load_no_path": Probe("POST", load, {"lora_name": "x"}),
        "lora.models_after_load": Probe("GET", "/v1/models", observe="adapter_cards"),
        "lora.chat": Probe("POST", chat, {"model": RUNTIME, "messages": messages, **done}, observe="whole"),
        "lora.unload": Probe("POST", unload, {"lora_name": RUNTIME}, observe="text"),
        "lora.error.unload_again": Probe("POST", unload, {"lora_name": RUNTIME}),
        "lora.models_after_unload": Probe("GET", "/v1/models", observe="adapter_cards"),
        "lora.metrics": Probe("GET", "/metrics", observe="lora_metrics"),
    }


def observe_text(name: str, ex: Exchange, ctx: Context) -> dict[str, Json]:
    return {f"{name}.status": status_of(ex), f"{name}.content_type": ex.content_type, f"{name}.body": ex.body}


def observe_adapter_cards(name: str, ex: Exchange, ctx: Context) -> dict[str, Json]:
    """Each adapter's card: its keys, and its id, parent and root (the path it was loaded from)."""
    try:
        data = obj(json.loads(ex.body)).get("data")
    except ValueError:
        data = None
    cards = [obj(m) for m in data if obj(m).get("parent") is not None] if isinstance(data, list) else []
    out: dict[str, Json] = {f"{name}.status": status_of(ex), f"{name}.ids": [str(c.get("id")) for c in cards]}
    for card in cards:
        key = f"{name}.card {card.get('id')}"
        out[f"{key}.keys"] = shape(card)
        out[f"{key}.parent_is_served_name"] = card.get("parent") == ctx.model
        out[f"{key}.max_model_len"] = str(card.get("max_model_len"))
    return out


def observe_lora_metrics(name: str, ex: Exchange, ctx: Context) -> dict[str, Json]:
    return {k: v for k, v in observe_metrics(ex.body).items() if "lora" in k}


LORA_OBSERVERS = {
    **OBSERVERS,
    "text": observe_text,
    "adapter_cards": observe_adapter_cards,
    "lora_metrics": observe_lora_metrics,
}


def observe_lora(answers: Mapping[str, Exchange], plan: Mapping[str, Probe], ctx: Context) -> dict[str, Json]:
    out: dict[str, Json] = {}
    for name, probe in plan.items():
        out.update(LORA_OBSERVERS[probe.observe](name, answers[name], ctx))
    return out


def run_lora(
    reference_url: str, candidate_url: str, model: str, max_model_len: int, paths: tuple[str, str]
) -> list[Row]:
    """Probe both (each started with the STATIC adapter; `paths`: the RUNTIME adapter's directory as each
    engine sees it) and compare."""
    ctx = Context(model, max_model_len)
    sides = []
    for url, path in zip((reference_url, candidate_url), paths, strict=True):
        plan = lora_probes(model, path)
        sides.append(observe_lora(collect(url, plan), plan, ctx))
    return compare(sides[0], sides[1], LORA_DELIBERATE)
