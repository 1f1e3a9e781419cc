"""The runtime end to end on real sshd hosts with emulated engines: apply -> every replica ready and answering
OpenAI requests through the gateway (streaming too); a killed replica is restarted by the controller within
two health intervals with the reason; a restarted controller adopts replicas and duplicates none;
re-applying changes nothing; a second apply is refused while one holds the lock.

The hosts' llmctl comes from a venv built once per session (what `llmctl provision` installs, without the
network round trips), linked where provisioning would put it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from llmctl.state.records import replica_keys
from llmctl.state.store import Store
from llmctl.testing.local_fleet import LocalFleet, wait_for
from llmctl.testing.sshd_hosts import SshdHosts

pytestmark = [pytest.mark.sshd, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
INTERVAL_S = 1.0


class SshFleet(LocalFleet):
    def __init__(self, tmp_path: Path, hosts: SshdHosts) -> None:
        super().__init__(tmp_path, time_scale=0.01)
        self.vars = {**hosts.env(self.state), "LLMCTL_EMULATOR_TIME_SCALE": "0.01"}
        self.inventory = hosts.inventory
        self.interval_s = INTERVAL_S
        self.home = hosts.home


@pytest.fixture
def fleet(tmp_path: Path, ssh_hosts: SshdHosts, host_venv: Path) -> Iterator[SshFleet]:
    f = SshFleet(tmp_path, ssh_hosts)
    yield f
    if f.controller is not None:
        f.stop_controller()
    f.llmctl("stop", "--all", "-i", str(f.inventory))


def fleet_dir(fleet: SshFleet) -> Path:
    """Where the replicas of host gpu8 run (its workdir under the test user's home)."""
    return fleet.home / ".llmctl" / "gpu8" / "replicas"


def playbook(tmp_path: Path) -> Path:
    path = tmp_path / "pb.yaml"
    dep = {
        "name": "chat",
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "workload": "offline",
        "engine": "emulated",
        "emulate": "vllm",
        "placement": {"hosts": ["gpu8"]},
        "scaling": {"min_replicas": 2},
    }
    # SGLang takes its key differently (a --config file): one replica of it proves that path.
    sg = {**dep, "name": "sg", "emulate": "sglang", "scaling": {"min_replicas": 1}}
    path.write_text(yaml.safe_dump({"deployments": [dep, sg]}))
    return path


def test_runtime_on_ssh_hosts(fleet: SshFleet, tmp_path: Path) -> None:
    pb = playbook(tmp_path)
    fleet.apply(pb)
    rows = fleet.rows()
    assert {r.phase for r in rows.values()} == {"ready"} and len(rows) == 3
    assert {r.host for r in rows.values()} == {"gpu8"}

    # Served through the gateway, plain and streaming.
    fleet.start_controller()
    base = f"http://127.0.0.1:{fleet.gateway_port}/v1"
    models = httpx.get(f"{base}/models", timeout=10).json()
    assert sorted(m["id"] for m in models["data"]) == ["chat", "sg"]
    chat = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
    answer = httpx.post(f"{base}/chat/completions", json=chat, timeout=30).json()
    assert answer["usage"]["completion_tokens"] == 8
    sg_answer = httpx.post(f"{base}/chat/completions", json={**chat, "model": "sg"}, timeout=30)
    assert sg_answer.status_code == 200, sg_answer.text

    # Replicas on SSH hosts listen beyond loopback, so each answers only its own key, which the gateway
    # holds (above) and no process listing, log or status output shows.
    store = Store(fleet.state)
    keys = replica_keys(store)
    store.close()
    assert set(keys) == set(rows) and len(set(keys.values())) == 3
    for name, probe_path in (("chat-0", "/v1/models"), ("sg-0", "/get_model_info")):
        direct = f"http://{rows[name].address}:{rows[name].port}{probe_path}"
        assert httpx.get(direct, timeout=10).status_code == 401
        auth = {"Authorization": f"Bearer {keys[name]}"}
        assert httpx.get(direct, headers=auth, timeout=10).status_code == 200
    listing = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    logs = "".join(p.read_text() for p in fleet_dir(fleet).rglob("log"))
    shown = fleet.llmctl("status", "--json", "-i", str(fleet.inventory)).stdout + json.dumps(
        [e.reason for e in fleet.events()]
    )
    for key in keys.values():
        assert key not in listing and key not in logs and key not in shown
    with httpx.stream("POST", f"{base}/chat/completions", json={**chat, "stream": True}, timeout=30) as r:
        chunks = [line for line in r.iter_lines() if line.startswith("data: ") and line != "data: [DONE]"]
    assert len(chunks) >= 8 and all("choices" in json.loads(c[6:]) for c in chunks)

    # Kill one replica's process on its host: restarted within two intervals, with the reason.
    victim = rows["chat-0"]
    assert victim.pid is not None
    killed_at = time.time()
    os.killpg(victim.pid, signal.SIGKILL)  # the sshd hosts share this kernel: the pid is the host's pid
    restarted = wait_for("a restart", lambda: fleet.event("chat-0", "started", killed_at))
    crashed = fleet.event("chat-0", "crashed", killed_at)
    assert crashed is not None and f"process exited {victim.pid}" in crashed.reason
    assert restarted.at - killed_at <= 2 * INTERVAL_S
    wait_for("chat-0 ready again", lambda: fleet.rows()["chat-0"].phase == "ready")

    # Stop the controller, kill nothing, start it again: adopted, none started twice.
    before = {n: r.pid for n, r in fleet.rows().items()}
    fleet.stop_controller()
    restart_at = time.time()
    fleet.start_controller()
    wait_for(
        "adoption",
        lambda: len([e for e in fleet.events() if e.kind == "adopted" and e.at >= restart_at]) == 3,
    )
    time.sleep(3 * INTERVAL_S)  # several ticks: none may start anything
    assert {n: r.pid for n, r in fleet.rows().items()} == before
    assert not [e for e in fleet.events() if e.kind == "started" and e.at >= restart_at]
    fleet.stop_controller()

    # Re-applying the same playbook changes nothing.
    out = fleet.llmctl("apply", str(pb), "-i", str(fleet.inventory), "--yes")
    assert out.returncode == 0 and "nothing to change" in out.stdout

    # A second apply while one holds the lock is refused, and changes nothing.
    hold = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys\nfrom llmctl.state.store import Store\nfrom llmctl.state.records import writer_lock\n"
            f"with writer_lock(Store({str(fleet.state)!r})):\n"
            "    print('held', flush=True)\n    sys.stdin.readline()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert hold.stdout is not None and hold.stdin is not None and hold.stdout.readline().strip() == "held"
    out = fleet.llmctl("apply", str(pb), "-i", str(fleet.inventory), "--yes")
    hold.stdin.write("\n")
    hold.stdin.flush()
    hold.wait(timeout=10)
    assert out.returncode == 2 and "another llmctl apply is running" in out.stderr
    assert {n: r.pid for n, r in fleet.rows().items()} == before
