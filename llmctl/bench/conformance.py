"""Conformance of an emulated engine to the real one, as a client or a Prometheus scraper sees them.

The same requests (`probes`) go to a reference (a real vLLM) and a candidate (the emulator); each answer is
reduced to its structure (status codes, JSON keys and value types, SSE framing, metric families, label names
and bucket bounds), never to content or timings, which legitimately differ. The comparison is pure
(observations in, rows out: conformance_observe.py, then `compare`); only `collect` and `watch_startup` talk
HTTP.

A difference that is known and accepted is listed in DELIBERATE with its reason, so a table stays a list of
decisions rather than of surprises; everything else that differs is a "differs" row.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

import httpx

from llmctl.bench.conformance_observe import MAX_TOKENS, Context, Exchange, Json, observe, pair

Verdict = Literal["same", "differs", "deliberate"]


# Endpoints of vLLM 0.32 the emulator does not serve, grouped by why.
NOT_EMULATED: dict[str, tuple[str, ...]] = {
    "the emulator has no tokenizer: token ids it made up would mislead a client more than a 404 does": (
        "POST /tokenize",
        "POST /detokenize",
    ),
    "API surfaces beyond OpenAI completions and chat, which llmctl neither routes nor benchmarks": (
        "POST /v1/responses",
        "GET /v1/responses/{response_id}",
        "POST /v1/responses/{response_id}/cancel",
        "POST /v1/messages",
        "POST /v1/messages/count_tokens",
        "POST /v1/chat/completions/batch",
        "POST /generative_scoring",
        "POST /v1/systemone",
    ),
    "elastic expert parallelism and KV-event publishing belong to multi-node engines the emulator does not "
    "model": ("POST /scale_elastic_ep", "POST /is_scaling_elastic_ep", "GET /kv_event_sources"),
}

# Accepted differences, check name -> why. A check listed here that turns out the same is reported by
# `stale_deliberate`, so the list cannot outlive the difference it excuses.
DELIBERATE: dict[str, str] = {
    "version.value": "the emulator reports the vLLM version llmctl pins (PINNED_VERSIONS), whichever vLLM "
    "is installed as the reference",
    **{f"openapi.path {path}": why for why, paths in NOT_EMULATED.items() for path in paths},
}


@dataclass(frozen=True)
class Probe:
    method: str
    path: str
    json: Json = None
    raw: str | None = None  # sent verbatim instead of `json` (malformed bodies)
    content_type: str = "application/json"
    observe: str = "error"  # which observer reads the answer (OBSERVERS)


@dataclass(frozen=True)
class Row:
    check: str
    reference: Json
    candidate: Json
    verdict: Verdict
    reason: str = ""

    @property
    def label(self) -> str:
        return f"deliberate({self.reason})" if self.verdict == "deliberate" else self.verdict


def probes(model: str, max_model_len: int) -> dict[str, Probe]:
    """The requests both engines get, in order (/metrics last, after the traffic that fills it)."""
    prompt = "Hello, my name is"
    messages: list[Json] = [{"role": "user", "content": "Hello there"}]
    done: dict[str, Json] = {"max_tokens": MAX_TOKENS, "ignore_eos": True}
    stream: dict[str, Json] = {"stream": True, "stream_options": {"include_usage": True}}
    cmpl, chat = "/v1/completions", "/v1/chat/completions"
    near_full: list[Json] = [7] * (max_model_len - 10)
    return {
        "health": Probe("GET", "/health", observe="status"),
        "ping": Probe("GET", "/ping", observe="status"),
        "ping.post": Probe("POST", "/ping", observe="status"),
        "version": Probe("GET", "/version", observe="version"),
        "load": Probe("GET", "/load", observe="keys"),
        "openapi": Probe("GET", "/openapi.json", observe="openapi"),
        "models": Probe("GET", "/v1/models", observe="models"),
        "completion": Probe("POST", cmpl, {"model": model, "prompt": prompt, **done}, observe="whole"),
        "chat": Probe("POST", chat, {"model": model, "messages": messages, **done}, observe="whole"),
        "completion.stream": Probe(
            "POST", cmpl, {"model": model, "prompt": prompt, **done, **stream}, observe="stream"
        ),
        "chat.stream": Probe(
            "POST", chat, {"model": model, "messages": messages, **done, **stream}, observe="stream"
        ),
        "completion.stream_continuous_usage": Probe(
            "POST",
            cmpl,
            {
                "model": model,
                "prompt": prompt,
                **done,
                "stream": True,
                "stream_options": {"include_usage": True, "continuous_usage_stats": True},
            },
            observe="stream",
        ),
        # Without include_usage the stream ends on its finish chunk.
        "chat.stream_no_usage": Probe(
            "POST", chat, {"model": model, "messages": messages, **done, "stream": True}, observe="stream"
        ),
        # vLLM serves its one model when a request names none.
        "completion.model_omitted": Probe("POST", cmpl, {"prompt": prompt, **done}, observe="whole"),
        # A max_tokens past the context is cut to what fits, not refused.
        "completion.clamped": Probe(
            "POST",
            cmpl,
            {"model": model, "prompt": near_full, "max_tokens": 100, "ignore_eos": True},
            observe="fills_context",
        ),
        # Without max_tokens a chat answer may run to the end of the context.
        "chat.default_max_tokens": Probe(
            "POST", chat, {"model": model, "messages": messages, "ignore_eos": True}, observe="fills_context"
        ),
        # A charset parameter is still JSON; a body with no content type is refused.
        "completion.json_charset": Probe(
            "POST",
            cmpl,
            raw=json.dumps({"model": model, "prompt": prompt, **done}),
            content_type="application/json; charset=utf-8",
            observe="status",
        ),
        "error.no_content_type": Probe(
            "POST",
            cmpl,
            raw=json.dumps({"model": model, "prompt": prompt, **done}),
            content_type="",
            observe="error",
        ),
        "error.unknown_model": Probe("POST", cmpl, {"model": "no-such-model", "prompt": prompt}),
        "error.chat_unknown_model": Probe("POST", chat, {"model": "no-such-model", "messages": messages}),
        "error.max_tokens_negative": Probe(
            "POST", cmpl, {"model": model, "prompt": prompt, "max_tokens": -1}
        ),
        "error.chat_max_tokens_negative": Probe(
            "POST", chat, {"model": model, "messages": messages, "max_tokens": -1}
        ),
        "error.max_tokens_not_int": Probe(
            "POST", cmpl, {"model": model, "prompt": prompt, "max_tokens": "many"}
        ),
        "error.max_tokens_over_context": Probe(
            "POST", cmpl, {"model": model, "prompt": prompt, "max_tokens": max_model_len + 1000}
        ),
        "error.prompt_too_long": Probe(
            "POST", cmpl, {"model": model, "prompt": [7] * (max_model_len + 10), "max_tokens": 2}
        ),
        "error.prompt_fills_context": Probe(
            "POST", cmpl, {"model": model, "prompt": [7] * max_model_len, "max_tokens": 2}
        ),
        "error.malformed_json": Probe("POST", cmpl, raw="{not json"),
        "error.body_not_object": Probe("POST", cmpl, raw="[1, 2]"),
        "error.missing_prompt": Probe("POST", cmpl, {"model": model}),
        "error.missing_messages": Probe("POST", chat, {"model": model}),
        "error.empty_messages": Probe("POST", chat, {"model": model, "messages": []}),
        "error.not_json_content_type": Probe(
            "POST", cmpl, raw=json.dumps({"model": model, "prompt": prompt}), content_type="text/plain"
        ),
        "error.unknown_path": Probe("GET", "/v1/no-such-endpoint"),
        "error.wrong_method": Probe("POST", "/v1/models"),
        # Started without --enable-sleep-mode, neither engine serves sleep/wake.
        "error.sleep_disabled": Probe("POST", "/sleep"),
        "error.is_sleeping_disabled": Probe("GET", "/is_sleeping"),
        "metrics": Probe("GET", "/metrics", observe="metrics"),
    }


def compare(
    reference: Mapping[str, Json], candidate: Mapping[str, Json], deliberate: Mapping[str, str] = DELIBERATE
) -> list[Row]:
    """One row per check either side observed, in the reference's order."""
    ref, cand = pair(dict(reference), dict(candidate))
    rows: list[Row] = []
    for check in [*ref, *(c for c in cand if c not in ref)]:
        r, c = ref.get(check, "(not observed)"), cand.get(check, "(not observed)")
        if r == c:
            rows.append(Row(check, r, c, "same"))
        elif check in deliberate:
            rows.append(Row(check, r, c, "deliberate", deliberate[check]))
        else:
            rows.append(Row(check, r, c, "differs"))
    return rows


def stale_deliberate(rows: Iterable[Row], deliberate: Mapping[str, str] = DELIBERATE) -> list[str]:
    """Deliberate differences that no longer differ (or were not checked): entries to delete."""
    differing = {r.check for r in rows if r.verdict == "deliberate"}
    return sorted(set(deliberate) - differing)


# ---- HTTP ----------------------------------------------------------------------------------------------


def send(client: httpx.Client, base_url: str, probe: Probe) -> Exchange:
    content = probe.raw.encode() if probe.raw is not None else None
    body = json.dumps(probe.json).encode() if probe.json is not None and content is None else content
    headers = {"Content-Type": probe.content_type} if body is not None and probe.content_type else {}
    try:
        response = client.request(probe.method, base_url + probe.path, content=body, headers=headers)
    except httpx.ConnectError:
        return Exchange(None)
    return Exchange(response.status_code, response.headers.get("content-type", ""), response.text)


def collect(base_url: str, plan: Mapping[str, Probe], timeout_s: float = 120.0) -> dict[str, Exchange]:
    """Send the probes one after another (the engines see the same sequence, so /metrics, last, reflects
    the same traffic)."""
    with httpx.Client(timeout=timeout_s) as client:
        return {name: send(client, base_url.rstrip("/"), probe) for name, probe in plan.items()}


def served_max_model_len(base_url: str, model: str) -> int:
    data = httpx.get(base_url.rstrip("/") + "/v1/models", timeout=30).json()["data"]
    return int(next(m for m in data if m["id"] == model)["max_model_len"])


def watch_startup(base_url: str, alive: Callable[[], bool], timeout_s: float = 300.0) -> str:
    """What /health answers from process start until ready, as the distinct states in order, e.g.
    `refused -> 200`: a readiness probe polling a starting engine sees exactly this sequence."""
    states: list[str] = []
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=5) as client:
        while True:
            try:
                state = str(client.get(base_url.rstrip("/") + "/health").status_code)
            except httpx.ConnectError:
                state = "refused"
            except httpx.HTTPError as exc:
                state = type(exc).__name__
            if not states or states[-1] != state:
                states.append(state)
            if state == "200":
                break
            if not alive():
                states.append("exited")
                break
            if time.monotonic() > deadline:
                states.append("timeout")
                break
            time.sleep(0.1)
    return " -> ".join(states)


def run(
    reference_url: str, candidate_url: str, model: str, startup: tuple[str, str] | None = None
) -> list[Row]:
    """Probe both engines (already ready) and compare; `startup` is what watch_startup saw of each."""
    ctx = Context(model, served_max_model_len(reference_url, model))
    plan = probes(model, ctx.max_model_len)
    observers = {name: probe.observe for name, probe in plan.items()}
    ref = observe(collect(reference_url, plan), observers, ctx, startup[0] if startup else None)
    cand = observe(collect(candidate_url, plan), observers, ctx, startup[1] if startup else None)
    return compare(ref, cand)
