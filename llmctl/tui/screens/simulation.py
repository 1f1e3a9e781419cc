"""Simulation: pick a scenario (sim/scenarios/*.yaml), run it in a worker with a progress bar, see its
summary and charts, and compare it side by side with the previous run."""

from __future__ import annotations

import math
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Header, Label, OptionList, ProgressBar, Sparkline
from textual.widgets.option_list import Option

from llmctl.tui import units
from llmctl.tui.screens.base import SnapshotScreen
from llmctl.tui.sim_adapter import SimSummary, SimulatorUnavailable, scenario_files
from llmctl.tui.table_sync import Cell, Row, RowTable, sync_table

CHARTS = 3


def metric(key: str, value: float | str | None) -> str:
    """A summary metric with the unit its name implies (sim.outcome.summarise's names: ttft_s.p99 is
    seconds, slo_attainment a fraction, cost in dollars, requests and tokens counts)."""
    if value is None:
        return units.MISSING
    if isinstance(value, str):
        return value
    name = key.split(".", 1)[0]
    if name.endswith("_s"):
        return units.duration(value)
    if name.endswith("_hours"):
        return units.duration(value * 3600)
    if name.endswith(("attainment", "saving_vs_fixed_fleet")):
        return units.percent(value)
    if "cost" in name:
        return units.money(value)
    if name.endswith("peak_to_average"):
        return units.ratio(value)
    if name.endswith("tokens"):
        return f"{units.count(value)} tok"
    if name == "requests":
        return f"{units.count(value)} req"
    return units.count(value)


def comparison_rows(latest: SimSummary, previous: SimSummary | None) -> list[Row]:
    keys = list(latest.metrics) + [
        k for k in (previous.metrics if previous else {}) if k not in latest.metrics
    ]
    rows: list[Row] = []
    for key in keys:
        now = latest.metrics.get(key)
        before = previous.metrics.get(key) if previous else None
        delta: Cell = ""
        if isinstance(now, float) and isinstance(before, float) and before:
            change = (now - before) / abs(before) * 100
            if math.isfinite(change):  # a NaN metric (no requests, no fixed fleet) has no change to show
                delta = Text(f"{change:+.0f}%", style="yellow" if abs(change) >= 5 else "dim")
        rows.append((key, (key, metric(key, before), metric(key, now), delta)))
    return rows


class SimulationScreen(SnapshotScreen):
    TITLE = "Simulation"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "run_selected", "Run scenario", show=False)]

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[SimSummary] = []
        self.running = False

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="sim-body"):
            with Vertical(id="sim-left"):
                yield Label("Scenarios (enter runs)", classes="section")
                yield OptionList(id="scenarios")
            with Vertical(id="sim-right"):
                yield Label("", id="sim-status")
                yield ProgressBar(total=1.0, id="sim-progress", show_eta=False)
                table = RowTable(id="sim-summary", cursor_type="row")
                table.add_columns("metric", "previous", "latest", "change")
                yield table
                with Horizontal(id="sim-charts"):
                    for i in range(CHARTS):
                        with Vertical(classes="spark"):
                            yield Label("", id=f"sim-chart-label-{i}", classes="spark-label")
                            yield Sparkline([], id=f"sim-chart-{i}")
        yield Footer()

    def on_mount(self) -> None:
        directory = self.dashboard.scenarios_dir
        files = scenario_files(directory)
        options = self.query_one("#scenarios", OptionList)
        options.add_options([Option(p.stem, id=str(p)) for p in files])
        if files:
            options.highlighted = 0
        status = f"{len(files)} scenario(s) in {directory}" if files else f"no scenarios in {directory}"
        self.query_one("#sim-status", Label).update(status)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id:
            self.start(Path(event.option.id))

    def action_run_selected(self) -> None:
        options = self.query_one("#scenarios", OptionList)
        if options.highlighted is not None:
            option = options.get_option_at_index(options.highlighted)
            if option.id:
                self.start(Path(option.id))

    def start(self, path: Path) -> None:
        if self.running:
            self.notify("a simulation is already running", severity="warning")
            return
        self.running = True
        self.query_one("#sim-progress", ProgressBar).update(progress=0.0)
        self.query_one("#sim-status", Label).update(f"running {path.stem}…")
        self.simulate(path)

    @work(thread=True, exclusive=True, group="simulation")
    def simulate(self, path: Path) -> None:
        def progress(fraction: float) -> None:
            self.app.call_from_thread(self._progress, fraction)

        try:
            summary = self.dashboard.sim_runner(path, progress)
        except SimulatorUnavailable as exc:
            self.app.call_from_thread(self._failed, str(exc))
            return
        except Exception as exc:  # any failure of the simulator is shown, not raised
            self.app.call_from_thread(self._failed, f"{path.stem} failed: {type(exc).__name__}: {exc}")
            return
        self.app.call_from_thread(self._finished, summary)

    def _progress(self, fraction: float) -> None:
        self.query_one("#sim-progress", ProgressBar).update(progress=min(1.0, max(0.0, fraction)))

    def _failed(self, message: str) -> None:
        self.running = False
        self.query_one("#sim-status", Label).update(Text(message, style="bold red"))

    def _finished(self, summary: SimSummary) -> None:
        self.running = False
        self.runs = [*self.runs[-1:], summary]
        previous = self.runs[0] if len(self.runs) == 2 else None
        self._progress(1.0)
        versus = f" (previous: {previous.scenario})" if previous else ""
        self.query_one("#sim-status", Label).update(f"done: {summary.scenario}{versus}")
        sync_table(self.query_one("#sim-summary", DataTable), comparison_rows(summary, previous))
        names = list(summary.series)[:CHARTS]
        for i in range(CHARTS):
            name = names[i] if i < len(names) else ""
            values = list(summary.series.get(name, ()))
            self.query_one(f"#sim-chart-label-{i}", Label).update(
                f"{name} (peak {units.count(max(values))})" if values else ""
            )
            self.query_one(f"#sim-chart-{i}", Sparkline).data = values
