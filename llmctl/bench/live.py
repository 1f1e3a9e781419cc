"""Benchmark a live OpenAI-compatible server (vLLM, SGLang) for calibration.

At each concurrency c it sends c streaming /v1/completions requests at once and records, per request, the
time to the first token and the mean gap between later tokens. `llmctl.perf.calibrate.points_from_benchmark`
turns the means into step-time points.
"""

from __future__ import annotations

import asyncio
import json
import random
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
    token_times: tuple[float, ...] = ()  # when each token-carrying chunk arrived (time.perf_counter)


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


def _carries_tokens(event: dict[str, Any]) -> bool:
    """A completions chunk that an engine step produced. Its text may be empty: vLLM's detokeniser holds back
    a token that ends inside a UTF-8 character (random-weight models emit many) and still streams its chunk,
    so empty text with no finish reason is a token too. An empty chunk that only ends the stream is not."""
    choices = event.get("choices") or []
    if not choices or not isinstance(choices[0], dict) or not isinstance(choices[0].get("text"), str):
        return False
    return bool(choices[0]["text"]) or choices[0].get("finish_reason") is None


def timing_from_events(
    events: Sequence[tuple[float, dict[str, Any]]], start: float, prompt_tokens: int
) -> RequestTiming:
    """Per-request latencies from (arrival time, event) pairs; token counts from `usage` when present."""
    token_times = [t for t, e in events if _carries_tokens(e)]
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
        token_times=tuple(token_times),
    )


def steady_itl(timings: Sequence[RequestTiming]) -> float | None:
    """Mean gap between tokens while all the requests of a level are decoding: after the last of them got
    its first token, before the first of them ended. Earlier gaps hold the prefills of requests admitted a
    step later (the engine starts a step with the requests it has; the rest wait for the next one), which
    on a slow-prefill device (a CPU) are seconds against a decode step's tens of milliseconds: a few of
    them would double the mean gap, and the fit would read that as a slow decode step at batch c.
    None when no request has two chunks in that window (generation shorter than the admission spread)."""
    if not timings or any(not t.token_times for t in timings):
        return None
    start = max(t.token_times[0] for t in timings)
    end = min(t.token_times[-1] for t in timings)
    gaps: list[float] = []
    for t in timings:
        inside = [x for x in t.token_times if start <= x <= end]
        if len(inside) >= 2:
            # Tokens per chunk, from usage: more than one with speculative decoding or a stream interval.
            per_chunk = t.completion_tokens / len(t.token_times)
            gaps.append((inside[-1] - inside[0]) / ((len(inside) - 1) * per_chunk))
    return sum(gaps) / len(gaps) if gaps else None


# Four characters and one token each in the common BPE vocabularies (GPT-2, Llama 2 and 3, Qwen) and in
# llmctl.testing.tiny_model's: a prompt of n words is n tokens to a real engine, and to the emulator too,
# which has no tokenizer and counts four characters as a token. `usage` still gives the exact count.
PROMPT_WORDS = (" the", " and", " for", " you", " how", " are", " dog", " fox")
_PROMPTS = random.Random()


def filler_prompt(tokens: int, rng: random.Random = _PROMPTS) -> str:
    """`tokens` words drawn at random. One prompt repeated would hit vLLM's prefix cache (on by default) from
    the second request on, and the server would skip the prefill that distinct user prompts pay."""
    return "".join(rng.choices(PROMPT_WORDS, k=max(1, tokens)))


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
        "prompt": filler_prompt(prompt_tokens),
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
    """Mean TTFT and inter-token latency at each concurrency (c simultaneous requests per level). The
    inter-token latency is the steady one while all c decode (`steady_itl`), else the mean gap."""
    levels: list[BenchmarkLevel] = []
    limits = httpx.Limits(max_connections=max(concurrencies, default=1))
    try:
        async with httpx.AsyncClient(timeout=timeout_s, limits=limits) as client:
            # Not measured: the first request after start-up pays one-time costs (lazy initialisation,
            # first-shape compilation on vLLM's CPU backend) that would land in the TTFT at concurrency 1.
            await stream_completion(client, url, model, prompt_tokens, 2)
            for c in concurrencies:
                timings = await asyncio.gather(
                    *(stream_completion(client, url, model, prompt_tokens, output_tokens) for _ in range(c))
                )
                mean_itl = sum(t.itl_s for t in timings) / c
                steady = steady_itl(timings)
                levels.append(
                    BenchmarkLevel(
                        concurrency=c,
                        prompt_tokens=round(sum(t.prompt_tokens for t in timings) / c),
                        output_tokens=round(sum(t.completion_tokens for t in timings) / c),
                        ttft_s=sum(t.ttft_s for t in timings) / c,
                        itl_s=steady if steady is not None else mean_itl,
                        mean_itl_s=mean_itl,
                    )
                )
    except httpx.HTTPError as exc:
        raise LlmctlError(f"benchmark of {url} failed: {type(exc).__name__}: {exc}") from None
    return levels


def run_benchmark(url: str, model: str, **options: Any) -> list[BenchmarkLevel]:
    """Synchronous wrapper for the CLI."""
    return asyncio.run(benchmark_server(url, model, **options))
