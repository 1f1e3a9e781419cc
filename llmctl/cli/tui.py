"""`llmctl tui`: the Textual dashboard over the state store."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import typer

from llmctl.cli.common import INVENTORY, STATE


def tui_command(
    state: Path | None = STATE,
    inventory: Path = INVENTORY,
    playbook: Path = typer.Option(
        Path("playbooks/local-demo.yaml"), "--playbook", "-p", help="Playbook the apply action offers first."
    ),
    refresh: float = typer.Option(
        2.0, "--refresh", help="Seconds between reads of the state store.", min=0.2
    ),
    now: float | None = typer.Option(
        None,
        "--now",
        help="Freeze the dashboard's clock at this unix time (for demos and tests).",
        hidden=True,
    ),
) -> None:
    """A live dashboard: fleet, deployments, replicas, events, simulation; actions become intents."""
    from llmctl.tui.app import DashboardApp  # textual loads only for this command

    DashboardApp(state, inventory=inventory, playbook=playbook, refresh_s=refresh, now=clock(now)).run()


def clock(frozen: float | None) -> Callable[[], float]:
    if frozen is None:
        return time.time
    value = frozen
    return lambda: value
