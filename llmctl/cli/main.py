"""The `llmctl` command. Each noun lives in its own module, imported only when its command runs: a verb
pays for its own libraries (SSH, HTTP, the planner, the simulator), so `llmctl status` answers in a fraction
of a second. This file only names the commands and turns LlmctlError into a one-line message and a
non-zero exit, never a traceback."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer
from typer.core import TyperGroup

from llmctl.cli.output import print_error
from llmctl.errors import LlmctlError

# name -> (module, attribute: a command function or a Typer sub-app), in the order `llmctl --help` lists them.
COMMANDS: dict[str, tuple[str, str]] = {
    "plan": ("llmctl.cli.plan", "plan_command"),
    "perf": ("llmctl.cli.perf", "app"),
    "hosts": ("llmctl.cli.hosts", "app"),
    "provision": ("llmctl.cli.provision", "provision_command"),
    "doctor": ("llmctl.cli.doctor", "doctor_command"),
    "load": ("llmctl.cli.load", "load_command"),
    "apply": ("llmctl.cli.rollout", "apply_command"),
    "status": ("llmctl.cli.rollout", "status_command"),
    "stop": ("llmctl.cli.rollout", "stop_command"),
    "logs": ("llmctl.cli.operate", "logs_command"),
    "restart": ("llmctl.cli.operate", "restart_command"),
    "sleep": ("llmctl.cli.operate", "sleep_command"),
    "wake": ("llmctl.cli.operate", "wake_command"),
    "events": ("llmctl.cli.operate", "events_command"),
    "scale": ("llmctl.cli.operate", "scale_command"),
    "controller": ("llmctl.cli.controller", "controller_command"),
    "gateway": ("llmctl.cli.controller", "gateway_command"),
    "demo": ("llmctl.cli.demo", "demo_command"),
    "sim": ("llmctl.cli.sim", "app"),
    "tui": ("llmctl.cli.tui", "tui_command"),
    "batch": ("llmctl.cli.batch", "app"),
}


class LazyCommands(TyperGroup):
    """A group that imports a command's module when the command is looked up, not at start."""

    def list_commands(self, ctx: Any) -> list[str]:  # ctx: the click context
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:  # a click command, or None
        spec = COMMANDS.get(cmd_name)
        if spec is None:
            return None
        target = getattr(importlib.import_module(spec[0]), spec[1])
        # Shell completion is the root's (`llmctl --install-completion`): built as the root's children, not
        # as apps of their own, so no sub-command grows its own --install-completion/--show-completion.
        if isinstance(target, typer.Typer):
            group = typer.main.get_group(target)
            group.name = cmd_name
            return group
        single = typer.Typer(add_completion=False)
        single.command(cmd_name)(target)
        command = typer.main.get_command(single)
        command.name = cmd_name
        return command


app = typer.Typer(
    name="llmctl",
    help="Control plane and capacity simulator for self-hosted LLM serving.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=LazyCommands,
)


@app.callback()
def _root() -> None:
    """Control plane and capacity simulator for self-hosted LLM serving."""


def main() -> None:
    try:
        app()
    except LlmctlError as exc:
        print_error(str(exc))
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
