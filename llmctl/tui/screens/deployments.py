"""Deployments: class, engine, replicas by phase, load, latency against targets (red when breached), KV
usage and sparklines of the last minutes; below, the replicas of the selected deployment."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Header, Label, Sparkline

from llmctl.tui import units
from llmctl.tui.data import DeploymentView, ReplicaView, Snapshot
from llmctl.tui.formatting import latency, phase, phases, rate, target, whole
from llmctl.tui.screens.base import SnapshotScreen
from llmctl.tui.table_sync import Row, RowTable, selected_key, sync_table

SPARKLINES = (
    ("requests_per_s", "req/s"),
    ("in_flight", "in-flight"),
    ("queued", "queued"),
    ("kv_usage", "KV"),
)


def deployment_row(d: DeploymentView) -> Row:
    return d.name, (
        d.name,
        d.workload,
        d.engine,
        phases(d.phases),
        rate(d.requests_per_s),
        whole(d.in_flight),
        whole(d.queued) + (f"+{whole(d.held)}" if d.held else ""),
        latency(d.ttft, d.ttft_target),
        target(d.ttft_target),
        latency(d.itl, d.itl_target),
        units.percent(d.kv_usage, 0),
    )


def replica_row(r: ReplicaView) -> Row:
    return r.name, (
        r.name,
        phase(r.row.phase),
        r.row.host,
        r.row.gpus,
        str(r.row.port),
        rate(r.requests_per_s),
        whole(r.running),
        whole(r.waiting),
        units.percent(r.kv_usage, 0),
        str(r.row.restarts),
        r.row.reason,
    )


class DeploymentsScreen(SnapshotScreen):
    TITLE = "Deployments"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("S", "scale", "Scale"),
        Binding("r", "replica('restart')", "Restart"),
        Binding("x", "replica('stop')", "Stop"),
        Binding("z", "replica('sleep')", "Sleep"),
        Binding("w", "replica('wake')", "Wake"),
        Binding("enter", "open_replica", "Detail", show=False),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        deps = RowTable(id="deployments", cursor_type="row", zebra_stripes=True)
        deps.add_columns(
            "deployment", "class", "engine", "replicas", "req/s", "in-flight", "queued",
            "TTFT p50/p99 ms", "target", "ITL p50/p99 ms", "KV",
        )  # fmt: skip
        yield deps
        with Horizontal(id="sparklines"):
            for key, label in SPARKLINES:
                with Vertical(classes="spark"):
                    yield Label(label, id=f"label-{key}", classes="spark-label")
                    yield Sparkline([], id=f"spark-{key}")
        yield Label("Replicas", id="replicas-title", classes="section")
        reps = RowTable(id="replicas", cursor_type="row")
        reps.add_columns(
            "replica", "phase", "host", "GPUs", "port", "req/s", "run", "wait", "KV", "restarts", "reason"
        )
        yield reps
        yield Footer()

    def show(self, snapshot: Snapshot) -> None:
        sync_table(
            self.query_one("#deployments", DataTable), [deployment_row(d) for d in snapshot.deployments]
        )
        replicas = sum(len(d.replicas) for d in snapshot.deployments)
        deployments = units.plural(len(snapshot.deployments), "deployment")
        self.sub_title = f"{deployments}, {units.plural(replicas, 'replica')}"
        self._show_selected(snapshot)

    def selected_deployment(self) -> DeploymentView | None:
        name = selected_key(self.query_one("#deployments", DataTable))
        return self.dashboard.snapshot.deployment(name) if name else None

    def selected_replica(self) -> str | None:
        return selected_key(self.query_one("#replicas", DataTable))

    def _show_selected(self, snapshot: Snapshot) -> None:
        name = selected_key(self.query_one("#deployments", DataTable))
        dep = snapshot.deployment(name) if name else None
        self.query_one("#replicas-title", Label).update(f"Replicas of {dep.name}" if dep else "Replicas")
        sync_table(
            self.query_one("#replicas", DataTable), [replica_row(r) for r in dep.replicas] if dep else []
        )
        for key, label in SPARKLINES:
            values = list(getattr(dep.series, key)) if dep else []
            peak = max(values, default=0.0)
            shown = {"kv_usage": units.percent(peak, 0), "requests_per_s": rate(peak)}.get(key, whole(peak))
            self.query_one(f"#spark-{key}", Sparkline).data = values
            self.query_one(f"#label-{key}", Label).update(f"{label} (peak {shown})")

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "deployments":
            self._show_selected(self.dashboard.snapshot)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "replicas" and event.row_key.value:
            self.dashboard.open_replica(event.row_key.value)
        elif event.data_table.id == "deployments":
            self.query_one("#replicas", DataTable).focus()

    def action_open_replica(self) -> None:
        name = self.selected_replica()
        if name:
            self.dashboard.open_replica(name)

    def action_scale(self) -> None:
        dep = self.selected_deployment()
        if dep is None:
            self.notify("no deployment selected", severity="warning")
            return
        self.dashboard.request_scale(dep)

    def action_replica(self, kind: str) -> None:
        name = self.selected_replica()
        if name is None:
            self.notify("select a replica first (tab to the replica table)", severity="warning")
            return
        self.dashboard.request_replica_action(kind, name)
