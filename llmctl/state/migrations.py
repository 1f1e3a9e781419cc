"""Schema of the state store as an append-only list of migrations; PRAGMA user_version says how many ran.

Never edit a released migration: append a new one. Later issues add deployments, replicas, events and
metric samples this way.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: facts gathered from hosts, one row per host, replaced on every gathering.
    """
    CREATE TABLE host_facts (
        host TEXT PRIMARY KEY,
        gathered_at REAL NOT NULL,  -- unix seconds
        facts TEXT NOT NULL         -- JSON of llmctl.fleet.facts_parse.HostFacts
    );
    """,
)
