"""Ask for a deployment's new replica count (or "auto") before requesting a scale."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label


def parse_replicas(text: str, slots: int) -> str | None:
    """The intent argument for a typed count: "auto" or a whole number in 0..slots; None when invalid."""
    text = text.strip().lower()
    if text == "auto":
        return "auto"
    if text.isdigit() and (slots <= 0 or int(text) <= slots):
        return str(int(text))
    return None


class ScaleScreen(ModalScreen[str | None]):
    """Dismisses with the intent argument ("3", "auto") on confirm, None on cancel."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, deployment: str, current: int, slots: int) -> None:
        super().__init__(classes="dialog")
        self.deployment = deployment
        self.current = current
        self.slots = slots

    def compose(self) -> ComposeResult:
        limit = f"0..{self.slots}" if self.slots else "a whole number"
        with Vertical(classes="dialog-box"):
            yield Label(f"Scale {self.deployment} (now {self.current} replica(s))", classes="dialog-title")
            yield Label(f"Replicas ({limit}) or 'auto' to hand it back to the autoscaler:")
            yield Input(value=str(self.current), id="replicas")
            yield Label("", id="error", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Scale", variant="warning", id="ok")
                yield Button("Cancel", variant="primary", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#replicas", Input).focus()

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
        arg = parse_replicas(self.query_one("#replicas", Input).value, self.slots)
        if arg is None:
            self.query_one("#error", Label).update(f"give a whole number in 0..{self.slots} or 'auto'")
            return
        self.dismiss(arg)
