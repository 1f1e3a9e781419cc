"""Provisioning on real sshd hosts: a failed step is finished by re-running, a second run is a no-op, and a
host without the disk for the weights is refused before anything is installed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import llmctl
from llmctl.fleet.provision_run import build_wheel

pytestmark = pytest.mark.sshd


def provision(hosts, tmp_path: Path, playbook: Path, *extra: str) -> tuple[int, list[dict[str, object]]]:  # type: ignore[no-untyped-def]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "llmctl.cli.main",
            "provision",
            str(playbook),
            "-i",
            str(hosts.inventory),
            "--json",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=hosts.env(tmp_path / "state.db"),
    )
    assert "Traceback" not in out.stderr, out.stderr
    assert out.stdout.strip(), out.stderr
    return out.returncode, json.loads(out.stdout)


def statuses(rows: list[dict[str, object]], host: str) -> dict[str, object]:
    return {str(r["step"]): r["status"] for r in rows if r["host"] == host}


def test_provision_is_idempotent_and_recovers_from_a_failed_step(ssh_hosts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    playbook = tmp_path / "pb.yaml"
    playbook.write_text(
        yaml.safe_dump(
            {
                "deployments": [
                    {
                        "name": "a",
                        "model": "Qwen/Qwen3-8B",
                        "workload": "offline",
                        "engine": "emulated",
                        "placement": {"hosts": ["gpu8"]},
                    },
                    {
                        "name": "b",
                        "model": "Qwen/Qwen3-8B",
                        "workload": "offline",
                        "engine": "emulated",
                        "placement": {"hosts": ["mixed"], "gpu_type": "H100-SXM"},
                    },
                ]
            }
        )
    )
    # The mixed host declares no GPUs: its facts (gathered over SSH, cached in the store) place replica b.
    facts = subprocess.run(
        [
            sys.executable,
            "-m",
            "llmctl.cli.main",
            "hosts",
            "facts",
            "-i",
            str(ssh_hosts.inventory),
            "--limit",
            "mixed",
        ],
        capture_output=True,
        text=True,
        env=ssh_hosts.env(tmp_path / "state.db"),
    )
    assert facts.returncode == 0, facts.stdout + facts.stderr
    wheel = build_wheel()
    offline = ["--wheel", str(wheel), "--pip-args", "--no-index --no-deps"]
    for host in ("gpu8", "mixed"):  # start clean whatever earlier runs left behind
        shutil.rmtree(ssh_hosts.home / ".llmctl" / host, ignore_errors=True)

    code, rows = provision(
        ssh_hosts,
        tmp_path,
        playbook,
        "--limit",
        "gpu8",
        "--wheel",
        str(wheel),
        "--pip-args",
        "--no-index --no-deps --not-a-pip-option",
    )
    assert code == 1 and statuses(rows, "gpu8") == {"venv": "done", "install llmctl": "failed"}

    code, rows = provision(ssh_hosts, tmp_path, playbook, *offline)
    assert code == 0, rows
    assert statuses(rows, "gpu8") == {"venv": "skipped", "install llmctl": "done"}
    assert statuses(rows, "mixed") == {"venv": "done", "install llmctl": "done"}

    code, rows = provision(ssh_hosts, tmp_path, playbook, *offline)
    assert code == 0 and {r["status"] for r in rows} == {"skipped"} and len(rows) == 4

    venv_python = ssh_hosts.home / ".llmctl" / "mixed" / "venv" / "bin" / "python"
    version = subprocess.run(
        [
            "su",
            "llmctltest",
            "-c",
            f"{venv_python} -c 'import importlib.metadata as m; print(m.version(\"llmctl\"))'",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert version.stdout.strip() == llmctl.__version__


def test_not_enough_disk_is_refused_before_installing(ssh_hosts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    free_gib = shutil.disk_usage(ssh_hosts.home).free / 2**30
    if free_gib > 150:
        pytest.skip(f"this machine has {free_gib:.0f} GiB free: enough for 70B weights, nothing to refuse")
    playbook = tmp_path / "pb.yaml"
    playbook.write_text(
        yaml.safe_dump(
            {
                "deployments": [
                    {
                        "name": "big",
                        "model": "meta-llama/Llama-3.1-70B-Instruct",
                        "workload": "offline",
                        "engine": "vllm",
                        "placement": {"hosts": ["gpu8"]},
                    },
                ]
            }
        )
    )
    code, rows = provision(ssh_hosts, tmp_path, playbook)
    steps = {str(r["step"]): r for r in rows}
    assert code == 1 and steps["disk"]["status"] == "failed"
    assert "not enough disk" in str(steps["disk"]["detail"]) and "needs 151 GiB" in str(
        steps["disk"]["detail"]
    )
    assert {steps[s]["status"] for s in steps if s != "disk"} == {"not run"}
