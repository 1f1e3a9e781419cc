"""A local fleet for tests and rehearsals: a state store, a one-host local inventory, `llmctl` run as a
subprocess against them, and a controller process with its gateway. Used by the integration tests that
exercise the controller end to end with emulated engines."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx
import yaml

from llmctl.state.records import Event, ReplicaRow, events, replicas
from llmctl.state.store import Store

T = TypeVar("T")


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


class LocalFleet:
    def __init__(self, tmp_path: Path, time_scale: float = 0.01) -> None:
        self.tmp = tmp_path
        self.state = tmp_path / "state.db"
        self.gateway_port = free_port()
        self.vars = {
            **os.environ,
            "LLMCTL_STATE": str(self.state),
            "LLMCTL_EMULATOR_TIME_SCALE": str(time_scale),
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
        self.interval_s = 1.0

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
                str(self.interval_s),
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
