"""What every dashboard screen shares: it is shown a fresh `Snapshot` after each refresh (and the latest
one when it comes back on top), and reaches the app's actions through `dashboard`."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.screen import Screen

from llmctl.tui.data import Snapshot

if TYPE_CHECKING:
    from llmctl.tui.app import DashboardApp


class SnapshotScreen(Screen[None]):
    @property
    def dashboard(self) -> DashboardApp:
        return cast("DashboardApp", self.app)

    def show(self, snapshot: Snapshot) -> None:
        """Update the widgets from a snapshot; called on the UI thread."""

    def on_screen_resume(self) -> None:
        self.show(self.dashboard.snapshot)
