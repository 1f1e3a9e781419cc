"""Rows of the state store as plain records, and the store operations on them."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

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
    restarts: int  # lifetime restarts, for people
    reason: str  # words for people; never parsed
    failures: int = 0  # consecutive failed starts and crashes: the restart budget
    retry_at: float | None = None  # backoff: the next restart, unix seconds
    ready_since: float | None = None
    drain_then: str = ""  # draining: sleep | stop | replace
    drain_since: float | None = None
    # The vLLM sleep level it was put to sleep at (1: weights in host RAM, 2: discarded); 0 while not asleep.
    # llmctl.reconcile.tiers reads its cold-start tier from this and the phase.
    sleep_level: int = 0

    def with_(self, **changes: object) -> ReplicaRow:
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Event:
    id: int
    at: float
    subject: str
    kind: str
    reason: str
    data: dict[str, object] = field(default_factory=dict)  # typed fields of the decision, where it has them


def put_deployment(store: Store, name: str, spec: dict[str, object], spec_hash: str) -> None:
    store.db.execute(
        "INSERT INTO deployments (name, spec, spec_hash, applied_at) VALUES (?, ?, ?, ?) ON CONFLICT(name) DO "
        "UPDATE SET spec = excluded.spec, spec_hash = excluded.spec_hash, applied_at = excluded.applied_at",
        (name, json.dumps(spec), spec_hash, time.time()),
    )


def deployments(store: Store) -> dict[str, str]:
    """Each deployment's spec as the JSON text stored (llmctl.state.desired decodes it)."""
    rows = store.db.execute("SELECT name, spec FROM deployments ORDER BY name").fetchall()
    return {str(n): str(s) for n, s in rows}


def delete_deployment(store: Store, name: str) -> None:
    store.db.execute("DELETE FROM deployments WHERE name = ?", (name,))


def put_replica(store: Store, r: ReplicaRow) -> None:
    store.db.execute(
        "INSERT OR REPLACE INTO replicas (name, deployment, host, address, gpus, port, pid, phase, spec_hash, "
        "started_at, restarts, reason, failures, retry_at, ready_since, drain_then, drain_since, "
        "sleep_level) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            r.failures,
            r.retry_at,
            r.ready_since,
            r.drain_then,
            r.drain_since,
            r.sleep_level,
        ),
    )


def replicas(store: Store, deployment: str | None = None) -> list[ReplicaRow]:
    sql = "SELECT * FROM replicas" + (" WHERE deployment = ?" if deployment else "") + " ORDER BY name"
    rows = store.db.execute(sql, (deployment,) if deployment else ()).fetchall()
    return [ReplicaRow(*row) for row in rows]


def delete_replica(store: Store, name: str) -> None:
    with store.transaction():
        store.db.execute("DELETE FROM replicas WHERE name = ?", (name,))
        store.db.execute("DELETE FROM replica_keys WHERE replica = ?", (name,))


def replica_key(store: Store, name: str) -> str | None:
    row = store.db.execute("SELECT key FROM replica_keys WHERE replica = ?", (name,)).fetchone()
    return str(row[0]) if row else None


def put_replica_key(store: Store, name: str, key: str) -> None:
    store.db.execute("INSERT OR REPLACE INTO replica_keys (replica, key) VALUES (?, ?)", (name, key))


def replica_keys(store: Store) -> dict[str, str]:
    """Every replica's API key by replica name: what the gateway and batch jobs send to the engine."""
    return {str(n): str(k) for n, k in store.db.execute("SELECT replica, key FROM replica_keys")}


def reconciled_generation(store: Store, deployment: str) -> int:
    row = store.db.execute(
        "SELECT reconciled_generation FROM deployment_status WHERE deployment = ?", (deployment,)
    ).fetchone()
    return int(row[0]) if row else 0


def set_reconciled(store: Store, deployment: str, generation: int) -> None:
    store.db.execute(
        "INSERT INTO deployment_status (deployment, reconciled_generation) VALUES (?, ?) ON CONFLICT(deployment) "
        "DO UPDATE SET reconciled_generation = excluded.reconciled_generation",
        (deployment, generation),
    )


def surge(store: Store, deployment: str) -> str:
    row = store.db.execute(
        "SELECT surge FROM deployment_status WHERE deployment = ?", (deployment,)
    ).fetchone()
    return str(row[0]) if row else ""


def set_surge(store: Store, deployment: str, replica: str) -> None:
    store.db.execute(
        "INSERT INTO deployment_status (deployment, surge) VALUES (?, ?) ON CONFLICT(deployment) "
        "DO UPDATE SET surge = excluded.surge",
        (deployment, replica),
    )


def last_active(store: Store) -> dict[str, float]:
    """Per deployment, the latest sign of a request: the controller's, the gateway's, or the apply's own
    time (a new deployment counts as just used). Unix seconds, so it survives a controller restart."""
    out: dict[str, float] = {}
    for name, at in store.db.execute("SELECT name, applied_at FROM deployments"):
        out[name] = float(at)
    for table, column in (("deployment_status", "last_active_at"), ("gateway_demand", "last_request_at")):
        for name, at in store.db.execute(
            f"SELECT deployment, {column} FROM {table} WHERE {column} IS NOT NULL"
        ):
            if name in out:
                out[name] = max(out[name], float(at))
    return out


def set_last_active(store: Store, deployment: str, at: float) -> None:
    store.db.execute(
        "INSERT INTO deployment_status (deployment, last_active_at) VALUES (?, ?) ON CONFLICT(deployment) "
        "DO UPDATE SET last_active_at = MAX(COALESCE(last_active_at, 0), excluded.last_active_at)",
        (deployment, at),
    )


def record_event(
    store: Store, subject: str, kind: str, reason: str, data: Mapping[str, object] | None = None
) -> None:
    store.db.execute(
        "INSERT INTO events (at, subject, kind, reason, data) VALUES (?, ?, ?, ?, ?)",
        (time.time(), subject, kind, reason, json.dumps(dict(data or {}), sort_keys=True)),
    )


def events(store: Store, since_id: int = 0, limit: int = 200) -> list[Event]:
    rows = store.db.execute(
        "SELECT id, at, subject, kind, reason, data FROM events WHERE id > ? ORDER BY id DESC LIMIT ?",
        (since_id, limit),
    ).fetchall()
    return [
        Event(i, at, subject, kind, reason, _data(data))
        for i, at, subject, kind, reason, data in reversed(rows)
    ]


def _data(text: str | None) -> dict[str, object]:
    try:
        data = json.loads(text or "{}")
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


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
