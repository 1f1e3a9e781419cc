"""AMD hosts' facts: amd-smi's and rocm-smi's JSON as published, into the facts nvidia-smi gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmctl.config.inventory import Host
from llmctl.fleet.amd_smi_parse import parse_amd_smi_static
from llmctl.fleet.facts import FACTS_SCRIPT, cached_facts, with_declared_gpus
from llmctl.fleet.facts_parse import parse_facts
from llmctl.fleet.rocm_smi_parse import parse_rocm_smi_json
from llmctl.state.store import Store

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_amd_smi_static_list_shape() -> None:
    gpus = parse_amd_smi_static(fixture("amd_smi_static_mi300x.json"))
    assert [(g.index, g.name, g.catalog) for g in gpus] == [
        (0, "AMD Instinct MI300X", "MI300X"),
        (1, "AMD Instinct MI300X", "MI300X"),
    ]
    assert gpus[0].memory_total_mib == 196592  # amd-smi's "MB" is MiB
    assert (gpus[0].memory_used_mib, gpus[0].utilization_pct) == (0, 0)  # static data: no use
    assert gpus[0].uuid == "<redacted-0>"


def test_amd_smi_static_rocm7_wrapper_and_missing_serial() -> None:
    (gpu,) = parse_amd_smi_static(fixture("amd_smi_static_gpu_data_mi355x.json"))
    assert (gpu.name, gpu.catalog, gpu.memory_total_mib) == ("AMD Instinct MI355X", "MI355X", 294896)
    assert gpu.uuid == "0000:05:00.0"  # asic_serial N/A: the PCI address identifies it


def test_amd_smi_skips_a_warning_before_the_json_and_reads_byte_units() -> None:
    text = (
        'WARNING: amdgpu driver version unknown\n[{"gpu": 3, "asic": {"market_name": "AMD Instinct MI325X"},'
    )
    text += ' "vram": {"size": {"value": 274877906944, "unit": "B"}}}]'
    (gpu,) = parse_amd_smi_static(text)
    assert (gpu.index, gpu.catalog, gpu.memory_total_mib, gpu.uuid) == (3, "MI325X", 262144, "amd-3")


@pytest.mark.parametrize("text", ["", "not json", '[{"gpu": 0, "asic": {}}]', '{"gpu_data": 5}'])
def test_amd_smi_garbage_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="amd-smi"):
        parse_amd_smi_static(text)


def test_rocm_smi_json_as_published() -> None:
    (gpu,) = parse_rocm_smi_json(fixture("rocm_smi_rx7900xt.json"))
    assert (gpu.index, gpu.name, gpu.catalog) == (0, "Radeon RX 7900 XT", None)
    assert gpu.memory_total_mib == 21458059264 // 2**20 and gpu.memory_used_mib == 27856896 // 2**20
    assert gpu.uuid == "26967"  # GUID where the release prints no Unique ID


def test_rocm_smi_rocm5_key_spelling_and_system_section() -> None:
    (gpu,) = parse_rocm_smi_json(fixture("rocm_smi_mi250x_rocm5.json"))
    assert gpu.name == "AMD INSTINCT MI200 (MCM) OAM LC MBA HPE C2" and gpu.catalog is None
    assert gpu.utilization_pct == 100 and gpu.memory_total_mib == 65520


def _script_output(section: str, body: str) -> str:
    return (
        f"@@ nvidia_smi_status\nmissing\n@@ {section}\n{body}\n@@ cpus\n64\n@@ meminfo\nMemTotal: 1024 kB\n"
    )


def test_facts_fall_back_to_amd_smi_then_rocm_smi() -> None:
    amd = parse_facts("mi", _script_output("amd_smi_static", fixture("amd_smi_static_mi300x.json")))
    assert amd.gpu_source == "amd-smi" and [g.catalog for g in amd.gpus] == ["MI300X", "MI300X"]
    assert amd.notes == () and amd.cpus == 64
    rocm = parse_facts("rx", _script_output("rocm_smi", fixture("rocm_smi_rx7900xt.json")))
    assert rocm.gpu_source == "rocm-smi" and rocm.gpus[0].name == "Radeon RX 7900 XT"
    assert "unknown to the catalog: Radeon RX 7900 XT" in rocm.notes[0] and "gpu_types" in rocm.notes[0]


def test_the_facts_script_asks_amd_smi_before_rocm_smi() -> None:
    assert FACTS_SCRIPT.index("amd-smi static --asic --bus --vram --json") < FACTS_SCRIPT.index(
        "rocm-smi --showproductname --showuse --showmeminfo vram"
    )


def test_gathered_amd_gpus_are_not_replaced_by_declared_ones(tmp_path: Path) -> None:
    facts = parse_facts("mi", _script_output("amd_smi_static", fixture("amd_smi_static_mi300x.json")))
    host = Host(name="mi", address="1", gpus={"type": "MI300X", "count": 8})
    assert with_declared_gpus(host, facts) == facts
    store = Store(tmp_path / "s.db")
    store.put_facts("mi", facts.to_dict(), 1.0)
    resources = cached_facts(store)["mi"]
    assert resources.gpu_source == "amd-smi" and dict(resources.gpu_memory_mib) == {0: 196592, 1: 196592}
