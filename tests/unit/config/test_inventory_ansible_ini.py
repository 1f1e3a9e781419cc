"""Ansible INI inventories: the same hosts as the YAML shape, Ansible's ranges and precedence, and errors
that name file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmctl.config.inventory import Host, Inventory, load_inventory
from llmctl.errors import ConfigError, ConfigErrors, LlmctlError

EXAMPLES = Path(__file__).resolve().parent / "ansible_examples"


def load(tmp_path: Path, text: str, name: str = "hosts") -> Inventory:
    path = tmp_path / name
    path.write_text(text)
    return load_inventory(path)


def by_name(inv: Inventory) -> dict[str, Host]:
    return {h.name: h for h in inv.hosts}


def error(tmp_path: Path, text: str, name: str = "hosts") -> ConfigError:
    with pytest.raises(LlmctlError) as info:
        load(tmp_path, text, name)
    exc = info.value
    if isinstance(exc, ConfigErrors):
        exc = exc.errors[0]
    assert isinstance(exc, ConfigError)
    assert "\n" not in str(exc) and "Traceback" not in str(exc)
    return exc


def test_docs_example_gives_the_hosts_of_its_yaml_form() -> None:
    ini = load_inventory(EXAMPLES / "docs.ini")
    yaml = load_inventory(EXAMPLES / "docs.yaml")
    assert by_name(ini) == by_name(yaml)
    assert [h.name for h in ini.hosts] == ["host1", "host2", "tomcat1", "tomcat2", "tomcat3", "jenkins1"]
    hosts = by_name(ini)
    assert (hosts["host2"].address, hosts["host2"].port, hosts["host2"].user) == ("10.0.0.2", 222, "www")
    assert hosts["tomcat3"].jump == "jump@bastion" and hosts["tomcat3"].labels == {"rack": "r3"}
    assert hosts["tomcat2"].price_per_gpu_hour == 1.25 and hosts["tomcat1"].key == "~/.ssh/id_ed25519"
    assert hosts["jenkins1"].user == "jenkins"  # host var over group var
    assert (
        hosts["jenkins1"].gpus is not None and hosts["jenkins1"].gpus.type == "H100-SXM"
    )  # child over parent
    assert hosts["tomcat1"].gpus is not None and hosts["tomcat1"].gpus.count == 4  # parent's, inherited
    assert hosts["jenkins1"].groups == ("nginx", "web") and hosts["host1"].workdir == "/srv/llmctl"
    assert {h.name for h in ini.select("web")} == set(hosts)


def test_ungrouped_hosts_ports_and_quoting(tmp_path: Path) -> None:
    inv = load(
        tmp_path,
        "mail.example.com ansible_connection=local\n"
        "[gpu]\n"
        'gpu-a:2222 ansible_user=ubuntu llmctl_gpus=\'{"type": "L4", "count": 1}\'\n'
        'gpu-b ansible_ssh_common_args=\'-o ProxyJump="me@bastion:2200"\' llmctl_python="python3.11"\n',
    )
    hosts = by_name(inv)
    assert (
        hosts["mail.example.com"].groups == ("ungrouped",) and hosts["mail.example.com"].connection == "local"
    )
    assert (
        hosts["gpu-a"].port == 2222 and hosts["gpu-a"].gpus is not None and hosts["gpu-a"].groups == ("gpu",)
    )
    assert hosts["gpu-b"].jump == "me@bastion:2200" and hosts["gpu-b"].python == "python3.11"


@pytest.mark.parametrize(
    ("pattern", "names"),
    [
        ("gpu[01:04]", ["gpu01", "gpu02", "gpu03", "gpu04"]),
        ("node[a:c].dc1", ["nodea.dc1", "nodeb.dc1", "nodec.dc1"]),
        ("www[01:10:3]", ["www01", "www04", "www07", "www10"]),
        ("r[1:2]-g[a:b]", ["r1-ga", "r1-gb", "r2-ga", "r2-gb"]),
        ("h[:2]", ["h0", "h1", "h2"]),
        ("10.0.0.[8:9]", ["10.0.0.8", "10.0.0.9"]),
    ],
)
def test_host_ranges_expand_as_ansible(tmp_path: Path, pattern: str, names: list[str]) -> None:
    inv = load(tmp_path, f"[gpu]\n{pattern} ansible_user=u\n")
    assert [h.name for h in inv.hosts] == names and all(h.user == "u" for h in inv.hosts)


def test_vars_precedence_is_ansibles(tmp_path: Path) -> None:
    # Ansible: 'all', then groups by depth, then ansible_group_priority, then name; host vars last.
    inv = load(
        tmp_path,
        "[all:vars]\nansible_user=from_all\nllmctl_workdir=/all\nllmctl_python=all\n"
        "[parent:children]\nchild\n"
        "[parent:vars]\nansible_user=from_parent\nllmctl_workdir=/parent\n"
        "[child]\nh1\nh2 ansible_user=from_host\n"
        "[child:vars]\nansible_user=from_child\n"
        "[alpha]\nh1\n[alpha:vars]\nllmctl_python=alpha\n"
        "[beta]\nh1\n[beta:vars]\nllmctl_python=beta\n"
        "[low]\nh2\n[low:vars]\nllmctl_python=low\nansible_group_priority=0\n"
        "[zzz]\nh2\n[zzz:vars]\nllmctl_python=zzz\n",
    )
    h1, h2 = inv.hosts
    assert (h1.user, h1.workdir) == ("from_child", "/parent")  # child over parent over all
    assert h2.user == "from_host"
    assert h1.python == "beta"  # same depth: the later name wins
    assert h2.python == "zzz"  # priority 0 merges before the default 1
    assert h1.groups == ("alpha", "beta", "child", "parent")


def test_host_lines_accumulate_and_ungrouped_holds_only_the_groupless(tmp_path: Path) -> None:
    inv = load(tmp_path, "h1 ansible_port=2201\n[a]\nh1 ansible_user=x\n[b]\nh1 ansible_port=2202\n")
    (h1,) = inv.hosts
    assert (h1.port, h1.user, h1.groups) == (2202, "x", ("a", "b"))


def test_children_nest_and_may_be_declared_later(tmp_path: Path) -> None:
    inv = load(
        tmp_path, "[dc:children]\nrack1\n[rack1:children]\nnode\n[node]\nn1\n[rack1:vars]\nllmctl_python=py\n"
    )
    (n1,) = inv.hosts
    assert n1.groups == ("dc", "node", "rack1") and n1.python == "py"
    assert [h.name for h in inv.select("dc")] == ["n1"]


def test_values_are_literals_as_ansibles_parser_makes_them(tmp_path: Path) -> None:
    # Ansible's parser literal_evals :vars values too (its docs say they stay strings): port 2222 is an int.
    # A :vars string keeps a trailing comment, as in Ansible; a literal drops it.
    inv = load(
        tmp_path,
        "[g]\nh llmctl_labels=\"{'a': 'b'}\" llmctl_engine_port=8100\n"
        "[g:vars]\nansible_port=2222 # the SSH port\nllmctl_model_cache=/models # comment\n",
    )
    (h,) = inv.hosts
    assert (h.port, h.engine_port, h.labels) == (2222, 8100, {"a": "b"})
    assert h.model_cache == "/models # comment"


def test_the_inventorys_gpu_types_come_from_all_vars(tmp_path: Path) -> None:
    inv = load(
        tmp_path,
        "[all:vars]\nllmctl_gpu_types={'Foo': {'memory_gib': 96, 'hbm_gbps': 2000, 'bf16_tflops': 400}}\n"
        "[g]\nh llmctl_gpus=\"{'type': 'Foo', 'count': 2}\"\n",
    )
    assert inv.hosts[0].gpus is not None and inv.hosts[0].gpus.gpu.name == "Foo"


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        ("[gpu:host]\nh\n", 1, "[gpu:host]", "unknown section type 'host'"),
        ("[gpu servers]\n", 1, "[gpu servers]", "not a section header"),
        ("[gpu]\nh[01:4]\n", 2, "h[01:4]", "same length"),
        ("[gpu]\nh[5:1]\n", 2, "h[5:1]", "begin is greater than end"),
        ("[gpu]\nh[1:3\n", 2, "h[1:3", "no closing ']'"),
        ("[gpu]\nh[1:x]\n", 2, "h[1:x]", "numbers"),
        (
            "[gpu]\nh[0:99999999]\n",
            2,
            "h[0:99999999]",
            "expands to 100000000 hosts; llmctl reads at most 10000",
        ),
        ("[gpu]\nh ansible_user\n", 2, "h", "expected key=value"),
        ("[gpu]\nh x='unclosed\n", 2, "h", "No closing quotation"),
        ("[gpu]\nh\n[gpu:vars]\nnot a var\n", 4, "[gpu:vars]", "expected key=value"),
        ("[gpu]\nh\n[all:children]\ngpu\ngpux\n", 5, "[all:children]", "'gpux', which no [gpux]"),
        ("[gpu]\nh\n[gpux:vars]\na=1\n", 3, "[gpux:vars]", "which no [gpux]"),
        ("[a:children]\nb\n[b:children]\na\n[a]\nh\n", 2, "a", "groups contain each other"),
        ("[gpu]\nh:99999\n", 2, "h:99999", "port 99999"),
        ("[gpu]\nh\n[gpu:vars]\nansible_group_priority=high\n", 4, "ansible_group_priority", "whole number"),
        # Field errors come from llmctl's validation, at the line of the variable, named as the file names it.
        (
            "[gpu]\nh1\nh2 llmctl_gpu=\"{'type': 'L4', 'count': 1}\"\n",
            3,
            "llmctl_gpu",
            "not a variable llmctl",
        ),
        ("[gpu]\nh\n[gpu:vars]\nansible_port=ssh\n", 4, "ansible_port", "valid integer"),
        (
            "[gpu]\nh\n[gpu:vars]\nllmctl_gpus={'type': 'TPU', 'count': 1}\n",
            4,
            "llmctl_gpus.type",
            "unknown GPU",
        ),
        ("[gpu]\nh llmctl_gpu_types={}\n", 2, "llmctl_gpu_types", "whole inventory"),
    ],
)
def test_errors_name_file_line_and_field(
    tmp_path: Path, text: str, line: int, field: str, words: str
) -> None:
    err = error(tmp_path, text)
    assert (err.file, err.line, err.field) == (str(tmp_path / "hosts"), line, field)
    assert words in err.problem


def test_hostile_input_is_one_line_never_a_traceback(tmp_path: Path) -> None:
    big = ["h[1:2]" * 20, "h llmctl_gpus=" + "[" * 500, "h llmctl_engine_port=" + "9" * 6000, "[" * 10000]
    for text in ["\0", "[g]\nh\0x\n", *big]:
        with pytest.raises(LlmctlError) as info:
            load(tmp_path, text)
        assert len(str(info.value).splitlines()) == 1


# A generated INI inventory and the same inventory in Ansible's YAML shape give the same hosts. Each group's
# variables are its own names (no two groups set one variable), where the YAML path's walk and Ansible's
# merge order agree; test_vars_precedence_is_ansibles covers the conflicts.
_names = st.sampled_from(["a", "b", "c", "d", "e"])
_host_vars = st.fixed_dictionaries(
    {},
    optional={
        "ansible_host": st.sampled_from(["10.0.0.1", "gpu.example.com"]),
        "ansible_port": st.integers(1, 65535),
        "ansible_user": st.sampled_from(["ubuntu", "root"]),
        "llmctl_engine_port": st.integers(1, 65535),
    },
)
_GROUP_VARS = {
    "g0": ("llmctl_python", "py0"),
    "g1": ("llmctl_workdir", "/w1"),
    "g2": ("llmctl_model_cache", "/m2"),
    "g3": ("ansible_ssh_private_key_file", "/k3"),
}


@st.composite
def _inventories(
    draw: st.DrawFn,
) -> tuple[dict[str, dict[str, dict[str, object]]], dict[str, list[str]], set[str]]:
    groups = draw(st.lists(st.sampled_from(sorted(_GROUP_VARS)), min_size=1, max_size=4, unique=True))
    members = {g: draw(st.dictionaries(_names, _host_vars, max_size=3)) for g in groups}
    children = {g: [c for c in groups[i + 1 :] if draw(st.booleans())] for i, g in enumerate(groups)}
    with_vars = {g for g in groups if draw(st.booleans())}
    return members, children, with_vars


def _ini(
    members: dict[str, dict[str, dict[str, object]]], children: dict[str, list[str]], with_vars: set[str]
) -> str:
    out = []
    for group, hosts in members.items():
        out.append(f"[{group}]")
        out += [" ".join([name, *(f"{k}={v}" for k, v in vars_.items())]) for name, vars_ in hosts.items()]
        if children[group]:
            out += [f"[{group}:children]", *children[group]]
        if group in with_vars:
            out += [f"[{group}:vars]", "=".join(_GROUP_VARS[group])]
    return "\n".join(out) + "\n"


def _yaml(
    members: dict[str, dict[str, dict[str, object]]], children: dict[str, list[str]], with_vars: set[str]
) -> str:
    def body(group: str, indent: str) -> list[str]:
        out = [f"{indent}{group}:", f"{indent}  hosts:"]
        out += [
            f"{indent}    {name}: {{{', '.join(f'{k}: {v}' for k, v in vs.items())}}}"
            for name, vs in members[group].items()
        ]
        if group in with_vars:
            out += [f"{indent}  vars: {{{': '.join(_GROUP_VARS[group])}}}"]
        if children[group]:
            out.append(f"{indent}  children:")
            for child in children[group]:
                out += body(child, indent + "    ")
        return out

    lines = ["all:", "  children:"]
    for group in members:
        lines += body(group, "    ")
    return "\n".join(lines) + "\n"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_inventories())
def test_generated_ini_reads_as_its_yaml_form(tmp_path: Path, inventory: tuple) -> None:  # type: ignore[type-arg]
    members, children, with_vars = inventory
    if not any(members.values()):
        return
    ini = by_name(load(tmp_path, _ini(members, children, with_vars), "inv.ini"))
    yaml = by_name(load(tmp_path, _yaml(members, children, with_vars), "inv.yaml"))
    assert ini == yaml
