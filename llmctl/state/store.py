"""The state store: SQLite in WAL mode (readers never block the writer), schema from migrations."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from llmctl.errors import LlmctlError
from llmctl.state.migrations import MIGRATIONS

STATE_ENV = "LLMCTL_STATE"


def default_path() -> Path:
    env = os.environ.get(STATE_ENV)
    if env:
        return Path(env).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "llmctl" / "state.db"


class Store:
    def __init__(self, path: Path | str | None = None, threads: bool = False) -> None:
        """`threads`: the connection is used from worker threads, one at a time (asyncio.to_thread)."""
        self.path = Path(path).expanduser() if path else default_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(
                self.path, timeout=10.0, isolation_level=None, check_same_thread=not threads
            )
        except (OSError, sqlite3.Error) as exc:
            raise LlmctlError(f"cannot open the state store {self.path}: {exc}") from None
        self.db.execute("PRAGMA journal_mode=WAL")
        # The store holds the replicas' API keys: readable by its owner alone (sqlite creates the WAL and
        # shared-memory files with the database's mode).
        with contextlib.suppress(OSError):
            info = self.path.stat()
            if info.st_mode & 0o077 and info.st_uid == os.getuid():
                self.path.chmod(0o600)
        # In WAL mode NORMAL is still crash-safe (no corruption); it skips an fsync per commit, which
        # matters when a fan-out records one row per host.
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.migrate()

    def migrate(self) -> int:
        version = int(self.db.execute("PRAGMA user_version").fetchone()[0])
        if version > len(MIGRATIONS):
            raise LlmctlError(
                f"the state store {self.path} has schema version {version}, newer than this llmctl knows "
                f"({len(MIGRATIONS)}); upgrade llmctl"
            )
        for number, sql in enumerate(MIGRATIONS[version:], start=version + 1):
            # Each migration and its version bump commit together, so a crash leaves a consistent schema.
            self.db.execute("BEGIN IMMEDIATE")
            try:
                for statement in (s for s in sql.split(";") if s.strip()):
                    self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {number}")
                self.db.execute("COMMIT")
            except sqlite3.Error:
                self.db.execute("ROLLBACK")
                raise
        return len(MIGRATIONS)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Several writes committed together (or not at all)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    @property
    def schema_version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def put_facts(self, host: str, facts: dict[str, Any], gathered_at: float | None = None) -> None:
        self.db.execute(
            "INSERT INTO host_facts (host, gathered_at, facts) VALUES (?, ?, ?) "
            "ON CONFLICT(host) DO UPDATE SET gathered_at = excluded.gathered_at, facts = excluded.facts",
            (host, time.time() if gathered_at is None else gathered_at, json.dumps(facts)),
        )

    def facts(self, host: str) -> tuple[float, dict[str, Any]] | None:
        row = self.db.execute("SELECT gathered_at, facts FROM host_facts WHERE host = ?", (host,)).fetchone()
        return (float(row[0]), json.loads(row[1])) if row else None

    def all_facts(self) -> dict[str, tuple[float, dict[str, Any]]]:
        rows = self.db.execute("SELECT host, gathered_at, facts FROM host_facts").fetchall()
        return {h: (float(t), json.loads(f)) for h, t, f in rows}

    def close(self) -> None:
        self.db.close()
