"""The gateway over real loopback HTTP: routing by model, streaming pass-through, retries before the first
byte only, API keys, and holding requests while a deployment scales from zero."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from llmctl.errors import LlmctlError
from llmctl.gateway.registry import Registry
from llmctl.gateway.server import Gateway, check_bind


@dataclass
class Upstream:
    """A stand-in replica: answers completions, optionally streaming chunks gated by events."""

    name: str
    hits: int = 0
    gates: list[asyncio.Event] = field(default_factory=list)
    die_after_first_chunk: bool = False
    seen_auth: list[str | None] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits += 1
        self.seen_auth.append(request.headers.get("Authorization"))
        body = await request.json()
        if not body.get("stream"):
            return web.json_response({"served_by": self.name, "model": body["model"]})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(3):
            await resp.write(f"data: {json.dumps({'i': i, 'by': self.name})}\n\n".encode())
            if self.die_after_first_chunk:
                request.transport.close()  # type: ignore[union-attr]
                return resp
            if i < len(self.gates):
                await self.gates[i].wait()
        await resp.write(b"data: [DONE]\n\n")
        return resp


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


async def start_upstream(up: Upstream) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/v1/completions", up.handle)
    app.router.add_post("/v1/chat/completions", up.handle)
    return await serve(app)


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


GatewayFactory = Callable[[Registry], Awaitable[str]]


@pytest.fixture
async def gateway() -> AsyncIterator[GatewayFactory]:
    runners: list[web.AppRunner] = []

    async def make(registry: Registry) -> str:
        runner, url = await serve(Gateway(registry).app())
        runners.append(runner)
        return url

    yield make
    for r in runners:
        await r.cleanup()


async def post(
    url: str, body: dict[str, object], key: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with aiohttp.ClientSession() as s, s.post(url + "/v1/completions", json=body, headers=headers) as r:
        return r.status, dict(r.headers), await r.read()


async def test_routes_by_model_and_lists_models(gateway: GatewayFactory) -> None:
    a, b = Upstream("a"), Upstream("b")
    (ra, ua), (rb, ub) = await start_upstream(a), await start_upstream(b)
    reg = Registry()
    reg.add_deployment("chat")
    reg.add_deployment("batch")
    reg.set_endpoints("chat", [("chat-0", ua)])
    reg.set_endpoints("batch", [("batch-0", ub)])
    url = await gateway(reg)
    status, _, body = await post(url, {"model": "batch", "prompt": "hi"})
    assert status == 200 and json.loads(body)["served_by"] == "b"
    status, _, body = await post(url, {"model": "nope", "prompt": "hi"})
    assert status == 404 and "`nope` does not exist" in body.decode()
    async with aiohttp.ClientSession() as s, s.get(url + "/v1/models") as r:
        assert {m["id"] for m in (await r.json())["data"]} == {"chat", "batch"}
    await ra.cleanup()
    await rb.cleanup()


async def test_streams_token_by_token(gateway: GatewayFactory) -> None:
    gates = [asyncio.Event(), asyncio.Event()]
    up = Upstream("a", gates=gates)
    runner, uurl = await start_upstream(up)
    reg = Registry()
    reg.add_deployment("chat")
    reg.set_endpoints("chat", [("chat-0", uurl)])
    url = await gateway(reg)
    async with (
        aiohttp.ClientSession() as s,
        s.post(url + "/v1/completions", json={"model": "chat", "prompt": "x", "stream": True}) as r,
    ):
        # The upstream sends its second chunk only after we have read the first through the gateway.
        first = await asyncio.wait_for(r.content.readuntil(b"\n\n"), timeout=10)
        assert b'"i": 0' in first
        gates[0].set()
        second = await asyncio.wait_for(r.content.readuntil(b"\n\n"), timeout=10)
        assert b'"i": 1' in second
        gates[1].set()
        rest = await asyncio.wait_for(r.read(), timeout=10)
        assert rest.endswith(b"data: [DONE]\n\n")
    await runner.cleanup()


async def test_retries_only_before_the_first_byte(gateway: GatewayFactory) -> None:
    good = Upstream("good")
    runner, good_url = await start_upstream(good)
    reg = Registry()
    reg.add_deployment("chat", route="round_robin")
    reg.set_endpoints("chat", [("a-dead", closed_port()), ("b-good", good_url)])
    url = await gateway(reg)
    for _ in range(4):
        status, _, body = await post(url, {"model": "chat", "prompt": "p"})
        assert status == 200 and json.loads(body)["served_by"] == "good"
    assert good.hits == 4

    dying = Upstream("dying", die_after_first_chunk=True)
    runner2, dying_url = await start_upstream(dying)
    reg.set_endpoints("chat", [("c-dying", dying_url)])
    async with (
        aiohttp.ClientSession() as s,
        s.post(url + "/v1/completions", json={"model": "chat", "prompt": "p", "stream": True}) as r,
    ):
        data = b""
        with pytest.raises(aiohttp.ClientPayloadError):
            async for chunk in r.content.iter_any():
                data += chunk
    assert b'"i": 0' in data and dying.hits == 1  # bytes had been sent: not retried elsewhere
    async with aiohttp.ClientSession() as s, s.get(url + "/metrics") as r:
        text = await r.text()
    retries = {
        s.labels["deployment"]: s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "llmctl_gateway_retries_total"
    }
    assert retries["chat"] >= 2
    await runner.cleanup()
    await runner2.cleanup()


async def test_api_key_is_required_and_never_exposed(gateway: GatewayFactory) -> None:
    up = Upstream("a")
    runner, uurl = await start_upstream(up)
    reg = Registry()
    reg.add_deployment("chat", api_key="sk-test-secret-42")
    reg.set_endpoints("chat", [("chat-0", uurl)])
    url = await gateway(reg)
    assert (await post(url, {"model": "chat", "prompt": "p"}))[0] == 401
    assert (await post(url, {"model": "chat", "prompt": "p"}, key="wrong"))[0] == 401
    assert (await post(url, {"model": "chat", "prompt": "p"}, key="sk-test-secret-42"))[0] == 200
    assert up.hits == 1 and up.seen_auth == [None]  # the gateway's key is not forwarded to replicas
    async with aiohttp.ClientSession() as s, s.get(url + "/metrics") as r:
        assert "sk-test-secret-42" not in await r.text()
    await runner.cleanup()


async def test_each_replica_gets_its_own_key_and_never_the_clients(gateway: GatewayFactory) -> None:
    a, b = Upstream("a"), Upstream("b")
    (ra, ua), (rb, ub) = await start_upstream(a), await start_upstream(b)
    reg = Registry()
    reg.add_deployment("chat", api_key="sk-client")
    reg.set_endpoints("chat", [("chat-0", ua, "replica-key-0"), ("chat-1", ub, None)])
    url = await gateway(reg)
    for _ in range(4):
        assert (await post(url, {"model": "chat", "prompt": "p"}, key="sk-client"))[0] == 200
    assert a.hits and b.hits
    assert set(a.seen_auth) == {"Bearer replica-key-0"} and set(b.seen_auth) == {None}
    # A new key for the same replica (started again) replaces the endpoint's.
    reg.set_endpoints("chat", [("chat-0", ua, "replica-key-1")])
    await post(url, {"model": "chat", "prompt": "p"}, key="sk-client")
    assert a.seen_auth[-1] == "Bearer replica-key-1"
    await ra.cleanup()
    await rb.cleanup()


async def test_scale_from_zero_holds_requests_until_a_replica_is_ready(gateway: GatewayFactory) -> None:
    up = Upstream("late")
    runner, uurl = await start_upstream(up)
    woken: list[str] = []
    reg = Registry(on_demand=woken.append)
    reg.add_deployment("burst", max_held=2, hold_timeout_s=30)
    url = await gateway(reg)
    held = [asyncio.create_task(post(url, {"model": "burst", "prompt": str(i)})) for i in range(2)]
    while reg.deployments["burst"].held < 2:  # both requests reached the gateway and wait
        await asyncio.sleep(0.01)
    assert woken == ["burst", "burst"]
    status, headers, _ = await post(url, {"model": "burst", "prompt": "overflow"})
    assert status == 503 and int(headers["Retry-After"]) >= 1
    reg.set_endpoints("burst", [("burst-0", uurl)])
    results = await asyncio.wait_for(asyncio.gather(*held), timeout=10)
    assert [r[0] for r in results] == [200, 200] and up.hits == 2
    await runner.cleanup()


async def test_hold_times_out_with_retry_after(gateway: GatewayFactory) -> None:
    reg = Registry()
    reg.add_deployment("cold", hold_timeout_s=0.2)
    url = await gateway(reg)
    status, headers, body = await post(url, {"model": "cold", "prompt": "p"})
    assert status == 503 and "Retry-After" in headers and b"no ready replica" in body


def test_non_loopback_bind_needs_api_keys() -> None:
    reg = Registry()
    reg.add_deployment("chat")
    check_bind("127.0.0.1", reg)
    with pytest.raises(LlmctlError, match=r"refusing to bind the gateway to 0\.0\.0\.0"):
        check_bind("0.0.0.0", reg)
    reg.deployments["chat"].api_key = "k"
    check_bind("0.0.0.0", reg)


async def resetting_replica() -> tuple[asyncio.Server, str]:
    """Reads a request, then closes the connection without a byte of answer (a crash mid-request)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.transport.abort()  # a reset, not a clean close

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


async def test_a_replica_reset_before_answering_is_retried_elsewhere_or_a_json_502(
    gateway: GatewayFactory,
) -> None:
    # Old code: a bare text/plain 500 and a ClientOSError traceback in the gateway's log.
    server, dead = await resetting_replica()
    good = Upstream("good")
    runner, alive = await start_upstream(good)
    try:
        reg = Registry()
        reg.add_deployment("chat", route="round_robin")
        reg.set_endpoints("chat", [("chat-0", dead), ("chat-1", alive)])
        url = await gateway(reg)
        for _ in range(4):  # round robin starts on either; every request is answered by the live one
            status, _, body = await post(url, {"model": "chat", "prompt": "hi"})
            assert status == 200 and json.loads(body)["served_by"] == "good"
        reg.set_endpoints("chat", [("chat-0", dead)])
        status, headers, body = await post(url, {"model": "chat", "prompt": "hi"})
        assert status == 502 and headers["Content-Type"].startswith("application/json")
        assert "no replica of chat answered the request" in json.loads(body)["error"]["message"]
    finally:
        server.close()
        await runner.cleanup()


async def test_shutdown_answers_held_requests_at_once(gateway: GatewayFactory) -> None:
    # Old code: SIGTERM with requests held for a scale from zero took their 120 s hold timeout (62 s seen).
    reg = Registry()
    reg.add_deployment("burst", hold_timeout_s=120)
    url = await gateway(reg)
    held = [asyncio.create_task(post(url, {"model": "burst", "prompt": str(i)})) for i in range(3)]
    while reg.deployments["burst"].held < 3:
        await asyncio.sleep(0.01)
    reg.close()
    results = await asyncio.wait_for(asyncio.gather(*held), timeout=5)
    assert [status for status, _, _ in results] == [503, 503, 503]


async def test_a_body_dribbled_too_slowly_is_a_408(
    gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmctl.gateway import server

    monkeypatch.setattr(server, "BODY_TIMEOUT_S", 0.3)
    reg = Registry()
    reg.add_deployment("chat")
    url = await gateway(reg)
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
    )
    await writer.drain()
    status = await asyncio.wait_for(reader.readline(), timeout=5)
    writer.close()
    assert status.split()[1] == b"408", status


async def test_headers_dribbled_a_byte_at_a_time_are_cut_off(gateway: GatewayFactory) -> None:
    """Slowloris: 50 connections send a header byte every 0.1 s. Each is closed once the header timeout
    has passed since it opened; a normal request is answered meanwhile."""
    up = Upstream("a")
    up_runner, up_url = await start_upstream(up)
    reg = Registry()
    reg.add_deployment("chat")
    reg.set_endpoints("chat", [("chat-0", up_url)])
    runner = Gateway(reg, header_timeout_s=1.0).runner()
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    loop = asyncio.get_running_loop()

    async def dribble() -> float:
        opened = loop.time()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for byte in b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000:
                writer.write(bytes([byte]))
                await writer.drain()
                if reader.at_eof():
                    break
                await asyncio.sleep(0.1)
            await asyncio.wait_for(reader.read(), timeout=1.0)  # the server's close
        except (ConnectionError, TimeoutError):
            pass
        finally:
            writer.close()
        return loop.time() - opened

    slow = [asyncio.create_task(dribble()) for _ in range(50)]
    await asyncio.sleep(0.3)
    status, _, _ = await post(f"http://127.0.0.1:{port}", {"model": "chat", "prompt": "p"})
    held = await asyncio.wait_for(asyncio.gather(*slow), timeout=30)
    assert status == 200
    # 1000 header bytes at 0.1 s each would take 100 s: every connection ended near the 1 s timeout.
    assert max(held) < 4.0, sorted(held)[-5:]
    await runner.cleanup()
    await up_runner.cleanup()
