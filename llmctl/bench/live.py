"""Benchmark a live OpenAI-compatible server (vLLM, SGLang) for calibration.

At each concurrency c it sends c streaming /v1/completions requests at once and records, per request, the
time to the first token and the mean gap between later tokens. `llmctl.perf.calibrate.points_from_benchmark`
turns the means into step-time points.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import httpx

from llmctl.errors import LlmctlError
from llmctl.perf.calibrate import BenchmarkLevel

DEFAULT_CONCURRENCIES: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)


@dataclass(frozen=True)
class RequestTiming:
    ttft_s: float
    itl_s: float  # mean inter-token gap after the first token; 0 when fewer than two tokens came back
    prompt_tokens: int
    completion_tokens: int
    e2e_s: float = 0.0  # request sent to last byte received


def parse_sse(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """JSON payloads of the `data:` events of a server-sent-event stream, up to `data: [DONE]`."""
    for raw in lines:
        line = raw.strip()
        if not line.startswith("data:"):
            continue  # blank separators, comments (":"), event names
        payload = line[len("data:") :].strip()
        if payload == "[DONE]":
            return
        try:
            event = json.loads(payload)
        except json.JSONDecodeError as exc:
            raise LlmctlError(f"server sent a malformed SSE event {payload[:80]!r}: {exc}") from None
        if isinstance(event, dict):
            yield event


def _chunk_text(event: dict[str, Any]) -> str:
    choices = event.get("choices") or []
    if not choices or not isinstance(choices[0], dict):
        return ""
    return str(choices[0].get("text") or "")


def timing_from_events(
    events: Sequence[tuple[float, dict[str, Any]]], start: float, prompt_tokens: int
) -> RequestTiming:
    """Per-request latencies from (arrival time, event) pairs; token counts from `usage` when present."""
    token_times = [t for t, e in events if _chunk_text(e)]
    if not token_times:
        raise LlmctlError("the server streamed no tokens")
    usage: dict[str, Any] = {}
    for _, event in events:
        if isinstance(event.get("usage"), dict):
            usage = event["usage"]
    # A chunk may carry several tokens (speculative decoding, detokeniser buffering); usage is exact.
    completion = int(usage.get("completion_tokens") or len(token_times))
    first, last = token_times[0], token_times[-1]
    itl = (last - first) / (completion - 1) if completion > 1 else 0.0
    return RequestTiming(
        ttft_s=first - start,
        itl_s=itl,
        prompt_tokens=int(usage.get("prompt_tokens") or prompt_tokens),
        completion_tokens=completion,
    )


async def stream_completion(
    client: httpx.AsyncClient,
    url: str,
    model: str,
    prompt_tokens: int,
    output_tokens: int,
    headers: dict[str, str] | None = None,
) -> RequestTiming:
    """One streaming /v1/completions request of about `prompt_tokens` in and exactly `output_tokens` out."""
    body = {
        "model": model,
        # " hi" is one token in the common BPE vocabularies; `usage` corrects the count when returned.
        "prompt": "hi" + " hi" * (prompt_tokens - 1),
        "max_tokens": output_tokens,
        "temperature": 0.0,
        "stream": True,
        "stream_options": {"include_usage": True},
        "ignore_eos": True,  # vLLM and SGLang extension: always generate max_tokens
    }
    events: list[tuple[float, dict[str, Any]]] = []
    start = time.perf_counter()
    async with client.stream(
        "POST", f"{url.rstrip('/')}/v1/completions", json=body, headers=headers
    ) as response:
        if response.status_code != 200:
            detail = (await response.aread()).decode(errors="replace")[:200]
            raise LlmctlError(f"{url}: /v1/completions answered HTTP {response.status_code}: {detail}")
        async for line in response.aiter_lines():
            now = time.perf_counter()
            events.extend((now, e) for e in parse_sse([line]))
            if line.strip() == "data: [DONE]":
                break
    timing = timing_from_events(events, start, prompt_tokens)
    return replace(timing, e2e_s=time.perf_counter() - start)


async def benchmark_server(
    url: str,
    model: str,
    *,
    concurrencies: Sequence[int] = DEFAULT_CONCURRENCIES,
    prompt_tokens: int = 512,
    output_tokens: int = 128,
    timeout_s: float = 300.0,
) -> list[BenchmarkLevel]:
    """Mean TTFT and inter-token latency at each concurrency (c simultaneous requests per level)."""
    levels: list[BenchmarkLevel] = []
    limits = httpx.Limits(max_connections=max(concurrencies, default=1))
    try:
        async with httpx.AsyncClient(timeout=timeout_s, limits=limits) as client:
            for c in concurrencies:
                timings = await asyncio.gather(
                    *(stream_completion(client, url, model, prompt_tokens, output_tokens) for _ in range(c))
                )
                levels.append(
                    BenchmarkLevel(
                        concurrency=c,
                        prompt_tokens=round(sum(t.prompt_tokens for t in timings) / c),
                        output_tokens=round(sum(t.completion_tokens for t in timings) / c),
                        ttft_s=sum(t.ttft_s for t in timings) / c,
                        itl_s=sum(t.itl_s for t in timings) / c,
                    )
                )
    except httpx.HTTPError as exc:
        raise LlmctlError(f"benchmark of {url} failed: {type(exc).__name__}: {exc}") from None
    return levels


def run_benchmark(url: str, model: str, **options: Any) -> list[BenchmarkLevel]:
    """Synchronous wrapper for the CLI."""
    return asyncio.run(benchmark_server(url, model, **options))
