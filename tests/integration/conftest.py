"""Real OpenSSH test hosts (llmctl.testing.sshd_hosts): `gpu8` (8 x H100 via nvidia-smi), `mixed` (2 x H100 +
2 x L40S), `cpu` (no nvidia-smi, declares one L4), and `down` (in the inventory, no sshd: unreachable)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmctl.testing.local_fleet import LocalFleet
from llmctl.testing.sshd_hosts import SshdHosts, available, start_hosts

H100 = "NVIDIA H100 80GB HBM3"
L40S = "NVIDIA L40S"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def ssh_hosts() -> Iterator[SshdHosts]:
    reason = available()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"real SSH test hosts unavailable in CI: {reason}")
        pytest.skip(reason)
    hosts = start_hosts(
        {"gpu8": [H100] * 8, "mixed": [H100, H100, L40S, L40S], "cpu": [], "down": []},
        down=("down",),
        declared={
            "cpu": {"gpus": {"type": "L4", "count": 1}},
            "gpu8": {"gpus": {"type": "H100-SXM", "count": 8}},
        },
    )
    try:
        yield hosts
    finally:
        hosts.close()


@pytest.fixture(scope="session")
def built_host_venv() -> Path:
    """A venv the test user can run (system Python, world-readable), with this checkout installed: built
    once per session (pip takes most of a minute)."""
    python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else shutil.which("python3")
    assert python, "no python3 for the test hosts"
    root = Path(tempfile.mkdtemp(prefix="llmctl-host-venv-"))
    os.chmod(root, 0o755)
    venv = root / "venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "-e",
            str(ROOT),
        ],
        check=True,
        timeout=900,
    )
    return venv


@pytest.fixture
def host_venv(ssh_hosts: SshdHosts, built_host_venv: Path) -> Path:
    """The built venv linked where `llmctl provision` would put gpu8's engine venv, again for each test:
    the provisioning tests install a venv of their own there in between."""
    venv = built_host_venv
    for name in ("gpu8",):
        workdir = ssh_hosts.home / ".llmctl" / name
        workdir.mkdir(parents=True, exist_ok=True)
        link = workdir / "venv"
        if link.is_symlink() or link.exists():
            if link.is_symlink():
                link.unlink()
            else:
                shutil.rmtree(link)
        link.symlink_to(venv)
        subprocess.run(["chown", "-R", "llmctltest:llmctltest", str(ssh_hosts.home / ".llmctl")], check=True)
    return venv


@pytest.fixture
def scaling_fleet(tmp_path: Path) -> Iterator[LocalFleet]:
    """A local fleet fast enough to watch scaling: emulated time x0.05, a controller tick every 0.5 s."""
    f = LocalFleet(tmp_path, time_scale=0.05)
    f.interval_s = 0.5
    yield f
    if f.controller is not None:
        f.stop_controller()
    f.llmctl("stop", "--all", "-i", str(f.inventory))
