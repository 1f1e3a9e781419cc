"""Many LoRA adapters on one base model, end to end on this host: a playbook with one deployment of two
emulated replicas and three adapters (one on the command line, two loaded at run time) is planned, its
replicas started from the planned command lines, and the gateway serves each adapter as its own model.
Requests for all three go through the gateway; its routing metrics show the affinity (one load per run-time
adapter, then hits), the replicas' own /v1/models show where each adapter went, and the gateway's lists all.

The replicas listen on ports 23000-23999 (this test's range) instead of the planner's 8000+: the planned
--port is the only part of the command line replaced."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from llmctl.config.inventory import parse_inventory
from llmctl.config.models import resolve_models
from llmctl.config.playbook import parse_playbook
from llmctl.config.source import parse_yaml
from llmctl.engines.snapshots import load_flagspec
from llmctl.gateway.registry import AdapterRoute, Registry
from llmctl.gateway.server import Gateway
from llmctl.planner import needed_flagspecs, plan_playbook
from llmctl.planner.lora import lora_plan
from llmctl.planner.types import PlannedReplica

pytestmark = pytest.mark.slow

PORTS = range(23000, 24000)
ROUNDS = 6  # requests per adapter, in rounds of all three adapters at once
BURST = 4  # then this many at once for each run-time adapter alone


def free_ports(n: int, start: int) -> list[int]:
    out: list[int] = []
    for port in range(start, PORTS.stop):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        out.append(port)
        if len(out) == n:
            return out
    raise AssertionError("no free ports in 23000-23999")


def adapter_dir(root: Path, name: str) -> str:
    d = root / name
    d.mkdir()
    (d / "adapter_config.json").write_text(json.dumps({"r": 8, "peft_type": "LORA"}))
    (d / "adapter_model.safetensors").write_bytes(b"\0" * 65536)
    return str(d)


def playbook_text(flavour: str, root: Path) -> str:
    return f"""
deployments:
  - name: assist
    model: meta-llama/Llama-3.1-8B-Instruct
    workload: offline
    engine: emulated
    emulate: {flavour}
    scaling: {{min_replicas: 2}}
    adapters:
      - {{name: sql, path: {adapter_dir(root, "sql")}, rank: 8}}
      - {{name: support, path: {adapter_dir(root, "support")}, rank: 8, preload: false}}
      - {{name: legal, path: {adapter_dir(root, "legal")}, rank: 8, preload: false}}
"""


def start(replica: PlannedReplica, port: int, log: Path) -> subprocess.Popen[bytes]:
    argv = list(replica.argv)
    argv[argv.index("--port") + 1] = str(port)
    argv[0] = sys.executable  # the planned `python3`, as this test's interpreter
    env = {**os.environ, **replica.env, "LLMCTL_EMULATOR_TIME_SCALE": "0.02"}
    return subprocess.Popen(argv, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} not healthy: {log.read_text()}")


@pytest.fixture(params=["vllm", "sglang"])
def fleet(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Registry, list[str], str]]:
    flavour: str = request.param
    pb_data, lines = parse_yaml(playbook_text(flavour, tmp_path), "pb.yaml")
    playbook = parse_playbook(pb_data, lines)
    inv_data, inv_lines = parse_yaml(
        "hosts:\n  box:\n    connection: local\n    gpus: {type: H100-SXM, count: 2}\n", "inv.yaml"
    )
    specs = {k: load_flagspec(*k) for k in needed_flagspecs(playbook)}
    plan = plan_playbook(
        playbook, parse_inventory(inv_data, inv_lines), resolve_models(playbook, lines), specs, lines=lines
    )
    ports = free_ports(2, 23000 + (500 if flavour == "sglang" else 0))
    procs = []
    urls = []
    try:
        for replica, port in zip(plan.replicas, ports, strict=True):
            log = tmp_path / f"{replica.name}.log"
            procs.append((start(replica, port, log), log))
            urls.append(f"http://127.0.0.1:{port}")
        for (proc, log), url in zip(procs, urls, strict=True):
            wait_healthy(url, proc, log)
        dep = playbook.deployments[0]
        plan_lora = lora_plan(dep)
        assert plan_lora is not None
        registry = Registry()
        registry.add_deployment(dep.name)
        routes = [AdapterRoute(a.name, a.path, a.preload) for a in dep.adapters]
        registry.set_adapters(dep.name, routes, slots=plan_lora.max_loras, flavour=flavour)
        registry.set_endpoints(dep.name, [(r.name, u) for r, u in zip(plan.replicas, urls, strict=True)])
        yield registry, urls, flavour
    finally:
        for proc, _ in procs:
            proc.terminate()
        for proc, _ in procs:
            proc.wait(timeout=10)


def counts(text: str, name: str) -> dict[tuple[str, ...], float]:
    return {
        tuple(v for k, v in sorted(s.labels.items()) if k != "deployment"): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name + "_total"
    }


async def through_gateway(registry: Registry, port: int) -> tuple[list[tuple[str, int, str]], str, list[str]]:
    gateway = Gateway(registry)
    runner = gateway.runner()
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    answers: list[tuple[str, int, str]] = []
    try:
        async with httpx.AsyncClient(timeout=30) as client:

            async def ask(adapter: str) -> None:
                body = {"model": adapter, "prompt": f"a question for {adapter}", "max_tokens": 4}
                r = await client.post(base + "/v1/completions", json=body)
                answers.append((adapter, r.status_code, r.json().get("model", "")))

            for _ in range(ROUNDS):
                await asyncio.gather(*(ask(a) for a in ("sql", "support", "legal")))
            # Bursts for one adapter at a time: least-loaded routing alone would spread each burst over both
            # replicas (and load the adapter on the second); affinity keeps it on the one that has it.
            for adapter in ("support", "legal"):
                await asyncio.gather(*(ask(adapter) for _ in range(BURST)))
            metrics = (await client.get(base + "/metrics")).text
            models = [m["id"] for m in (await client.get(base + "/v1/models")).json()["data"]]
    finally:
        await runner.cleanup()
    return answers, metrics, models


def test_three_adapters_on_one_base_route_with_affinity(fleet: tuple[Registry, list[str], str]) -> None:
    registry, urls, flavour = fleet
    started = time.monotonic()
    answers, metrics, models = asyncio.run(through_gateway(registry, free_ports(1, 23900)[0]))

    assert len(answers) == 3 * ROUNDS + 2 * BURST and {status for _, status, _ in answers} == {200}
    for adapter, _, model in answers:  # each engine answers in its own name for the adapter
        assert model == (adapter if flavour == "vllm" else f"assist:{adapter}")
    assert models == ["assist", "sql", "support", "legal"]

    routed = counts(metrics, "llmctl_gateway_adapter_requests")
    loads = counts(metrics, "llmctl_gateway_adapter_loads")
    # sql is on every replica's command line: never a miss. Each run-time adapter is loaded once, by the
    # first request for it; every later one meets a replica that has it.
    assert routed.get(("sql", "miss"), 0) == 0 and routed[("sql", "hit")] == ROUNDS
    for adapter in ("support", "legal"):
        assert routed[(adapter, "miss")] == 1 and routed[(adapter, "hit")] == ROUNDS + BURST - 1
    assert loads == {("support", "loaded"): 1, ("legal", "loaded"): 1}

    # The replicas say where the run-time adapters went: one each, spread (the tie goes to the replica with
    # fewer adapters), and sql on both.
    held = [
        {m["id"] for m in httpx.get(url + "/v1/models").json()["data"] if m.get("parent") == "assist"}
        for url in urls
    ]
    assert all("sql" in h for h in held)
    assert sorted(len(h) for h in held) == [2, 2] and held[0] != held[1]
    assert time.monotonic() - started < 15
