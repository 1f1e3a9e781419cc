"""Ansible's inventory model (groups, hosts, variables, each with its line), shared by the INI and the
`ansible-inventory --list` JSON readers, and its conversion to an llmctl Inventory.

Variables are resolved here as Ansible resolves them, not by the YAML path's walk: groups merge in order of
(depth below 'all', ansible_group_priority, name), each later one overriding, and host variables last. The
result goes to `parse_inventory` as one `all:` document whose hosts carry their resolved variables, so every
ansible_*/llmctl_* variable means what it means in llmctl's Ansible YAML shape.
"""

from __future__ import annotations

import graphlib
import itertools
import re
from dataclasses import dataclass, field
from typing import Any

from llmctl.config.inventory import _ANSIBLE_KEYS, Host, Inventory, parse_inventory
from llmctl.config.source import LineMap
from llmctl.errors import ConfigError, ConfigErrors

# A host range or a wide group tree can stand for far more hosts than any fleet has; refuse beyond these.
MAX_HOSTS = 10_000
MAX_STEPS = 2_000_000  # host-group memberships plus variables merged

# The variables llmctl reads (see inventory._from_ansible_vars); others belong to the user's own plays.
_SSH_ARGS = ("ansible_ssh_common_args", "ansible_ssh_extra_args")
_FIELD_OF = {**_ANSIBLE_KEYS, **dict.fromkeys(_SSH_ARGS, "jump")}
_VAR_OF = {"address": "ansible_host", "user": "ansible_user", "port": "ansible_port"}
_VAR_OF |= {"key": "ansible_ssh_private_key_file", "connection": "ansible_connection"}
_VAR_OF |= {"jump": "ansible_ssh_common_args", "name": "name"}
_INVENTORY_VARS = ("llmctl_gpu_types",)
_INVENTORY_FIELDS = {v.removeprefix("llmctl_") for v in _INVENTORY_VARS}


@dataclass
class Var:
    value: Any
    line: int | None


@dataclass
class Group:
    name: str
    line: int | None
    hosts: list[str] = field(default_factory=list)
    children: dict[str, int | None] = field(default_factory=dict)  # child -> line naming it
    vars: dict[str, Var] = field(default_factory=dict)


@dataclass
class Tree:
    """An inventory as Ansible holds it. `hostvars` is in the order hosts first appear."""

    file: str
    groups: dict[str, Group] = field(default_factory=dict)
    hostvars: dict[str, dict[str, Var]] = field(default_factory=dict)
    host_lines: dict[str, int | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Ansible's inventory starts with these two; a file may add to them but never needs to declare them.
        self.group("all", 1)
        self.group("ungrouped", 1)

    def group(self, name: str, line: int | None) -> Group:
        if name not in self.groups:
            self.groups[name] = Group(name, line)
        return self.groups[name]

    def add_host(self, name: str, group: str, line: int | None) -> dict[str, Var]:
        if name not in self.hostvars:
            if len(self.hostvars) >= MAX_HOSTS:
                raise ConfigError(
                    self.file, line, name, f"more than {MAX_HOSTS} hosts; llmctl reads at most that"
                )
            self.hostvars[name] = {}
            self.host_lines[name] = line
        members = self.group(group, line).hosts
        if name not in members:
            members.append(name)
        return self.hostvars[name]


def relevant(key: str) -> bool:
    """Whether llmctl reads this variable (the rest are kept out of the merge, which bounds its work)."""
    return key in _FIELD_OF or key.startswith("llmctl_") or key == "ansible_group_priority"


class _Budget:
    def __init__(self, file: str) -> None:
        self.file, self.left = file, MAX_STEPS

    def spend(self, steps: int) -> None:
        self.left -= steps
        if self.left < 0:
            raise ConfigError(
                self.file,
                None,
                "",
                f"the groups expand to more than {MAX_STEPS} host-group-variable "
                "combinations; llmctl refuses it (a group tree or host range too large?)",
            )


def _parents(tree: Tree) -> dict[str, set[str]]:
    for group in list(tree.groups.values()):  # a child named but never described is an empty group
        for child, line in group.children.items():
            tree.group(child, line)
    parents: dict[str, set[str]] = {name: set() for name in tree.groups}
    for group in tree.groups.values():
        for child in group.children:
            parents[child].add(group.name)
    # As Ansible's reconcile step: every group without a parent is a child of 'all'.
    for name, ps in parents.items():
        if name != "all" and not ps:
            ps.add("all")
            tree.groups["all"].children.setdefault(name, tree.groups[name].line)
    return parents


def _topological(tree: Tree, parents: dict[str, set[str]]) -> list[str]:
    try:
        return list(graphlib.TopologicalSorter(parents).static_order())
    except graphlib.CycleError as exc:
        loop: list[str] = list(exc.args[1])
        line = None
        for a, b in itertools.pairwise(loop):
            line = tree.groups[a].children.get(b) or tree.groups[b].children.get(a)
            if line is not None:
                break
        raise ConfigError(
            tree.file, line, loop[0], f"groups contain each other: {' > '.join(loop)}"
        ) from None


def _memberships(
    tree: Tree, parents: dict[str, set[str]], order: list[str], budget: _Budget
) -> dict[str, set[str]]:
    """Every group each host is in, its groups' ancestors included (as Ansible's host.get_groups())."""
    ancestors: dict[str, frozenset[str]] = {}
    for name in order:  # parents before children
        up = frozenset({name}).union(*(ancestors[p] for p in parents[name]))
        budget.spend(len(up))
        ancestors[name] = up
    groups_of: dict[str, set[str]] = {h: set() for h in tree.hostvars}
    for group in tree.groups.values():
        for host in group.hosts:
            budget.spend(len(ancestors[group.name]))
            groups_of[host] |= ancestors[group.name]
    # Ansible's 'ungrouped' holds only the hosts in no other group; a host in none at all joins it.
    for groups in groups_of.values():
        if groups - {"all", "ungrouped"}:
            groups.discard("ungrouped")
        else:
            groups |= {"all", "ungrouped"}
    return groups_of


def _depths(order: list[str], parents: dict[str, set[str]]) -> dict[str, int]:
    """A group's depth is its longest path below 'all' (Ansible raises a child's depth past every parent's)."""
    depth: dict[str, int] = {}
    for name in order:
        depth[name] = max((depth[p] + 1 for p in parents[name]), default=0)
    return depth


def _priority(group: Group, file: str) -> int:
    var = group.vars.get("ansible_group_priority")
    if var is None:
        return 1
    try:
        return int(var.value)  # as Ansible's Group.set_priority, which refuses what int() refuses
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(
            file, var.line, "ansible_group_priority", f"{var.value!r} is not a whole number"
        ) from None


def resolve(tree: Tree) -> tuple[dict[str, dict[str, Var]], dict[str, set[str]]]:
    """Each host's variables as Ansible merges them, and each host's groups."""
    budget = _Budget(tree.file)
    parents = _parents(tree)
    order = _topological(tree, parents)
    groups_of = _memberships(tree, parents, order, budget)
    depth = _depths(order, parents)
    priority = {name: _priority(group, tree.file) for name, group in tree.groups.items()}
    merged_for: dict[tuple[str, ...], dict[str, Var]] = {}  # hosts with the same groups merge once
    out: dict[str, dict[str, Var]] = {}
    for host, own in tree.hostvars.items():
        key = tuple(sorted(groups_of[host], key=lambda g: (depth[g], priority[g], g)))
        if key not in merged_for:
            merged: dict[str, Var] = {}
            for name in key:
                budget.spend(len(tree.groups[name].vars) + 1)
                merged.update((k, v) for k, v in tree.groups[name].vars.items() if relevant(k))
            merged_for[key] = merged
        budget.spend(len(own) + 1)
        out[host] = {**merged_for[key], **{k: v for k, v in own.items() if relevant(k)}}
        out[host].pop("ansible_group_priority", None)
    return out, groups_of


def to_inventory(tree: Tree) -> Inventory:
    """Resolve the tree and read it as llmctl's Ansible shape; errors name the variables as the file does."""
    # Variables of the whole inventory, not of its hosts (llmctl_gpu_types): read from 'all' alone, as the
    # YAML shape reads them from all.vars.
    top = {k: tree.groups["all"].vars.pop(k) for k in _INVENTORY_VARS if k in tree.groups["all"].vars}
    hostvars, groups_of = resolve(tree)
    lines = LineMap(tree.file, {("all",): 1, ("all", "hosts"): 1, ("all", "children"): 1})
    for key, var in top.items():
        lines.lines[("all", "vars", key)] = var.line or 1
    hosts: dict[str, dict[str, Any]] = {}
    for host, vars_ in hostvars.items():
        path = ("all", "hosts", host)
        lines.lines[path] = tree.host_lines[host] or 1
        hosts[host] = {k: v.value for k, v in vars_.items()}
        for key, var in vars_.items():  # dict order is the order _from_ansible_vars applies them in
            if var.line is not None:
                lines.lines[(*path, key)] = var.line
                # Validation reports llmctl's field names; point those at the variable's line too.
                lines.lines[(*path, _FIELD_OF.get(key, key.removeprefix("llmctl_")))] = var.line
    # Group membership as a trie of each host's sorted groups: the Ansible walk visits each host once more
    # and collects its groups from the path, however many groups a host is in.
    children: dict[str, Any] = {}
    for host, groups in groups_of.items():
        node = children
        body: dict[str, Any] = {}
        for name in sorted(groups - {"all"}):
            body = node.setdefault(name, {"hosts": {}, "children": {}})
            node = body["children"]
        if body:
            body["hosts"][host] = None
    try:
        document = {"hosts": hosts, "children": children, "vars": {k: v.value for k, v in top.items()}}
        return parse_inventory({"all": document}, lines)
    except ConfigErrors as exc:  # a host's fields: name them as the file does (ansible_port, llmctl_gpus)
        raise ConfigErrors([_as_variable(err) for err in exc.errors]) from None


def _as_variable(err: ConfigError) -> ConfigError:
    head, rest = re.match(r"([^.\[]*)(.*)", err.field).groups()  # type: ignore[union-attr]  # matches all
    if not head or (head == "all" and rest):
        return (
            err  # the host as a whole, or the inventory's own (all.vars.llmctl_gpu_types), named as written
        )
    problem = err.problem
    if head in _INVENTORY_FIELDS:
        problem = f"llmctl_{head} describes the whole inventory: set it in the 'all' group's variables"
    elif problem == "unknown field":
        known = sorted(f"llmctl_{f}" for f in Host.model_fields if f not in _VAR_OF)
        problem = f"not a variable llmctl reads; llmctl_* variables: {', '.join(known)}"
    return ConfigError(err.file, err.line, _VAR_OF.get(head, f"llmctl_{head}") + rest, problem)
