"""`?`: what each key does, on every screen."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

HELP = """\
[b]llmctl tui[/b] — reads the state store; actions are queued as intents the controller carries out.

[b]Screens[/b]
  f  Fleet: hosts, fact age, GPUs (memory, utilisation, which replica holds each), GPU pools
  d  Deployments: replicas by phase, load, latency vs targets, KV, sparklines
  e  Events and intents (filterable, follows live; p: pool decisions only)
  s  Simulation: run a scenario, compare two runs
  enter  on a replica: its detail (command line, log tail)

[b]Actions[/b] (each asks for confirmation)
  S  scale the selected deployment (a number or 'auto')
  r  restart the selected replica     x  stop it
  z  put it to sleep                  w  wake it
  a  apply a playbook (runs llmctl apply --yes)

[b]Everywhere[/b]
  ctrl+p  command palette     ctrl+r  refresh now     ?  this help     q  quit
  The mouse works: click rows, buttons and the keys in the footer.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark", "close", "Close")]

    def __init__(self) -> None:
        super().__init__(classes="dialog")

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog-box help-box"):
            yield Static(HELP, id="help-text")

    def action_close(self) -> None:
        self.dismiss(None)
