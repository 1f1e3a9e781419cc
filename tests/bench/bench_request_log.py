"""What the request log costs the gateway: the same open-loop load through a gateway without the log and
with it, against one emulated replica at time scale 0 (answers at once, so the proxy's own cost shows).
Runs alternate (off, on, off, on, ...) so a machine's drifting load lands on both; reports p50/p99 latency
per configuration, the gateway's added p50 against going straight to the replica, their ratio, and the
gateway process's CPU time per request (from /proc: steadier than latency on a shared machine).

    .venv/bin/python tests/bench/bench_request_log.py [--rate 150] [--seconds 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from llmctl.testing.local_fleet import free_port, wait_for

sys.path.insert(0, str(Path(__file__).parent))
from bench_gateway import open_loop  # the same load generator as the gateway benchmark


def serve(port: int, upstream: str, log: str) -> None:
    """The gateway alone, in this process (a subprocess of the benchmark)."""
    from aiohttp import web

    from llmctl.gateway.registry import Registry
    from llmctl.gateway.request_log import RequestLog
    from llmctl.gateway.server import Gateway

    reg = Registry()
    reg.add_deployment("chat")
    reg.set_endpoints("chat", [("chat-0", upstream)])
    gw = Gateway(reg, request_log=RequestLog(Path(log)) if log != "none" else None)

    async def main() -> None:
        runner = gw.runner()
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await asyncio.Event().wait()

    asyncio.run(main())


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def micro(n: int = 5000) -> None:
    """The log's own CPU per request, apart from the noise of a shared machine: what the request path
    does (tap, one feed per chunk of a 64-token stream, done) and what the writer thread does per line."""
    import timeit

    from llmctl.gateway.request_log import RequestLog, RequestTap, request_record

    class Req(dict[object, object]):
        pass

    tmp = Path(tempfile.mkdtemp(prefix="bench-request-log-"))
    log = RequestLog(tmp / "r.jsonl")
    chunk = b'data: {"id":"cmpl-1","object":"text_completion","choices":[{"index":0,"text":" the"}]}\n\n'
    body = {"model": "chat", "prompt": "hi " * 50, "stream": True}

    def request_path() -> None:
        r = Req()
        log.tap(r, "chat", body)  # type: ignore[arg-type]
        t = r[next(iter(r))]
        assert isinstance(t, RequestTap)
        for _ in range(64):
            t.feed(chunk)
        t.finish(200)

    path_s = timeit.timeit(request_path, number=n) / n
    t = RequestTap(0.0, 0.0, "chat", True, 150)
    for _ in range(64):
        t.feed(chunk)
    t.finish(200)
    line_s = timeit.timeit(lambda: json.dumps(asdict(request_record(t))), number=n) / n
    for _ in range(n):
        log.put(t)
    started = time.perf_counter()
    log.close()
    print(f"request path: {path_s * 1e6:.1f} us per streamed request (64 chunks); "
          f"writer: {line_s * 1e6:.1f} us to format a line, {n} lines written in "
          f"{time.perf_counter() - started:.2f} s after the last put")  # fmt: skip


def up(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url + "/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=150.0)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--micro", action="store_true", help="only the log's own CPU per request")
    args = ap.parse_args()
    micro()
    if args.micro:
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench-request-log-"))
    env = {**os.environ, "LLMCTL_EMULATOR_TIME_SCALE": "0"}
    rport = free_port()
    replica = subprocess.Popen(
        [sys.executable, "-m", "llmctl.engines.emulator", "--flavour", "vllm", "--model",
         "meta-llama/Llama-3.1-8B-Instruct", "--port", str(rport), "--served-model-name", "chat"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    upstream = f"http://127.0.0.1:{rport}"
    gateways: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
    try:
        wait_for("the replica", lambda: up(upstream), timeout=60)
        for name, log in (("off", "none"), ("on", str(tmp / "state.requests.jsonl"))):
            port = free_port()
            proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port), upstream, log])
            url = f"http://127.0.0.1:{port}"
            gateways[name] = (proc, url)
            wait_for(f"gateway {name}", lambda: up(url), timeout=30)  # noqa: B023  (called at once)
        lat: dict[str, list[float]] = {"direct": [], "off": [], "on": []}
        cpu: dict[str, float] = {"off": 0.0, "on": 0.0}
        for _ in range(args.rounds):
            for name in ("direct", "off", "on"):
                url = upstream if name == "direct" else gateways[name][1]
                before = cpu_s(gateways[name][0].pid) if name in cpu else 0.0
                for stream in (False, True):
                    got, failures, _ = asyncio.run(
                        open_loop(f"{url}/v1/completions", args.rate, args.seconds / 2, stream)
                    )
                    assert failures == 0, f"{name}: {failures} failures"
                    lat[name] += got
                if name in cpu:
                    cpu[name] += cpu_s(gateways[name][0].pid) - before
                time.sleep(0.5)
        p = {n: (np.percentile(v, 50) * 1000, np.percentile(v, 99) * 1000) for n, v in lat.items()}
        for n, (p50, p99) in p.items():
            print(f"{n:>6}: {len(lat[n])} requests, p50 {p50:.2f} ms, p99 {p99:.2f} ms")
        added_off, added_on = p["off"][0] - p["direct"][0], p["on"][0] - p["direct"][0]
        lines = sum(1 for _ in (tmp / "state.requests.jsonl").open())
        print(f"gateway adds p50 {added_off:.2f} ms without the log, {added_on:.2f} ms with it")
        print(
            f"overhead ratio with/without: {added_on / added_off:.2f}; p50 ratio {p['on'][0] / p['off'][0]:.3f}"
        )
        per = {n: cpu[n] / len(lat[n]) * 1e6 for n in cpu}
        print(f"gateway CPU per request: {per['off']:.0f} us without the log, {per['on']:.0f} us with it")
        print(f"CPU ratio with/without: {per['on'] / per['off']:.3f}")
        print(f"log lines written: {lines}")
    finally:
        for proc, _ in gateways.values():
            proc.terminate()
            proc.wait(10)
        replica.terminate()
        replica.wait(10)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    else:
        main()
