"""Fleet: hosts with their reachability (the controller's latest check, else the age of their facts), and
the GPUs of the selected host with memory and utilisation bars and the replica placed on each."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Footer, Header, Label

from llmctl.tui import units
from llmctl.tui.data import GpuView, HostView, Snapshot
from llmctl.tui.formatting import age, bar, gib
from llmctl.tui.screens.base import SnapshotScreen
from llmctl.tui.table_sync import Row, RowTable, selected_key, sync_table

REACH_STYLE = {"ok": "green", "stale": "yellow", "unknown": "red", "down": "bold red"}


def unknown() -> Text:
    """A declared GPU's memory or utilisation: no facts have measured it."""
    return Text(units.MISSING, style="dim")


def host_row(h: HostView) -> Row:
    measured = [g for g in h.gpus if not g.declared]
    used = sum(g.memory_used_mib for g in measured)
    total = sum(g.memory_total_mib for g in measured)
    util = sum(g.utilization_pct for g in measured) / len(measured) if measured else 0.0
    held = sum(1 for g in h.gpus if g.replica)
    return h.name, (
        h.name,
        Text(h.reachability, style=REACH_STYLE[h.reachability]),
        age(h.fact_age_s),
        f"{held}/{len(h.gpus)}",
        bar(used / total if total else 0.0, 8) if measured or not h.gpus else unknown(),
        units.percent(util / 100, 0) if measured or not h.gpus else unknown(),
        str(len(h.replicas)),
    )


def gpu_row(host: str, g: GpuView) -> Row:
    holder = g.replica or Text("free", style="dim")
    if g.declared:
        return f"{host}:{g.index}", (str(g.index), g.name, unknown(), unknown(), unknown(), unknown(), holder)
    return f"{host}:{g.index}", (
        str(g.index),
        g.name,
        bar(g.memory_used_mib / g.memory_total_mib if g.memory_total_mib else 0.0),
        f"{gib(g.memory_used_mib)}/{gib(g.memory_total_mib)}G",
        bar(g.utilization_pct / 100),
        units.percent(g.utilization_pct / 100, 0),
        holder,
    )


def gpu_rows(h: HostView) -> list[Row]:
    return [gpu_row(h.name, g) for g in h.gpus]


class FleetScreen(SnapshotScreen):
    TITLE = "Fleet"

    def compose(self) -> ComposeResult:
        yield Header()
        hosts = RowTable(id="hosts", cursor_type="row", zebra_stripes=True)
        hosts.add_columns("host", "reach", "facts", "GPUs used", "memory", "util", "replicas")
        yield hosts
        yield Label("GPUs", id="gpus-title", classes="section")
        gpus = RowTable(id="gpus", cursor_type="row")
        gpus.add_columns("#", "GPU", "memory", "GiB", "utilisation", "%", "replica")
        yield gpus
        yield Footer()

    def show(self, snapshot: Snapshot) -> None:
        sync_table(self.query_one("#hosts", DataTable), [host_row(h) for h in snapshot.hosts])
        unreachable = sum(1 for h in snapshot.hosts if h.reachability != "ok")
        gpus = sum(len(h.gpus) for h in snapshot.hosts)
        hosts = units.plural(len(snapshot.hosts), "host")
        self.sub_title = f"{hosts}, {units.plural(gpus, 'GPU')}, {unreachable} down, stale or unknown"
        self._show_gpus(snapshot)

    def _show_gpus(self, snapshot: Snapshot) -> None:
        name = selected_key(self.query_one("#hosts", DataTable))
        host = next((h for h in snapshot.hosts if h.name == name), None)
        title = self.query_one("#gpus-title", Label)
        table = self.query_one("#gpus", DataTable)
        if host is None:
            title.update("GPUs")
            sync_table(table, [])
            return
        said = [
            *host.notes,
            *([f"down: {host.check.detail}"] if host.reachability == "down" and host.check else []),
        ]
        notes = f" — {'; '.join(said)}" if said else ""
        title.update(f"GPUs on {host.name}{notes}")
        sync_table(table, gpu_rows(host))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "hosts":
            self._show_gpus(self.dashboard.snapshot)
