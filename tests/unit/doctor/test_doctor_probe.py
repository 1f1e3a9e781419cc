"""The doctor's probe: the script runs under sh with hostile values as plain data, and its output parses."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from llmctl.config.inventory import Inventory
from llmctl.doctor.probe import parse_probe, probe_argv
from llmctl.doctor.run import needs_for
from llmctl.doctor.types import HostNeeds, PortNeed, WeightNeed
from llmctl.planning import plan_files

ROOT = Path(__file__).resolve().parents[3]


def test_probe_runs_locally_with_hostile_values(tmp_path: Path) -> None:
    evil = tmp_path / "x'; touch PWNED; echo '$(touch PWNED2)"
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        taken = int(listener.getsockname()[1])
        needs = HostNeeds(
            host="h",
            where="-",
            ssh="ssh h",
            venv=str(evil / "venv"),
            python="python3",
            model_cache=str(evil / "cache"),
            gpu_host=True,
            planned=True,
            packages=(("vllm", "0.33.0"),),
            ports=(PortNeed(taken, "a-0", True),),
            weights=(WeightNeed("org/m; rm -rf /", 1.0),),
        )
        out = subprocess.run(
            probe_argv(needs, {taken: str(evil / "run")}),
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=60,
        )
    assert out.returncode == 0, out.stderr
    assert not list(tmp_path.glob("PWNED*"))
    probe, markers = parse_probe(out.stdout)
    assert probe.python and not probe.venv and probe.ports == {taken: "taken"}
    assert probe.packages == {"vllm": (None, False)} and markers == frozenset()
    assert probe.disk_free_bytes and probe.disk_path == str(tmp_path)


def test_parse_gpus_processes_and_driver() -> None:
    text = "\n".join(
        [
            "@@ python", "3.11.2", "@@ venv", "ok", "@@ packages", "vllm 0.33.0 yes", "@@ ports", "8000 free",
            "@@ weights", ".llmctl-weights-org_m", "@@ token", "no", "@@ disk", "/data",
            "/dev/sda1 100 10 2048 1% /data", "@@ nvidia_smi_status", "ok", "@@ gpus",
            "0, NVIDIA H100 80GB HBM3, 81559, 100, 0, GPU-a", "1, NVIDIA H100 80GB HBM3, 81559, 9000, 50, GPU-b",
            "@@ apps", "GPU-b, 4242, 8900", "@@ smi_header",
            "| NVIDIA-SMI 570.86.15   Driver Version: 570.86.15   CUDA Version: 12.8 |",
        ]
    )  # fmt: skip
    probe, markers = parse_probe(text)
    assert probe.venv and probe.packages == {"vllm": ("0.33.0", True)} and probe.ports == {8000: "free"}
    assert [g.pids for g in probe.gpus] == [(), (4242,)] and (probe.driver, probe.cuda) == (
        "570.86.15",
        "12.8",
    )
    assert probe.disk_free_bytes == 2048 * 1024 and not probe.token and markers == {".llmctl-weights-org_m"}


def test_needs_from_the_local_demo_plan() -> None:
    inv = ROOT / "inventory" / "local.yaml"
    plan = plan_files(ROOT / "playbooks" / "local-demo.yaml", inv)
    hosts = list(plan_inventory(inv).hosts)
    needs, run_dirs = needs_for(hosts, plan, ["llmctl", "provision", "pb.yaml", "-i", "inv.yaml"], "9.9.9")
    (local,) = needs
    assert local.planned and local.packages == (("llmctl", "9.9.9"),)
    assert local.gpus == () and local.weights == () and len(local.ports) == 3
    assert local.provision == "llmctl provision pb.yaml -i inv.yaml --limit local"
    assert all(d.endswith(f"/replicas/{q.replica}") for q in local.ports for d in [run_dirs["local"][q.port]])


def plan_inventory(path: Path) -> Inventory:
    from llmctl.config.inventory import load_inventory

    return load_inventory(path)
