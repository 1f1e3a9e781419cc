"""Every state-store read the dashboard makes, in one place: `SnapshotReader.read(store, now)` returns an
immutable `Snapshot` of the fleet, deployments, replicas, events and intents.

The reader keeps two caches between refreshes so a refresh costs what changed, not what exists: events
are fetched after the last id seen, and metric samples after the last timestamp seen per replica (their
scalars come out of SQLite's json_extract; only two full samples per replica are parsed, for latency
quantiles). Everything else is one indexed query with a LIMIT.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llmctl.reconcile.sample import Histogram
from llmctl.spec.deployment import DesiredDeployment
from llmctl.state.desired import load_desired
from llmctl.state.host_checks import HostCheck, host_checks
from llmctl.state.intents import Intent, recent, scale_overrides
from llmctl.state.records import Event, ReplicaRow, events, replicas
from llmctl.state.store import Store
from llmctl.state.telemetry import GatewayDemand, demand, sample_from_json
from llmctl.tui.metrics import Point, Quantiles, Series, binned_series, counter_rate, merge_histograms
from llmctl.tui.pools import PoolView, pool_views

STALE_FACTS_S = 300.0  # facts older than this mark a host "stale"
STALE_CHECK_S = 120.0  # a controller reachability check older than this says nothing any more
RATE_WINDOW_S = 60.0  # requests/s and latency quantiles cover the last minute
SERIES_WINDOW_S = 600.0  # sparklines cover the last ten minutes
SERIES_BINS = 40
EVENT_LIMIT = 1000
INTENT_LIMIT = 50


@dataclass(frozen=True)
class GpuView:
    index: int
    name: str
    memory_used_mib: int
    memory_total_mib: int
    utilization_pct: int
    replica: str | None  # the replica placed on this GPU, if any
    # No facts gathered yet: the GPU is known from the applied plan's slots (placed on the inventory's
    # declared GPUs), so its name is the catalog type and memory and utilisation are unknown.
    declared: bool = False


@dataclass(frozen=True)
class HostView:
    name: str
    fact_age_s: float | None  # None: never gathered
    gpus: tuple[GpuView, ...]
    replicas: tuple[str, ...]
    notes: tuple[str, ...] = ()
    check: HostCheck | None = None  # the running controller's latest reachability check
    check_age_s: float | None = None

    @property
    def reachability(self) -> str:
        """The controller's recent check (ok or down) where there is one; else what the facts' age says:
        gathered recently (ok), a while ago (stale), or never (unknown)."""
        if self.check is not None and self.check_age_s is not None and self.check_age_s <= STALE_CHECK_S:
            return "ok" if self.check.ok else "down"
        if self.fact_age_s is None:
            return "unknown"
        return "ok" if self.fact_age_s <= STALE_FACTS_S else "stale"


@dataclass(frozen=True)
class ReplicaView:
    row: ReplicaRow
    argv: tuple[str, ...]
    engine: str
    running: float = 0.0
    waiting: float = 0.0
    kv_usage: float = 0.0
    requests_per_s: float = 0.0
    sampled_at: float | None = None

    @property
    def name(self) -> str:
        return self.row.name


@dataclass(frozen=True)
class DeploymentView:
    name: str
    workload: str
    engine: str
    slots: int  # planned replicas including spares: the most `scale` may ask for
    pinned: int | None  # a manual scale override
    phases: tuple[tuple[str, int], ...]
    requests_per_s: float
    in_flight: float
    queued: float
    held: int  # requests the gateway holds for lack of a ready replica
    kv_usage: float
    ttft: Quantiles
    itl: Quantiles
    ttft_target: Quantiles  # seconds; None where the spec has none
    itl_target: Quantiles
    series: Series
    replicas: tuple[ReplicaView, ...]
    sleep_mode: bool = False


@dataclass(frozen=True)
class Snapshot:
    now: float
    hosts: tuple[HostView, ...] = ()
    deployments: tuple[DeploymentView, ...] = ()
    events: tuple[Event, ...] = ()
    intents: tuple[Intent, ...] = ()
    pools: tuple[PoolView, ...] = ()  # GPU pools (llmctl.tui.pools); () for a fleet without any

    def replica(self, name: str) -> ReplicaView | None:
        return next((r for d in self.deployments for r in d.replicas if r.name == name), None)

    def deployment(self, name: str) -> DeploymentView | None:
        return next((d for d in self.deployments if d.name == name), None)


@dataclass
class _ReplicaCache:
    points: deque[Point] = field(default_factory=deque)
    last_at: float = float("-inf")


class SnapshotReader:
    """Builds snapshots from a store, remembering what it already read (see the module docstring)."""

    def __init__(self, series_window_s: float = SERIES_WINDOW_S, bins: int = SERIES_BINS) -> None:
        self.series_window_s = series_window_s
        self.bins = bins
        self._events: deque[Event] = deque(maxlen=EVENT_LIMIT)
        self._last_event_id = 0
        self._samples: dict[str, _ReplicaCache] = {}

    def read(self, store: Store, now: float) -> Snapshot:
        rows = replicas(store)
        specs = load_desired(store)
        self._read_events(store)
        return Snapshot(
            now=now,
            hosts=_hosts(store, rows, specs, now),
            deployments=self._deployments(store, specs, rows, now),
            events=tuple(self._events),
            intents=tuple(reversed(recent(store, INTENT_LIMIT))),
            pools=pool_views(specs.values(), rows, self._events),
        )

    def _read_events(self, store: Store) -> None:
        fresh = events(store, since_id=self._last_event_id, limit=EVENT_LIMIT)
        self._events.extend(fresh)
        if fresh:
            self._last_event_id = fresh[-1].id

    def _deployments(
        self,
        store: Store,
        specs: Mapping[str, DesiredDeployment],
        rows: Sequence[ReplicaRow],
        now: float,
    ) -> tuple[DeploymentView, ...]:
        overrides = scale_overrides(store)
        gateway = demand(store)
        by_dep: dict[str, list[ReplicaRow]] = {}
        for r in rows:
            by_dep.setdefault(r.deployment, []).append(r)
        for gone in set(self._samples) - {r.name for r in rows}:
            del self._samples[gone]
        out = []
        for name in sorted(set(specs) | set(by_dep)):
            out.append(
                self._deployment(store, name, specs.get(name), by_dep.get(name, []), overrides, gateway, now)
            )
        return tuple(out)

    def _deployment(
        self,
        store: Store,
        name: str,
        spec: DesiredDeployment | None,
        rows: list[ReplicaRow],
        overrides: Mapping[str, int],
        gateway: Mapping[str, GatewayDemand],
        now: float,
    ) -> DeploymentView:
        slots = {s.name: s for s in spec.slots} if spec else {}
        flavour = spec.flavour if spec else "?"
        views: list[ReplicaView] = []
        ttft: list[Histogram] = []
        itl: list[Histogram] = []
        for r in rows:
            points = self._points(store, r.name, now)
            slot = slots.get(r.name)
            last = points[-1] if points else None
            views.append(
                ReplicaView(
                    row=r,
                    argv=slot.argv if slot else (),
                    engine=slot.engine if slot else flavour,
                    running=last.running if last else 0.0,
                    waiting=last.waiting if last else 0.0,
                    kv_usage=last.kv_usage if last else 0.0,
                    requests_per_s=counter_rate(points, now, RATE_WINDOW_S),
                    sampled_at=last.at if last else None,
                )
            )
            if last is not None and last.at >= now - RATE_WINDOW_S:
                window = _latency_window(store, r.name, last.at)
                if window is not None:
                    ttft.append(window[0])
                    itl.append(window[1])
        phases: dict[str, int] = {}
        for r in rows:
            phases[r.phase] = phases.get(r.phase, 0) + 1
        fresh = [v for v in views if v.sampled_at is not None and v.sampled_at >= now - RATE_WINDOW_S]
        engines = sorted({s.engine for s in slots.values()}) or [flavour]
        return DeploymentView(
            name=name,
            workload=spec.workload if spec else "?",
            engine="/".join(engines),
            slots=len(slots),
            pinned=overrides.get(name),
            phases=tuple(sorted(phases.items())),
            requests_per_s=sum(v.requests_per_s for v in views),
            in_flight=sum(v.running for v in fresh),
            queued=sum(v.waiting for v in fresh),
            held=gateway[name].held if name in gateway else 0,
            kv_usage=sum(v.kv_usage for v in fresh) / len(fresh) if fresh else 0.0,
            ttft=Quantiles.of(merge_histograms(ttft)),
            itl=Quantiles.of(merge_histograms(itl)),
            ttft_target=_target(spec, "ttft_ms", spec.scaling.ttft_target_s if spec else None),
            itl_target=_target(spec, "itl_ms", None),
            series=binned_series(
                (self._samples[r.name].points for r in rows), now, self.series_window_s / self.bins, self.bins
            ),
            replicas=tuple(views),
            sleep_mode=spec.sleep_mode if spec else False,
        )

    def _points(self, store: Store, replica: str, now: float) -> deque[Point]:
        """The replica's samples over the series window, thinned to the latest one per bin; only samples
        newer than the cached ones are read. (Samples hold +Infinity bucket bounds, which SQLite's JSON
        functions refuse, so they are parsed here.)"""
        cache = self._samples.setdefault(replica, _ReplicaCache())
        width = self.series_window_s / self.bins
        since = max(cache.last_at, now - self.series_window_s)
        rows = store.db.execute(
            "SELECT max(at), sample FROM metric_samples WHERE replica = ? AND at > ? AND at <= ? "
            "GROUP BY CAST(at / ? AS INTEGER) ORDER BY 1 DESC LIMIT ?",
            (replica, since, now, width, self.bins + 1),
        ).fetchall()
        for at, text in reversed(rows):
            point = _point(float(at), text)
            if point is None:
                continue
            if cache.points and int(cache.points[-1].at // width) == int(point.at // width):
                cache.points.pop()  # keep the latest sample of each bin
            cache.points.append(point)
        if rows:
            cache.last_at = float(rows[0][0])
        while cache.points and cache.points[0].at < now - self.series_window_s:
            cache.points.popleft()
        return cache.points


def _point(at: float, text: str) -> Point | None:
    try:
        d = json.loads(text)
        return Point(
            at,
            float(d["running"]),
            float(d["waiting"]),
            float(d["kv_usage"]),
            float(d["requests"]),
            float(d["generation_tokens"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


def _latency_window(store: Store, replica: str, last_at: float) -> tuple[Histogram, Histogram] | None:
    """TTFT and inter-token histograms of what the replica observed over the last minute of its samples."""
    rows = store.db.execute(
        "SELECT sample FROM (SELECT sample, at FROM metric_samples WHERE replica = ? AND at = ? LIMIT 1) "
        "UNION ALL SELECT sample FROM (SELECT sample, at FROM metric_samples WHERE replica = ? AND at <= ? "
        "ORDER BY at DESC LIMIT 1)",
        (replica, last_at, replica, last_at - RATE_WINDOW_S),
    ).fetchall()
    if not rows:
        return None
    try:
        latest = sample_from_json(rows[0][0])
        if len(rows) == 1:
            return latest.ttft, latest.itl
        earlier = sample_from_json(rows[1][0])
    except (KeyError, TypeError, ValueError, json.JSONDecodeError):
        return None
    return latest.ttft.minus(earlier.ttft), latest.itl.minus(earlier.itl)


DECLARED_NOTE = "no facts gathered (llmctl hosts facts): GPUs as the applied plan places them"


def _placed_gpus(
    specs: Mapping[str, DesiredDeployment], rows: Sequence[ReplicaRow]
) -> dict[str, dict[int, str]]:
    """host -> GPU index -> GPU type, from the applied deployments' slots (spares included: the planner put
    them on the inventory's declared GPUs) and the replica rows: the store's knowledge of a host's GPUs
    before any facts are gathered."""
    placed: dict[str, dict[int, str]] = {}
    for spec in specs.values():
        for s in spec.slots:
            if s.shape is not None and s.shape.device == "cpu":
                continue
            for i in s.gpus:
                placed.setdefault(s.host, {}).setdefault(i, s.shape.gpu_type if s.shape else "?")
    for r in rows:
        for g in r.gpus.split(","):
            if g.strip().isdigit():
                placed.setdefault(r.host, {}).setdefault(int(g), "?")
    return placed


def _hosts(
    store: Store, rows: Sequence[ReplicaRow], specs: Mapping[str, DesiredDeployment], now: float
) -> tuple[HostView, ...]:
    holders: dict[tuple[str, int], str] = {}
    on_host: dict[str, list[str]] = {}
    for r in rows:
        if r.phase == "stopped":
            continue
        on_host.setdefault(r.host, []).append(r.name)
        for g in r.gpus.split(","):
            if g.strip().isdigit():
                holders[(r.host, int(g))] = r.name
    facts = store.all_facts()
    checks = host_checks(store)
    placed = _placed_gpus(specs, rows)
    out = []
    for host in sorted(set(facts) | set(on_host) | set(checks) | set(placed)):
        gathered, data = facts.get(host, (None, {}))
        notes = tuple(str(n) for n in _list(data.get("notes")))
        if host in facts:  # gathered facts are what the host has; the plan's slots only stand in for them
            gpus = tuple(
                GpuView(
                    index=int(g.get("index", i)),
                    name=str(g.get("name", "?")),
                    memory_used_mib=int(g.get("memory_used_mib", 0)),
                    memory_total_mib=int(g.get("memory_total_mib", 0)),
                    utilization_pct=int(g.get("utilization_pct", 0)),
                    replica=holders.get((host, int(g.get("index", i)))),
                )
                for i, g in enumerate(_list(data.get("gpus")))
                if isinstance(g, dict)
            )
        else:
            gpus = tuple(
                GpuView(i, gpu_type, 0, 0, 0, holders.get((host, i)), declared=True)
                for i, gpu_type in sorted(placed.get(host, {}).items())
            )
            notes = (DECLARED_NOTE,) if gpus else ()
        out.append(
            HostView(
                name=host,
                fact_age_s=None if gathered is None else max(0.0, now - gathered),
                gpus=gpus,
                replicas=tuple(on_host.get(host, ())),
                notes=notes,
                check=checks.get(host),
                check_age_s=max(0.0, now - checks[host].checked_at) if host in checks else None,
            )
        )
    return tuple(out)


def _target(spec: DesiredDeployment | None, key: str, fallback_p99_s: float | None) -> Quantiles:
    """Latency targets in seconds: the playbook's `targets` ({ttft_ms: {p50, p99}, itl_ms: ...}), else the
    scaling signal's TTFT target as the p99."""
    ms = _dict(spec.targets.get(key) if spec else None)
    p50, p99 = ms.get("p50"), ms.get("p99")
    if p99 is None and isinstance(fallback_p99_s, int | float):
        return Quantiles(float(p50) / 1000 if isinstance(p50, int | float) else None, float(fallback_p99_s))
    return Quantiles(
        float(p50) / 1000 if isinstance(p50, int | float) else None,
        float(p99) / 1000 if isinstance(p99, int | float) else None,
    )


def _list(value: object) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
