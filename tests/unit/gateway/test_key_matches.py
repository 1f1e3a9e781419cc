"""The gateway's API-key check: the Bearer scheme in any case (RFC 7235), a bare key refused, and a header
that is not ASCII refused instead of raising. Old code: `bearer KEY` was refused while a bare `KEY` passed,
and a non-UTF-8 header raised UnicodeEncodeError (a 500)."""

from __future__ import annotations

import asyncio
import socket

from aiohttp import web

from llmctl.gateway.registry import Registry
from llmctl.gateway.server import Gateway, key_matches


def test_the_bearer_scheme_in_any_case_and_nothing_else() -> None:
    assert key_matches("Bearer sk-1", "sk-1") and key_matches("bearer sk-1", "sk-1")
    assert key_matches("  BEARER   sk-1 ", "sk-1")
    assert not key_matches("sk-1", "sk-1") and not key_matches("Basic sk-1", "sk-1")
    assert not key_matches("Bearer sk-2", "sk-1") and not key_matches("", "sk-1")
    assert not key_matches("Bearer sk-\udcff", "sk-1") and not key_matches("Bearer ключ", "sk-1")


async def test_a_non_ascii_authorization_header_is_a_401_not_a_500() -> None:
    registry = Registry()
    registry.add_deployment("chat", api_key="sk-1")
    runner = Gateway(registry).runner()
    await runner.setup()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        body = b'{"model": "chat", "prompt": "hi", "max_tokens": 1}'
        writer.write(
            b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer \xff\xfe\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        await writer.drain()
        status = (await reader.readline()).decode()
        writer.close()
        assert status.split()[1] == "401", status
    finally:
        await runner.cleanup()


async def test_models_lists_a_keyed_deployment_only_to_its_key_holder() -> None:
    from aiohttp.test_utils import TestClient, TestServer

    registry = Registry()
    registry.add_deployment("open")
    registry.add_deployment("locked", api_key="sk-1")
    async with TestClient(TestServer(Gateway(registry).app())) as client:
        anyone = await (await client.get("/v1/models")).json()
        holder = await (await client.get("/v1/models", headers={"Authorization": "Bearer sk-1"})).json()
    assert [m["id"] for m in anyone["data"]] == ["open"]
    assert sorted(m["id"] for m in holder["data"]) == ["locked", "open"]
