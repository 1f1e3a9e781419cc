"""The controller and gateway on a local host with emulated engines: real processes, HTTP and store.

Crash -> restart with the reason in the events; controller restart -> adoption, no duplicates; a replica
that keeps failing -> backoff, then given up and marked failed; intents from `llmctl restart` and
`llmctl scale` carried out by the running controller."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
import yaml

from llmctl.state.records import Event, ReplicaRow, events, replicas
from llmctl.state.store import Store

pytestmark = pytest.mark.slow
T = TypeVar("T")
INTERVAL_S = 1.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 30.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


class Env:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.state = tmp_path / "state.db"
        self.gateway_port = free_port()
        self.vars = {
            **os.environ,
            "LLMCTL_STATE": str(self.state),
            "LLMCTL_EMULATOR_TIME_SCALE": "0.01",
            "COLUMNS": "200",
            "NO_COLOR": "1",
        }
        self.inventory = tmp_path / "inv.yaml"
        self.inventory.write_text(
            yaml.safe_dump(
                {
                    "hosts": {
                        "box": {
                            "connection": "local",
                            "workdir": str(tmp_path / "w"),
                            "gpus": {"type": "H100-SXM", "count": 4},
                        }
                    }
                }
            )
        )
        self.controller: subprocess.Popen[str] | None = None

    def llmctl(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "llmctl.cli.main", *args],
            capture_output=True,
            text=True,
            env=self.vars,
            timeout=timeout,
        )

    def playbook(self, **dep: object) -> Path:
        base: dict[str, object] = {
            "name": "chat",
            "model": "meta-llama/Llama-3.1-8B-Instruct",
            "workload": "offline",
            "engine": "emulated",
            "emulate": "vllm",
            "scaling": {"min_replicas": 2},
        }
        path = self.tmp / "pb.yaml"
        path.write_text(yaml.safe_dump({"deployments": [{**base, **dep}]}))
        return path

    def apply(self, playbook: Path) -> None:
        out = self.llmctl("apply", str(playbook), "-i", str(self.inventory), "--yes")
        assert out.returncode == 0, out.stdout + out.stderr

    def start_controller(self, *extra: str) -> None:
        self.controller = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llmctl.cli.main",
                "controller",
                "-i",
                str(self.inventory),
                "--interval",
                str(INTERVAL_S),
                "--gateway-port",
                str(self.gateway_port),
                *extra,
            ],
            env=self.vars,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        wait_for("the controller's gateway", self._gateway_up)

    def _gateway_up(self) -> bool:
        assert self.controller is not None
        if self.controller.poll() is not None:
            raise AssertionError(
                f"controller exited: {self.controller.stdout.read() if self.controller.stdout else ''}"
            )
        try:
            return httpx.get(f"http://127.0.0.1:{self.gateway_port}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop_controller(self) -> str:
        assert self.controller is not None
        self.controller.send_signal(signal.SIGTERM)
        out, _ = self.controller.communicate(timeout=30)
        self.controller = None
        return out

    def rows(self) -> dict[str, ReplicaRow]:
        store = Store(self.state)
        try:
            return {r.name: r for r in replicas(store)}
        finally:
            store.close()

    def events(self) -> list[Event]:
        store = Store(self.state)
        try:
            return events(store, 0, 10_000)
        finally:
            store.close()

    def event(self, subject: str, kind: str, after: float = 0.0) -> Event | None:
        return next(
            (e for e in self.events() if e.subject == subject and e.kind == kind and e.at >= after), None
        )


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    yield e
    if e.controller is not None:
        e.stop_controller()
    e.llmctl("stop", "--all", "-i", str(e.inventory))


def complete(port: int, model: str) -> httpx.Response:
    return httpx.post(
        f"http://127.0.0.1:{port}/v1/completions",
        json={"model": model, "prompt": "hello", "max_tokens": 4},
        timeout=30,
    )


def test_a_killed_replica_is_restarted_within_two_intervals_with_the_reason(env: Env) -> None:
    env.apply(env.playbook())
    env.start_controller()
    victim = env.rows()["chat-0"]
    assert victim.pid is not None
    killed_at = time.time()
    os.killpg(victim.pid, signal.SIGKILL)
    crashed = wait_for("a crash event", lambda: env.event("chat-0", "crashed", killed_at))
    restarted = wait_for("a restart", lambda: env.event("chat-0", "started", killed_at))
    assert restarted.at - killed_at <= 2 * INTERVAL_S, (restarted.at - killed_at, crashed.reason)
    assert f"process exited {victim.pid}" in crashed.reason and "restart 1/5 now" in crashed.reason
    wait_for("chat-0 ready again", lambda: env.rows()["chat-0"].phase == "ready")
    row = env.rows()["chat-0"]
    assert row.restarts == 1 and row.pid != victim.pid
    assert complete(env.gateway_port, "chat").status_code == 200


def test_a_restarted_controller_adopts_replicas_and_starts_none_twice(env: Env) -> None:
    env.apply(env.playbook())
    before = {n: r.pid for n, r in env.rows().items()}
    env.start_controller()
    wait_for("adoption", lambda: env.event("chat-1", "adopted"))
    env.stop_controller()
    env.start_controller()
    wait_for("second adoption", lambda: len([e for e in env.events() if e.kind == "adopted"]) == 4)
    time.sleep(3 * INTERVAL_S)  # let a few ticks pass: nothing may be started in them
    after = {n: r.pid for n, r in env.rows().items()}
    assert after == before
    assert not [
        e for e in env.events() if e.kind in ("started", "crashed") and e.reason.startswith("restart")
    ]
    assert len(engines_under(env.tmp / "w")) == 2
    out = env.llmctl("apply", str(env.playbook()), "-i", str(env.inventory), "--yes")
    assert out.returncode == 0 and "nothing to change" in out.stdout


def test_a_replica_that_keeps_failing_backs_off_then_is_given_up(env: Env) -> None:
    env.apply(env.playbook(scaling={"min_replicas": 1}))
    env.start_controller("--max-restarts", "2")
    row = env.rows()["chat-0"]
    assert row.pid is not None
    # Take the replica's port, then kill it: every restart now fails to bind and exits.
    os.killpg(row.pid, signal.SIGKILL)
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        wait_for("the port to free", lambda: _try_bind(squatter, row.port))
        squatter.listen()
        gave_up = wait_for("giving up", lambda: env.event("chat-0", "gave-up"), timeout=60)
    crashes = [e for e in env.events() if e.subject == "chat-0" and e.kind == "crashed"]
    assert [c.reason.split("; restart ")[-1] for c in crashes] == ["1/2 now", "2/2 in 1 s"]
    assert "restarted 2 times already" in gave_up.reason
    final = env.rows()["chat-0"]
    assert final.phase == "failed" and "address already in use" in final.reason.lower()
    status = env.llmctl("status", "--json")
    assert '"phase": "failed"' in status.stdout


def engines_under(workdir: Path) -> list[int]:
    """Pids of the processes running in a replica directory under `workdir` (start_argv cds there)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and Path(os.readlink(proc / "cwd")).is_relative_to(workdir):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def _try_bind(s: socket.socket, port: int) -> bool:
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        return False
    return True


def test_restart_and_scale_go_through_the_running_controller(env: Env) -> None:
    env.apply(env.playbook(scaling={"min_replicas": 1, "max_replicas": 2}))
    env.start_controller()
    old = env.rows()["chat-0"].pid
    out = env.llmctl("restart", "chat-0", "-i", str(env.inventory))
    assert out.returncode == 0, out.stderr
    assert "asked the running controller" in out.stdout and "restarted: pid" in out.stdout
    wait_for(
        "chat-0 ready", lambda: env.rows()["chat-0"].phase == "ready" and env.rows()["chat-0"].pid != old
    )
    out = env.llmctl("scale", "chat", "2")
    assert out.returncode == 0, out.stderr
    wait_for("two ready replicas", lambda: [r.phase for r in env.rows().values()] == ["ready", "ready"])
    scale = env.event("chat", "scale")
    assert scale is not None and "pinned to 2 by llmctl scale" in scale.reason
    out = env.llmctl("scale", "chat", "7")
    assert out.returncode == 2 and "pick 0..2" in out.stderr
