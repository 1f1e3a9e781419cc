"""Flag records from a snapshot, and checks of one argv value against the flag's recorded `type`. Pure.

The snapshot records each argparse `type` callable by name (`int`, `human_readable_int`,
`_optional_type(loads)`, ...). We cannot import the engines, so each name maps to a re-implementation of
what that callable accepts; names we do not know fall back to "any string", because refusing a value the
engine would take is worse than missing a check.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

_OPTIONAL = re.compile(r"^_optional_type\((.*)\)$")
_PARSE_TYPE = re.compile(r"^_parse_type\((.*)\)$")

# vLLM: k/m/g/t are powers of 10 (decimals allowed), K/M/G/T powers of 2 (integers only).
_VLLM_HRI = re.compile(r"(\d+(?:\.\d+)?)([kKmMgGtT])")
_VLLM_DEC = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_VLLM_BIN = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
# SGLang: SI k/M/G/T (decimals allowed), IEC Ki/Mi/Gi/Ti (integers only); case-sensitive, so 32K is refused.
_SGLANG_HRI = re.compile(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)")
_SGLANG_SI = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_SGLANG_IEC = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}

_TRUE = {"true", "1", "yes", "y", "on", "t"}
_FALSE = {"false", "0", "no", "n", "off", "f"}


@dataclass(frozen=True)
class Flag:
    """One argparse action. `flag` is the primary option string, or the dest of a positional."""

    flag: str
    aliases: tuple[str, ...]
    dest: str
    action: str
    type: str | None
    nargs: int | str | None
    default: object
    choices: tuple[object, ...] | None
    required: bool
    const: object = None

    @property
    def positional(self) -> bool:
        return not self.flag.startswith("-")

    @property
    def option_strings(self) -> tuple[str, ...]:
        return () if self.positional else (self.flag, *self.aliases)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Flag:
        choices = d.get("choices")
        return cls(
            flag=str(d["flag"]),
            aliases=tuple(str(a) for a in d.get("aliases") or ()),
            dest=str(d["dest"]),
            action=str(d["action"]),
            type=None if d.get("type") is None else str(d["type"]),
            nargs=d.get("nargs"),
            default=d.get("default"),
            choices=None if choices is None else tuple(choices),
            required=bool(d.get("required", False)),
            const=d.get("const"),
        )


@dataclass(frozen=True)
class FlagProblem:
    """One reason the engine would refuse an argv."""

    flag: str
    value: str | None
    problem: str
    suggestion: str | None = None

    def __str__(self) -> str:
        hint = f" (did you mean {self.suggestion}?)" if self.suggestion else ""
        return f"{self.flag}: {self.problem}{hint}"


class BadValue(ValueError):
    """The value would make the engine's argparse exit; the message says what was expected."""


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise BadValue(f"expected an integer, got {value!r}") from None


def _human_int(engine: str, value: str) -> int:
    text = value.strip()
    if engine == "sglang":
        m = _SGLANG_HRI.fullmatch(text)
        if m:
            number, suffix = m.groups()
            if suffix in _SGLANG_IEC:
                if "." in number:
                    raise BadValue(f"decimals are not allowed with IEC suffix {suffix!r}, got {value!r}")
                return int(number) * _SGLANG_IEC[suffix]
            return int(Decimal(number) * _SGLANG_SI[suffix])
        hint = "an integer or 32k / 32M (SI) / 32Ki (IEC), case-sensitive"
    else:
        m = _VLLM_HRI.fullmatch(text)
        if m:
            number, suffix = m.groups()
            if suffix in _VLLM_DEC:
                return int(float(number) * _VLLM_DEC[suffix])
            if "." in number:
                raise BadValue(f"decimals are not allowed with binary suffix {suffix!r}, got {value!r}")
            return int(number) * _VLLM_BIN[suffix]
        hint = "an integer or 32k (x1000) / 32K (x1024)"
    try:
        return int(text)
    except ValueError:
        raise BadValue(f"expected {hint}, got {value!r}") from None


def _json(value: str, want: type | None) -> object:
    try:
        parsed: object = json.loads(value)
    except json.JSONDecodeError as e:
        raise BadValue(f"expected JSON, got {value!r} ({e.msg} at char {e.pos})") from None
    if want is dict and not isinstance(parsed, dict):
        raise BadValue(f"expected a JSON object, got {value!r}")
    if want is list and not isinstance(parsed, list):
        raise BadValue(f"expected a JSON array, got {value!r}")
    return parsed


def convert(engine: str, type_name: str | None, value: str, default: object = None) -> object:
    """Return the value as the engine would parse it, or raise BadValue.

    `default` decides what JSON shape `loads` flags want: a list default means a JSON array (vLLM
    `--allowed-origins`), anything else a JSON object (`--speculative-config` and friends).
    """
    name = type_name or "str"
    m = _OPTIONAL.match(name)
    if m:
        # vLLM's optional_type maps "" and "None" to None before calling the wrapped type.
        if value in ("", "None"):
            return None
        name = m.group(1)
    m = _PARSE_TYPE.match(name)
    if m:
        name = m.group(1)
    if name == "int":
        return _int(value)
    if name == "float":
        try:
            return float(value)
        except ValueError:
            raise BadValue(f"expected a number, got {value!r}") from None
    if name == "bool":
        lowered = value.strip().lower()
        if lowered in _TRUE | _FALSE:
            return lowered in _TRUE
        raise BadValue(f"expected true or false, got {value!r}")
    if name == "human_readable_int":
        return _human_int(engine, value)
    if name == "human_readable_int_or_auto":
        if value.strip() == "-1" or value.strip().lower() == "auto":
            return -1
        return _human_int(engine, value)
    if name == "loads":
        return _json(value, list if isinstance(default, list) else dict)
    if name == "parse_dataclass":
        return _json(value, dict)
    if name == "json_list_type":
        return _json(value, list)
    if name == "union_dict_and_str":
        # vLLM only parses JSON when the value looks like an object; anything else is a plain string.
        return _json(value, dict) if re.match(r"^{.*}$", value, re.DOTALL) else value
    if name == "nullable_str":
        return None if value in ("", "None") else value
    return value


def is_json_object_type(type_name: str | None) -> bool:
    """Whether vLLM's dotted keys (`--speculative-config.method eagle3`) make sense for this flag."""
    name = type_name or ""
    return any(k in name for k in ("loads", "parse_dataclass", "union_dict_and_str"))


def check_choice(value: object, choices: tuple[object, ...]) -> bool:
    """argparse tests the converted value, so "2" matches the choice 2 and "None" matches null."""
    return value in choices
