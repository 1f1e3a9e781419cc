"""Ansible's INI inventory (its default format, as in /etc/ansible/hosts), read as ansible-core 2.19's ini
plugin reads it:

    mail.example.com                      # before any section: group 'ungrouped'
    [gpu]
    gpu[01:04] ansible_user=ubuntu llmctl_gpus='{"type": "H100-SXM", "count": 8}'
    node-[a:c]:2222                       # ranges (numeric, zero-padded, alphabetic, [01:10:2]); :port
    [gpu:vars]
    llmctl_price_per_gpu_hour=2.49
    [cluster:children]
    gpu

Values go through Python's ast.literal_eval, as Ansible's do, inline and in :vars sections alike (Ansible's
docs say :vars values stay strings; its parser makes `myvar=23` the integer 23 there too). A :vars line keeps
everything after '=' (a trailing '# comment' included, unless the value is a literal); host lines are split
by shlex, which drops comments. Errors name the file, the line and the section, host or variable.
"""

from __future__ import annotations

import ast
import itertools
import math
import re
import shlex
import string
import warnings
from collections.abc import Iterator
from typing import Any

from llmctl.config.ansible_tree import MAX_HOSTS, Tree, Var
from llmctl.errors import ConfigError

# Ansible's own patterns (plugins/inventory/ini.py, parsing/utils/addresses.py).
_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$")
_GROUP_NAME = re.compile(r"^([^:\]\s]+)\s*(?:#.*)?$")
_BRACKETED_HOSTPORT = re.compile(r"^\[(.+)\]:([0-9]+)$")
_HOSTPORT = re.compile(r"^((?:[^:\[\]]|\[[^\]]*\])*):([0-9]+)$")
_DIGITS = re.compile(r"^[0-9]{1,18}$")  # 18 digits: a bound past any fleet, still a plain int
_STATES = ("hosts", "vars", "children")


def parse_ini(text: str, file: str) -> Tree:
    """The INI text as Ansible's groups, hosts and variables; a syntax error is one ConfigError."""
    tree = Tree(file)
    declared = {"all", "ungrouped"}  # [g] or [g:children] declare g; [g:vars] alone does not (as Ansible)
    vars_sections: dict[str, int] = {}
    references: list[tuple[int, str, str]] = []  # (line, parent, child) of each :children entry
    group, state = "ungrouped", "hosts"
    # str.splitlines, as Ansible's parser splits: line numbers count the same line breaks it counts.
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        section = _SECTION.match(line)
        if section:
            group, state = section.group(1), section.group(2) or "hosts"
            if state not in _STATES:
                raise ConfigError(
                    file,
                    number,
                    line,
                    f"unknown section type {state!r}: sections are [group], "
                    "[group:vars] and [group:children]",
                )
            tree.group(group, number)
            if state == "vars":
                vars_sections.setdefault(group, number)
            else:
                declared.add(group)
            continue
        if line.startswith("[") and line.endswith("]"):
            raise ConfigError(
                file,
                number,
                line,
                "not a section header: [group], [group:vars] or [group:children], "
                "with no spaces in the brackets",
            )
        if state == "hosts":
            _host_line(tree, line, group, number)
        elif state == "vars":
            key, value = _variable(line, file, number, f"[{group}:vars]")
            tree.groups[group].vars[key] = Var(value, number)
        else:
            child = _GROUP_NAME.match(line)
            if not child:
                raise ConfigError(file, number, f"[{group}:children]", f"expected a group name, got {line!r}")
            tree.groups[group].children.setdefault(child.group(1), number)
            references.append((number, group, child.group(1)))
    _check_declared(file, declared, vars_sections, references)
    return tree


def _check_declared(
    file: str, declared: set[str], vars_sections: dict[str, int], references: list[tuple[int, str, str]]
) -> None:
    # Reported after the whole file is read, because a group may be declared after it is named.
    problems = [
        (
            line,
            f"[{parent}:children]",
            f"names group {child!r}, which no [{child}] or [{child}:children] declares",
        )
        for line, parent, child in references
        if child not in declared
    ]
    problems += [
        (
            line,
            f"[{group}:vars]",
            f"sets variables of group {group!r}, which no [{group}] or [{group}:children] declares",
        )
        for group, line in vars_sections.items()
        if group not in declared
    ]
    if problems:
        line, field, problem = min(problems)
        raise ConfigError(file, line, field, problem)


def _host_line(tree: Tree, line: str, group: str, number: int) -> None:
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError as exc:  # an unclosed quote
        raise ConfigError(tree.file, number, line.split()[0], f"cannot split the host line: {exc}") from None
    if not tokens:
        return
    pattern = tokens[0]
    names, port = _expand(pattern, tree, number)
    inline: dict[str, Any] = {}
    for token in tokens[1:]:
        if "=" not in token:
            raise ConfigError(
                tree.file,
                number,
                pattern,
                f"expected key=value after the host name, got {token!r} (quote a value that has spaces)",
            )
        key, value = token.split("=", 1)
        if not key:
            raise ConfigError(tree.file, number, pattern, f"{token!r} has no variable name before '='")
        inline[key] = parse_value(value)
    for name in names:
        new = name not in tree.hostvars
        vars_ = tree.add_host(name, group, number)
        if new and port is not None:  # as Ansible: a :port applies where the host first appears
            vars_["ansible_port"] = Var(port, number)
        vars_.update((k, Var(v, number)) for k, v in inline.items())


def _variable(line: str, file: str, number: int, field: str) -> tuple[str, Any]:
    if "=" not in line:
        raise ConfigError(file, number, field, f"expected key=value, got {line!r}")
    key, value = (part.strip() for part in line.split("=", 1))
    if not key:
        raise ConfigError(file, number, field, f"{line!r} has no variable name before '='")
    return key, parse_value(value)


def parse_value(text: str) -> Any:
    """A value as Ansible's INI parser makes it: a Python literal where it is one, else the text."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError):
        return text  # not a literal (or one past Python's own limits): the text itself, as Ansible
    return _plain(value)


def _plain(value: Any) -> Any:
    # As Ansible: tuples and sets become lists, and types no variable has (complex, ..., bytes) become text.
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {
            _plain(k) if not isinstance(k, list | tuple | set) else str(k): _plain(v)
            for k, v in value.items()
        }
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if value is ... or isinstance(value, complex):
        return "..." if value is ... else str(value)
    return value


def _expand(pattern: str, tree: Tree, number: int) -> tuple[list[str], int | None]:
    """Host names and :port of a host pattern such as gpu[01:04].example.com or 10.0.0.[1:3]:2222."""
    host, port = pattern, None
    for regex in (_BRACKETED_HOSTPORT, _HOSTPORT):  # both in turn, as Ansible's parse_address
        match = regex.match(host)
        if match:
            host, digits = match.group(1), match.group(2)
            if len(digits) > 5 or not 1 <= int(digits) <= 65535:
                raise ConfigError(tree.file, number, pattern, f"port {digits} is not between 1 and 65535")
            port = int(digits)
    if pattern.endswith(":") and port is None:
        raise ConfigError(tree.file, number, pattern, "a host name ends in ':' but no port follows it")
    if host.strip() == "---":
        raise ConfigError(tree.file, number, pattern, "'---' is not a host (is this a YAML file?)")
    if not host:
        raise ConfigError(tree.file, number, pattern, "empty host name")
    parts = _range_parts(host, tree.file, number, pattern)
    count = math.prod(len(p) for p in parts)
    if count > MAX_HOSTS - len(tree.hostvars):
        raise ConfigError(
            tree.file,
            number,
            pattern,
            f"expands to {count} hosts; llmctl reads at most {MAX_HOSTS} in an inventory",
        )
    return ["".join(p) for p in itertools.product(*parts)], port


def _range_parts(host: str, file: str, number: int, pattern: str) -> list[_Choices]:
    """The pattern as a list of choices per position: literal text, and one sequence per [begin:end:step]."""
    parts: list[_Choices] = []
    rest = host
    while "[" in rest:
        head, _, after = rest.partition("[")
        spec, closed, rest = after.partition("]")
        if not closed:
            raise ConfigError(file, number, pattern, f"range [{spec} has no closing ']'")
        parts += [(head,), _range(spec, file, number, pattern)]
    parts.append((rest,))
    return parts


def _range(spec: str, file: str, number: int, pattern: str) -> _Choices:
    def bad(problem: str) -> ConfigError:
        return ConfigError(file, number, pattern, f"range [{spec}]: {problem}")

    bounds = spec.split(":")
    if len(bounds) not in (2, 3):
        raise bad("a range is [begin:end] or [begin:end:step]")
    begin, end = bounds[0] or "0", bounds[1]
    step_text = bounds[2] if len(bounds) == 3 else "1"
    if not end:
        raise bad("the range has no end")
    if not _DIGITS.match(step_text) or int(step_text) < 1:
        raise bad(f"step {step_text!r} is not a whole number of at least 1")
    step = int(step_text)
    if len(begin) == len(end) == 1 and begin in string.ascii_letters and end in string.ascii_letters:
        first, last = string.ascii_letters.index(begin), string.ascii_letters.index(end)
        if first > last:
            raise bad("begin comes after end")
        return tuple(string.ascii_letters[first : last + 1 : step])
    if not (_DIGITS.match(begin) and _DIGITS.match(end)):
        raise bad("bounds are numbers (up to 18 digits) or single letters")
    width = len(begin) if begin.startswith("0") and len(begin) > 1 else 0  # [01:10] keeps the leading zero
    if width and len(end) != width:
        raise bad("a zero-padded range needs begin and end of the same length")
    if int(begin) > int(end):
        raise bad("begin is greater than end")
    return _Padded(range(int(begin), int(end) + 1, step), width)


class _Padded:
    """The numbers of a range as zero-padded text, lazily: a huge range is counted (len), never listed."""

    def __init__(self, numbers: range, width: int) -> None:
        self.numbers, self.width = numbers, width

    def __len__(self) -> int:
        return len(self.numbers)  # 18-digit bounds keep this under sys.maxsize

    def __iter__(self) -> Iterator[str]:
        return (str(n).zfill(self.width) for n in self.numbers)


_Choices = tuple[str, ...] | _Padded
