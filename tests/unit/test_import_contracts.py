"""The pure core stays pure: import-linter's contracts (pyproject.toml) hold, and they would catch a breach."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def lint_imports(cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"
    return subprocess.run([exe, "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=120, env=env)


def test_contracts_hold() -> None:
    out = lint_imports(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


def test_contract_catches_clock_in_pure_code(tmp_path: Path) -> None:
    # A copy of the tree with one pure module reading the clock must fail the contract.
    copy = tmp_path / "tree"
    shutil.copytree(ROOT / "llmctl", copy / "llmctl", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "sim", copy / "sim", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    (copy / "llmctl/perf/clock_leak.py").write_text("import time\n\nNOW = time.monotonic()\n")
    out = lint_imports(copy, env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin"})
    assert out.returncode != 0
    assert "llmctl.perf.clock_leak" in out.stdout and "time" in out.stdout
