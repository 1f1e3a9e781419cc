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


def _cycle(graph: object, package: str) -> list[str]:
    """A cycle among the modules of `package` (direct imports), or [] when there is none."""
    modules = {m for m in graph.find_children(package)}  # type: ignore[attr-defined]
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m: str) -> list[str]:
        state[m] = 1
        path.append(m)
        for n in sorted(graph.find_modules_directly_imported_by(m) & modules):  # type: ignore[attr-defined]
            if state.get(n) == 1:
                return [*path[path.index(n) :], n]
            if n not in state and (found := visit(n)):
                return found
        state[m] = 2
        path.pop()
        return []

    for m in sorted(modules):
        if m not in state and (found := visit(m)):
            return found
    return []


def test_no_import_cycle_inside_control_or_the_reconcile_core() -> None:
    import grimp

    graph = grimp.build_graph("llmctl", cache_dir=None)
    for package in ("llmctl.control", "llmctl.reconcile", "llmctl.spec"):
        assert _cycle(graph, package) == [], package
    # The check finds a cycle when there is one: add llmctl.control.actuate -> controller -> actuate.
    graph.add_import(importer="llmctl.control.actuate", imported="llmctl.control.controller")
    assert _cycle(graph, "llmctl.control")[0] in ("llmctl.control.actuate", "llmctl.control.controller")
