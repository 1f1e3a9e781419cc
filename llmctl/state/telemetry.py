"""What the controller and the gateway measure, kept in the store: engine metric samples per replica (with
bounded retention) and the gateway's demand per deployment."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from llmctl.reconcile.sample import EngineSample, Histogram
from llmctl.state.store import Store


@dataclass(frozen=True)
class GatewayDemand:
    """One deployment as the gateway sees it: requests held (no ready replica), proxied, seen in total."""

    held: int
    in_flight: int
    requests_total: int
    last_request_at: float | None
    updated_at: float


def _histogram(data: dict[str, Any]) -> Histogram:
    return Histogram(tuple((float(le), float(c)) for le, c in data["buckets"]), data["total"], data["count"])


def sample_from_json(text: str) -> EngineSample:
    data = json.loads(text)
    return EngineSample(
        **{k: v for k, v in data.items() if k not in ("ttft", "itl", "e2e")},
        ttft=_histogram(data["ttft"]),
        itl=_histogram(data["itl"]),
        e2e=_histogram(data["e2e"]),
    )


def put_sample(store: Store, replica: str, at: float, sample: EngineSample) -> None:
    store.db.execute(
        "INSERT INTO metric_samples (replica, at, sample) VALUES (?, ?, ?)",
        (replica, at, json.dumps(asdict(sample))),
    )


def samples(
    store: Store, replica: str, since: float = 0.0, limit: int = 600
) -> list[tuple[float, EngineSample]]:
    rows = store.db.execute(
        "SELECT at, sample FROM metric_samples WHERE replica = ? AND at >= ? ORDER BY at DESC LIMIT ?",
        (replica, since, limit),
    ).fetchall()
    return [(float(at), sample_from_json(s)) for at, s in reversed(rows)]


def trim_samples(store: Store, older_than: float) -> int:
    """Drop samples taken before `older_than` (unix seconds); returns how many went."""
    return store.db.execute("DELETE FROM metric_samples WHERE at < ?", (older_than,)).rowcount


def put_demand(store: Store, deployment: str, d: GatewayDemand) -> None:
    store.db.execute(
        "INSERT OR REPLACE INTO gateway_demand (deployment, held, in_flight, requests_total, last_request_at, "
        "updated_at) VALUES (?, ?, ?, ?, ?, ?)",
        (deployment, d.held, d.in_flight, d.requests_total, d.last_request_at, d.updated_at),
    )


def demand(store: Store) -> dict[str, GatewayDemand]:
    rows = store.db.execute(
        "SELECT deployment, held, in_flight, requests_total, last_request_at, updated_at FROM gateway_demand"
    ).fetchall()
    return {r[0]: GatewayDemand(*r[1:]) for r in rows}
