"""`llmctl perf` commands (being built)."""

from __future__ import annotations

import typer

app = typer.Typer(help="perf commands", no_args_is_help=True)
