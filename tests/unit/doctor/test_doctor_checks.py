"""The doctor's pure checks: rows, statuses and fixes from needs, reach and probe; the exit decision."""

from __future__ import annotations

import dataclasses

import pytest

from llmctl.catalog.models import MODELS
from llmctl.doctor.checks import checks_for, connection_checks, cuda_major_for, exit_status, probe_checks
from llmctl.doctor.types import (
    GATED_MODELS,
    PUBLIC_MODELS,
    GpuProbe,
    HostNeeds,
    PortNeed,
    Probe,
    Reach,
    WeightNeed,
)

GIB = 2**30
NEEDS = HostNeeds(
    host="h1",
    where="10.0.0.5:22",
    ssh="ssh -p 22 ubuntu@10.0.0.5",
    venv="~/.llmctl/venv",
    python="python3",
    model_cache="~/.cache/huggingface",
    gpu_host=True,
    planned=True,
    provision="llmctl provision pb.yaml -i inv.yaml --limit h1",
    packages=(("vllm", "0.33.0"),),
    gpus=(0, 1),
    cuda_packages=(("vllm", "0.33.0"),),
    ports=(PortNeed(8000, "chat-0", True), PortNeed(8001, "chat-1", False)),
    weights=(WeightNeed("meta-llama/Llama-3.1-8B-Instruct", 20 * GIB),),
)
GPUS = (GpuProbe(0, "NVIDIA H100 80GB HBM3", 81559, 0), GpuProbe(1, "NVIDIA H100 80GB HBM3", 81559, 500))
PROBE = Probe(
    python="3.11.2",
    venv=True,
    packages={"vllm": ("0.33.0", True)},
    nvidia_smi=True,
    gpus=GPUS,
    driver="570.86.15",
    cuda="12.8",
    ports={8000: "free", 8001: "free"},
    disk_path="/home/ubuntu/.cache/huggingface",
    disk_free_bytes=100 * GIB,
    token=True,
)
REACH = Reach("known", "/k/known_hosts", "10.0.0.5", "10.0.0.5", 22, ssh="ssh -p 22 ubuntu@10.0.0.5")


def row(rows: list, name: str):  # type: ignore[no-untyped-def,type-arg]
    (found,) = [r for r in rows if r.name == name]
    return found


def test_a_healthy_host_passes_every_check() -> None:
    rows = checks_for(NEEDS, REACH, PROBE)
    assert {r.status for r in rows} == {"ok"}, [r for r in rows if r.status != "ok"]
    assert [r.name for r in rows][:5] == ["reachable", "host key", "python", "venv", "engine vllm"]
    assert exit_status(rows) == 0


def test_unreachable_host_keeps_the_transport_line_and_skips_the_rest() -> None:
    rows = checks_for(NEEDS, dataclasses.replace(REACH, error="cannot connect to 10.0.0.5:22: refused"), None)
    assert row(rows, "reachable").status == "fail" and "refused" in row(rows, "reachable").detail
    assert "ssh -p 22 ubuntu@10.0.0.5 true" in row(rows, "reachable").fix
    assert row(rows, "probe").status == "skip" and exit_status(rows) == 1


def test_unknown_key_fails_with_fingerprint_and_keyscan_fix() -> None:
    reach = dataclasses.replace(
        REACH, key="unknown", key_name="[10.0.0.5]:2222", port=2222, fingerprint="SHA256:ab"
    )
    (reach_row, key) = connection_checks("h1", reach)
    assert reach_row.status == "ok" and key.status == "fail" and "SHA256:ab" in key.detail
    assert "--accept-new-host-keys" in key.fix and "ssh-keyscan -p 2222 10.0.0.5 >> /k/known_hosts" in key.fix


def test_changed_key_fails_with_the_keygen_line() -> None:
    reach = dataclasses.replace(REACH, key="changed", key_name="[10.0.0.5]:2222", error="mismatch")
    reach_row, key = connection_checks("h1", reach)
    assert reach_row.status == "skip" and key.status == "fail"
    assert "ssh-keygen -R '[10.0.0.5]:2222' -f /k/known_hosts" in key.fix


def test_python_missing_or_too_old() -> None:
    missing = row(probe_checks(NEEDS, dataclasses.replace(PROBE, python=None)), "python")
    assert missing.status == "fail" and "python: /path/to/python3" in missing.fix
    old = row(probe_checks(NEEDS, dataclasses.replace(PROBE, python="3.8.10")), "python")
    assert old.status == "fail" and ">= 3.10" in old.detail


def test_venv_and_engine_rows() -> None:
    rows = probe_checks(NEEDS, dataclasses.replace(PROBE, venv=False))
    assert row(rows, "venv").status == "fail" and row(rows, "venv").fix == NEEDS.provision
    assert row(rows, "engine vllm").status == "skip"
    wrong = row(
        probe_checks(NEEDS, dataclasses.replace(PROBE, packages={"vllm": ("0.20.0", True)})), "engine vllm"
    )
    assert wrong.status == "fail" and "the plan pins 0.33.0" in wrong.detail
    assert "~/.llmctl/venv/bin/python -m pip install vllm==0.33.0" in wrong.fix
    absent = row(probe_checks(NEEDS, dataclasses.replace(PROBE, packages={})), "engine vllm")
    assert absent.status == "fail" and "not installed" in absent.detail
    broken = row(
        probe_checks(NEEDS, dataclasses.replace(PROBE, packages={"vllm": ("0.33.0", False)})), "engine vllm"
    )
    assert broken.status == "fail" and "not found" in broken.detail
    hostonly = dataclasses.replace(NEEDS, planned=False, packages=())
    assert row(probe_checks(hostonly, dataclasses.replace(PROBE, venv=False)), "venv").status == "warn"


def test_busy_gpus_by_process_or_memory() -> None:
    by_pid = (GPUS[0], dataclasses.replace(GPUS[1], pids=(4242, 4243)))
    busy = row(probe_checks(NEEDS, dataclasses.replace(PROBE, gpus=by_pid)), "gpus free")
    assert busy.status == "fail" and "GPU 1" in busy.detail and "kill 4242 4243" in busy.fix
    by_mem = (dataclasses.replace(GPUS[0], used_mib=40000), GPUS[1])
    assert row(probe_checks(NEEDS, dataclasses.replace(PROBE, gpus=by_mem)), "gpus free").status == "fail"
    # A busy GPU the plan does not use does not block.
    one = dataclasses.replace(NEEDS, gpus=(0,))
    assert row(probe_checks(one, dataclasses.replace(PROBE, gpus=by_pid)), "gpus free").status == "ok"


def test_gpus_missing() -> None:
    rows = probe_checks(NEEDS, dataclasses.replace(PROBE, nvidia_smi=False, gpus=()))
    assert row(rows, "gpus").status == "fail" and "accelerator: cpu" in row(rows, "gpus").fix
    fewer = row(probe_checks(NEEDS, dataclasses.replace(PROBE, gpus=GPUS[:1])), "gpus")
    assert fewer.status == "fail" and "GPU(s) 1" in fewer.detail
    emulated = dataclasses.replace(NEEDS, gpus=(), cuda_packages=())
    assert row(probe_checks(emulated, PROBE), "gpus").status == "skip"


@pytest.mark.parametrize(
    ("package", "version", "driver", "cuda", "status"),
    [
        ("vllm", "0.33.0", "570.86.15", "12.8", "ok"),
        ("vllm", "0.33.0", "470.82", "11.4", "fail"),
        ("sglang", "0.5.23", "570.86.15", "12.8", "fail"),  # CUDA 13 wheels
        ("sglang", "0.5.19", "570.86.15", "12.8", "ok"),  # the last CUDA 12 lane
        ("sglang", "0.5.23", "580.65", "13.0", "ok"),
    ],
)
def test_driver_against_the_engine_table(
    package: str, version: str, driver: str, cuda: str, status: str
) -> None:
    needs = dataclasses.replace(NEEDS, packages=((package, version),), cuda_packages=((package, version),))
    probe = dataclasses.replace(PROBE, driver=driver, cuda=cuda, packages={package: (version, True)})
    check = row(probe_checks(needs, probe), "driver")
    assert check.status == status, check
    if status == "fail":
        assert "upgrade the NVIDIA driver" in check.fix


def test_cuda_table() -> None:
    assert cuda_major_for("vllm", "0.8.5") == 12 and cuda_major_for("sglang", "0.5.20") == 13
    assert cuda_major_for("llmctl", "0.1.0") is None


def test_ports_taken_own_and_spare() -> None:
    probe = dataclasses.replace(PROBE, ports={8000: "taken", 8001: "taken"})
    rows = probe_checks(NEEDS, probe)
    assert row(rows, "port 8000").status == "fail" and "engine_port: 8002" in row(rows, "port 8000").fix
    assert "ss -ltnp 'sport = :8000'" in row(rows, "port 8000").fix
    assert row(rows, "port 8001").status == "warn"  # a spare slot, started later
    own = probe_checks(NEEDS, dataclasses.replace(PROBE, ports={8000: "own", 8001: "free"}))
    assert row(own, "port 8000").status == "ok" and "adopts" in row(own, "port 8000").detail


def test_disk_for_the_weights() -> None:
    short = row(probe_checks(NEEDS, dataclasses.replace(PROBE, disk_free_bytes=5 * GIB)), "disk")
    assert short.status == "fail" and "free 15.0 GiB" in short.fix and "model_cache:" in short.fix
    done = dataclasses.replace(NEEDS, weights=(dataclasses.replace(NEEDS.weights[0], downloaded=True),))
    assert row(probe_checks(done, dataclasses.replace(PROBE, disk_free_bytes=0)), "disk").status == "ok"
    assert row(probe_checks(dataclasses.replace(NEEDS, weights=()), PROBE), "disk").status == "skip"


def test_token_only_for_known_gated_models() -> None:
    name = "hf token meta-llama/Llama-3.1-8B-Instruct"
    missing = row(probe_checks(NEEDS, dataclasses.replace(PROBE, token=False)), name)
    assert (
        missing.status == "fail" and "https://huggingface.co/meta-llama/Llama-3.1-8B-Instruct" in missing.fix
    )
    assert "'umask 077; mkdir -p ~/.cache/huggingface && cat > ~/.cache/huggingface/token'" in missing.fix
    odd = dataclasses.replace(NEEDS, model_cache="~/my cache")
    fix = row(probe_checks(odd, dataclasses.replace(PROBE, token=False)), name).fix
    assert "cat > ~/'\"'\"'my cache/token'\"'\"''" in fix  # quoted for the remote shell, then for ssh
    public = dataclasses.replace(
        NEEDS, weights=(WeightNeed("Qwen/Qwen3-8B", GIB), WeightNeed("org/unknown", GIB))
    )
    rows = probe_checks(public, dataclasses.replace(PROBE, token=False))
    assert row(rows, "hf token Qwen/Qwen3-8B").status == "ok"
    assert row(rows, "hf token org/unknown").status == "skip"


def test_gated_table_names_catalog_models() -> None:
    # Names as the catalog spells them (a model added later without an entry is skipped, not guessed).
    assert set(GATED_MODELS | PUBLIC_MODELS) <= set(MODELS)
    assert not GATED_MODELS & PUBLIC_MODELS


def test_host_level_without_a_playbook_has_no_plan_rows() -> None:
    hostonly = dataclasses.replace(
        NEEDS, planned=False, packages=(), gpus=(), cuda_packages=(), ports=(), weights=()
    )
    rows = probe_checks(hostonly, PROBE)
    assert [r.name for r in rows] == ["python", "venv", "engines", "gpus", "gpus free", "driver"]
    assert exit_status(rows) == 0
    busy = dataclasses.replace(PROBE, gpus=(dataclasses.replace(GPUS[0], pids=(7,)),))
    assert row(probe_checks(hostonly, busy), "gpus free").status == "warn"
