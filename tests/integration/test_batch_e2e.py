"""Batch jobs end to end against emulated vLLM replicas (real processes, real HTTP): 10,000 requests while
replicas are SIGKILLed and restarted on the same port, and the job itself is interrupted (SIGINT, SIGTERM)
and crashes (SIGKILL), each triggered by the number of results written, never by sleeps. At the end the
output has exactly one successful line per custom_id. Also: a detached job followed with `status`,
cancelled with `cancel`, and resumed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from llmctl.batch.outfile import count_lines
from llmctl.cli.batch import app

SCALE = "0.0001"
MODEL = "meta-llama/Llama-3.1-8B-Instruct"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Replica:
    """One emulated vLLM replica process on a fixed port, which can be killed and started again."""

    def __init__(self, port: int, scale: str = SCALE) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.scale = scale
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait: bool = True) -> None:
        argv = [sys.executable, "-m", "llmctl.engines.emulator", "--flavour", "vllm", MODEL]
        argv += ["--served-model-name", "chat", "--host", "127.0.0.1", "--port", str(self.port)]
        argv += ["--max-model-len", "2048", "--max-num-seqs", "64"]
        env = {**os.environ, "LLMCTL_EMULATED_GPU": "H100-SXM", "LLMCTL_EMULATOR_TIME_SCALE": self.scale}
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            assert self.proc is not None and self.proc.poll() is None, "emulator exited"
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "emulator did not become ready"
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def replicas() -> Iterator[list[Replica]]:
    started = [Replica(free_port()) for _ in range(3)]
    try:
        for r in started:
            r.start(wait=False)
        for r in started:
            r.wait_ready()
        yield started
    finally:
        for r in started:
            r.kill()


def write_input(path: Path, n: int) -> None:
    with open(path, "w") as f:
        for i in range(n):
            body: dict[str, object]
            if i % 2:
                url, body = "/v1/chat/completions", {"messages": [{"role": "user", "content": f"q{i} " * 4}]}
            else:
                url, body = "/v1/completions", {"prompt": f"p{i} " * 4}
            body |= {"model": "gpt-4o-mini", "max_tokens": 2 + i % 3}
            f.write(json.dumps({"custom_id": f"req-{i}", "method": "POST", "url": url, "body": body}) + "\n")


def start_job(inp: Path, out: Path, urls: list[str], state: Path) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "llmctl.cli.batch", "run", str(inp), "-d", "chat", "-o", str(out)]
    for u in urls:
        argv += ["--url", u]
    argv += ["--concurrency", "96", "--grace", "1", "--json", "--state", str(state)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def drive(
    job: subprocess.Popen[str],
    out: Path,
    actions: list[tuple[int, Callable[[], None]]],
    timeout_s: float = 60,
) -> tuple[int, str, str]:
    """Run each action once the output holds its number of lines; then wait for the job to exit."""
    pending = sorted(actions, key=lambda a: a[0])
    deadline = time.monotonic() + timeout_s
    while pending and job.poll() is None:
        if count_lines(out) >= pending[0][0]:
            pending.pop(0)[1]()
            continue
        assert time.monotonic() < deadline, f"stuck at {count_lines(out)} lines"
        time.sleep(0.02)  # polling the output's progress
    assert not pending, f"job exited before {pending[0][0]} lines: {job.communicate()[1][-2000:]}"
    stdout, stderr = job.communicate(timeout=timeout_s)
    return job.returncode, stdout, stderr


@pytest.mark.slow
def test_ten_thousand_requests_survive_replica_kills_and_interruptions(
    tmp_path: Path, replicas: list[Replica]
) -> None:
    n = 10_000
    inp, out, state = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "state.db"
    write_input(inp, n)
    urls = [r.url for r in replicas]
    a, b, _ = replicas

    def restart(r: Replica) -> Callable[[], None]:
        return lambda: r.start(wait=False)

    # Run 1: replica a is killed at 1,500 results and back at 3,000; the job gets SIGINT at 4,500.
    job = start_job(inp, out, urls, state)
    code, stdout, stderr = drive(
        job, out, [(1500, a.kill), (3000, restart(a)), (4500, lambda: job.send_signal(signal.SIGINT))]
    )
    first = json.loads(stdout)
    assert code == 130, stdout + stderr[-2000:]
    assert first["state"] == "interrupted" and 4500 <= first["sent"] < n
    assert first["retries"] + first["unavailable"] > 0  # the kill was noticed and worked around
    assert count_lines(out) == first["sent"]

    # Run 2: resumes; replica b dies at 6,000; SIGTERM at 7,000.
    job = start_job(inp, out, urls, state)
    code, stdout, stderr = drive(job, out, [(6000, b.kill), (7000, lambda: job.send_signal(signal.SIGTERM))])
    second = json.loads(stdout)
    assert code == 143, stderr[-2000:]
    assert second["already_done"] == first["sent"] and second["state"] == "interrupted"

    # Run 3: crashes outright (SIGKILL: no clean-up at all) at 8,000; b comes back before that.
    job = start_job(inp, out, urls, state)
    code, _, _ = drive(job, out, [(7500, restart(b)), (8000, job.kill)])
    assert code == -signal.SIGKILL

    # Run 4: finishes.
    job = start_job(inp, out, urls, state)
    code, stdout, stderr = drive(job, out, [])
    last = json.loads(stdout)
    assert code == 0, stderr[-2000:]
    assert last["state"] == "done" and last["unfinished"] == 0

    lines = [json.loads(x) for x in out.read_text().splitlines()]
    seen = Counter(line["custom_id"] for line in lines)
    assert len(lines) == n and set(seen) == {f"req-{i}" for i in range(n)} and max(seen.values()) == 1
    assert all(line["error"] is None and line["response"]["status_code"] == 200 for line in lines)
    assert all(line["response"]["body"]["model"] == "chat" for line in lines)
    usage = [line["response"]["body"]["usage"]["completion_tokens"] for line in lines]
    assert sum(usage) == sum(2 + i % 3 for i in range(n))


@pytest.mark.slow
def test_detached_job_status_cancel_and_resume(tmp_path: Path) -> None:
    replica = Replica(free_port(), scale="0.002")  # slower, so the job is still running when cancelled
    replica.start()
    try:
        inp, out, state = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "state.db"
        write_input(inp, 3000)
        cli = CliRunner()
        args = ["run", str(inp), "-d", "chat", "-o", str(out), "--url", replica.url, "--state", str(state)]
        started = cli.invoke(app, [*args, "--concurrency", "32", "--detach", "--json"])
        assert started.exit_code == 0, started.output
        job = json.loads(started.stdout)["job"]
        deadline = time.monotonic() + 30
        while count_lines(out) < 300:
            assert time.monotonic() < deadline, Path(json.loads(started.stdout)["log"]).read_text()
            time.sleep(0.05)
        view = json.loads(cli.invoke(app, ["status", job, "--state", str(state), "--json"]).stdout)
        assert view["state"] == "running" and view["results_in_output"] >= 300
        cancelled = cli.invoke(app, ["cancel", job, "--state", str(state)])
        assert cancelled.exit_code == 0 and "cancelled" in cancelled.stdout, cancelled.output
        view = json.loads(cli.invoke(app, ["status", job, "--state", str(state), "--json"]).stdout)
        assert view["state"] == "cancelled" and view["summary"]["state"] == "interrupted"
        assert 300 <= view["results_in_output"] < 3000 == view["total"]
        resumed = cli.invoke(app, [*args, "--json"])
        assert resumed.exit_code == 0, resumed.output
        assert json.loads(resumed.stdout)["already_done"] == view["results_in_output"]
        seen = Counter(json.loads(x)["custom_id"] for x in out.read_text().splitlines())
        assert len(seen) == 3000 and max(seen.values()) == 1
    finally:
        replica.kill()
