"""The controller's latest reachability check of each host: when, whether `true` ran, and what it said."""

from __future__ import annotations

from dataclasses import dataclass

from llmctl.state.store import Store


@dataclass(frozen=True)
class HostCheck:
    host: str
    checked_at: float
    ok: bool
    detail: str  # "12.3 ms" when reachable, else the transport's error


def put_host_check(store: Store, check: HostCheck) -> None:
    store.db.execute(
        "INSERT INTO host_checks (host, checked_at, ok, detail) VALUES (?, ?, ?, ?) "
        "ON CONFLICT(host) DO UPDATE SET checked_at = excluded.checked_at, ok = excluded.ok, "
        "detail = excluded.detail",
        (check.host, check.checked_at, int(check.ok), check.detail),
    )


def host_checks(store: Store) -> dict[str, HostCheck]:
    rows = store.db.execute("SELECT host, checked_at, ok, detail FROM host_checks").fetchall()
    return {host: HostCheck(host, at, bool(ok), detail) for host, at, ok, detail in rows}
