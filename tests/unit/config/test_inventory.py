"""Inventory loading: both shapes, and errors that name file, line and field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from llmctl.config.inventory import load_inventory, parse_inventory
from llmctl.config.source import parse_yaml
from llmctl.errors import ConfigError, ConfigErrors, LlmctlError

ROOT = Path(__file__).resolve().parents[3]


def parse(text: str, file: str = "inv.yaml"):  # type: ignore[no-untyped-def]
    data, lines = parse_yaml(text, file)
    return parse_inventory(data, lines)


def first_error(exc: BaseException) -> ConfigError:
    if isinstance(exc, ConfigErrors):
        return exc.errors[0]
    assert isinstance(exc, ConfigError)
    return exc


@pytest.mark.parametrize("name", ["local.yaml", "example-ssh.yaml", "example-ansible.yaml"])
def test_shipped_inventories_load(name: str) -> None:
    inv = load_inventory(ROOT / "inventory" / name)
    assert inv.hosts
    assert all(h.gpus is not None for h in inv.hosts)


def test_native_defaults_apply_and_host_values_win() -> None:
    inv = parse(
        "defaults: {user: ubuntu, port: 2200}\n"
        "hosts:\n"
        "  a: {address: 10.0.0.1}\n"
        "  b: {address: 10.0.0.2, port: 22, connection: ssh, gpus: {type: 'NVIDIA H100 80GB HBM3', count: 8}}\n"
    )
    a, b = inv.hosts
    assert (a.user, a.port, b.port) == ("ubuntu", 2200, 22)
    assert b.gpus is not None and b.gpus.type == "H100-SXM" and b.gpus.count == 8


def test_local_host_defaults_to_loopback() -> None:
    inv = parse("hosts:\n  me: {connection: local}\n")
    assert inv.hosts[0].address == "127.0.0.1"


def test_ansible_shape_maps_variables_and_groups() -> None:
    inv = parse(
        "all:\n"
        "  vars: {ansible_user: deploy, llmctl_price_per_gpu_hour: 1.5}\n"
        "  hosts:\n"
        "    solo: {ansible_host: 10.1.1.1, ansible_connection: local}\n"
        "  children:\n"
        "    gpu:\n"
        "      vars: {llmctl_gpus: {type: L40S, count: 4}, ansible_port: 2222}\n"
        "      hosts:\n"
        "        g1: {ansible_host: 10.1.1.2, ansible_ssh_private_key_file: /k,"
        " ansible_ssh_common_args: '-o ProxyJump=jump@bastion:2200'}\n"
        "      children:\n"
        "        fast: {hosts: {g2: {ansible_host: 10.1.1.3, ansible_port: 22}}}\n"
    )
    by = {h.name: h for h in inv.hosts}
    assert by["solo"].connection == "local" and by["solo"].user == "deploy"
    assert by["g1"].port == 2222 and by["g1"].key == "/k" and by["g1"].jump == "jump@bastion:2200"
    assert by["g1"].gpus is not None and by["g1"].gpus.type == "L40S"
    assert by["g2"].port == 22 and set(by["g2"].groups) == {"gpu", "fast"}
    assert by["g2"].price_per_gpu_hour == 1.5
    assert [h.name for h in inv.select("fast")] == ["g2"]
    assert {h.name for h in inv.select("gpu")} == {"g1", "g2"}


def test_unknown_field_names_file_line_and_field() -> None:
    with pytest.raises(LlmctlError) as info:
        parse("hosts:\n  a:\n    address: 10.0.0.1\n    adress: typo\n", file="inventory/x.yaml")
    err = first_error(info.value)
    assert (err.file, err.line, err.field) == ("inventory/x.yaml", 4, "adress")
    assert "unknown field" in str(err)


def test_wrong_type_is_reported_at_its_line() -> None:
    with pytest.raises(LlmctlError) as info:
        parse("hosts:\n  a:\n    address: h\n    port: not-a-port\n")
    err = first_error(info.value)
    assert err.line == 4 and err.field == "port"


def test_unknown_gpu_type_lists_known_types() -> None:
    with pytest.raises(LlmctlError) as info:
        parse("hosts:\n  a:\n    gpus: {type: TPU-v5, count: 8}\n")
    err = first_error(info.value)
    assert err.line == 3 and "H100-SXM" in str(err)


def test_inherited_default_error_points_at_the_default() -> None:
    with pytest.raises(LlmctlError) as info:
        parse("defaults:\n  port: 99999\nhosts:\n  a: {address: x}\n")
    assert first_error(info.value).line == 2


def test_duplicate_host_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        parse("hosts:\n  a: {address: x}\n  a: {address: y}\n")
    assert info.value.line == 3 and "duplicate" in str(info.value)


def test_malformed_yaml_names_the_line() -> None:
    with pytest.raises(ConfigError) as info:
        parse("hosts:\n  a: {address: x\n  b: [\n")
    assert info.value.line is not None and "invalid YAML" in str(info.value)


def test_selecting_unknown_group_is_an_error() -> None:
    inv = parse("hosts:\n  a: {groups: [x]}\n")
    with pytest.raises(LlmctlError, match="no host or group named 'y'"):
        inv.select("y")


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_inventory(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("all:\n  vars: [1, 2]\n", "all.vars: an Ansible group's vars must be a mapping"),
        ("all:\n  hosts: [a, b]\n", "all.hosts: an Ansible group's hosts must be a mapping"),
        ("all:\n  hosts:\n    a: [1]\n", "all.hosts.a: an Ansible host's vars must be a mapping"),
        ("all:\n  children: 3\n", "all.children: an Ansible group's children must be a mapping"),
    ],
)
def test_misshapen_ansible_groups_are_one_line_at_their_field(tmp_path: Path, text: str, where: str) -> None:
    # Old code: `all: {vars: [1, 2]}` ended in an AttributeError traceback.
    inv = tmp_path / "inv.yaml"
    inv.write_text(text)
    with pytest.raises(LlmctlError, match=re.escape(where)):
        load_inventory(inv)
