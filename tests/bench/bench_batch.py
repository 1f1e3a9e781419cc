"""Benchmark (not a test): requests/s and tokens/s through the batch runner against emulated vLLM replicas,
next to the replicas' own modelled maximum throughput (llmctl.perf, same shape) as a ratio.

    .venv/bin/python tests/bench/bench_batch.py [--replicas 2] [--requests 2000] [--max-tokens 128]
        [--time-scale 1.0] [--concurrency-factors 0.25,1,2]

The emulated engines run on the performance model's clock (LLMCTL_EMULATOR_TIME_SCALE), so at time scale 1
a replica can produce what the model says an H100 would, and the ratio says how much of it the batch runner
gets: prefill steps and the gaps between one request ending and the next arriving are what keep it below 1.
Each concurrency factor multiplies the concurrency the runner sizes from the model (1 = as sized).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from llmctl.batch.inputs import mean_tokens
from llmctl.batch.session import BatchSpec, execute, prepare
from llmctl.batch.sizing import ReplicaShape, modelled_tokens_per_s, size_concurrency
from llmctl.control.scrape import parse_engine_metrics
from llmctl.engines.emulator.config import parse_config
from llmctl.engines.emulator.startup import profile_of

MODEL = "meta-llama/Llama-3.1-8B-Instruct"


def engine_args(port: int, max_seqs: int) -> list[str]:
    return [
        MODEL,
        "--served-model-name",
        "bench",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--max-model-len",
        "4096",
        "--max-num-seqs",
        str(max_seqs),
        "--max-num-batched-tokens",
        "16384",
        "--quantization",
        "fp8",
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(port: int, max_seqs: int, scale: float) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LLMCTL_EMULATED_GPU": "H100-SXM", "LLMCTL_EMULATOR_TIME_SCALE": str(scale)}
    argv = [
        sys.executable,
        "-m",
        "llmctl.engines.emulator",
        "--flavour",
        "vllm",
        *engine_args(port, max_seqs),
    ]
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"emulator at {url} exited with {proc.returncode}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"emulator at {url} not ready")
        time.sleep(0.1)


class FillSampler:
    """Samples each replica's running and waiting requests from its /metrics while a run goes on: whether the
    runner keeps the engine batches full is the point of sizing concurrency."""

    def __init__(self, urls: list[str], every_s: float = 0.25) -> None:
        self.urls, self.every_s = urls, every_s
        self.running: list[float] = []
        self.waiting: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        with httpx.Client(timeout=2) as client:
            while not self._stop.wait(self.every_s):
                for url in self.urls:
                    try:
                        sample = parse_engine_metrics(client.get(url + "/metrics").text, "vllm")
                    except (httpx.HTTPError, ValueError):
                        continue
                    if sample.running or sample.waiting:  # skip the idle tail after the last request
                        self.running.append(sample.running)
                        self.waiting.append(sample.waiting)

    def __enter__(self) -> FillSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @staticmethod
    def mean(values: list[float]) -> float:
        return sum(values) / len(values) if values else 0.0


def write_input(path: Path, n: int, prompt_chars: int, max_tokens: int) -> None:
    with open(path, "w") as f:
        for i in range(n):
            body = {
                "model": "x",
                "prompt": (f"doc {i} " * prompt_chars)[:prompt_chars],
                "max_tokens": max_tokens,
            }
            f.write(
                json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/completions", "body": body})
            )
            f.write("\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--prompt-chars", type=int, default=256)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--max-num-seqs", type=int, default=256)
    ap.add_argument("--time-scale", type=float, default=1.0)
    ap.add_argument("--concurrency-factors", default="0.25,1,2")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    ports = [free_port() for _ in range(args.replicas)]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    procs = [start(p, args.max_num_seqs, args.time_scale) for p in ports]
    rows = []
    try:
        for url, proc in zip(urls, procs, strict=True):
            wait_ready(url, proc)
        config = parse_config(
            "vllm", engine_args(ports[0], args.max_num_seqs), {"LLMCTL_EMULATED_GPU": "H100-SXM"}
        )
        shape = ReplicaShape(profile_of(config), config.max_seqs, config.max_model_len)
        shapes = [shape] * args.replicas
        with tempfile.TemporaryDirectory() as tmp:
            inp = Path(tmp) / "in.jsonl"
            write_input(inp, args.requests, args.prompt_chars, args.max_tokens)
            base = BatchSpec(inp, Path(tmp) / "x", "bench", urls=urls, state=Path(tmp) / "s.db")
            tokens = mean_tokens(prepare(base).parsed.requests)
            sized = size_concurrency(shapes, tokens)
            # The modelled ceiling in wall-clock terms: the emulators run the model's time scaled.
            ceiling = modelled_tokens_per_s(shapes, tokens) / max(args.time_scale, 1e-9)
            for factor in (float(f) for f in args.concurrency_factors.split(",")):
                concurrency = max(1, round(sized.concurrency * factor))
                spec = BatchSpec(
                    inp,
                    Path(tmp) / f"out-{factor}.jsonl",
                    "bench",
                    urls=urls,
                    concurrency=concurrency,
                    state=Path(tmp) / "s.db",
                )
                with FillSampler(urls) as fill:
                    summary, _ = asyncio.run(execute(spec, prepare(spec)))
                assert summary.state == "done" and summary.succeeded == args.requests, summary
                rows.append(
                    {
                        "concurrency": concurrency,
                        "factor": factor,
                        "requests_per_s": summary.requests_per_s,
                        "output_tokens_per_s": summary.output_tokens_per_s,
                        "tokens_per_s": summary.tokens_per_s,
                        "modelled_max_output_tokens_per_s": round(ceiling, 1),
                        "ratio": round(summary.output_tokens_per_s / ceiling, 3),
                        "wall_s": summary.wall_s,
                        "mean_running_per_replica": round(fill.mean(fill.running), 1),
                        "mean_waiting_per_replica": round(fill.mean(fill.waiting), 1),
                        "engine_batch_limit": sized.per_replica,
                    }
                )
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
    if args.json:
        print(json.dumps({"sizing": sized.reason, "runs": rows}, indent=2))
        return
    print(
        f"{args.replicas} emulated replica(s) {MODEL} fp8 on H100-SXM, max-num-seqs {args.max_num_seqs}, "
        f"{args.requests} requests of ~{tokens} tokens, time scale {args.time_scale:g}"
    )
    print(f"sized concurrency: {sized.reason}")
    print(
        f"{'concurrency':>11} {'req/s':>8} {'out tok/s':>10} {'modelled max':>12} {'ratio':>6} {'wall s':>7} "
        f"{'running/replica':>15} {'waiting/replica':>15}"
    )
    for r in rows:
        print(
            f"{r['concurrency']:>11} {r['requests_per_s']:>8.1f} {r['output_tokens_per_s']:>10.0f} "
            f"{r['modelled_max_output_tokens_per_s']:>12.0f} {r['ratio']:>6.2f} {r['wall_s']:>7.1f} "
            f"{r['mean_running_per_replica']:>15.1f} {r['mean_waiting_per_replica']:>15.1f}"
        )


if __name__ == "__main__":
    main()
