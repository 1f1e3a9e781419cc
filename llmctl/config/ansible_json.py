"""The JSON that `ansible-inventory --list` prints (with --export or without), read into Ansible's model:

    {"_meta": {"hostvars": {"gpu01": {"ansible_host": "10.0.0.11", "llmctl_gpus": {...}}}},
     "all": {"children": ["ungrouped", "gpu"]},
     "gpu": {"hosts": ["gpu01"], "vars": {...}, "children": [...]}}

Without --export, `hostvars` already holds each host's merged variables; with it, group variables stay in
their groups and are merged here as Ansible merges them. A group may also be a bare list of hosts (the
dynamic-inventory script form). As Ansible, hostvars of a host that no group lists are ignored.
`read_json` keeps each value's line, so errors point at the host or variable that is wrong.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import re
from typing import Any

from llmctl.config.ansible_tree import Tree, Var
from llmctl.config.source import MAX_DEPTH, LineMap
from llmctl.errors import ConfigError

_WS = re.compile(r"[ \t\n\r]*")
_GROUP_KEYS = {"hosts", "children", "vars"}


def read_json(text: str, file: str) -> tuple[Any, LineMap]:
    """JSON text as data and the line of every value (keyed as source.LineMap keys YAML's)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(file, exc.lineno, "", f"invalid JSON: {exc.msg} (column {exc.colno})") from None
    except (
        ValueError,
        RecursionError,
    ) as exc:  # an integer past Python's digit limit; nesting past the stack
        raise ConfigError(file, None, "", f"invalid JSON: {exc}"[:200]) from None
    lines = LineMap(file)
    # Never raises for text json.loads took; were it to, lines stay partial and errors name the file alone.
    with contextlib.suppress(ValueError, IndexError, RecursionError):
        _LineReader(text, lines).value(0, ())
    return data, lines


class _LineReader:
    """Walks JSON text that is known to be valid, noting the line where each key (or list item) starts."""

    def __init__(self, text: str, lines: LineMap) -> None:
        self.text, self.lines = text, lines
        self.breaks = [i for i, c in enumerate(text) if c == "\n"]
        self.decoder = json.JSONDecoder()

    def line(self, pos: int) -> int:
        return bisect.bisect_left(self.breaks, pos) + 1

    def skip(self, pos: int) -> int:
        match = _WS.match(self.text, pos)
        return match.end() if match else pos

    def value(self, pos: int, path: tuple[str | int, ...]) -> int:
        pos = self.skip(pos)
        self.lines.lines.setdefault(path, self.line(pos))
        opener = self.text[pos]
        if opener not in "{[" or len(path) >= MAX_DEPTH:  # a scalar, or deeper than any inventory: skip it
            return self.decoder.raw_decode(self.text, pos)[1]
        closer = "}" if opener == "{" else "]"
        pos, index = self.skip(pos + 1), 0
        while self.text[pos] != closer:
            if opener == "{":
                key, end = self.decoder.raw_decode(self.text, pos)
                self.lines.lines[(*path, key)] = self.line(pos)  # a duplicate key: the last wins, as in json
                pos = self.value(self.skip(end) + 1, (*path, key))  # past the ':'
            else:
                pos, index = self.value(pos, (*path, index)), index + 1
            pos = self.skip(pos)
            if self.text[pos] == ",":
                pos = self.skip(pos + 1)
        return pos + 1


def is_inventory_list(data: Any) -> bool:
    """Whether data is `ansible-inventory --list` output rather than llmctl's or Ansible's YAML shape: a
    _meta key, or groups whose hosts and children are lists (the YAML shape has mappings there)."""
    if not isinstance(data, dict):
        return False
    if "_meta" in data:
        return True
    return any(
        isinstance(body, list)
        or (isinstance(body, dict) and any(isinstance(body.get(k), list) for k in ("hosts", "children")))
        for body in data.values()
    )


def tree_from_list(data: dict[str, Any], lines: LineMap) -> Tree:
    tree = Tree(lines.file)
    for name, body in data.items():
        if name != "_meta":
            _group(tree, str(name), body, lines)
    meta = data.get("_meta") or {}
    if not isinstance(meta, dict):
        raise lines.error(("_meta",), "_meta is a mapping with hostvars")
    hostvars = meta.get("hostvars") or {}
    if not isinstance(hostvars, dict):
        raise lines.error(("_meta", "hostvars"), "hostvars is a mapping of host name to its variables")
    for host, vars_ in hostvars.items():
        path = ("_meta", "hostvars", str(host))
        if vars_ is not None and not isinstance(vars_, dict):
            raise lines.error(path, "a host's hostvars are a mapping of variable to value")
        if host not in tree.hostvars:
            continue  # as Ansible: only the hosts some group lists are in the inventory
        tree.host_lines[host] = lines.line_of(path)  # errors point here, where the host's variables are
        for key, value in (vars_ or {}).items():
            tree.hostvars[host][str(key)] = Var(value, lines.line_of((*path, str(key))))
    return tree


def _group(tree: Tree, name: str, body: Any, lines: LineMap) -> None:
    path: tuple[str, ...] = (name,)
    group = tree.group(name, lines.line_of(path))
    if isinstance(body, list):  # {"group": ["host1", "host2"]}, as dynamic-inventory scripts may print
        for host, line in _names(body, path, "hosts", lines):
            tree.add_host(host, name, line)
        return
    if body is None:
        return
    if not isinstance(body, dict):
        raise lines.error(path, "a group is a mapping with hosts, children and vars (or a list of hosts)")
    unknown = sorted(set(body) - _GROUP_KEYS)
    if unknown:
        raise lines.error(
            (*path, unknown[0]), "unknown field (ansible-inventory groups have hosts, children, vars)"
        )
    for host, line in _names(body.get("hosts"), (*path, "hosts"), "hosts", lines):
        tree.add_host(host, name, line)
    for child, line in _names(body.get("children"), (*path, "children"), "children", lines):
        group.children.setdefault(child, line)
    vars_ = body.get("vars") or {}
    if not isinstance(vars_, dict):
        raise lines.error((*path, "vars"), "a group's vars are a mapping of variable to value")
    for key, value in vars_.items():
        group.vars[str(key)] = Var(value, lines.line_of((*path, "vars", str(key))))


def _names(items: Any, path: tuple[str, ...], what: str, lines: LineMap) -> list[tuple[str, int | None]]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise lines.error(path, f"a group's {what} are a list of names")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, str) or not item:
            raise lines.error((*path, i), f"a group's {what} are names, got {item!r}"[:200])
        out.append((item, lines.line_of((*path, i))))
    return out
