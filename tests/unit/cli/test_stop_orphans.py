"""`llmctl stop` with an inventory that lacks a replica's host: the replica is not forgotten (its engine may
still run and hold its port), and the stop says so at once instead of waiting out its timeout. Old code
printed "absent" and deleted the row."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from llmctl.spec.deployment import DesiredDeployment, ScalingSpec, Slot
from llmctl.state.desired import put_desired
from llmctl.state.records import ReplicaRow, put_replica, replicas
from llmctl.state.store import Store


def test_stop_with_the_wrong_inventory_keeps_the_replica_and_says_why(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    slot = Slot("chat-0", "gpu-7", "10.0.0.7", (0,), 8000, ("engine",), {}, "h", "vllm")
    put_desired(
        store,
        DesiredDeployment(
            "chat", "online", "vllm", "least_outstanding", None, ScalingSpec(1, 1, "in_flight", 4, 60),
            30.0, 2.0, False, 1, (slot,),
        ),
    )  # fmt: skip
    put_replica(
        store, ReplicaRow("chat-0", "chat", "gpu-7", "10.0.0.7", "0", 8000, 4242, "ready", "h", 0.0, 0, "")
    )
    inv = tmp_path / "other.yaml"
    inv.write_text(
        yaml.safe_dump({"hosts": {"box": {"connection": "local", "workdir": str(tmp_path / "w")}}})
    )
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "llmctl.cli.main", "stop", "chat", "-i", str(inv), "--state", str(store.path)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
        timeout=120,
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stdout + out.stderr
    assert "chat-0: not stopped, host 'gpu-7' is not in the inventory" in out.stdout, out.stdout
    assert time.monotonic() - started < 60  # said at once, not after the 300 s stop timeout
    [kept] = replicas(store)
    assert kept.phase == "orphaned" and kept.pid == 4242
