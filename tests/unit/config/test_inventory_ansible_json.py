"""`ansible-inventory --list` JSON, and telling an inventory's form by its content."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from llmctl.config.inventory import Host, Inventory, load_inventory
from llmctl.errors import ConfigError, ConfigErrors, LlmctlError

EXAMPLES = Path(__file__).resolve().parent / "ansible_examples"


def by_name(inv: Inventory) -> dict[str, Host]:
    return {h.name: h for h in inv.hosts}


def error(path: Path) -> ConfigError:
    with pytest.raises(LlmctlError) as info:
        load_inventory(path)
    exc = info.value
    if isinstance(exc, ConfigErrors):
        exc = exc.errors[0]
    assert isinstance(exc, ConfigError) and "\n" not in str(exc)
    return exc


def line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


@pytest.mark.parametrize("name", ["docs-list.json", "docs-export.json"])
def test_ansible_inventory_output_gives_the_hosts_of_the_yaml_form(name: str) -> None:
    # Printed by ansible-inventory 2.19 from docs.ini: --list merges group vars into hostvars, --export not.
    listed = by_name(load_inventory(EXAMPLES / name))
    assert listed == by_name(load_inventory(EXAMPLES / "docs.yaml"))
    assert listed == by_name(load_inventory(EXAMPLES / "docs.ini"))
    assert listed["jenkins1"].gpus is not None and listed["jenkins1"].gpus.type == "H100-SXM"
    assert listed["tomcat3"].groups == ("apache", "web") and listed["tomcat3"].jump == "jump@bastion"


def test_a_field_error_points_at_the_hosts_variable(tmp_path: Path) -> None:
    text = (EXAMPLES / "docs-list.json").read_text().replace('"ansible_port": 222', '"ansible_port": "ssh"')
    path = tmp_path / "inv.json"
    path.write_text(text)
    err = error(path)
    assert (err.line, err.field) == (line_of(text, '"ansible_port": "ssh"'), "ansible_port")


def test_an_inherited_error_points_at_the_group_variable(tmp_path: Path) -> None:
    data = json.loads((EXAMPLES / "docs-export.json").read_text())
    data["nginx"]["vars"]["llmctl_gpus"] = {"type": "TPU-v5", "count": 8}
    text = json.dumps(data, indent=2)
    path = tmp_path / "inv.json"
    path.write_text(text)
    err = error(path)
    assert (err.line, err.field) == (line_of(text, '"TPU-v5"') - 1, "llmctl_gpus.type")


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        ('{"_meta": {"hostvars": {}},\n "gpu": {"hosts": ["a"}}', 2, "", "invalid JSON"),
        ('{"_meta": {},\n "gpu": {"hosts": "a"}}', 2, "gpu.hosts", "list of names"),
        ('{"_meta": {},\n "gpu": {"hosts": ["a"],\n "host_vars": {}}}', 3, "gpu.host_vars", "unknown field"),
        ('{"_meta": {"hostvars": {"a": 1}},\n "gpu": ["a"]}', 1, "_meta.hostvars.a", "a mapping"),
        ('{"all": {"children": ["g"]},\n "g": {"children": ["all"]}}', 1, "all", "groups contain each other"),
    ],
)
def test_json_errors_name_line_and_field(
    tmp_path: Path, text: str, line: int, field: str, words: str
) -> None:
    path = tmp_path / "inv.json"
    path.write_text(text)
    err = error(path)
    assert (err.file, err.line, err.field) == (str(path), line, field) and words in err.problem


def test_script_form_groups_and_hosts_no_group_lists(tmp_path: Path) -> None:
    path = tmp_path / "inv.json"
    path.write_text(
        '{"gpu": ["a", "b"], "_meta": {"hostvars": {"a": {"ansible_port": 2200}, "stray": {"ansible_port": 1}}}}'
    )
    hosts = by_name(load_inventory(path))
    assert set(hosts) == {"a", "b"} and hosts["a"].port == 2200 and hosts["b"].groups == ("gpu",)


@pytest.mark.parametrize(
    ("name", "source"),
    [
        ("hosts", "docs.ini"),  # /etc/ansible/hosts: no extension
        ("inventory.ini", "docs.ini"),
        ("inventory.yaml", "docs.ini"),  # misnamed: the content decides
        ("inventory", "docs-list.json"),
        ("list.yml", "docs-export.json"),
        ("inventory.json", "docs.yaml"),
        ("inventory.ini", "docs.yaml"),
    ],
)
def test_the_form_is_told_by_content(tmp_path: Path, name: str, source: str) -> None:
    path = tmp_path / name
    path.write_text((EXAMPLES / source).read_text())
    assert by_name(load_inventory(path)) == by_name(load_inventory(EXAMPLES / "docs.yaml"))


def test_a_native_inventory_in_json_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "inv.json"
    path.write_text('{"hosts": {"a": {"address": "10.0.0.1", "gpus": {"type": "L4", "count": 1}}}}')
    assert load_inventory(path).hosts[0].address == "10.0.0.1"


@pytest.mark.parametrize(
    ("name", "text", "first"),
    [
        ("inv", '{"all": {\n  "hosts": \n', "JSON"),
        ("inv.yaml", "hosts:\n  a: {address: x\n  b: [\n", "YAML"),
        ("inv", "[gpu]\nh[1:\n", "Ansible INI"),
    ],
)
def test_a_file_in_no_form_says_which_were_tried(tmp_path: Path, name: str, text: str, first: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    message = str(error(path))
    assert f"(read as {first};" in message
    assert all(f"as {form}" in message for form in ("YAML", "JSON", "Ansible INI"))


def test_the_cli_lists_an_ini_inventory(tmp_path: Path) -> None:
    # The issue: `llmctl hosts list -i hosts.ini` answered "invalid YAML".
    inv = tmp_path / "hosts.ini"
    inv.write_text('[gpu]\ngpu[01:02] ansible_host=10.0.0.1 llmctl_gpus=\'{"type": "L4", "count": 1}\'\n')
    out = subprocess.run(
        [sys.executable, "-m", "llmctl.cli.main", "hosts", "list", "-i", str(inv)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "gpu01" in out.stdout and "gpu02" in out.stdout
    inv.write_text("[gpu]\ngpu[0:99999999]\n")
    out = subprocess.run(
        [sys.executable, "-m", "llmctl.cli.main", "hosts", "list", "-i", str(inv)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2 and "Traceback" not in out.stderr and "at most 10000" in out.stderr
