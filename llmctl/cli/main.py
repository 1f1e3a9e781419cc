"""The `llmctl` command. Each noun lives in its own module; this file only wires them together and turns
LlmctlError into a one-line message and a non-zero exit, never a traceback."""

from __future__ import annotations

import sys

import typer

from llmctl.cli import batch, controller, demo, hosts, load, operate, perf, plan, provision, rollout, sim, tui
from llmctl.cli.output import print_error
from llmctl.errors import LlmctlError

app = typer.Typer(
    name="llmctl",
    help="Control plane and capacity simulator for self-hosted LLM serving.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("plan")(plan.plan_command)
app.add_typer(perf.app, name="perf")
app.add_typer(hosts.app, name="hosts")
app.command("provision")(provision.provision_command)
app.command("load")(load.load_command)
app.command("apply")(rollout.apply_command)
app.command("status")(rollout.status_command)
app.command("stop")(rollout.stop_command)
app.command("logs")(operate.logs_command)
app.command("restart")(operate.restart_command)
app.command("sleep")(operate.sleep_command)
app.command("wake")(operate.wake_command)
app.command("events")(operate.events_command)
app.command("scale")(operate.scale_command)
app.command("controller")(controller.controller_command)
app.command("gateway")(controller.gateway_command)
app.command("demo")(demo.demo_command)
app.add_typer(sim.app, name="sim")
app.command("tui")(tui.tui_command)
app.add_typer(batch.app, name="batch")


def main() -> None:
    try:
        app()
    except LlmctlError as exc:
        print_error(str(exc))
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
