"""Events (what the controller and autoscaler did, and why), filterable and following live; above them,
the intents people asked for, with their state (pending, done, failed) and result. Where the store has GPU
pool decisions (issue #18), `p` shows those alone; the key is offered only then."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Header, Input, Label

from llmctl.state.intents import Intent
from llmctl.state.records import Event
from llmctl.tui.data import Snapshot
from llmctl.tui.formatting import INTENT_STYLE, POOL_EVENT_STYLE, clock
from llmctl.tui.pools import is_pool_event
from llmctl.tui.screens.base import SnapshotScreen
from llmctl.tui.table_sync import Row, RowTable, sync_table

SHOWN_EVENTS = 500


def matching(events: Sequence[Event], query: str) -> list[Event]:
    """Events whose subject, kind or reason contains every word of the query (case-insensitive)."""
    words = query.lower().split()
    if not words:
        return list(events)
    return [e for e in events if all(w in f"{e.subject} {e.kind} {e.reason}".lower() for w in words)]


def event_row(e: Event) -> Row:
    style = (
        "red" if "fail" in e.kind or "error" in e.kind else "yellow" if e.kind.startswith("requested") else ""
    )
    style = POOL_EVENT_STYLE.get(e.kind, style)
    return str(e.id), (clock(e.at), e.subject, Text(e.kind, style=style), e.reason)


def intent_row(i: Intent) -> Row:
    return str(i.id), (
        str(i.id), clock(i.at), i.kind, i.target, i.arg, Text(i.state, style=INTENT_STYLE.get(i.state, "")), i.result,
    )  # fmt: skip


class EventsScreen(SnapshotScreen):
    TITLE = "Events"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "focus_filter", "Filter"),
        Binding("l", "toggle_follow", "Follow"),
        Binding("p", "toggle_pool_only", "Pool events"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.follow = True
        self.pool_only = False
        self._has_pool_events = False

    def compose(self) -> ComposeResult:
        yield Header()
        intents = RowTable(id="intents", cursor_type="row")
        intents.add_columns("#", "time", "action", "target", "arg", "state", "result")
        yield Label("Intents", classes="section")
        yield intents
        yield Input(placeholder="filter events: words in subject, kind or reason (/ to focus)", id="filter")
        events = RowTable(id="events", cursor_type="row", zebra_stripes=True)
        events.add_columns("time", "subject", "kind", "reason")
        yield events
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#events", DataTable).focus()

    def show(self, snapshot: Snapshot) -> None:
        sync_table(
            self.query_one("#intents", DataTable), [intent_row(i) for i in reversed(snapshot.intents)][:20]
        )
        has_pool_events = any(is_pool_event(e) for e in snapshot.events)
        if has_pool_events != self._has_pool_events:
            self._has_pool_events = has_pool_events
            self.refresh_bindings()
        query = self.query_one("#filter", Input).value
        pool_only = self.pool_only and has_pool_events
        every = [e for e in snapshot.events if is_pool_event(e)] if pool_only else snapshot.events
        shown = matching(every, query)[-SHOWN_EVENTS:]
        table = self.query_one("#events", DataTable)
        sync_table(table, [event_row(e) for e in shown])
        if self.follow and table.row_count:
            table.move_cursor(row=table.row_count - 1, animate=False)
        pending = sum(1 for i in snapshot.intents if i.state == "pending")
        live = "following" if self.follow else "paused"
        which = "pool events" if pool_only else "events"
        self.sub_title = f"{len(shown)} {which} shown ({live}), {pending} intents pending"

    def on_input_changed(self, _event: Input.Changed) -> None:
        self.show(self.dashboard.snapshot)

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        self.query_one("#events", DataTable).focus()

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_clear_filter(self) -> None:
        self.query_one("#filter", Input).value = ""
        self.query_one("#events", DataTable).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The pool filter is offered only where there are pool events (a fleet without pools sees no key)."""
        return self._has_pool_events if action == "toggle_pool_only" else True

    def action_toggle_pool_only(self) -> None:
        self.pool_only = not self.pool_only
        self.show(self.dashboard.snapshot)

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow
        self.show(self.dashboard.snapshot)
