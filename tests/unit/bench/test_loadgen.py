"""The load generator against a real streaming HTTP server on loopback: schedules, measurements, errors."""

from __future__ import annotations

import json

import numpy as np
from aiohttp import web

from llmctl.bench.load import constant_schedule, poisson_schedule, run_load, summarise


async def streaming_app_url(fail_every: int = 0) -> tuple[web.AppRunner, str, list[dict[str, object]]]:
    seen: list[dict[str, object]] = []

    async def completions(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        seen.append(body)
        if fail_every and len(seen) % fail_every == 0:
            return web.json_response({"error": {"message": "boom"}}, status=500)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        n = int(body["max_tokens"])
        for i in range(n):
            await resp.write(f"data: {json.dumps({'choices': [{'text': f' t{i}'}]})}\n\n".encode())
        usage = {"prompt_tokens": 10, "completion_tokens": n}
        await resp.write(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\ndata: [DONE]\n\n".encode())
        return resp

    app = web.Application()
    app.router.add_post("/v1/completions", completions)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}", seen


def test_schedules() -> None:
    c = constant_schedule(4.0, 2.0, 10, 5)
    assert [s.at_s for s in c] == [i / 4 for i in range(8)]
    p = poisson_schedule(50.0, 20.0, 10, 5, seed=1)
    gaps = np.diff([s.at_s for s in p])
    assert 900 < len(p) < 1100 and abs(gaps.mean() - 0.02) < 0.002
    assert p == poisson_schedule(50.0, 20.0, 10, 5, seed=1)


async def test_run_load_measures_every_request() -> None:
    runner, url, seen = await streaming_app_url()
    outcomes, wall = await run_load(url, "m", constant_schedule(40.0, 0.5, 16, 8))
    await runner.cleanup()
    summary = summarise(outcomes, wall)
    assert summary["requests"] == summary["succeeded"] == len(seen) == 20
    assert all(o.timing and o.timing.completion_tokens == 8 for o in outcomes)
    assert all(o.timing and 0 < o.timing.ttft_s <= o.timing.e2e_s for o in outcomes)
    assert all(b["model"] == "m" and b["stream"] is True for b in seen)
    ttft = summary["ttft_s"]
    assert isinstance(ttft, dict) and ttft["p50"] <= ttft["p99"]


async def test_errors_are_counted_not_raised() -> None:
    runner, url, _ = await streaming_app_url(fail_every=2)
    outcomes, wall = await run_load(url, "m", constant_schedule(40.0, 0.25, 16, 4))
    await runner.cleanup()
    summary = summarise(outcomes, wall)
    assert summary["failed"] == 5 and summary["errors"] == {"HTTP 500": 5}
