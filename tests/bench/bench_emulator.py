"""What the emulated engine sustains at time scale 0 (its own overhead: scheduler, HTTP, streaming) against
the throughput the performance model says the GPU would reach (not run by CI):
`python tests/bench/bench_emulator.py [requests] [concurrency]`.

A ratio above 1 means the emulator keeps up with the modelled engine in real time (time scale 1); below 1,
a rehearsal at that load would run slower than the engine it imitates, and latencies it reports would be
inflated by the emulator's own overhead. The paced lines run the engine at time scales 0.2 and 1 and compare
its wall time with the modelled one: 1.00 means its step clock does not drift from the model."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from llmctl.engines.emulator.config import parse_config
from llmctl.engines.emulator.core import Scheduler
from llmctl.engines.emulator.engine import Engine
from llmctl.engines.emulator.server import EmulatorApp
from llmctl.engines.emulator.startup import prepare
from llmctl.engines.emulator.timing import step_timer

ARGS = [
    "meta-llama/Llama-3.1-8B-Instruct",
    "--served-model-name",
    "chat",
    "--max-model-len",
    "8192",
    "--max-num-seqs",
    "256",
    "--max-num-batched-tokens",
    "16384",
    "--quantization",
    "fp8",
]
PROMPT_CHARS = 2048  # 512 tokens
MAX_TOKENS = 128


def modelled(requests: int) -> tuple[float, int]:
    """Modelled GPU seconds to serve the whole batch of requests, and the scheduler steps it took."""
    config = parse_config("vllm", ARGS, {})
    replica = prepare(config)
    s = Scheduler(
        step_timer(replica.profile, replica.spec),
        replica.kv_capacity,
        config.max_seqs,
        config.max_batched_tokens,
    )
    for i in range(requests):
        s.add(str(i), PROMPT_CHARS // 4, MAX_TOKENS)
    total, steps = 0.0, 0
    while s.has_work:
        total += s.step().duration_s
        steps += 1
    return total, steps


async def emulated(requests: int, concurrency: int, stream: bool) -> float:
    """Wall seconds the emulator at time scale 0 takes to serve the same requests over HTTP."""
    config = parse_config("vllm", ARGS, {"LLMCTL_EMULATOR_TIME_SCALE": "0"})
    replica = prepare(config)
    engine = Engine(config, step_timer(replica.profile, replica.spec), replica.kv_capacity)
    loop = asyncio.create_task(engine.run())
    client: TestClient[Any, Any] = TestClient(TestServer(EmulatorApp(engine).build()))
    await client.start_server()
    todo = iter(range(requests))
    body = {"model": "chat", "prompt": "x" * PROMPT_CHARS, "max_tokens": MAX_TOKENS, "stream": stream}

    async def worker() -> None:
        for _ in todo:
            async with client.post("/v1/completions", json=body) as r:
                await r.read()
                assert r.status == 200

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    await client.close()
    loop.cancel()
    return wall


async def paced(requests: int, scale: float) -> tuple[float, float]:
    """(wall seconds the engine at `scale` takes to serve `requests` submitted at once, straight to its
    loop without HTTP; the modelled seconds at that scale): their ratio is the step clock's drift."""
    config = parse_config("vllm", ARGS, {"LLMCTL_EMULATOR_TIME_SCALE": str(scale)})
    replica = prepare(config)
    engine = Engine(config, step_timer(replica.profile, replica.spec), replica.kv_capacity)
    loop = asyncio.create_task(engine.run())
    await asyncio.sleep(0)
    started = time.perf_counter()
    waits = [engine.submit(PROMPT_CHARS // 4, MAX_TOKENS)[1].queue for _ in range(requests)]

    async def drain(q: asyncio.Queue[int]) -> None:
        while await q.get() >= 0:
            pass

    await asyncio.gather(*(drain(q) for q in waits))
    wall = time.perf_counter() - started
    loop.cancel()
    return wall, modelled(requests)[0] * scale


def main() -> None:
    requests = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    concurrency = int(sys.argv[2]) if len(sys.argv) > 2 else 256
    gpu_s, steps = modelled(requests)
    t0 = time.perf_counter()
    modelled(requests)
    core_s = time.perf_counter() - t0
    tokens = requests * MAX_TOKENS
    print(f"workload: {requests} requests x ({PROMPT_CHARS // 4} prompt + {MAX_TOKENS} output) tokens")
    print(
        f"modelled (8B fp8, H100): {requests / gpu_s:9.1f} req/s {tokens / gpu_s:10.0f} tok/s ({steps} steps)"
    )
    print(f"core alone:              {requests / core_s:9.1f} req/s {tokens / core_s:10.0f} tok/s", end="")
    print(f"  {steps / core_s:8.0f} steps/s  ratio {gpu_s / core_s:6.1f}x")
    for stream in (False, True):
        wall = asyncio.run(emulated(requests, concurrency, stream))
        label = f"HTTP {'stream' if stream else 'plain '} c={concurrency}:"
        print(f"{label:<25}{requests / wall:9.1f} req/s {tokens / wall:10.0f} tok/s", end="")
        print(f"  ratio {gpu_s / wall:6.2f}x of modelled")
    # Paced as a rehearsal runs it: the step clock against the model (1.00 = no drift).
    for scale in (0.2, 1.0):
        for n in (1, 64):
            wall, model_s = asyncio.run(paced(n, scale))
            print(f"paced scale {scale} n={n:<3}: wall {wall:7.3f} s, modelled {model_s:7.3f} s,", end="")
            print(f" wall/model {wall / model_s:5.3f}")


if __name__ == "__main__":
    main()
