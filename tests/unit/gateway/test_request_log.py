"""The gateway's request log: one line per proxied request with the engine's usage and the gateway's own
timings, bounded by rotation, unreadable lines skipped and counted, a failing disk costing lines and one
warning but never a request, and concurrent writers never tearing a line."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from llmctl.gateway.registry import Registry
from llmctl.gateway.request_log import (
    RequestLog,
    RequestTap,
    log_path_beside,
    read_requests,
    request_record,
    rotated,
)
from llmctl.gateway.server import Gateway


def tap(i: int = 0, stream: bool = False) -> RequestTap:
    t = RequestTap(at=1000.0 + i, started=0.0, deployment="chat", stream=stream, prompt_chars=40)
    t.ended, t.status = 0.5, 200
    return t


def test_usage_from_the_tail_else_estimates() -> None:
    t = tap(stream=True)
    t.first_byte = 0.1
    t.feed(b'data: {"choices":[{"text":"a"}]}\n\n')
    t.feed(b'data: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3}}\n\ndata: [DONE]\n\n')
    r = request_record(t)
    assert (r.prompt_tokens, r.output_tokens, r.exact, r.ttft_s) == (7, 3, True, 0.1)
    bare = tap(stream=True)
    for chunk in (
        b'data: {"choices":[{"text":"a"}]}\n\n',
        b'data: {"choices":[{"text":"b"}]}\n\ndata: [DONE]\n\n',
    ):
        bare.feed(chunk)
    r = request_record(bare)
    # No usage: 40 characters of prompt at 4 a token, one token per event less [DONE].
    assert (r.prompt_tokens, r.output_tokens, r.exact) == (10, 2, False)


def test_the_chat_role_chunk_is_not_the_first_token() -> None:
    t = tap(stream=True)
    t.feed(b'data: {"choices":[{"delta":{"role":"assistant","content":""}}]}\n\n')
    assert t.first_byte is None
    t.feed(b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\n')
    assert t.first_byte is not None


def test_rotation_bounds_the_files(tmp_path: Path) -> None:
    path = tmp_path / "state.requests.jsonl"
    log = RequestLog(path, max_bytes=2000, keep=2)
    for i in range(200):
        log.put(tap(i))
    log.close()
    files = [p for p in tmp_path.iterdir()]
    assert sorted(p.name for p in files) == sorted(p.name for p in rotated(path, 2))
    assert all(p.stat().st_size <= 2000 for p in files)
    read = read_requests(path, keep=2)
    # The newest survive, in order; the oldest went with the rotations.
    assert read.requests and read.requests[-1].at == 1199.0
    assert [r.at for r in read.requests] == sorted(r.at for r in read.requests)
    assert len(read.requests) < 200 and log.stats.written == 200


def test_a_corrupt_line_is_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    log = RequestLog(path)
    log.put(tap(1))
    log.close()
    with path.open("a") as f:
        f.write('{"at": 5, "torn\n')
        f.write('{"unexpected": 1}\n')
    log = RequestLog(path)
    log.put(tap(2))
    log.close()
    read = read_requests(path)
    assert [r.at for r in read.requests] == [1001.0, 1002.0]
    assert read.skipped == 2 and read.first_bad == f"{path}:2"


def test_a_failing_disk_loses_lines_and_warns_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    log = RequestLog(blocker / "r.jsonl")  # its directory cannot be made: every write fails
    with caplog.at_level(logging.WARNING):
        for i in range(5):
            log.put(tap(i))
        log.close()
    assert log.stats.failed == 5 and log.stats.written == 0
    assert len([r for r in caplog.records if "cannot write" in r.message]) == 1


def test_concurrent_writers_never_tear_a_line(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    log = RequestLog(path)

    def write(k: int) -> None:
        for i in range(500):
            log.put(tap(k * 1000 + i))

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    read = read_requests(path)
    assert read.skipped == 0 and len(read.requests) == 2000 == log.stats.written
    assert len({r.at for r in read.requests}) == 2000


async def test_the_gateway_logs_each_request_and_answers_when_the_log_cannot(tmp_path: Path) -> None:
    async def upstream(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        usage = {"prompt_tokens": 5, "completion_tokens": 2}
        if not body.get("stream"):
            return web.json_response({"choices": [{"text": "ok"}], "usage": usage})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for chunk in (
            {"choices": [{"text": "o"}]},
            {"choices": [{"text": "k"}]},
            {"choices": [], "usage": usage},
        ):
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
            await asyncio.sleep(0.01)
        await resp.write(b"data: [DONE]\n\n")
        return resp

    up = web.Application()
    up.router.add_post("/v1/completions", upstream)
    up_runner = web.AppRunner(up)
    await up_runner.setup()
    site = web.TCPSite(up_runner, "127.0.0.1", 0)
    await site.start()
    up_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    for where, works in ((log_path_beside(tmp_path / "state.db"), True), (tmp_path / "x" / "y", False)):
        if not works:
            (tmp_path / "x").write_text("")  # a file where the log's directory should be
        reg = Registry()
        reg.add_deployment("chat")
        reg.set_endpoints("chat", [("chat-0", f"http://127.0.0.1:{up_port}")])
        log = RequestLog(where)
        runner = web.AppRunner(Gateway(reg, request_log=log).app())
        await runner.setup()
        gw = web.TCPSite(runner, "127.0.0.1", 0)
        await gw.start()
        url = f"http://127.0.0.1:{gw._server.sockets[0].getsockname()[1]}/v1/completions"  # type: ignore[union-attr]
        async with aiohttp.ClientSession() as s:
            for stream in (False, True):
                async with s.post(url, json={"model": "chat", "prompt": "hi", "stream": stream}) as r:
                    assert r.status == 200
                    await r.read()
            async with s.post(url, json={"model": "nope", "prompt": "hi"}) as r:
                assert r.status == 404  # no deployment: not a request of the fleet's, not logged
        await runner.cleanup()  # closes the log: what was queued is written
        if works:
            whole, streamed = read_requests(where).requests
            assert (whole.stream, whole.ttft_s, whole.replica, whole.status) == (False, None, "chat-0", 200)
            assert streamed.stream and streamed.ttft_s is not None and streamed.e2e_s >= streamed.ttft_s
            assert all((r.prompt_tokens, r.output_tokens, r.exact) == (5, 2, True) for r in (whole, streamed))
        else:
            assert log.stats.failed == 2
    await up_runner.cleanup()
