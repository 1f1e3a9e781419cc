"""The SQLite state store: migrations, records, events, and the one-writer lock across processes."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from llmctl.errors import LlmctlError
from llmctl.state.migrations import MIGRATIONS
from llmctl.state.records import (
    ReplicaRow,
    delete_replica,
    events,
    put_deployment,
    put_replica,
    put_replica_key,
    record_event,
    replica_key,
    replica_keys,
    replicas,
    writer_lock,
)
from llmctl.state.store import Store


def test_migrations_run_once_and_wal_is_on(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    assert store.schema_version == len(MIGRATIONS)
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()
    again = Store(tmp_path / "s.db")  # re-opening runs nothing twice (tables exist; would raise)
    assert again.schema_version == len(MIGRATIONS)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "s.db")
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    db.close()
    with pytest.raises(LlmctlError, match="newer than this llmctl knows"):
        Store(tmp_path / "s.db")


def test_records_and_events(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    put_deployment(store, "chat", {"replicas": 1}, "h1")
    row = ReplicaRow("chat-0", "chat", "local", "127.0.0.1", "0,1", 30000, 123, "ready", "h1", 1.0, 0, "")
    put_replica(store, row)
    assert replicas(store) == [row] and replicas(store, "other") == []
    record_event(store, "chat-0", "started", "apply: new replica")
    record_event(store, "chat-0", "ready", "health 200 after 1.2 s")
    got = events(store)
    assert [e.kind for e in got] == ["started", "ready"] and events(store, since_id=got[0].id)[
        0
    ].kind == "ready"


def test_second_writer_is_refused_while_the_first_holds_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = Store(path)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom llmctl.state.store import Store\n"
            "from llmctl.state.records import writer_lock\n"
            f"s = Store({str(path)!r})\nwith writer_lock(s):\n"
            "    print('held', flush=True)\n    sys.stdin.readline()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdin is not None
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(LlmctlError, match="another llmctl apply is running"), writer_lock(store):
        pass
    holder.stdin.write("\n")
    holder.stdin.flush()
    holder.wait(timeout=10)
    with writer_lock(store):  # released: this one gets it
        pass


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    store.db.execute(
        "INSERT INTO locks VALUES ('apply', ?, ?, 0)", (f"{socket.gethostname()}:x", int(dead.stdout))
    )
    with writer_lock(store):
        pass


def test_the_desired_state_round_trips_typed_with_each_slots_shape(tmp_path: Path) -> None:
    import yaml

    from llmctl.config.inventory import load_inventory
    from llmctl.planning import plan_and_desired
    from llmctl.state.desired import load_desired, put_desired

    inv = tmp_path / "inv.yaml"
    inv.write_text(
        yaml.safe_dump({"hosts": {"box": {"connection": "local", "gpus": {"type": "H100-SXM", "count": 8}}}})
    )
    pb = tmp_path / "pb.yaml"
    dep = {"name": "chat", "model": "meta-llama/Llama-3.1-8B-Instruct", "workload": "online", "engine": "emulated",
           "scaling": {"min_replicas": 1, "max_replicas": 3}}  # fmt: skip
    pb.write_text(yaml.safe_dump({"deployments": [dep]}))
    _plan, [desired] = plan_and_desired(pb, load_inventory(inv))
    store = Store(tmp_path / "s.db")
    put_desired(store, desired)
    back = load_desired(store)["chat"]
    assert back == desired
    shape = back.slots[0].shape
    assert shape is not None and shape.speculative_draft and shape.model_spec.num_layers == 32


def test_the_store_holding_replica_keys_is_private_and_keys_go_with_their_replica(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    sqlite3.connect(path).close()
    path.chmod(0o644)  # as an older llmctl (or a umask of 022) left it
    store = Store(path)
    assert path.stat().st_mode & 0o777 == 0o600
    put_replica_key(store, "chat-0", "k0")
    put_replica_key(store, "chat-1", "k1")
    assert replica_key(store, "chat-0") == "k0" and replica_keys(store) == {"chat-0": "k0", "chat-1": "k1"}
    delete_replica(store, "chat-0")
    assert replica_keys(store) == {"chat-1": "k1"}
    store.close()
