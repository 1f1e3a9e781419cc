"""Batch input in the OpenAI Batch API line format, parsed and validated line by line. Pure: takes the lines,
returns the requests and the problems, each problem with its line number and a reason, so that nothing is
dropped without being named.

One line: {"custom_id": "req-1", "method": "POST", "url": "/v1/chat/completions", "body": {...}}
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# The endpoints vLLM and SGLang both serve and that return one JSON document per request.
URLS = ("/v1/chat/completions", "/v1/completions")
MAX_CUSTOM_ID = 512  # OpenAI's own limit for custom_id
# What a request without max_tokens is assumed to generate when sizing concurrency (not sent anywhere).
ASSUMED_MAX_TOKENS = 256


@dataclass(frozen=True)
class BatchRequest:
    custom_id: str
    url: str
    body: dict[str, Any]
    line: int  # 1-based line in the input file


@dataclass(frozen=True)
class Problem:
    line: int
    reason: str
    custom_id: str | None = None


@dataclass
class ParsedInput:
    requests: list[BatchRequest] = field(default_factory=list)
    malformed: list[Problem] = field(default_factory=list)  # lines that cannot be sent
    duplicates: list[Problem] = field(default_factory=list)  # a custom_id seen before (always an error)

    def describe(self, path: str, problems: list[Problem], limit: int = 20) -> str:
        shown = [f"{path}:{p.line}: {p.reason}" for p in problems[:limit]]
        more = len(problems) - limit
        return "\n".join(shown + ([f"... and {more} more"] if more > 0 else []))


def _problem(data: Any) -> str | None:
    """Why one decoded line is not a sendable request, or None when it is."""
    if not isinstance(data, dict):
        return f"expected a JSON object, got {type(data).__name__}"
    cid = data.get("custom_id")
    if cid is None:
        return "missing custom_id"
    if not isinstance(cid, str) or not cid.strip():
        return f"custom_id must be a non-empty string, got {cid!r}"
    if len(cid) > MAX_CUSTOM_ID:
        return f"custom_id longer than {MAX_CUSTOM_ID} characters"
    method = data.get("method")
    if method != "POST":
        return f"method must be POST, got {method!r}"
    url = data.get("url")
    if url not in URLS:
        return f"url must be one of {', '.join(URLS)}, got {url!r}"
    body = data.get("body")
    if not isinstance(body, dict):
        return "body must be a JSON object"
    if body.get("stream"):
        return "body.stream is not supported in a batch (each result is one JSON document)"
    if url == "/v1/chat/completions" and not isinstance(body.get("messages"), list):
        return "body.messages must be a list for /v1/chat/completions"
    if url == "/v1/completions" and not isinstance(body.get("prompt"), str | list):
        return "body.prompt must be a string or a list for /v1/completions"
    unknown = sorted(set(data) - {"custom_id", "method", "url", "body"})
    if unknown:
        return f"unknown field(s) {', '.join(unknown)}"
    return None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number; the request could never be sent")


def parse_lines(lines: Iterable[str]) -> ParsedInput:
    """Every line either becomes a request or a problem; blank lines are allowed and ignored."""
    out = ParsedInput()
    first_line: dict[str, int] = {}
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            data = json.loads(text, parse_constant=_no_constant)
        except json.JSONDecodeError as exc:
            out.malformed.append(Problem(number, f"not valid JSON ({exc.msg} at column {exc.colno})"))
            continue
        except ValueError as exc:  # NaN or Infinity: Python reads them, no server takes them
            out.malformed.append(Problem(number, str(exc)))
            continue
        reason = _problem(data)
        if reason is not None:
            cid = data.get("custom_id") if isinstance(data, dict) else None
            out.malformed.append(Problem(number, reason, cid if isinstance(cid, str) else None))
            continue
        cid = data["custom_id"]
        if cid in first_line:
            out.duplicates.append(
                Problem(number, f"custom_id {cid!r} already used on line {first_line[cid]}", cid)
            )
            continue
        first_line[cid] = number
        out.requests.append(BatchRequest(cid, data["url"], data["body"], number))
    return out


def _text_chars(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(_text_chars(v) for v in value)
    if isinstance(value, dict):
        return _text_chars(value.get("content")) + _text_chars(value.get("text"))
    return 0


def estimated_tokens(request: BatchRequest) -> int:
    """Prompt plus output tokens one request holds in the KV cache at its end, roughly: four characters a
    token, and the requested max_tokens (or ASSUMED_MAX_TOKENS)."""
    body = request.body
    prompt = _text_chars(body.get("messages") if "messages" in body else body.get("prompt"))
    wanted = body.get("max_tokens", body.get("max_completion_tokens"))
    out = wanted if isinstance(wanted, int) and not isinstance(wanted, bool) and wanted > 0 else None
    return max(1, math.ceil(prompt / 4)) + (out if out is not None else ASSUMED_MAX_TOKENS)


def mean_tokens(requests: list[BatchRequest], sample: int = 2000) -> int:
    """Mean estimated tokens per request over an even sample of the input (0 for no requests)."""
    if not requests:
        return 0
    step = max(1, len(requests) // sample)
    picked = requests[::step]
    return math.ceil(sum(estimated_tokens(r) for r in picked) / len(picked))
