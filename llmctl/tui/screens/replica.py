"""One replica: command line, host, GPUs, restarts, its events, and its live log tail: `l` runs
`llmctl logs REPLICA -f` as a subprocess (the log lives on the replica's host, reached over the fleet
transport) and streams its lines in until `l` again or leaving the screen stops it."""

from __future__ import annotations

import contextlib
import shlex
import subprocess
import time
from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Header, Label, Log, Static

from llmctl.tui import units
from llmctl.tui.data import ReplicaView, Snapshot
from llmctl.tui.formatting import age, phase, whole
from llmctl.tui.screens.base import SnapshotScreen
from llmctl.tui.table_sync import RowTable, sync_table

LOG_LINES = 100


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
    text.append(
        f"load: {whole(r.running)} running, {whole(r.waiting)} waiting, KV {units.percent(r.kv_usage, 0)}\n"
    )
    text.append("command: ", style="bold")
    text.append(shlex.join(r.argv) if r.argv else "(not in the deployment spec)", style="cyan")
    return text


class ReplicaScreen(SnapshotScreen):
    TITLE = "Replica"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("l", "toggle_log", "Follow log"),
        Binding("r", "replica('restart')", "Restart"),
        Binding("x", "replica('stop')", "Stop"),
        Binding("z", "replica('sleep')", "Sleep"),
        Binding("w", "replica('wake')", "Wake"),
    ]

    def __init__(self, replica: str) -> None:
        super().__init__()
        self.replica = replica
        self._tail: subprocess.Popen[str] | None = None  # the running `llmctl logs -f`, while following

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="replica-detail")
        yield Label("Events", classes="section")
        events = RowTable(id="replica-events", cursor_type="row")
        events.add_columns("time", "kind", "reason")
        yield events
        yield Label("Log (l to follow it with llmctl logs -f)", id="log-title", classes="section")
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

    def action_toggle_log(self) -> None:
        title = self.query_one("#log-title", Label)
        if self._tail is not None:
            self._stop_tail()
            title.update(f"Log of {self.replica}: stopped (l to follow again)")
            return
        self.query_one("#log", Log).clear()
        title.update(f"Log of {self.replica}: following (l to stop)")
        self.follow_log(self.dashboard.logs_argv(self.replica, LOG_LINES, follow=True))

    def on_unmount(self) -> None:
        self._stop_tail()

    def _stop_tail(self) -> None:
        proc, self._tail = self._tail, None
        if proc is not None and proc.poll() is None:
            proc.terminate()

    @work(thread=True, exclusive=True, group="log")
    def follow_log(self, argv: list[str]) -> None:
        try:
            proc = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
            )
        except OSError as exc:
            self._from_thread(self._log_ended, str(exc), -1)
            return
        self._tail = proc
        assert proc.stdout is not None
        for line in proc.stdout:
            self._from_thread(self._append, line.rstrip("\n"))
        status = proc.wait()
        self._from_thread(self._log_ended, "", status)

    def _from_thread(self, fn: Callable[..., object], *args: object) -> None:
        with contextlib.suppress(RuntimeError):  # the app closed while the log was still streaming
            self.app.call_from_thread(fn, *args)

    def _append(self, line: str) -> None:
        self.query_one("#log", Log).write_line(line)

    def _log_ended(self, error: str, status: int) -> None:
        stopped = self._tail is None  # stopped by the user: the exit status is ours, not news
        self._tail = None
        if error:
            self.query_one("#log", Log).write_line(error)
        if not stopped:
            verdict = "ended" if status == 0 else f"llmctl logs exit status {status}"
            self.query_one("#log-title", Label).update(
                f"Log of {self.replica} ({verdict}; l to follow again)"
            )
