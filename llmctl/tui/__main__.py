"""`python -m llmctl.tui [--state PATH]`: the dashboard without going through the main CLI."""

from __future__ import annotations

import typer

from llmctl.cli.tui import tui_command


def main() -> None:
    typer.run(tui_command)


if __name__ == "__main__":
    main()
