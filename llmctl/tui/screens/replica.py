"""One replica: command line, host, GPUs, restarts, its events, and its log tail (fetched on demand by
running `llmctl logs REPLICA` as a subprocess, since the log lives on the replica's host)."""

from __future__ import annotations

import shlex
import subprocess
import time
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Header, Label, Log, Static

from llmctl.tui.data import ReplicaView, Snapshot
from llmctl.tui.formatting import age, phase
from llmctl.tui.screens.base import SnapshotScreen
from llmctl.tui.table_sync import RowTable, sync_table

LOG_LINES = 100
LOG_TIMEOUT_S = 60.0


def describe(r: ReplicaView, now: float) -> Text:
    row = r.row
    text = Text()
    text.append(f"{row.name}", style="bold")
    text.append(f"  of {row.deployment}  ")
    text.append_text(phase(row.phase))
    text.append(f"  {r.engine}\n")
    text.append(f"host {row.host} ({row.address}:{row.port})  GPUs {row.gpus or '-'}  pid {row.pid or '-'}  ")
    started = age(now - row.started_at) + " ago" if row.started_at else "-"
    text.append(f"started {started}  restarts {row.restarts}\n")
    if row.reason:
        text.append(f"reason: {row.reason}\n", style="red" if row.phase == "failed" else "")
    text.append(f"load: {r.running:.0f} running, {r.waiting:.0f} waiting, KV {r.kv_usage * 100:.0f}%\n")
    text.append("command: ", style="bold")
    text.append(shlex.join(r.argv) if r.argv else "(not in the deployment spec)", style="cyan")
    return text


class ReplicaScreen(SnapshotScreen):
    TITLE = "Replica"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("l", "load_log", "Log tail"),
        Binding("r", "replica('restart')", "Restart"),
        Binding("x", "replica('stop')", "Stop"),
        Binding("z", "replica('sleep')", "Sleep"),
        Binding("w", "replica('wake')", "Wake"),
    ]

    def __init__(self, replica: str) -> None:
        super().__init__()
        self.replica = replica

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="replica-detail")
        yield Label("Events", classes="section")
        events = RowTable(id="replica-events", cursor_type="row")
        events.add_columns("time", "kind", "reason")
        yield events
        yield Label("Log (l to fetch the tail with llmctl logs)", id="log-title", classes="section")
        yield Log(id="log")
        yield Footer()

    def show(self, snapshot: Snapshot) -> None:
        self.sub_title = self.replica
        r = snapshot.replica(self.replica)
        detail = self.query_one("#replica-detail", Static)
        if r is None:
            detail.update(Text(f"{self.replica} is no longer in the state store", style="yellow"))
        else:
            detail.update(describe(r, snapshot.now))
        mine = [e for e in snapshot.events if e.subject == self.replica][-50:]
        sync_table(
            self.query_one("#replica-events", DataTable),
            [(str(e.id), (time.strftime("%H:%M:%S", time.gmtime(e.at)), e.kind, e.reason)) for e in mine],
        )

    def action_replica(self, kind: str) -> None:
        self.dashboard.request_replica_action(kind, self.replica)

    def action_load_log(self) -> None:
        self.query_one("#log-title", Label).update(f"Log of {self.replica}: fetching…")
        self.fetch_log(self.dashboard.logs_argv(self.replica, LOG_LINES))

    @work(thread=True, exclusive=True, group="log")
    def fetch_log(self, argv: list[str]) -> None:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=LOG_TIMEOUT_S, check=False)
            text, status = out.stdout + out.stderr, out.returncode
        except (OSError, subprocess.TimeoutExpired) as exc:
            text, status = str(exc), -1
        self.app.call_from_thread(self._show_log, text, status)

    def _show_log(self, text: str, status: int) -> None:
        log = self.query_one("#log", Log)
        log.clear()
        log.write_lines(text.splitlines())
        verdict = "" if status == 0 else f" (llmctl logs exit status {status})"
        self.query_one("#log-title", Label).update(f"Log of {self.replica}{verdict}")
