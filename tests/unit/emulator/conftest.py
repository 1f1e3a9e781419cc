"""An in-process emulated engine behind aiohttp's test client, for the API conformance tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from llmctl.engines.emulator.config import parse_config
from llmctl.engines.emulator.engine import Engine
from llmctl.engines.emulator.server import EmulatorApp
from llmctl.engines.emulator.startup import prepare
from llmctl.perf.step_time import step_model

Emulator = Callable[..., Coroutine[Any, Any, TestClient[Any, Any]]]


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    clients: list[TestClient[Any, Any]] = []
    tasks: list[asyncio.Task[None]] = []

    async def make(flavour: str, args: list[str], env: dict[str, str] | None = None) -> TestClient[Any, Any]:
        config = parse_config(flavour, args, {"LLMCTL_EMULATOR_TIME_SCALE": "0", **(env or {})})
        replica = prepare(config)
        engine = Engine(config, step_model(replica.profile), replica.kv_capacity)
        tasks.append(asyncio.create_task(engine.run()))
        client: TestClient[Any, Any] = TestClient(TestServer(EmulatorApp(engine).build()))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()
    for task in tasks:
        task.cancel()
