"""Clients that hang up are normal: over real loopback HTTP, a client closing its connection mid-answer
leaves no traceback, frees its in-flight slot, and cancels the upstream request so the replica stops
generating for nobody."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import urlsplit

import pytest
from aiohttp import web

from llmctl.gateway.registry import Registry
from llmctl.gateway.server import Gateway
from tests.unit.gateway.test_gateway_server import serve

TICK_S = 0.02  # one token every 20 ms, like a busy engine
ENDLESS = 2000  # tokens: 40 s of generation, so only a disconnect ends it within a test
BOUND_S = 1.0  # how long the gateway may take to notice a hang-up and cancel upstream

T = TypeVar("T")


async def eventually(probe: Callable[[], T], want: object) -> T:
    """The probe's value once it equals `want`, or its value at the deadline."""
    deadline = asyncio.get_running_loop().time() + BOUND_S
    while probe() != want and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.005)
    return probe()


@dataclass
class SlowEngine:
    """A stand-in replica that generates `max_tokens` tokens one tick apart and records a hang-up."""

    started: asyncio.Event = field(default_factory=asyncio.Event)
    hung_up: asyncio.Event = field(default_factory=asyncio.Event)
    finished: int = 0

    def _gone(self, request: web.Request) -> bool:
        # Checked every token, as vLLM checks for aborted requests every step.
        if request.transport is None or request.transport.is_closing():
            self.hung_up.set()
        return self.hung_up.is_set()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hung_up.clear()
        body = await request.json()
        tokens = int(body.get("max_tokens", ENDLESS))
        queued = int(body.get("queued_ticks", 0))  # ticks before the first token, headers included
        self.started.set()
        stream = bool(body.get("stream"))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        try:
            for i in range(queued + tokens):
                if self._gone(request):
                    return resp
                if stream and i == queued:
                    await resp.prepare(request)
                if stream and i >= queued:
                    await resp.write(f"data: {json.dumps({'i': i - queued})}\n\n".encode())
                await asyncio.sleep(TICK_S)
            if stream:
                await resp.write(b"data: [DONE]\n\n")
        except ConnectionError:  # a write found the connection closed before the check did
            self.hung_up.set()
            return resp
        self.finished += 1
        return resp if stream else web.json_response({"choices": [{"text": "x" * tokens}]})


@dataclass
class Stack:
    engine: SlowEngine
    gateway: Gateway
    registry: Registry
    url: str

    def in_flight(self) -> tuple[int, float | None]:
        return self.registry.deployments["chat"].in_flight, self.metric("llmctl_gateway_in_flight")

    def metric(self, name: str, **labels: str) -> float | None:
        return self.gateway.metrics.registry.get_sample_value(name, {"deployment": "chat", **labels})

    async def settle(self) -> tuple[int, float | None]:
        return await eventually(self.in_flight, (0, 0.0))


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    engine = SlowEngine()
    app = web.Application()
    app.router.add_post("/v1/completions", engine.handle)
    up_runner, up_url = await serve(app)
    registry = Registry()
    registry.add_deployment("chat")
    registry.set_endpoints("chat", [("chat-0", up_url)])
    gateway = Gateway(registry)
    # The gateway's own runner, as `llmctl controller` and `llmctl gateway` run it.
    gw_runner = gateway.runner()
    await gw_runner.setup()
    site = web.TCPSite(gw_runner, "127.0.0.1", 0)
    await site.start()
    gw_url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    yield Stack(engine, gateway, registry, gw_url)
    await gw_runner.cleanup()
    await up_runner.cleanup()


async def open_post(url: str, body: dict[str, object]) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw HTTP/1.1 POST on its own socket, so the test controls exactly when the connection closes."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    data = json.dumps(body).encode()
    head = (
        f"POST /v1/completions HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    )
    writer.write(head.encode() + data)
    await writer.drain()
    return reader, writer


async def hang_up(writer: asyncio.StreamWriter) -> None:
    writer.close()
    await writer.wait_closed()


async def read_sse(reader: asyncio.StreamReader, events: int) -> bytes:
    seen = b""
    while seen.count(b"data: ") < events:
        chunk = await asyncio.wait_for(reader.read(4096), timeout=BOUND_S)
        assert chunk, "the gateway closed the stream early"
        seen += chunk
    return seen


def assert_quiet(caplog: pytest.LogCaptureFixture) -> None:
    """No error from the gateway, aiohttp or asyncio, and at most one line from the gateway."""
    ours = [r for r in caplog.records if r.name.split(".")[0] in {"aiohttp", "asyncio", "llmctl"}]
    assert [f"{r.name}: {r.getMessage()}" for r in ours if r.levelno >= logging.ERROR] == []
    assert len([r for r in ours if r.name.startswith("llmctl")]) <= 1
    assert all(r.levelno <= logging.INFO for r in ours if r.name.startswith("llmctl"))


async def complete(url: str, body: dict[str, object]) -> bytes:
    """A whole request that the client sees through, with `Connection: close` so EOF ends the answer."""
    reader, writer = await open_post(url, body)
    try:
        return await asyncio.wait_for(reader.read(), timeout=BOUND_S)
    finally:
        await hang_up(writer)


async def test_streaming_client_hang_up_cancels_upstream_quietly(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    reader, writer = await open_post(stack.url, {"model": "chat", "prompt": "p", "stream": True})
    assert b'"i": 1' in await read_sse(reader, 2)
    assert stack.in_flight() == (1, 1.0)
    await hang_up(writer)

    await asyncio.wait_for(stack.engine.hung_up.wait(), timeout=BOUND_S)
    assert await stack.settle() == (0, 0.0)
    assert stack.engine.finished == 0
    assert_quiet(caplog)
    assert stack.metric("llmctl_gateway_requests_total", code="499") == 1.0
    assert not stack.metric("llmctl_gateway_upstream_failures_total")  # the client left; the replica is fine

    body = {"model": "chat", "prompt": "p", "stream": True, "max_tokens": 3}
    answer = await complete(stack.url, body)
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n")
    assert stack.engine.finished == 1 and await stack.settle() == (0, 0.0)


@pytest.mark.parametrize(
    "body",
    [{"prompt": "p"}, {"prompt": "p", "stream": True, "queued_ticks": ENDLESS}],
    ids=["unstreamed", "streamed-before-first-token"],
)
async def test_waiting_client_hang_up_cancels_upstream_quietly(
    stack: Stack, caplog: pytest.LogCaptureFixture, body: dict[str, object]
) -> None:
    # Nothing flows back while the engine queues or generates an unstreamed answer, so no write to the
    # client can fail: the gateway has to notice the hang-up by itself.
    caplog.set_level(logging.DEBUG)
    _, writer = await open_post(stack.url, {"model": "chat", **body})
    await asyncio.wait_for(stack.engine.started.wait(), timeout=BOUND_S)
    assert stack.in_flight() == (1, 1.0)
    await hang_up(writer)

    await asyncio.wait_for(stack.engine.hung_up.wait(), timeout=BOUND_S)
    assert await stack.settle() == (0, 0.0)
    assert stack.engine.finished == 0
    assert_quiet(caplog)
    assert stack.metric("llmctl_gateway_requests_total", code="499") == 1.0

    answer = await complete(stack.url, {"model": "chat", "prompt": "p", "max_tokens": 3})
    assert answer.startswith(b"HTTP/1.1 200") and b'"choices"' in answer
    assert stack.engine.finished == 1 and await stack.settle() == (0, 0.0)


async def test_held_client_hang_up_gives_up_its_place(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    # A request held while a deployment scales from zero counts against max_held and the queue-depth
    # gauge the autoscaler reads; a client that gave up must not keep either up.
    caplog.set_level(logging.DEBUG)
    cold = stack.registry.add_deployment("cold", hold_timeout_s=30)

    def held() -> tuple[int, float | None]:
        depth = stack.gateway.metrics.registry.get_sample_value(
            "llmctl_gateway_queue_depth", {"deployment": "cold"}
        )
        return cold.held, depth

    _, writer = await open_post(stack.url, {"model": "cold", "prompt": "p"})
    assert await eventually(held, (1, 1.0)) == (1, 1.0)
    await hang_up(writer)
    assert await eventually(held, (0, 0.0)) == (0, 0.0)
    assert_quiet(caplog)
