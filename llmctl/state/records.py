"""Rows of the state store as plain records, and the store operations on them."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from llmctl.errors import LlmctlError
from llmctl.state.store import Store


@dataclass(frozen=True)
class ReplicaRow:
    name: str
    deployment: str
    host: str
    address: str
    gpus: str
    port: int
    pid: int | None
    phase: str
    spec_hash: str
    started_at: float | None
    restarts: int
    reason: str


@dataclass(frozen=True)
class Event:
    id: int
    at: float
    subject: str
    kind: str
    reason: str


def put_deployment(store: Store, name: str, spec: dict[str, object], spec_hash: str) -> None:
    store.db.execute(
        "INSERT INTO deployments (name, spec, spec_hash, applied_at) VALUES (?, ?, ?, ?) ON CONFLICT(name) DO "
        "UPDATE SET spec = excluded.spec, spec_hash = excluded.spec_hash, applied_at = excluded.applied_at",
        (name, json.dumps(spec), spec_hash, time.time()),
    )


def deployments(store: Store) -> dict[str, tuple[str, dict[str, object]]]:
    rows = store.db.execute("SELECT name, spec_hash, spec FROM deployments ORDER BY name").fetchall()
    return {n: (h, json.loads(s)) for n, h, s in rows}


def delete_deployment(store: Store, name: str) -> None:
    store.db.execute("DELETE FROM deployments WHERE name = ?", (name,))


def put_replica(store: Store, r: ReplicaRow) -> None:
    store.db.execute(
        "INSERT OR REPLACE INTO replicas (name, deployment, host, address, gpus, port, pid, phase, spec_hash, "
        "started_at, restarts, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            r.name,
            r.deployment,
            r.host,
            r.address,
            r.gpus,
            r.port,
            r.pid,
            r.phase,
            r.spec_hash,
            r.started_at,
            r.restarts,
            r.reason,
        ),
    )


def replicas(store: Store, deployment: str | None = None) -> list[ReplicaRow]:
    sql = "SELECT * FROM replicas" + (" WHERE deployment = ?" if deployment else "") + " ORDER BY name"
    rows = store.db.execute(sql, (deployment,) if deployment else ()).fetchall()
    return [ReplicaRow(*row) for row in rows]


def delete_replica(store: Store, name: str) -> None:
    store.db.execute("DELETE FROM replicas WHERE name = ?", (name,))


def record_event(store: Store, subject: str, kind: str, reason: str) -> None:
    store.db.execute(
        "INSERT INTO events (at, subject, kind, reason) VALUES (?, ?, ?, ?)",
        (time.time(), subject, kind, reason),
    )


def events(store: Store, since_id: int = 0, limit: int = 200) -> list[Event]:
    rows = store.db.execute(
        "SELECT id, at, subject, kind, reason FROM events WHERE id > ? ORDER BY id DESC LIMIT ?",
        (since_id, limit),
    ).fetchall()
    return [Event(*row) for row in reversed(rows)]


@contextmanager
def writer_lock(store: Store, name: str = "apply") -> Iterator[None]:
    """One writer at a time: a second `llmctl apply` is refused while the first holds the lock. A lock whose
    holder process is gone (same machine) is taken over."""
    me = f"{socket.gethostname()}:{os.getpid()}"
    store.db.execute("BEGIN IMMEDIATE")
    try:
        row = store.db.execute("SELECT holder, pid, since FROM locks WHERE name = ?", (name,)).fetchone()
        if row is not None:
            holder, pid, since = row
            alive = holder.split(":")[0] != socket.gethostname() or _alive(int(pid))
            if alive:
                raise LlmctlError(
                    f"another llmctl {name} is running ({holder}, since {time.ctime(since)}); wait for it to "
                    f"finish (state store {store.path})"
                )
        store.db.execute(
            "INSERT OR REPLACE INTO locks (name, holder, pid, since) VALUES (?, ?, ?, ?)",
            (name, me, os.getpid(), time.time()),
        )
        store.db.execute("COMMIT")
    except BaseException:
        store.db.execute("ROLLBACK")
        raise
    try:
        yield
    finally:
        store.db.execute("DELETE FROM locks WHERE name = ? AND holder = ?", (name, me))


def lock_holder(store: Store, name: str) -> str | None:
    """Who holds the named lock, when that process is alive (or on another machine); else None."""
    row = store.db.execute("SELECT holder, pid FROM locks WHERE name = ?", (name,)).fetchone()
    if row is None:
        return None
    holder, pid = row
    alive = holder.split(":")[0] != socket.gethostname() or _alive(int(pid))
    return str(holder) if alive else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
