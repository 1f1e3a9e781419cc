"""YAML that remembers where every value came from, so errors name the file, line and field.

`load_yaml` returns plain Python data plus a `LineMap` from field paths (("deployments", 0, "model")) to
line numbers; `validate` runs a pydantic model over the data and turns its errors into ConfigErrors.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from llmctl.errors import ConfigError, ConfigErrors

PathKey = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)


@dataclass
class LineMap:
    """Line (1-based) of each value, keyed by its path; the key's own line for mapping entries."""

    file: str
    lines: dict[PathKey, int] = field(default_factory=dict)

    def line_of(self, path: Iterable[str | int]) -> int | None:
        """Line of the deepest known prefix of `path` (a missing field is reported at its parent)."""
        parts = tuple(path)
        for end in range(len(parts), -1, -1):
            if parts[:end] in self.lines:
                return self.lines[parts[:end]]
        return None

    def error(self, path: Iterable[str | int], problem: str) -> ConfigError:
        parts = tuple(path)
        return ConfigError(self.file, self.line_of(parts), format_path(parts), problem)


def format_path(path: Iterable[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# Bounds on what a document may expand to: YAML aliases let a few lines stand for billions of values ("billion
# laughs"), and nesting recurses. A playbook or an inventory is a few hundred values.
MAX_VALUES = 100_000
MAX_DEPTH = 64


class _Builder:
    def __init__(self, lines: LineMap) -> None:
        self.lines = lines
        self.constructor = yaml.constructor.SafeConstructor()
        self.values = 0

    def build(self, node: yaml.Node, path: PathKey) -> Any:
        self.values += 1
        if self.values > MAX_VALUES:
            raise self.lines.error(
                path, f"the document expands to more than {MAX_VALUES} values (YAML aliases?); refusing it"
            )
        if len(path) > MAX_DEPTH:
            raise self.lines.error(path, f"nested more than {MAX_DEPTH} levels deep; refusing it")
        self.lines.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            self.constructor.flatten_mapping(node)  # resolves YAML merge keys (<<) as PyYAML does
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self.constructor.construct_object(key_node, deep=True)
                if not isinstance(key, str | int | float | bool) or key is None:
                    raise self.lines.error(path, f"mapping keys must be plain scalars, got {key!r}")
                key = str(key) if not isinstance(key, str) else key
                if key in out:
                    raise ConfigError(
                        self.lines.file,
                        key_node.start_mark.line + 1,
                        format_path((*path, key)),
                        "duplicate key",
                    )
                self.lines.lines[(*path, key)] = key_node.start_mark.line + 1
                out[key] = self.build(value_node, (*path, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return self.constructor.construct_object(node, deep=True)


def parse_yaml(text: str, file: str) -> tuple[Any, LineMap]:
    """Parse one YAML document into plain data and its LineMap; syntax errors become ConfigError."""
    lines = LineMap(file)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(file, line, "", f"invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(file, None, "", f"invalid YAML: {exc}") from None
    except RecursionError:
        raise ConfigError(
            file, None, "", f"invalid YAML: nested too deeply (more than {MAX_DEPTH} levels)"
        ) from None
    if node is None:
        return None, lines
    try:
        return _Builder(lines).build(node, ()), lines
    except yaml.YAMLError as exc:  # e.g. a bad !!timestamp or an unknown tag
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(file, mark.line + 1 if mark else None, "", f"invalid YAML: {exc}") from None


def load_yaml(path: str | Path) -> tuple[Any, LineMap]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), None, "", "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), None, "", f"cannot read: {exc}") from None
    return parse_yaml(text, str(path))


def _problem(err: Any) -> str:
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required field is missing"
    msg = str(err.get("msg", "invalid value"))
    return msg.removeprefix("Value error, ")


def validation_errors(exc: ValidationError, lines: LineMap, prefix: PathKey = ()) -> ConfigErrors:
    raw = [(_field_loc(err["loc"]), err) for err in exc.errors()]
    errors: list[ConfigError] = []
    for loc, err in raw:
        # An invalid item also makes pydantic call its container too short; the item's own error is the news.
        if err.get("type") == "too_short" and any(
            other[: len(loc)] == loc and len(other) > len(loc) for other, _ in raw
        ):
            continue
        errors.append(lines.error((*prefix, *loc), _problem(err)))
    return ConfigErrors(errors)


def _field_loc(loc: tuple[str | int, ...]) -> PathKey:
    # pydantic adds union-branch names ("int", "function-after[...]") to loc; keep real keys and indices.
    return tuple(
        p for p in loc if isinstance(p, int) or not (p in _TYPE_NAMES or str(p).startswith("function-"))
    )


_TYPE_NAMES = {"str", "int", "float", "bool", "list", "dict", "tuple", "literal['auto']", "none"}


def validate(
    model: type[M], data: Any, lines: LineMap, prefix: PathKey = (), context: dict[str, Any] | None = None
) -> M:
    """`context` reaches the model's validators (pydantic's ValidationInfo.context): an inventory's own GPU
    types, for instance, which a host's `gpus: {type: ...}` may name."""
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise validation_errors(exc, lines, prefix) from None
