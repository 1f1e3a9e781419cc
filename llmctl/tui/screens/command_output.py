"""A command run as a subprocess (today `llmctl apply ... --yes`), its output streamed as it comes."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Log


class CommandOutputScreen(ModalScreen[int | None]):
    """Runs `argv` in a worker thread; dismisses with its exit status (None if closed while running)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q", "close", "Close")]

    def __init__(self, title: str, argv: Sequence[str]) -> None:
        super().__init__(classes="dialog")
        self.title_text = title
        self.argv = tuple(argv)
        self.returncode: int | None = None

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box output-box"):
            yield Label(self.title_text, classes="dialog-title")
            yield Label("running…", id="status")
            yield Log(id="output", auto_scroll=True)

    def on_mount(self) -> None:
        self.run_command()

    @work(thread=True, exclusive=True, group="command")
    def run_command(self) -> None:
        try:
            proc = subprocess.Popen(
                self.argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                stdin=subprocess.DEVNULL,
            )
        except OSError as exc:
            self.app.call_from_thread(self._finished, 127, f"cannot run {self.argv[0]}: {exc}")
            return
        assert proc.stdout is not None
        for line in proc.stdout:
            self.app.call_from_thread(self.query_one("#output", Log).write_line, line.rstrip("\n"))
        code = proc.wait()
        self.app.call_from_thread(self._finished, code, "")

    def _finished(self, code: int, error: str) -> None:
        self.returncode = code
        if error:
            self.query_one("#output", Log).write_line(error)
        verdict = "done" if code == 0 else f"failed (exit status {code})"
        self.query_one("#status", Label).update(f"{verdict} — escape to close")

    def action_close(self) -> None:
        self.dismiss(self.returncode)
