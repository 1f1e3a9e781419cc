"""Ask for the playbook and inventory of `llmctl apply` before running it."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label


class ApplyScreen(ModalScreen[tuple[Path, Path] | None]):
    """Dismisses with (playbook, inventory) on confirm, None on cancel."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, playbook: Path, inventory: Path) -> None:
        super().__init__(classes="dialog")
        self.playbook = playbook
        self.inventory = inventory

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box"):
            yield Label("Apply a playbook (llmctl apply --yes)", classes="dialog-title")
            yield Label("Playbook:")
            yield Input(value=str(self.playbook), id="playbook")
            yield Label("Inventory:")
            yield Input(value=str(self.inventory), id="inventory")
            yield Label("", id="error", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Apply", variant="error", id="ok")
                yield Button("Cancel", variant="primary", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#playbook", Input).focus()

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        self._confirm()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self._confirm()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def _confirm(self) -> None:
        playbook = Path(self.query_one("#playbook", Input).value.strip())
        inventory = Path(self.query_one("#inventory", Input).value.strip())
        missing = [str(p) for p in (playbook, inventory) if not p.is_file()]
        if missing:
            self.query_one("#error", Label).update(f"no such file: {', '.join(missing)}")
            return
        self.dismiss((playbook, inventory))
