"""CPU hosts in the inventory: `accelerator: cpu` with a declared `cpu: {cores, memory_gib}`, in both shapes,
and errors that name file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmctl.config.inventory import Inventory, load_inventory, parse_inventory
from llmctl.config.source import parse_yaml
from llmctl.errors import ConfigError, ConfigErrors

ROOT = Path(__file__).resolve().parents[3]


def parse(text: str, file: str = "inv.yaml") -> Inventory:
    data, lines = parse_yaml(text, file)
    return parse_inventory(data, lines)


def only_error(exc: BaseException) -> ConfigError:
    if isinstance(exc, ConfigErrors):
        (err,) = exc.errors
        return err
    assert isinstance(exc, ConfigError)
    return exc


def test_shipped_cpu_inventory() -> None:
    (host,) = load_inventory(ROOT / "inventory/local-cpu.yaml").hosts
    assert (host.connection, host.accelerator, host.gpus) == ("local", "cpu", None)
    assert host.cpu is not None and host.cpu.cores >= 1 and host.cpu.memory_gib > 0
    assert host.venv == host.workdir + "/venv"


def test_declared_cpu_native_and_ansible() -> None:
    native = parse(
        "hosts:\n  c: {accelerator: cpu, cpu: {cores: 16, memory_gib: 62.5}, engine_venv: /opt/v}\n"
    )
    (c,) = native.hosts
    assert c.cpu is not None and (c.cpu.cores, c.cpu.memory_gib, c.venv) == (16, 62.5, "/opt/v")
    assert c.gpu_price == pytest.approx(16 * 0.05)  # the catalog's per-core price: the host is one slot
    ansible = parse(
        "all:\n  children:\n    cpu:\n      vars: {llmctl_accelerator: cpu}\n"
        "      hosts:\n        c1: {ansible_host: 10.0.0.3, llmctl_cpu: {cores: 4, memory_gib: 16}}\n"
    )
    (c1,) = ansible.hosts
    assert c1.accelerator == "cpu" and c1.cpu is not None and c1.cpu.cores == 4 and c1.groups == ("cpu",)
    # Memory and cores may come from facts alone: the declaration is optional.
    assert parse("hosts:\n  c: {accelerator: cpu}\n").hosts[0].cpu is None


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        (
            "hosts:\n  c:\n    accelerator: cpu\n    cpu: {cores: 0, memory_gib: 8}\n",
            4,
            "cpu.cores",
            "greater than",
        ),
        ("hosts:\n  c:\n    accelerator: cpu\n    cpu: {cores: 2}\n", 4, "cpu.memory_gib", "required"),
        (
            "hosts:\n  c:\n    accelerator: cpu\n    cpu: {cores: 2, memory_gib: 8, memory: 8}\n",
            4,
            "cpu.memory",
            "unknown field",
        ),
        (
            "hosts:\n  c:\n    address: 10.0.0.1\n    cpu: {cores: 2, memory_gib: 8}\n",
            4,
            "cpu",
            "accelerator: cpu",
        ),
        (
            "hosts:\n  c:\n    gpus: {type: L4, count: 1}\n    accelerator: cpu\n",
            4,
            "accelerator",
            "has no gpus",
        ),
        ("hosts:\n  c:\n    gpus: {type: CPU-x86-AVX512-2c, count: 1}\n", 3, "gpus.type", "accelerator: cpu"),
        ("hosts:\n  c:\n    accelerator: tpu\n", 3, "accelerator", "'gpu' or 'cpu'"),
    ],
)
def test_bad_cpu_declarations_name_file_line_and_field(text: str, line: int, field: str, words: str) -> None:
    with pytest.raises((ConfigError, ConfigErrors)) as err:
        parse(text, file="inventory/x.yaml")
    e = only_error(err.value)
    assert (e.file, e.line, e.field) == ("inventory/x.yaml", line, field), str(e)
    assert words in e.problem and "\n" not in str(e)


def test_cpu_bind_takes_vllms_cpu_lists_or_nobind_and_nothing_else() -> None:
    import pydantic

    from llmctl.config.inventory import Host

    for ok in ("nobind", "0", "0-15", "0,2,4-7"):
        assert Host(name="c", accelerator="cpu", cpu_bind=ok).cpu_bind == ok
    for bad in ("auto; rm -rf /", "0-", "all", "$(id)"):
        with pytest.raises(pydantic.ValidationError):
            Host(name="c", accelerator="cpu", cpu_bind=bad)
