"""Operator-defined GPU types (gpu_types / llmctl_gpu_types): loaded, usable as a host's type, and
refused with file:line errors when malformed."""

from __future__ import annotations

import pytest

from llmctl.catalog.gpus import GB, TFLOPS, GiB
from llmctl.config.inventory import Inventory, parse_inventory
from llmctl.config.source import parse_yaml
from llmctl.errors import ConfigError, ConfigErrors

FOO = "  Foo: {memory_gib: 96, hbm_gbps: 2000, bf16_tflops: 400, fp8_tflops: 800, price_per_gpu_hour: 1.2}\n"


def parse(text: str) -> Inventory:
    data, lines = parse_yaml(text, "inv.yaml")
    return parse_inventory(data, lines)


def error_of(text: str) -> ConfigError:
    with pytest.raises((ConfigError, ConfigErrors)) as info:
        parse(text)
    exc = info.value
    if isinstance(exc, ConfigErrors):
        return exc.errors[0]
    assert isinstance(exc, ConfigError)
    return exc


def test_native_gpu_types_define_a_host_type() -> None:
    inv = parse("gpu_types:\n" + FOO + "hosts:\n  a: {address: 10.0.0.1, gpus: {type: Foo, count: 4}}\n")
    gpu = inv.hosts[0].gpus.gpu if inv.hosts[0].gpus else None
    assert gpu is not None and gpu.name == "Foo" and gpu.memory_bytes == 96 * GiB
    assert (gpu.hbm_bandwidth, gpu.bf16_flops, gpu.fp8_flops) == (2000 * GB, 400 * TFLOPS, 800 * TFLOPS)
    assert gpu.interconnect == "pcie" and gpu.source == "inventory gpu_types (inv.yaml:2)"
    assert inv.hosts[0].gpu_price == 1.2
    assert inv.find_gpu("Foo") == gpu and inv.find_gpu("H100-SXM") is not None


def test_aliases_resolve_tool_names_and_amd_vendor_means_rocm() -> None:
    inv = parse(
        "gpu_types:\n"
        "  MI308X: {memory_gib: 192, hbm_gbps: 5300, bf16_tflops: 300, vendor: amd, interconnect: infinity-fabric,"
        " interconnect_gbps: 448, aliases: ['AMD Instinct MI308X']}\n"
        "hosts:\n  a: {gpus: {type: MI308X, count: 8}}\n"
    )
    found = inv.find_gpu("AMD Instinct MI308X")
    assert found is not None and found.name == "MI308X" and found.is_rocm
    assert found.interconnect_bandwidth == 448 * GB


def test_ansible_llmctl_gpu_types_in_all_vars() -> None:
    inv = parse(
        "all:\n"
        "  vars:\n"
        "    ansible_user: deploy\n"
        "    llmctl_gpu_types:\n"
        "      Foo: {memory_gib: 48, hbm_gbps: 900, bf16_tflops: 150}\n"
        "  hosts:\n"
        "    a: {ansible_host: 10.1.1.1, llmctl_gpus: {type: Foo, count: 2}}\n"
    )
    (host,) = inv.hosts
    assert host.user == "deploy" and host.gpus is not None and host.gpus.gpu.name == "Foo"
    assert set(inv.gpu_types) == {"Foo"}


@pytest.mark.parametrize(
    ("types", "line", "field", "problem"),
    [
        ("  Foo: {memory_gib: 96, bf16_tflops: 400}\n", 2, "gpu_types.Foo.hbm_gbps", "required"),
        ("  Foo: {memory_gib: -1, hbm_gbps: 1, bf16_tflops: 1}\n", 2, "gpu_types.Foo.memory_gib", "greater than"),
        ("  Foo:\n    memory_gib: 96\n    hbm_gbps: 1\n    bf16_tflops: 1\n    speed: 3\n", 6, "gpu_types.Foo.speed",
         "unknown field"),
        ("  Foo: {memory_gib: 1, hbm_gbps: 1, bf16_tflops: 1, interconnect: nvlink}\n", 2, "gpu_types.Foo",
         "needs interconnect_gbps"),
        ("  H100-SXM: {memory_gib: 1, hbm_gbps: 1, bf16_tflops: 1}\n", 2, "gpu_types.H100-SXM", "catalog"),
        ("  'bad name': {memory_gib: 1, hbm_gbps: 1, bf16_tflops: 1}\n", 2, "gpu_types.bad name", "must be"),
    ],
)  # fmt: skip
def test_bad_gpu_types_name_file_line_and_field(types: str, line: int, field: str, problem: str) -> None:
    err = error_of("gpu_types:\n" + types + "hosts:\n  a: {gpus: {type: L4, count: 1}}\n")
    assert (err.file, err.line, err.field) == ("inv.yaml", line, field)
    assert problem in err.problem


def test_gpu_types_must_be_a_mapping() -> None:
    err = error_of("gpu_types: [Foo]\nhosts:\n  a: {}\n")
    assert (err.line, err.field) == (1, "gpu_types")


def test_a_host_naming_an_undefined_type_points_at_gpu_types() -> None:
    err = error_of("gpu_types:\n" + FOO + "hosts:\n  a: {gpus: {type: Bar, count: 1}}\n")
    assert (err.line, err.field) == (4, "gpus.type")  # host errors are rooted at the host
    assert "unknown GPU type 'Bar'" in err.problem and "gpu_types: Foo" in err.problem
