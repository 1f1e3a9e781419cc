"""`llmctl plan` as users run it: the real console script, exit codes, JSON, errors without tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def llmctl(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmctl.cli.main", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
        env={
            "PATH": "/usr/bin:/bin",
            "COLUMNS": "200",
            "NO_COLOR": "1",
            "LLMCTL_STATE": os.environ["LLMCTL_STATE"],
        },
    )


def test_plan_prints_table_decisions_and_commands() -> None:
    out = llmctl("plan", "playbooks/local-demo.yaml", "-i", "inventory/local.yaml")
    assert out.returncode == 0, out.stderr
    assert "chat-0" in out.stdout and "EAGLE-3" in out.stdout
    emulated = "CUDA_VISIBLE_DEVICES=0,1 LLMCTL_EMULATED_GPU=H100-SXM python3 -m llmctl.engines.emulator"
    assert f"{emulated} --flavour sglang" in out.stdout
    assert "tensor parallel: 2" in out.stdout


def test_plan_json_is_machine_readable() -> None:
    out = llmctl("plan", "playbooks/online-chat.yaml", "-i", "inventory/example-ssh.yaml", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    (replica,) = data["replicas"]
    assert replica["engine"] == "sglang" and replica["tp"] == 2 and replica["quantization"] == "fp8"
    assert replica["argv"][:3] == ["python3", "-m", "sglang.launch_server"]
    assert replica["command"].startswith("CUDA_VISIBLE_DEVICES=0,1 python3 -m sglang.launch_server")
    assert {d["what"] for d in replica["decisions"]} >= {"engine", "tensor parallel", "weights"}


def test_errors_exit_nonzero_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "deployments:\n  - name: chat\n    model: Qwen/Qwen3-8B\n    workload: online\n    replicas: 2\n"
    )
    out = llmctl("plan", str(bad), "-i", "inventory/local.yaml")
    assert out.returncode == 2
    assert f"{bad}:5: deployments[0].replicas: unknown field" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout


def test_model_too_large_exit_code_and_message(tmp_path: Path) -> None:
    pb = tmp_path / "big.yaml"
    pb.write_text(
        "deployments:\n  - {name: big, model: meta-llama/Llama-3.1-70B-Instruct, workload: online,"
        " serving: {tensor_parallel: 1}}\n"
    )
    out = llmctl("plan", str(pb), "-i", "inventory/local.yaml")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "'big'" in out.stderr and "would fit:" in out.stderr


def test_missing_inventory_is_a_clear_error() -> None:
    out = llmctl("plan", "playbooks/online-chat.yaml", "-i", "inventory/nope.yaml")
    assert out.returncode == 2 and "inventory/nope.yaml: file not found" in out.stderr


@pytest.mark.parametrize(
    ("flag", "instead"),
    [
        ("--port", "the planner assigns each replica's port"),
        ("--host", "the planner binds replicas"),
        ("--served-model-name", "rename the deployment"),
        ("--api-key", "gateway.api_key_env"),
    ],
)
def test_engine_args_may_not_override_the_flags_llmctl_manages(
    tmp_path: Path, flag: str, instead: str
) -> None:
    # Old code merged them in: the engine listened where nothing looked, or served a name nothing routed.
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "deployments:\n  - name: chat\n    model: Qwen/Qwen3-8B\n    workload: online\n    engine: emulated\n"
        f"    engine_args:\n      --max-num-seqs: 8\n      {flag}: x\n"
    )
    out = llmctl("plan", str(bad), "-i", "inventory/local.yaml")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"{bad}:6: deployments[0].engine_args: engine_args '{flag}' is set by llmctl" in out.stderr
    assert instead in out.stderr
