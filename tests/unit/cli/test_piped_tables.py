"""Human output piped to a file or `less` keeps every table column whole (issue #17): rich lays out at 80
columns when stdout is not a terminal, which cut the plan's headers to "en…", "wei…", "to…"."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.table import Table

from llmctl.cli.output import CliConsole

ROOT = Path(__file__).resolve().parents[3]
HEADERS = (
    "replica",
    "host:port",
    "GPUs",
    "engine",
    "TP",
    "weights/KV",
    "spec",
    "ctx",
    "KV tokens",
    "conc",
    "tok/s",
)


def _run(*args: str, stdout: Any) -> subprocess.CompletedProcess[str]:
    # COLUMNS unset on purpose: what a pipe or a redirect gets.
    env = {"PATH": "/usr/bin:/bin", "NO_COLOR": "1", "LLMCTL_STATE": os.environ["LLMCTL_STATE"]}
    return subprocess.run(
        [sys.executable, "-m", "llmctl.cli.main", *args],
        cwd=ROOT,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        env=env,
    )


def _cells(replica: dict[str, Any]) -> list[str]:
    """The values show_plan prints for one replica, computed from its --json twin."""
    engine = (
        "emu-" if replica["engine"] == "emulated" else ""
    ) + f"{replica['flavour']} {replica['engine_version']}"
    quant = "fp8" if replica["quantization"] == "fp8" else "bf16"
    return [
        replica["name"],
        f"{replica['host']}:{replica['port']}",
        f"{replica['gpu_type']}[{','.join(map(str, replica['gpus']))}]",
        engine,
        str(replica["tp"]),
        f"{quant}/{replica['kv_cache_dtype']}",
        "EAGLE-3" if replica["speculative_draft"] else "-",
        str(replica["max_context"]),
        f"{replica['kv_capacity_tokens']:,}",
        str(replica["max_concurrency"]),
        f"{replica['est_tokens_per_s']:,.0f}",
    ]


@pytest.mark.parametrize(
    ("playbook", "inventory"),
    [
        ("playbooks/local-demo.yaml", "inventory/local.yaml"),
        ("playbooks/online-chat.yaml", "inventory/example-ssh.yaml"),
    ],
)
def test_plan_piped_to_a_file_keeps_every_column_whole(tmp_path: Path, playbook: str, inventory: str) -> None:
    out_file = tmp_path / "plan.txt"
    with out_file.open("w") as f:
        done = _run("plan", playbook, "-i", inventory, stdout=f)
    assert done.returncode == 0, done.stderr
    text = out_file.read_text()
    assert "…" not in text
    header_line = next(line for line in text.splitlines() if "replica" in line and "host:port" in line)
    for header in HEADERS:
        assert header in header_line, f"header {header!r} broken in {header_line!r}"

    as_json = _run("plan", playbook, "-i", inventory, "--json", stdout=subprocess.PIPE)
    replicas = json.loads(as_json.stdout)["replicas"]
    assert replicas
    rows = [line for line in text.splitlines() if line.startswith("│")]
    for replica in replicas:
        (row,) = [r for r in rows if f"│ {replica['name']} " in r]
        for cell in _cells(replica):
            assert f" {cell} " in row, f"{cell!r} broken in {row!r}"


def _wide_table() -> Table:
    table = Table(title="wide")
    for i in range(12):
        table.add_column(f"column-{i}")
    table.add_row(*(f"value-{i}-abcdef" for i in range(12)))
    return table


def test_console_not_on_a_terminal_prints_a_table_at_its_natural_width() -> None:
    buf = io.StringIO()
    console = CliConsole(file=buf, width=80, force_terminal=False)
    console.print(_wide_table())
    text = buf.getvalue()
    assert "…" not in text
    assert all(f"value-{i}-abcdef" in text for i in range(12))
    assert console.width == 80  # widened for that table only


def test_console_on_a_terminal_still_fits_the_window() -> None:
    buf = io.StringIO()
    console = CliConsole(file=buf, width=80, force_terminal=True, color_system=None)
    console.print(_wide_table())
    assert max(len(line) for line in buf.getvalue().splitlines()) <= 80
