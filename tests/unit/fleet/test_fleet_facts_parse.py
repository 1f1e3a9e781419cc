"""Parsing of the facts script's output (pure), the declared-GPU fallback and the planner's facts form."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmctl.config.inventory import Host
from llmctl.fleet.facts import cached_facts, facts_argv, with_declared_gpus
from llmctl.fleet.facts_parse import HostFacts, parse_facts, parse_gpu_csv
from llmctl.state.store import Store

# What the facts script prints on a 2-GPU host, nvidia-smi lines exactly as the real tool formats them.
OUTPUT = """\
@@ nvidia_smi_status
ok
@@ gpus
0, NVIDIA H100 80GB HBM3, 81559, 1024, 37, GPU-5a1b2c3d-0000-1111-2222-333344445555
1, NVIDIA L40S, 46068, 0, [N/A], GPU-6a1b2c3d-0000-1111-2222-333344445555
@@ smi_header
Tue Nov 24 12:00:00 2026
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 570.86.15              Driver Version: 570.86.15      CUDA Version: 12.8     |
@@ cpus
96
@@ meminfo
MemTotal:       2113612000 kB
@@ disk
/dev/nvme0n1p1  3750000000 1000000000 2750000000  27% /
@@ os
NAME="Ubuntu"
PRETTY_NAME="Ubuntu 22.04.4 LTS"
@@ python
Python 3.11.7
@@ engines
vllm 0.8.5
sglang -
llmctl 0.1.0
"""


def test_full_output_parses_into_facts() -> None:
    f = parse_facts("h1", OUTPUT)
    assert f.gpu_source == "nvidia-smi"
    assert [(g.index, g.name, g.catalog) for g in f.gpus] == [
        (0, "NVIDIA H100 80GB HBM3", "H100-SXM"),
        (1, "NVIDIA L40S", "L40S"),
    ]
    assert f.gpus[0].memory_total_mib == 81559 and f.gpus[0].utilization_pct == 37
    assert f.gpus[1].utilization_pct == 0  # [N/A] on GPUs that do not report it
    assert f.gpus[0].uuid == "GPU-5a1b2c3d-0000-1111-2222-333344445555"
    assert (f.driver_version, f.cuda_version) == ("570.86.15", "12.8")
    assert (f.cpus, f.memory_mib, f.disk_free_mib) == (96, 2113612000 // 1024, 2750000000 // 1024)
    assert (f.os, f.python) == ("Ubuntu 22.04.4 LTS", "3.11.7")
    assert f.engines == {"vllm": "0.8.5", "llmctl": "0.1.0"}
    assert f.notes == ()
    assert f.gpu_slots() == [(0, "NVIDIA H100 80GB HBM3"), (1, "NVIDIA L40S")]


def test_no_nvidia_smi_means_no_gpus_and_says_so() -> None:
    f = parse_facts("h1", "@@ nvidia_smi_status\nmissing\n@@ cpus\n4\n@@ engines\nvllm -\n")
    assert f.gpus == () and f.gpu_source == "none" and f.cpus == 4 and f.engines == {}
    assert f.notes == ("no nvidia-smi on this host",)


def test_unknown_gpu_is_kept_and_noted() -> None:
    f = parse_facts("h1", "@@ nvidia_smi_status\nok\n@@ gpus\n0, NVIDIA Imaginary X9, 1000, 0, 0, GPU-x\n")
    assert f.gpus[0].catalog is None and "NVIDIA Imaginary X9" in f.notes[0]


@pytest.mark.parametrize(
    ("line", "problem"),
    [("0, NVIDIA L40S, 46068", "expected 6 fields"), ("zero, NVIDIA L40S, 1, 0, 0, GPU-x", "not numbers")],
)
def test_malformed_gpu_line_is_named(line: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as info:
        parse_gpu_csv([line])
    assert "line 1" in str(info.value)


def test_facts_round_trip_through_dict() -> None:
    f = parse_facts("h1", OUTPUT)
    assert HostFacts.from_dict(f.to_dict()) == f


def test_declared_gpus_stand_in_without_nvidia_smi() -> None:
    host = Host(name="c1", address="127.0.0.1", gpus={"type": "L4", "count": 2})  # type: ignore[arg-type]
    facts = with_declared_gpus(host, parse_facts("c1", "@@ nvidia_smi_status\nmissing\n"))
    assert facts.gpu_source == "declared" and [g.catalog for g in facts.gpus] == ["L4", "L4"]
    assert "declared in the inventory" in facts.notes[0]
    real = parse_facts("c1", OUTPUT)
    assert with_declared_gpus(host, real) is real  # measured GPUs win over declared ones


def test_facts_script_takes_values_as_arguments() -> None:
    host = Host(name="c1", address="127.0.0.1", model_cache="~/x; rm -rf /", workdir="~/w")  # type: ignore[arg-type]
    argv = facts_argv(host)
    assert argv[:2] == ["sh", "-c"] and argv[-3:] == ["~/x; rm -rf /", "~/w/venv", "python3"]
    assert "rm -rf" not in argv[2]


def test_cached_facts_in_the_planners_form(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    store.put_facts("h1", parse_facts("h1", OUTPUT).to_dict(), 123.0)
    assert cached_facts(store)["h1"].gpus == ((0, "NVIDIA H100 80GB HBM3"), (1, "NVIDIA L40S"))
    assert store.facts("h1") is not None and store.facts("h1")[0] == 123.0  # type: ignore[index]
