"""What an OpenAI-compatible engine's answers look like, for llmctl.bench.conformance: JSON keys and
value types, the framing of a server-sent event stream, and of a Prometheus exposition the metric families,
types, label names, bucket bounds and enumerated label values. Never the values themselves: text, counts
and latencies legitimately differ between a real engine and an emulated one. Pure."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

Json = str | int | float | bool | None | list["Json"] | dict[str, "Json"]

MAX_TOKENS = 5  # what the probes ask for: small, so they cost a CPU engine little


def type_name(value: object) -> str:
    names = {type(None): "null", bool: "bool", int: "int", float: "float", str: "str", list: "list"}
    return names.get(type(value), "object")


def strings(values: Iterable[str]) -> list[Json]:
    """Sorted, as a JSON list (a list[str] is not a list[Json] to mypy: lists are invariant)."""
    return [v for v in sorted(values)]


def shape(value: object) -> Json:
    """A JSON object's keys with their value types (sorted); any other value's type."""
    if isinstance(value, dict):
        return {k: type_name(v) for k, v in sorted(value.items())}
    return type_name(value)


def id_shape(value: object) -> str:
    """`cmpl-9d60abb87965e599` -> `cmpl-<hex16>`: the prefix and the kind of suffix, not the id itself."""
    if not isinstance(value, str) or "-" not in value:
        return f"<{type_name(value)}>"
    prefix, _, rest = value.partition("-")
    kind = "hex" if re.fullmatch(r"[0-9a-f]+", rest) else "other"  # a counter (digits) reads as hex too
    return f"{prefix}-<{kind}{len(rest)}>"


def obj(value: object) -> dict[str, object]:
    return value if isinstance(value, dict) else {}


def first_choice(body: dict[str, object]) -> dict[str, object]:
    choices = body.get("choices")
    return obj(choices[0]) if isinstance(choices, list) and choices else {}


# ---- server-sent events ------------------------------------------------------------------------------


def parse_sse(body: str) -> tuple[list[object], str]:
    """(the JSON payloads, then "[DONE]" if it came; the framing verdict: "ok" or the first violation)."""
    if not body.endswith("\n\n"):
        return [], "does not end with a blank line"
    events = body[:-2].split("\n\n")
    payloads: list[object] = []
    for i, event in enumerate(events):
        if not event.startswith("data: ") or "\n" in event:
            return payloads, f"event {i} is not one `data: ` line: {event[:40]!r}"
        data = event[len("data: ") :]
        if data == "[DONE]":
            if i != len(events) - 1:
                return payloads, f"[DONE] is event {i} of {len(events)}"
            payloads.append("[DONE]")
            continue
        try:
            payloads.append(json.loads(data))
        except ValueError:
            return payloads, f"event {i} is not JSON"
    if payloads[-1:] != ["[DONE]"]:
        return payloads, "no data: [DONE] at the end"
    return payloads, "ok"


def chunk_kind(chunk: dict[str, object]) -> str:
    choices = chunk.get("choices")
    if not isinstance(choices, list) or not choices:
        return "usage" if "usage" in chunk else "empty"
    choice = obj(choices[0])
    delta = obj(choice.get("delta"))
    # A role chunk with no text is vLLM's: the role goes first, on its own; the tokens follow.
    kind = ("role+token" if delta.get("content") else "role") if "role" in delta else "token"
    reason = choice.get("finish_reason")
    return f"{kind}+finish={reason}" if reason is not None else kind


def compress(kinds: Iterable[str]) -> list[str]:
    """Runs of one kind as `kind*`: how many tokens a chunk carries is not the structure."""
    out: list[str] = []
    for kind in kinds:
        if out and out[-1].rstrip("*") == kind:
            out[-1] = kind + "*"
        else:
            out.append(kind)
    return out


# ---- Prometheus exposition ---------------------------------------------------------------------------

# Labels whose values are the deployment (model_name, engine index) or a histogram's/summary's own.
NOT_ENUMERATIONS = frozenset({"model_name", "engine", "le", "quantile"})
# Families whose label values are the traffic (http_*), the configuration (vllm:cache_config_info) or the
# interpreter (python_info): their label names are structure, their values are not.
VALUES_NOT_COMPARED = ("http_", "vllm:cache_config_info", "python_info")


@dataclass
class Family:
    type: str
    labels: set[str] = field(default_factory=set)
    buckets: list[str] = field(default_factory=list)  # `le` bounds, in order, +Inf last
    values: dict[str, set[str]] = field(default_factory=dict)  # enumerated label -> the values seen


def families(text: str) -> tuple[dict[str, Family], bool]:
    """The families of an exposition, and whether it carries prometheus_client's `_created` series (folded
    into their parents: a `foo_created` gauge is an artefact of `foo`, not a metric of its own)."""
    out: dict[str, Family] = {}
    created = False
    parsed = list(text_string_to_metric_families(text))
    names = {f.name for f in parsed}
    for fam in parsed:
        if (
            fam.name.endswith("_created")
            and fam.type == "gauge"
            and fam.name.removesuffix("_created") in names
        ):
            created = True
            continue
        entry = out.setdefault(fam.name, Family(fam.type))
        for sample in fam.samples:
            entry.labels.update(k for k in sample.labels if k not in ("le", "quantile"))
            if "le" in sample.labels and sample.labels["le"] not in entry.buckets:
                entry.buckets.append(sample.labels["le"])
            for k, v in sample.labels.items():
                if k not in NOT_ENUMERATIONS:
                    entry.values.setdefault(k, set()).add(v)
    return out, created


def observe_metrics(text: str) -> dict[str, Json]:
    """One check per family (`metrics.family NAME`: its type), and for each family its label names,
    histogram bounds and enumerated label values; the comparison pairs them by name."""
    fams, created = families(text)
    out: dict[str, Json] = {"metrics.created_series": created}
    for name in sorted(fams):
        fam = fams[name]
        out[f"metrics.family {name}"] = fam.type
        out[f"metrics.labels {name}"] = strings(fam.labels)
        if fam.type == "histogram":
            out[f"metrics.buckets {name}"] = [b for b in fam.buckets]  # in order, not sorted
        if not name.startswith(VALUES_NOT_COMPARED):
            for label in sorted(fam.values):
                out[f"metrics.values {name} {label}"] = strings(fam.values[label])
    return out


# Checks that say a thing exists (a metric family, an endpoint): missing on one side, they read "absent".
PRESENCE = ("metrics.family ", "openapi.path ")


def pair(ref: dict[str, Json], cand: dict[str, Json]) -> tuple[dict[str, Json], dict[str, Json]]:
    """Both sides with a thing missing on one marked `absent` there; and for a metric family missing on
    either side, its labels, bounds and values dropped on both (the family row already says it is missing;
    three more rows would say it again)."""
    absent = "absent"
    ref, cand = dict(ref), dict(cand)
    for mine, other in ((ref, cand), (cand, ref)):
        for check in [c for c in other if c.startswith(PRESENCE) and c not in mine]:
            mine[check] = absent
    gone = {
        c.removeprefix("metrics.family ")
        for c in ref
        if c.startswith("metrics.family ") and absent in (ref[c], cand[c])
    }
    for side in (ref, cand):
        for check in list(side):
            parts = check.split(" ")
            if (
                len(parts) > 1
                and parts[0].startswith("metrics.")
                and parts[0] != "metrics.family"
                and parts[1] in gone
            ):
                del side[check]
    return ref, cand


# ---- one answer -> {check name: structure} ------------------------------------------------------------


@dataclass(frozen=True)
class Exchange:
    """One HTTP exchange as a client saw it; status None when the connection was refused."""

    status: int | None
    content_type: str = ""
    body: str = ""


@dataclass(frozen=True)
class Context:
    model: str  # the served model name both engines were started with
    max_model_len: int


def status_of(ex: Exchange) -> Json:
    return "refused" if ex.status is None else ex.status


def _json(ex: Exchange) -> object:
    try:
        return json.loads(ex.body)
    except ValueError:
        return None


def observe_status(name: str, ex: Exchange, ctx: Context) -> dict[str, Json]:
    return {f"{name}.status": status_of(ex)}


def observe_version(name: str, ex: Exchange, ctx: Context) -> dict[str, Json]:
    body = obj(_json(ex))
    return {
        f"{name}.status": status_of(ex),
        f"{name}.keys": shape(body),
        f"{name}.value": str(body.get("version")),
    }


def observe_keys(name: str, ex: Exchange, ctx: Context) -> dict[str, Json]:
    return {f"{name}.status": status_of(ex), f"{name}.keys": shape(_json(ex))}


def observe_openapi(name: str, ex: Exchange, ctx: Context) -> dict[str, Json]:
    """One check per endpoint the schema lists (`openapi.path POST /v1/completions`), as clients that
    discover endpoints from it see them."""
    paths = obj(obj(_json(ex)).get("paths"))
    out: dict[str, Json] = {f"{name}.status": status_of(ex)}
    for path, methods in sorted(paths.items()):
        for method in sorted(obj(methods)):
            out[f"{name}.path {method.upper()} {path}"] = "served"
    return out


def observe_models(name: str, ex: Exchange, ctx: Context) -> dict[str, Json]:
    body = obj(_json(ex))
    data = body.get("data")
    first = obj(data[0]) if isinstance(data, list) and data else {}
    permission = first.get("permission")
    return {
        f"{name}.status": status_of(ex),
        f"{name}.keys": shape(body),
        f"{name}.model_keys": shape(first),
        f"{name}.permission_keys": shape(permission[0])
        if isinstance(permission, list) and permission
        else None,
        f"{name}.objects": [str(body.get("object")), str(first.get("object"))],
        f"{name}.owned_by": str(first.get("owned_by")),
        f"{name}.id_is_served_name": first.get("id") == ctx.model,
        f"{name}.max_model_len": str(first.get("max_model_len")),
    }


def observe_whole(name: str, ex: Exchange, ctx: Context) -> dict[str, Json]:
    body = obj(_json(ex))
    choice = first_choice(body)
    usage = obj(body.get("usage"))
    out: dict[str, Json] = {
        f"{name}.status": status_of(ex),
        f"{name}.content_type": ex.content_type,
        f"{name}.keys": shape(body),
        f"{name}.choice_keys": shape(choice),
        f"{name}.usage_keys": shape(usage),
        f"{name}.object": str(body.get("object")),
        f"{name}.id": id_shape(body.get("id")),
        f"{name}.finish_reason": str(choice.get("finish_reason")),
        f"{name}.completion_tokens_is_max_tokens": usage.get("completion_tokens") == MAX_TOKENS,
        f"{name}.total_is_sum": usage.get("total_tokens")
        == _int(usage.get("prompt_tokens")) + _int(usage.get("completion_tokens")),
    }
    if "message" in choice:
        out[f"{name}.message_keys"] = shape(choice["message"])
    return out


def observe_fills_context(name: str, ex: Exchange, ctx: Context) -> dict[str, Json]:
    body = obj(_json(ex))
    usage = obj(body.get("usage"))
    total = _int(usage.get("prompt_tokens")) + _int(usage.get("completion_tokens"))
    return {
        f"{name}.status": status_of(ex),
        f"{name}.finish_reason": str(first_choice(body).get("finish_reason")),
        f"{name}.prompt_plus_completion_is_max_model_len": total == ctx.max_model_len,
    }


def observe_error(name: str, ex: Exchange, ctx: Context) -> dict[str, Json]:
    """Status and the error body: every field's value except the message (wording may differ), whose type
    is shown instead."""

    def reduce(value: object) -> Json:
        if isinstance(value, dict):
            return {k: type_name(v) if k == "message" else reduce(v) for k, v in sorted(value.items())}
        return value if isinstance(value, str | int | float | bool) or value is None else type_name(value)

    body = _json(ex)
    return {name: {"status": status_of(ex), "body": reduce(body) if body is not None else "not JSON"}}


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0


def observe_stream(name: str, ex: Exchange, ctx: Context) -> dict[str, Json]:
    payloads, framing = parse_sse(ex.body)
    chunks = [obj(p) for p in payloads if p != "[DONE]"]
    keys: dict[str, Json] = {}
    for chunk in chunks:
        # The first chunk of each kind (role, token, token+finish, usage) speaks for the others.
        kind = re.sub(r"=.*", "", chunk_kind(chunk))
        choice = first_choice(chunk)
        parts: dict[str, Json] = {"chunk": shape(chunk), "choice": shape(choice)}
        if "delta" in choice:
            parts["delta"] = shape(choice["delta"])
        keys.setdefault(kind, parts)
    usage_chunks = [obj(c.get("usage")) for c in chunks if chunk_kind(c) == "usage"]
    usage = usage_chunks[-1] if usage_chunks else {}
    done: list[Json] = ["[DONE]"] if payloads[-1:] == ["[DONE]"] else []
    return {
        f"{name}.status": status_of(ex),
        f"{name}.content_type": ex.content_type,
        f"{name}.framing": framing,
        f"{name}.sequence": [*compress(chunk_kind(c) for c in chunks), *done],
        f"{name}.chunk_keys": keys,
        f"{name}.object": strings({str(c.get("object")) for c in chunks}),
        f"{name}.id": strings({id_shape(c.get("id")) for c in chunks}),
        f"{name}.one_id": len({str(c.get("id")) for c in chunks}) == 1,
        f"{name}.usage_keys": shape(usage),
        f"{name}.completion_tokens_is_max_tokens": usage.get("completion_tokens") == MAX_TOKENS,
    }


Observer = Callable[[str, Exchange, Context], dict[str, Json]]
OBSERVERS: dict[str, Observer] = {
    "status": observe_status,
    "version": observe_version,
    "models": observe_models,
    "keys": observe_keys,
    "openapi": observe_openapi,
    "whole": observe_whole,
    "fills_context": observe_fills_context,
    "stream": observe_stream,
    "error": observe_error,
    "metrics": lambda name, ex, ctx: {"metrics.status": status_of(ex), **observe_metrics(ex.body)},
}


def observe(
    answers: Mapping[str, Exchange], observers: Mapping[str, str], ctx: Context, startup: str | None = None
) -> dict[str, Json]:
    """Every check's observation for one engine: what its answers look like, each read by the observer
    its probe names (probe name -> OBSERVERS key)."""
    out: dict[str, Json] = {}
    if startup is not None:
        out["health.startup"] = startup
    for name, observer in observers.items():
        if name in answers:
            out.update(OBSERVERS[observer](name, answers[name], ctx))
    return out
