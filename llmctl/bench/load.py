"""`llmctl load`: an open-loop load generator against any OpenAI-compatible endpoint (the gateway, a replica).

Requests start at their scheduled times whether or not earlier ones finished (open loop), so queueing shows
up in the latencies as it would for real users. Each request streams, so TTFT and inter-token latency are
measured, not inferred.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx
import numpy as np

from llmctl.bench.live import RequestTiming, stream_completion
from llmctl.errors import LlmctlError


@dataclass(frozen=True)
class Scheduled:
    at_s: float  # seconds after the start
    prompt_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class Outcome:
    scheduled: Scheduled
    timing: RequestTiming | None
    error: str | None = None


def constant_schedule(
    rate: float, duration_s: float, prompt_tokens: int, output_tokens: int
) -> list[Scheduled]:
    n = int(rate * duration_s)
    return [Scheduled(i / rate, prompt_tokens, output_tokens) for i in range(n)]


def poisson_schedule(
    rate: float, duration_s: float, prompt_tokens: int, output_tokens: int, seed: int = 0
) -> list[Scheduled]:
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(1.0 / rate, size=int(rate * duration_s * 1.5) + 16)
    times = np.cumsum(gaps)
    return [Scheduled(float(t), prompt_tokens, output_tokens) for t in times[times < duration_s]]


def percentiles(values: Sequence[float], qs: Sequence[float] = (50, 90, 95, 99)) -> dict[str, float]:
    if not values:
        return {f"p{q:g}": float("nan") for q in qs}
    arr = np.asarray(values)
    return {f"p{q:g}": float(np.percentile(arr, q)) for q in qs}


def summarise(outcomes: Sequence[Outcome], wall_s: float) -> dict[str, object]:
    ok = [o.timing for o in outcomes if o.timing is not None]
    errors: dict[str, int] = {}
    for o in outcomes:
        if o.error:
            errors[o.error] = errors.get(o.error, 0) + 1
    tokens = sum(t.completion_tokens for t in ok)
    return {
        "requests": len(outcomes),
        "succeeded": len(ok),
        "failed": len(outcomes) - len(ok),
        "errors": errors,
        "wall_s": wall_s,
        "requests_per_s": len(ok) / wall_s if wall_s > 0 else 0.0,
        "output_tokens_per_s": tokens / wall_s if wall_s > 0 else 0.0,
        # What the server counted (its `usage`): how long the prompts were to its tokenizer.
        "mean_prompt_tokens": sum(t.prompt_tokens for t in ok) / len(ok) if ok else float("nan"),
        "ttft_s": percentiles([t.ttft_s for t in ok]),
        "itl_s": percentiles([t.itl_s for t in ok if t.completion_tokens > 1]),
        "e2e_s": percentiles([t.e2e_s for t in ok]),
    }


async def run_load(
    url: str,
    model: str,
    schedule: Sequence[Scheduled],
    *,
    api_key: str | None = None,
    timeout_s: float = 300.0,
    on_done: Callable[[Outcome], None] | None = None,
) -> tuple[list[Outcome], float]:
    """Send every scheduled request at its time; returns the outcomes in schedule order and the wall time."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=256)
    async with httpx.AsyncClient(timeout=timeout_s, limits=limits) as client:
        loop = asyncio.get_running_loop()
        start = loop.time()

        async def one(item: Scheduled) -> Outcome:
            await asyncio.sleep(max(0.0, start + item.at_s - loop.time()))
            try:
                timing = await stream_completion(
                    client, url, model, item.prompt_tokens, item.output_tokens, headers=headers
                )
                outcome = Outcome(item, timing)
            except (LlmctlError, httpx.HTTPError) as exc:
                outcome = Outcome(item, None, _short(exc))
            if on_done:
                on_done(outcome)
            return outcome

        t0 = time.perf_counter()
        outcomes = await asyncio.gather(*(one(s) for s in schedule))
        return list(outcomes), time.perf_counter() - t0


def _short(exc: BaseException) -> str:
    text = str(exc)
    if "HTTP " in text:
        return text[text.index("HTTP ") : text.index("HTTP ") + 8]
    return type(exc).__name__
