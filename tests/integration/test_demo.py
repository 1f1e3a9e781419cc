"""The README's main job, `llmctl demo`, run as a person would run it: everything answers, nothing is left."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmctl.testing.local_fleet import engines_under, free_port

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def test_demo_rolls_out_serves_every_deployment_and_cleans_up(tmp_path: Path) -> None:
    state = tmp_path / "demo.db"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "llmctl.cli.main",
            "demo",
            "--duration",
            "3",
            "--rate",
            "4",
            "--state",
            str(state),
            "--gateway-port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # the shipped playbook and inventory are found from the package, not the cwd
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "HOME": str(tmp_path)},
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    rows = {line.split("│")[1].strip(): line for line in out.stdout.splitlines() if line.count("│") >= 6}
    for deployment in ("chat", "enrich", "summarise"):
        cells = [c.strip() for c in rows[deployment].split("│")]
        ok, total = cells[2].split("/")
        assert ok == total and int(total) > 0, rows[deployment]
    assert "adopted" in out.stdout and "replicas stopped" in out.stdout
    assert engines_under(tmp_path) == [] and engines_under(Path(tmp_path / ".llmctl")) == []
