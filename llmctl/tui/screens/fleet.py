"""Fleet: hosts with their reachability (the controller's latest check, else the age of their facts), and
the GPUs of the selected host with memory and utilisation bars and the replica placed on each.

Where the fleet has GPU pools (issue #18), a Pools section lists each pool's members and what they hold, a
pool GPU's holder says its pool and phase, and the selected host's pools' latest decisions show below its
GPUs. Without pools those widgets are hidden and the screen is what it was.
"""

from __future__ import annotations

from collections.abc import Mapping

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Footer, Header, Label

from llmctl.state.records import Event
from llmctl.tui import units
from llmctl.tui.data import GpuView, HostView, Snapshot
from llmctl.tui.formatting import PHASE_STYLE, POOL_EVENT_STYLE, age, bar, clock, gib
from llmctl.tui.pools import PoolMemberView, PoolSeat, PoolView
from llmctl.tui.screens.base import SnapshotScreen
from llmctl.tui.table_sync import Row, RowTable, selected_key, sync_table

REACH_STYLE = {"ok": "green", "stale": "yellow", "unknown": "red", "down": "bold red"}
POOL_EVENTS_SHOWN = 20  # the table shows the latest few; it scrolls to the rest


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


def member_text(m: PoolMemberView) -> str:
    """ "chat p2 3/1-4": name, priority (bf: back-fill, below every serving member), replicas held now /
    its bounds; a weight other than 1 and a member that is no tenant any more are said too."""
    rank = "bf" if m.backfill else f"p{m.priority}"
    weight = f" w{m.weight:g}" if m.weight != 1.0 else ""
    gone = " (stopped)" if not m.tenant else ""
    return f"{m.name} {rank}{weight} {len(m.replicas)}/{m.min_replicas}-{m.max_replicas}{gone}"


def pool_row(p: PoolView) -> Row:
    asleep = ", ".join(f"{s.replica} on {'+'.join(s.gpus)}" for s in p.asleep)
    return p.name, (
        p.name,
        ", ".join(member_text(m) for m in p.members),
        f"{p.held}/{len(p.seats)}",
        str(len(p.free)),
        Text(asleep, style=PHASE_STYLE["sleeping"]) if asleep else Text("-", style="dim"),
    )


def pool_event_row(e: Event) -> Row:
    return str(e.id), (
        clock(e.at),
        str(e.data.get("pool", "")),
        e.subject,
        Text(e.kind, style=POOL_EVENT_STYLE.get(e.kind, "")),
        e.reason,
    )


def holder_cell(g: GpuView, seat: PoolSeat | None) -> Text | str:
    """Who holds the GPU; a pool GPU says its pool and the holder's phase (or that the pool has it spare)."""
    if seat is None:
        return g.replica or Text("free", style="dim")
    if not seat.replica:
        return Text(f"free (pool {seat.pool})", style="dim")
    text = Text(f"{seat.replica} (pool {seat.pool}, ")
    text.append(seat.phase, style=PHASE_STYLE.get(seat.phase, ""))
    text.append(")")
    return text


def gpu_row(host: str, g: GpuView, seat: PoolSeat | None = None) -> Row:
    holder = holder_cell(g, seat)
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


def gpu_rows(h: HostView, seats: Mapping[tuple[str, int], PoolSeat] | None = None) -> list[Row]:
    seats = seats or {}
    return [gpu_row(h.name, g, seats.get((h.name, g.index))) for g in h.gpus]


def seats_of(pools: tuple[PoolView, ...]) -> dict[tuple[str, int], PoolSeat]:
    return {(s.host, s.index): s for p in pools for s in p.seats}


def host_pool_events(pools: tuple[PoolView, ...], host: str, limit: int) -> list[Event]:
    """The latest `limit` decisions of the pools with GPUs on `host`, oldest first."""
    mine = sorted((e for p in pools if host in p.hosts for e in p.events), key=lambda e: e.id)
    return mine[-limit:] if limit > 0 else []


class FleetScreen(SnapshotScreen):
    TITLE = "Fleet"
    POOL_WIDGETS = ("#pools-title", "#pools", "#pool-events-title", "#pool-events")

    def compose(self) -> ComposeResult:
        yield Header()
        hosts = RowTable(id="hosts", cursor_type="row", zebra_stripes=True)
        hosts.add_columns("host", "reach", "facts", "GPUs used", "memory", "util", "replicas")
        yield hosts
        yield Label("Pools", id="pools-title", classes="section")
        pools = RowTable(id="pools", cursor_type="row")
        pools.add_columns("pool", "members (priority held/min-max)", "GPUs held", "free", "asleep")
        yield pools
        yield Label("GPUs", id="gpus-title", classes="section")
        gpus = RowTable(id="gpus", cursor_type="row")
        gpus.add_columns("#", "GPU", "memory", "GiB", "utilisation", "%", "replica")
        yield gpus
        yield Label("Pool events", id="pool-events-title", classes="section")
        events = RowTable(id="pool-events", cursor_type="row")
        events.add_columns("time", "pool", "subject", "kind", "reason")
        yield events
        yield Footer()

    def on_mount(self) -> None:
        self._show_pool_widgets(False)

    def show(self, snapshot: Snapshot) -> None:
        sync_table(self.query_one("#hosts", DataTable), [host_row(h) for h in snapshot.hosts])
        unreachable = sum(1 for h in snapshot.hosts if h.reachability != "ok")
        gpus = sum(len(h.gpus) for h in snapshot.hosts)
        hosts = units.plural(len(snapshot.hosts), "host")
        self.sub_title = f"{hosts}, {units.plural(gpus, 'GPU')}, {unreachable} down, stale or unknown"
        self._show_pool_widgets(bool(snapshot.pools))
        if snapshot.pools:
            sync_table(self.query_one("#pools", DataTable), [pool_row(p) for p in snapshot.pools])
            free = sum(len(p.free) for p in snapshot.pools)
            total = units.plural(sum(len(p.seats) for p in snapshot.pools), "GPU")
            pools = units.plural(len(snapshot.pools), "pool")
            self.query_one("#pools-title", Label).update(f"Pools — {pools}, {total}, {free} free")
        self._show_gpus(snapshot)

    def _show_pool_widgets(self, shown: bool) -> None:
        for selector in self.POOL_WIDGETS:
            self.query_one(selector).display = shown

    def _show_gpus(self, snapshot: Snapshot) -> None:
        name = selected_key(self.query_one("#hosts", DataTable))
        host = next((h for h in snapshot.hosts if h.name == name), None)
        title = self.query_one("#gpus-title", Label)
        table = self.query_one("#gpus", DataTable)
        if snapshot.pools:
            self._show_pool_events(snapshot, host)
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
        sync_table(table, gpu_rows(host, seats_of(snapshot.pools)))

    def _show_pool_events(self, snapshot: Snapshot, host: HostView | None) -> None:
        title = self.query_one("#pool-events-title", Label)
        table = self.query_one("#pool-events", DataTable)
        names = [p.name for p in snapshot.pools if host is not None and host.name in p.hosts]
        if host is None or not names:
            title.update(f"Pool events — {host.name} is in no pool" if host else "Pool events")
            sync_table(table, [])
            return
        shown = host_pool_events(snapshot.pools, host.name, POOL_EVENTS_SHOWN)
        title.update(f"Pool events — {', '.join(names)} (on {host.name}); e: all events")
        sync_table(table, [pool_event_row(e) for e in shown])
        if table.row_count:
            table.move_cursor(row=table.row_count - 1, animate=False)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "hosts":
            self._show_gpus(self.dashboard.snapshot)
