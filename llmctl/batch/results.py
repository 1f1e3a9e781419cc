"""Result lines in the OpenAI Batch API output format, and the checkpoint the output file forms. Pure.

A result: {"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error": null}; a request the
server refused (4xx) keeps its response and adds "error": {"code", "message"}. The output file is append-only
and every complete line is one finished request, so re-reading it says which custom_ids are done; a last
line without its newline is a write cut short by a crash and is dropped (its request is sent again).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from llmctl.batch.inputs import BatchRequest


def result_line(
    line_id: str,
    custom_id: str,
    status: int,
    request_id: str,
    body: Any,
    error: tuple[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "id": line_id,
        "custom_id": custom_id,
        "response": {"status_code": status, "request_id": request_id, "body": body},
        "error": {"code": error[0], "message": error[1]} if error else None,
    }


def error_of(status: int, body: Any) -> tuple[str, str]:
    """(code, message) for a refused request, from the engine's error JSON when it has one. vLLM nests the
    fields under "error"; SGLang puts them at the top level."""
    inner = body.get("error") if isinstance(body, dict) else None
    source = inner if isinstance(inner, dict) else body if isinstance(body, dict) else {}
    message = source.get("message")
    kind = source.get("type")
    code = str(kind) if isinstance(kind, str) and kind else f"http_{status}"
    text = str(message) if message else (body if isinstance(body, str) else f"HTTP {status}")
    return code, str(text)[:2000]


def usage_of(body: Any) -> tuple[int, int]:
    """(prompt tokens, completion tokens) from a response body's usage, 0 where absent."""
    usage = body.get("usage") if isinstance(body, dict) else None
    if not isinstance(usage, dict):
        return 0, 0

    def count(key: str) -> int:
        value = usage.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    return count("prompt_tokens"), count("completion_tokens")


def encode(line: dict[str, Any]) -> bytes:
    return (json.dumps(line, separators=(",", ":"), ensure_ascii=False) + "\n").encode()


@dataclass
class Checkpoint:
    """What an existing output file already holds."""

    done: dict[str, int] = field(default_factory=dict)  # custom_id -> line number of its result
    succeeded: int = 0
    failed: int = 0  # error lines (requests refused by the server)
    input_tokens: int = 0
    output_tokens: int = 0
    keep_bytes: int = 0  # length of the complete lines; anything after it is a torn write
    torn_bytes: int = 0
    corrupt: list[tuple[int, str]] = field(default_factory=list)  # (line, reason): complete but unreadable
    duplicates: list[tuple[int, str]] = field(default_factory=list)  # (line, custom_id) seen before

    def add(self, line_no: int, data: Any) -> None:
        cid = data.get("custom_id") if isinstance(data, dict) else None
        if not isinstance(cid, str):
            self.corrupt.append((line_no, "no custom_id"))
            return
        if cid in self.done:
            self.duplicates.append((line_no, cid))
            return
        self.done[cid] = line_no
        response = data.get("response")
        body = response.get("body") if isinstance(response, dict) else None
        if data.get("error"):
            self.failed += 1
        else:
            self.succeeded += 1
        prompt, completion = usage_of(body)
        self.input_tokens += prompt
        self.output_tokens += completion


def read_checkpoint(lines: Iterable[bytes]) -> Checkpoint:
    """Parse an output file given as its lines, each with its newline (as iterating a binary file yields
    them). Only lines ending in a newline count; a last line without one is reported in torn_bytes."""
    cp = Checkpoint()
    for number, raw in enumerate(lines, start=1):
        if not raw.endswith(b"\n"):
            cp.torn_bytes = len(raw)
            break
        cp.keep_bytes += len(raw)
        if not raw.strip():
            continue
        try:
            parsed = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            cp.corrupt.append((number, "not valid JSON"))
            continue
        cp.add(number, parsed)
    return cp


def pending(requests: Iterable[BatchRequest], done: dict[str, int] | set[str]) -> list[BatchRequest]:
    """The requests with no result yet, in input order."""
    return [r for r in requests if r.custom_id not in done]
