"""Hostile YAML gets one line, fast: an alias bomb ("billion laughs") is refused once it expands past a
bound instead of eating memory (old code: 2.8 GB after 20 s and growing), and deep nesting is refused
instead of ending in a RecursionError traceback."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmctl.config.source import MAX_DEPTH, parse_yaml
from llmctl.errors import ConfigError


def bomb(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels + 1):
        refs = ",".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_quickly() -> None:
    started = time.monotonic()
    with pytest.raises(ConfigError, match="expands to more than 100000 values"):
        parse_yaml(bomb(), "bomb.yaml")
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    "text",
    [
        "x: " + "[" * 5000 + "]" * 5000,
        "x:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 80)) + "  " * 80 + "v: 1\n",
    ],
)
def test_deep_nesting_is_one_line_not_a_traceback(text: str) -> None:
    with pytest.raises(ConfigError, match="nested"):
        parse_yaml(text, "deep.yaml")


def test_the_cli_says_one_line_for_a_bomb_inventory(tmp_path: Path) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_text(bomb())
    out = subprocess.run(
        [sys.executable, "-m", "llmctl.cli.main", "hosts", "list", "-i", str(inv)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.count("\n") <= 2 and "expands to more than" in out.stderr, out.stderr
    assert MAX_DEPTH >= 16
