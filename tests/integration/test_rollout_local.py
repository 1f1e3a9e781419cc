"""`llmctl apply/status/stop` on a local host with emulated engines: real processes, real HTTP, real store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    e = {
        **os.environ,
        "LLMCTL_STATE": str(tmp_path / "state.db"),
        "LLMCTL_EMULATOR_TIME_SCALE": "0.01",
        "COLUMNS": "200",
        "NO_COLOR": "1",
    }
    inventory = tmp_path / "inv.yaml"
    inventory.write_text(
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
    e["INV"] = str(inventory)
    yield e
    llmctl(e, "stop", "--all", "-i", e["INV"])  # leave no engine running, whatever the test did


def llmctl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmctl.cli.main", *args], capture_output=True, text=True, env=env, timeout=120
    )


def playbook(tmp_path: Path, **engine_args: object) -> Path:
    path = tmp_path / "pb.yaml"
    dep: dict[str, object] = {
        "name": "chat",
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "workload": "online",
        "engine": "emulated",
        "emulate": "vllm",
        "scaling": {"min_replicas": 2},
    }
    if engine_args:
        dep["engine_args"] = engine_args
    path.write_text(yaml.safe_dump({"deployments": [dep]}))
    return path


def status(env: dict[str, str]) -> list[dict[str, object]]:
    out = llmctl(env, "status", "--json")
    assert out.returncode == 0, out.stderr
    rows: list[dict[str, object]] = json.loads(out.stdout)
    return rows


def test_apply_serves_reapply_is_a_no_op_and_stop_ends_it(env: dict[str, str], tmp_path: Path) -> None:
    pb = playbook(tmp_path)
    out = llmctl(env, "apply", str(pb), "-i", env["INV"], "--yes")
    assert out.returncode == 0, out.stdout + out.stderr
    rows = status(env)
    assert [(r["name"], r["phase"]) for r in rows] == [("chat-0", "ready"), ("chat-1", "ready")]
    for r in rows:
        with httpx.stream(
            "POST",
            f"http://127.0.0.1:{r['port']}/v1/completions",
            timeout=30,
            json={"model": "chat", "prompt": "hi", "max_tokens": 3, "stream": True},
        ) as resp:
            lines = [line for line in resp.iter_lines() if line.startswith("data: ")]
        assert lines[-1] == "data: [DONE]" and len(lines) == 4
    again = llmctl(env, "apply", str(pb), "-i", env["INV"], "--yes")
    assert again.returncode == 0 and "nothing to change" in again.stdout
    assert [r["pid"] for r in status(env)] == [
        r["pid"] for r in rows
    ]  # nothing restarted, nothing duplicated

    changed = playbook(tmp_path, **{"--max-num-seqs": 32})
    out = llmctl(env, "apply", str(changed), "-i", env["INV"], "--yes")
    assert out.returncode == 0, out.stdout + out.stderr
    after = status(env)
    assert all(r["phase"] == "ready" for r in after) and {r["pid"] for r in after}.isdisjoint(
        {r["pid"] for r in rows}
    )

    stop = llmctl(env, "stop", "chat", "-i", env["INV"])
    assert stop.returncode == 0 and status(env) == []
    for r in after:
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{r['port']}/health", timeout=2)


@pytest.mark.parametrize(
    ("utilisation", "engine_line"),
    [
        # Weights fit and leave some KV room, but not one 8192-token sequence.
        (0.085, "estimated maximum model length"),
        # Weights fit and leave no KV room at all.
        (0.05, "No available memory for the cache blocks"),
    ],
)
def test_a_replica_that_cannot_start_fails_the_apply_with_the_engines_line(
    env: dict[str, str], tmp_path: Path, utilisation: float, engine_line: str
) -> None:
    pb = playbook(tmp_path, **{"--gpu-memory-utilization": utilisation})
    out = llmctl(env, "apply", str(pb), "-i", env["INV"], "--yes")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert engine_line in out.stdout and "the apply did not complete" in out.stderr
    # The apply reports the first crash; the replicas wait out their restart budget (a controller goes on).
    assert {r["phase"] for r in status(env)} <= {"backoff", "starting"}


def test_second_apply_is_refused_while_the_first_holds_the_lock(env: dict[str, str], tmp_path: Path) -> None:
    hold = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys\nfrom llmctl.state.store import Store\n"
            "from llmctl.state.records import writer_lock\n"
            f"with writer_lock(Store({env['LLMCTL_STATE']!r})):\n"
            "    print('held', flush=True)\n    sys.stdin.readline()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert hold.stdout is not None and hold.stdin is not None and hold.stdout.readline().strip() == "held"
    out = llmctl(env, "apply", str(playbook(tmp_path)), "-i", env["INV"], "--yes")
    hold.stdin.write("\n")
    hold.stdin.flush()
    hold.wait(timeout=10)
    assert out.returncode == 2 and "another llmctl apply is running" in out.stderr and status(env) == []


def test_a_changed_spec_rolls_with_a_surge_replica_so_capacity_never_drops(
    env: dict[str, str], tmp_path: Path
) -> None:
    def pb(seqs: int) -> Path:
        path = tmp_path / "surge.yaml"
        dep = {
            "name": "chat",
            "model": "meta-llama/Llama-3.1-8B-Instruct",
            "workload": "offline",
            "engine": "emulated",
            "emulate": "vllm",
            "scaling": {"min_replicas": 2, "max_replicas": 3},
            "engine_args": {"--max-num-seqs": seqs},
        }
        path.write_text(yaml.safe_dump({"deployments": [dep]}))
        return path

    assert llmctl(env, "apply", str(pb(64)), "-i", env["INV"], "--yes").returncode == 0
    first = {r["name"]: r["pid"] for r in status(env)}
    assert sorted(first) == ["chat-0", "chat-1"]
    out = llmctl(env, "events", "--json", "-n", "1000")
    seen = len(json.loads(out.stdout))
    out = llmctl(env, "apply", str(pb(32)), "-i", env["INV"], "--yes")
    assert out.returncode == 0, out.stdout + out.stderr
    rows = {r["name"]: r for r in status(env)}
    assert sorted(rows) == ["chat-0", "chat-1"] and {r["phase"] for r in rows.values()} == {"ready"}
    assert all(rows[n]["pid"] != first[n] for n in rows)  # both replaced
    roll = json.loads(llmctl(env, "events", "--json", "-n", "1000").stdout)[seen:]
    ready = {"chat-0", "chat-1"}
    fewest = len(ready)
    for e in roll:
        if e["kind"] == "ready":
            ready.add(e["subject"])
        elif e["kind"] == "stopped":
            ready.discard(e["subject"])
            fewest = min(fewest, len(ready))
    assert fewest == 2, [(e["subject"], e["kind"]) for e in roll]
    # One surge for the whole roll: it starts before chat-0 drains and goes once nothing is left to replace.
    surges = [e for e in roll if e["subject"] == "chat-2" and e["kind"] in ("started", "stopped")]
    assert [e["kind"] for e in surges] == ["started", "stopped"], surges
    assert "surge while chat-0 is replaced" in surges[0]["reason"]
    assert "surge no longer needed" in surges[1]["reason"]
