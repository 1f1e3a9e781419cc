"""Intents: what a person asked for (from the CLI or the TUI), queued in the store for the controller to
carry out, with the outcome written back. Neither the TUI nor a CLI command talking to a running controller
reaches a host itself; the controller is the one place that acts, so its events tell the whole story."""

from __future__ import annotations

import time
from dataclasses import dataclass

from llmctl.errors import LlmctlError
from llmctl.reconcile.intents import check_intent
from llmctl.state.desired import load_desired
from llmctl.state.records import record_event, replicas
from llmctl.state.store import Store


@dataclass(frozen=True)
class Intent:
    id: int
    at: float
    kind: str
    target: str  # a deployment for scale, a replica otherwise
    arg: str
    state: str  # pending | done | failed
    result: str


def submit(store: Store, kind: str, target: str, arg: str = "") -> int:
    """Check the intent (llmctl.reconcile.intents, the rules the controller applies too), queue it and
    record it as an event; returns its id. A refused intent raises LlmctlError with the reason."""
    problem = check_intent(kind, target, arg, load_desired(store), replicas(store))
    if problem:
        raise LlmctlError(f"{kind} {target}: {problem}")
    with store.transaction():
        cur = store.db.execute(
            "INSERT INTO intents (at, kind, target, arg) VALUES (?, ?, ?, ?)",
            (time.time(), kind, target, arg),
        )
        record_event(store, target, f"requested-{kind}", f"{kind} {arg}".strip() + " requested")
    assert cur.lastrowid is not None
    return int(cur.lastrowid)


def pending(store: Store) -> list[Intent]:
    rows = store.db.execute(
        "SELECT id, at, kind, target, arg, state, result FROM intents WHERE state = 'pending' ORDER BY id"
    ).fetchall()
    return [Intent(*row) for row in rows]


def get(store: Store, intent_id: int) -> Intent | None:
    row = store.db.execute(
        "SELECT id, at, kind, target, arg, state, result FROM intents WHERE id = ?", (intent_id,)
    ).fetchone()
    return Intent(*row) if row else None


def recent(store: Store, limit: int = 50) -> list[Intent]:
    rows = store.db.execute(
        "SELECT id, at, kind, target, arg, state, result FROM intents ORDER BY id DESC LIMIT ?", (limit,)
    ).fetchall()
    return [Intent(*row) for row in rows]


def finish(store: Store, intent_id: int, ok: bool, result: str) -> None:
    store.db.execute(
        "UPDATE intents SET state = ?, result = ? WHERE id = ?",
        ("done" if ok else "failed", result, intent_id),
    )


def set_scale_override(store: Store, deployment: str, replicas: int | None) -> None:
    """Pin a deployment's replica count (llmctl scale); None hands it back to the autoscaler."""
    if replicas is None:
        store.db.execute("DELETE FROM scale_overrides WHERE deployment = ?", (deployment,))
        return
    store.db.execute(
        "INSERT OR REPLACE INTO scale_overrides (deployment, replicas, at) VALUES (?, ?, ?)",
        (deployment, replicas, time.time()),
    )


def scale_overrides(store: Store) -> dict[str, int]:
    return {d: int(n) for d, n in store.db.execute("SELECT deployment, replicas FROM scale_overrides")}
