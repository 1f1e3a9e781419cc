"""Gateway overhead: the same open-loop load straight to the replicas, through `llmctl gateway`, and through
LiteLLM's proxy (when installed: LITELLM=/path/to/litellm), against the same two emulated replicas.

Reports added p50/p99 latency against direct-to-replica at a fixed request rate (non-streaming, short
answers, so the proxy's cost is not hidden behind generation time), the highest rate each proxy sustains,
and streaming chunk throughput. The emulated engines run at a tiny time scale so they are not the bottleneck.

    .venv/bin/python tests/bench/bench_gateway.py [--rate 300] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import numpy as np
import yaml

from llmctl.testing.local_fleet import LocalFleet, free_port, wait_for


async def open_loop(
    url: str, rate: float, seconds: float, stream: bool = False
) -> tuple[list[float], int, int]:
    """Requests at a fixed rate; latencies of successes, failures, streamed chunks."""
    body = {"model": "chat", "prompt": "hi", "max_tokens": 64 if stream else 2, "stream": stream}
    headers = {"Authorization": "Bearer sk-bench"}  # LiteLLM insists on a master key
    lat: list[float] = []
    failures = chunks = 0
    n = int(rate * seconds)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter()

        async def one(i: int) -> None:
            nonlocal failures, chunks
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            t0 = time.perf_counter()
            try:
                async with session.post(url, json=body, headers=headers) as r:
                    if stream:
                        async for line in r.content:
                            if line.startswith(b"data: ") and not line.startswith(b"data: [DONE]"):
                                chunks += 1
                    else:
                        await r.read()
                    if r.status != 200:
                        failures += 1
                        return
            except aiohttp.ClientError:
                failures += 1
                return
            lat.append(time.perf_counter() - t0)

        await asyncio.gather(*(one(i) for i in range(n)))
    return lat, failures, chunks


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000 if values else float("nan")


def start_litellm(litellm: str, replicas: list[int], port: int, workdir: Path) -> subprocess.Popen[bytes]:
    config = workdir / "litellm.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model_list": [
                    {
                        "model_name": "chat",
                        "litellm_params": {
                            "model": "openai/chat",
                            "api_base": f"http://127.0.0.1:{p}/v1",
                            "api_key": "none",
                        },
                    }
                    for p in replicas
                ],
                "litellm_settings": {"set_verbose": False, "drop_params": True},
                "router_settings": {"routing_strategy": "least-busy"},
                "general_settings": {"master_key": "sk-bench"},
            }
        )
    )
    return subprocess.Popen(
        [litellm, "--config", str(config), "--port", str(port), "--num_workers", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=300.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="llmctl-bench-gw-"))
    fleet = LocalFleet(tmp, time_scale=0.0001)
    fleet.apply(fleet.playbook())
    ports = sorted(r.port for r in fleet.rows().values())
    gw_port = free_port()
    gateway = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llmctl.cli.main",
            "gateway",
            "-i",
            str(fleet.inventory),
            "--port",
            str(gw_port),
        ],
        env=fleet.vars,
        stdout=subprocess.DEVNULL,
    )
    procs = [gateway]
    targets = {
        "direct": f"http://127.0.0.1:{ports[0]}/v1/completions",
        "llmctl gateway": f"http://127.0.0.1:{gw_port}/v1/completions",
    }
    litellm = os.environ.get("LITELLM")
    if litellm:
        ll_port = free_port()
        procs.append(start_litellm(litellm, ports, ll_port, tmp))
        targets["LiteLLM proxy"] = f"http://127.0.0.1:{ll_port}/v1/completions"
    try:
        import httpx

        for name, url in targets.items():
            health = url.replace(
                "/v1/completions", "/health/liveliness" if name == "LiteLLM proxy" else "/health"
            )
            wait_for(f"{name} up", lambda h=health: _ok(httpx, h), timeout=120)
            asyncio.run(open_loop(url, 50, 1))  # warm up connections and caches
        print(
            f"open loop {args.rate:g} req/s for {args.seconds:g} s, 2-token answers; "
            f"{os.cpu_count()} cores shared by client, proxy and 2 emulated replicas"
        )
        base: dict[str, float] = {}
        for name, url in targets.items():
            lat, fail, _ = asyncio.run(open_loop(url, args.rate, args.seconds))
            p50, p99 = pct(lat, 50), pct(lat, 99)
            if name == "direct":
                base = {"p50": p50, "p99": p99}
            print(
                f"  {name:<15} p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  added p50 {p50 - base['p50']:+6.2f} ms  "
                f"added p99 {p99 - base['p99']:+7.2f} ms  failures {fail}"
            )
        print("highest sustained rate (p99 < 100 ms, no failures), stepping up:")
        for name, url in targets.items():
            best = 0.0
            for rate in (200, 400, 600, 800, 1000, 1300, 1600, 2000):
                lat, fail, _ = asyncio.run(open_loop(url, rate, 4))
                if fail or pct(lat, 99) > 100:
                    break
                best = rate
            print(f"  {name:<15} {best:g} req/s")
        print("streaming, 64 tokens per request at 50 req/s:")
        for name, url in targets.items():
            t0 = time.perf_counter()
            lat, fail, chunks = asyncio.run(open_loop(url, 50, 5, stream=True))
            wall = time.perf_counter() - t0
            print(
                f"  {name:<15} {chunks / wall:8.0f} chunks/s  e2e p50 {pct(lat, 50):6.1f} ms  failures {fail}"
            )
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=30)
        fleet.llmctl("stop", "--all", "-i", str(fleet.inventory))


def _ok(httpx_mod: object, url: str) -> bool:
    try:
        return bool(httpx_mod.get(url, timeout=1).status_code == 200)  # type: ignore[attr-defined]
    except Exception:
        return False


if __name__ == "__main__":
    main()
