"""Which form an inventory file is in, told by its content: llmctl's YAML (or Ansible's YAML shape), Ansible's
INI, or the JSON of `ansible-inventory --list`.

The extension (or, with none, the first line that is not a comment) says which form to try first; the
others follow, so /etc/ansible/hosts, hosts.ini, inventory.json or a mis-named file all load. The first
form the text parses as is the one it is read as, and its errors are reported; a file that parses as none
says what each form found wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmctl.config.ansible_ini import parse_ini
from llmctl.config.ansible_json import is_inventory_list, read_json, tree_from_list
from llmctl.config.ansible_tree import to_inventory
from llmctl.config.inventory import Inventory, parse_inventory
from llmctl.config.source import LineMap, parse_yaml
from llmctl.errors import ConfigError

_YAML, _JSON, _INI = "YAML", "JSON", "Ansible INI"
_INVENTORY_KEYS = {"hosts", "all", "defaults", "gpu_types"}
_ORDER_BY_SUFFIX = {
    ".yaml": (_YAML, _JSON, _INI),
    ".yml": (_YAML, _JSON, _INI),
    ".json": (_JSON, _YAML, _INI),
    ".ini": (_INI, _YAML, _JSON),
    ".cfg": (_INI, _YAML, _JSON),
}


def load_inventory_file(path: str | Path) -> Inventory:
    file = str(path)
    text = _read(Path(path), file)
    failures: list[tuple[str, ConfigError]] = []
    for form in _order(Path(path), text):
        try:
            build = _PARSERS[form](text, file, not failures)
        except ConfigError as exc:
            failures.append((form, exc))
            continue
        return build()
    raise _none_fits(file, failures)


def _read(path: Path, file: str) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(file, None, "", "file not found") from None
    except OSError as exc:
        raise ConfigError(file, None, "", f"cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(file, line, "", f"not UTF-8 text (byte 0x{raw[exc.start]:02x})") from None
    if "\0" in text:  # a binary file, or a truncated copy; no form allows it
        raise ConfigError(file, text.count("\n", 0, text.index("\0")) + 1, "", "a NUL byte: not a text file")
    return text.removeprefix("\ufeff")  # a byte-order mark, as some Windows editors write


def _order(path: Path, text: str) -> tuple[str, ...]:
    if path.suffix.lower() in _ORDER_BY_SUFFIX:
        return _ORDER_BY_SUFFIX[path.suffix.lower()]
    first = next((s for s in map(str.strip, text.splitlines()) if s and s[0] not in "#;"), "")
    if first.startswith("{"):
        return (_JSON, _YAML, _INI)
    if first.startswith("[") and not first.startswith("[{") and "," not in first:  # [group], not a YAML list
        return (_INI, _YAML, _JSON)
    return (_YAML, _INI, _JSON)


def _document(data: Any, lines: LineMap, form: str, first: bool) -> Callable[[], Inventory]:
    # JSON is YAML too, so either syntax may hold any of the shapes; ansible-inventory's has lists in groups.
    # From YAML, only a _meta key says so: `all: {hosts: [a, b]}` there is a mistake in the YAML shape.
    if "_meta" in data if form == _YAML else is_inventory_list(data):
        return lambda: to_inventory(tree_from_list(data, lines))
    # Tried after another form failed, a mapping must look like an inventory: an INI line such as `h:` is a
    # YAML mapping too, and its INI error is the one that helps.
    if not first and not (_INVENTORY_KEYS & set(data)):
        raise _WrongShape(lines.file, 1, "", f"{form} without hosts or all")
    return lambda: parse_inventory(data, lines)


def _yaml(text: str, file: str, first: bool) -> Callable[[], Inventory]:
    data, lines = parse_yaml(text, file)
    if not isinstance(data, dict):
        kind = "nothing" if data is None else f"a {type(data).__name__}, not a mapping"
        raise _WrongShape(file, 1, "", f"YAML holding {kind}")
    return _document(data, lines, _YAML, first)


def _json(text: str, file: str, first: bool) -> Callable[[], Inventory]:
    data, lines = read_json(text, file)
    if not isinstance(data, dict):
        raise _WrongShape(file, 1, "", f"JSON holding a {type(data).__name__}, not an object")
    return _document(data, lines, _JSON, first)


def _ini(text: str, file: str, first: bool) -> Callable[[], Inventory]:
    tree = parse_ini(text, file)
    return lambda: to_inventory(tree)


_PARSERS: dict[str, Callable[[str, str, bool], Callable[[], Inventory]]] = {
    _YAML: _yaml,
    _JSON: _json,
    _INI: _ini,
}


class _WrongShape(ConfigError):
    """The text parses in this form but is no inventory there (a YAML string): a weaker clue than a syntax
    error in another form."""


def _none_fits(file: str, failures: list[tuple[str, ConfigError]]) -> ConfigError:
    # Report the first form tried whose syntax failed: the one the extension or first line pointed at.
    ranked = sorted(failures, key=lambda f: isinstance(f[1], _WrongShape))
    (form, best), others = ranked[0], ranked[1:]
    tried = "; ".join(f"as {f}: {_short(e)}" for f, e in others)
    return ConfigError(file, best.line, best.field, f"{best.problem} (read as {form}; {tried})"[:600])


def _short(err: ConfigError) -> str:
    where = f"line {err.line}: " if err.line is not None else ""
    text = f"{where}{err.field + ': ' if err.field else ''}{err.problem}"
    return text if len(text) <= 120 else text[:117] + "..."
