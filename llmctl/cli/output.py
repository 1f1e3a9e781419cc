"""Shared output helpers for the CLI: one console, JSON for --json, errors in one style."""

from __future__ import annotations

import json
import sys
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

# Wider than any table a command prints: the width a table is measured in to find its natural width.
_UNBOUNDED = 10_000


class CliConsole(Console):
    """A console that never cuts a table when its output is not a terminal.

    Rich lays everything out at 80 columns when stdout is a pipe or a file, so a wide table comes out with
    headers and values cut to "en…". A reader of `llmctl plan | less` or of a saved report has no terminal
    width to respect, so a table is printed at its own natural width instead; plain text still wraps at 80.
    On a terminal nothing changes: the table fits the window, as it must."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        natural = 0 if self.is_terminal else self._table_width(objects)
        if natural <= self.width:
            super().print(*objects, **kwargs)
            return
        # Console.print clamps its own width= argument to the console's width, so widening needs the
        # console's width itself; _width is what the width setter writes (None: follow the environment).
        with self._lock:
            saved = self._width
            self.width = natural
            try:
                super().print(*objects, **kwargs)
            finally:
                self._width = saved

    def _table_width(self, objects: tuple[Any, ...]) -> int:
        options = self.options.update_width(_UNBOUNDED)
        return max(
            (Measurement.get(self, options, o).maximum for o in objects if isinstance(o, Table)),
            default=0,
        )


console = CliConsole()
err_console = CliConsole(stderr=True)


def _default(obj: Any) -> Any:
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if hasattr(obj, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(obj)
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def print_json(data: Any) -> None:
    """Machine-readable output on stdout (no colour, no wrapping), for `--json`."""
    sys.stdout.write(json.dumps(data, default=_default, indent=2, sort_keys=False) + "\n")


def print_error(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
