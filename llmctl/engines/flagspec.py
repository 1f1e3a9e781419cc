"""An engine's command-line flags, from a packaged argparse snapshot, and an argv checker that refuses what
the engine's own parser would refuse, before anything reaches a GPU host. Pure: reading the snapshot file
lives in llmctl.engines.snapshots.

Deliberate differences from argparse: prefix abbreviations (`--max-num`) are refused because llmctl always
emits full flags and an abbreviation that is unique today becomes ambiguous when the engine adds a flag.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llmctl.engines.flagtypes import BadValue, Flag, FlagProblem, check_choice, convert, is_json_object_type

# argparse treats these as values, not options, when no option string looks like a negative number
# (true of both engines), so `--max-model-len -1` is a value.
_NEGATIVE_NUMBER = re.compile(r"^-\d+$|^-\d*\.\d+$")
_MAX_CHOICES_SHOWN = 8

__all__ = ["Flag", "FlagProblem", "FlagSpec", "apply_overrides", "merge_argv", "overrides_to_argv"]


@dataclass
class _Item:
    """Argv tokens argparse consumes together: an option and its values, or one positional."""

    tokens: list[str]
    key: str  # what merge_argv matches on: dest, "dest.path" for dotted keys, "?--opt" for unknown flags
    flag: Flag | None = None
    option: str | None = None
    values: list[str] = field(default_factory=list)
    dotted: str | None = None
    problems: list[FlagProblem] = field(default_factory=list)


class FlagSpec:
    """The flags of one engine version, indexed by every option string."""

    def __init__(self, engine: str, version: str, flags: Sequence[Flag]) -> None:
        self.engine = engine
        self.version = version
        self.flags = tuple(flags)
        self._by_option = {o: f for f in self.flags for o in f.option_strings}
        self._positionals = tuple(f for f in self.flags if f.positional)

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> FlagSpec:
        """Build from the JSON written by scripts/regenerate_engine_flags.py; ValueError if malformed."""
        try:
            engine, version, raw = str(data["engine"]), str(data["version"]), data["flags"]
            flags = [Flag.from_dict(d) for d in raw]
        except (KeyError, TypeError) as e:
            raise ValueError(f"malformed flag snapshot: {e!r}") from None
        if data.get("n_flags", len(flags)) != len(flags):
            raise ValueError(f"flag snapshot says n_flags={data['n_flags']} but lists {len(flags)}")
        return cls(engine, version, flags)

    @property
    def label(self) -> str:
        return f"{self.engine} {self.version}"

    def __repr__(self) -> str:
        return f"FlagSpec({self.engine!r}, {self.version!r}, {len(self.flags)} flags)"

    def lookup(self, option: str) -> Flag | None:
        """The flag an option string names (any alias), or None."""
        return self._by_option.get(self._normalize(option))

    def negation(self, option: str) -> str | None:
        """The option setting the same switch the other way (`--no-X`, `--disable-X`), if the engine has one."""
        flag = self.lookup(option)
        if flag is None or flag.nargs != 0:
            return None
        opt = self._normalize(option)
        for a, b in (("--no-", "--"), ("--disable-", "--enable-")):
            for src, dst in ((a, b), (b, a)):
                candidate = dst + opt.removeprefix(src) if opt.startswith(src) else None
                if candidate and candidate != opt and candidate in flag.option_strings:
                    return candidate
        return None

    def suggest(self, option: str) -> str | None:
        """The known option most likely meant: the shortest it abbreviates, else the closest spelling."""
        opt = self._normalize(option)
        longer = [o for o in self._by_option if o.startswith(opt) and len(opt) > 2]
        if longer:
            return min(longer, key=len)
        close = difflib.get_close_matches(opt, list(self._by_option), n=1, cutoff=0.6)
        return close[0] if close else None

    def validate(self, argv: Sequence[str]) -> list[FlagProblem]:
        """Problems with an engine argv (the arguments after the program), in argv order; [] when clean."""
        problems: list[FlagProblem] = []
        seen: set[str] = set()
        for item in self._scan(argv):
            problems.extend(item.problems)
            if item.flag is not None:
                seen.add(item.flag.dest)
        for f in self.flags:
            if f.required and f.dest not in seen:
                names = " or ".join(f.option_strings) or f.dest
                problems.append(FlagProblem(f.flag, None, f"required by {self.label} but missing ({names})"))
        return problems

    def values(self, argv: Sequence[str]) -> dict[str, object]:
        """Parsed values by dest, as argparse would leave them for the flags present (the last one wins):
        switches as bools, nargs flags as lists, others as strings. Validate first: this does not check."""
        out: dict[str, object] = {}
        for item in self._scan(argv):
            if item.flag is None or item.dotted is not None:
                continue
            if item.flag.nargs == 0:
                out[item.flag.dest] = not (item.option or "").startswith(("--no-", "--disable-"))
            elif item.flag.nargs in ("*", "+") or (isinstance(item.flag.nargs, int) and item.flag.nargs > 1):
                out[item.flag.dest] = list(item.values)
            elif item.values:
                out[item.flag.dest] = item.values[0]
        return out

    # -- scanning -------------------------------------------------------------------------------------

    def _normalize(self, option: str) -> str:
        # vLLM's FlexibleArgumentParser turns --max_num_seqs into --max-num-seqs (the name part before a dot).
        if self.engine == "vllm" and option.startswith("--"):
            head, dot, tail = option[2:].partition(".")
            return "--" + head.replace("_", "-") + dot + tail
        return option

    def _split(self, tok: str, nxt: str | None) -> tuple[str, str | None]:
        """(option name, value after '=') with vLLM's `-O3` / `-O 3` spelling of --optimization-level."""
        if self.engine == "vllm" and tok.startswith("-O") and not tok.startswith("--"):
            if tok != "-O":
                return "--optimization-level", tok[3:] if tok[2] == "=" else tok[2:]
            if nxt in ("0", "1", "2", "3"):
                return "--optimization-level", None
        name, eq, rest = tok.partition("=")
        return self._normalize(name), rest if eq else None

    def _resolve(self, name: str) -> tuple[Flag | None, str | None]:
        flag = self._by_option.get(name)
        if flag is None and self.engine == "vllm" and "." in name:
            base, _, path = name.partition(".")
            return self._by_option.get(base), path
        return flag, None

    def _is_option(self, tok: str) -> bool:
        if not tok.startswith("-") or tok == "-":
            return False
        if self._resolve(self._split(tok, None)[0])[0] is not None:
            return True
        # argparse: negative numbers and strings with spaces are values unless they name an option.
        return not (_NEGATIVE_NUMBER.match(tok) or " " in tok)

    def _scan(self, argv: Sequence[str]) -> list[_Item]:
        items: list[_Item] = []
        free = list(self._positionals)
        i, only_positionals = 0, False
        while i < len(argv):
            tok = argv[i]
            if tok == "--" and not only_positionals:
                items.append(_Item([tok], key=""))
                only_positionals, i = True, i + 1
            elif only_positionals or not self._is_option(tok):
                items.append(self._positional(tok, free))
                i += 1
            else:
                item = self._option(argv, i)
                items.append(item)
                i += len(item.tokens)
        return items

    def _positional(self, tok: str, free: list[Flag]) -> _Item:
        if not free:
            where = "it takes the model as its only positional" if self._positionals else "it has none"
            msg = f"unexpected positional argument for {self.label} ({where})"
            return _Item([tok], key="", problems=[FlagProblem(tok, tok, msg)])
        flag = free.pop(0)
        item = _Item([tok], key=flag.dest, flag=flag, values=[tok])
        item.problems = self._check_values(flag, flag.dest, [tok])
        return item

    def _option(self, argv: Sequence[str], i: int) -> _Item:
        tok = argv[i]
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        name, explicit = self._split(tok, nxt)
        flag, path = self._resolve(name)
        item = _Item([tok], key=flag.dest if flag else "?" + name, flag=flag, option=name)
        if flag is None:
            return self._unknown(item, argv, i, explicit)
        if path is not None:
            return self._dotted(item, flag, path, nxt, explicit)
        if flag.nargs == 0:
            if explicit is not None:
                off = explicit.strip().lower() in ("false", "0", "no", "off")
                hint = self.negation(name) if off else name
                msg = f"is a switch and takes no value, got {explicit!r}"
                item.problems.append(FlagProblem(name, explicit, msg, hint))
            return item
        if explicit is not None:
            item.values = [explicit]
        else:
            want = flag.nargs
            limit = len(argv) if want in ("*", "+", "...") else want if isinstance(want, int) else 1
            j = i + 1
            while (
                j < len(argv) and len(item.values) < limit and (want == "..." or not self._is_option(argv[j]))
            ):
                item.values.append(argv[j])
                j += 1
            item.tokens = list(argv[i:j])
        item.problems.extend(self._arity(flag, name, len(item.values)))
        item.problems.extend(self._check_values(flag, name, item.values))
        return item

    def _unknown(self, item: _Item, argv: Sequence[str], i: int, explicit: str | None) -> _Item:
        name = item.option or argv[i]
        # Take the values too, so one unknown flag yields one problem and merge_argv moves it whole.
        j = i + 1
        while explicit is None and j < len(argv) and not self._is_option(argv[j]):
            j += 1
        item.tokens = list(argv[i:j])
        suggestion = self.suggest(name.split(".")[0] if "." in name else name)
        msg = f"unknown flag for {self.label}"
        if suggestion and suggestion.startswith(name):
            msg += "; abbreviations are not accepted"
        item.problems.append(FlagProblem(name, explicit, msg, suggestion))
        return item

    def _dotted(self, item: _Item, flag: Flag, path: str, nxt: str | None, explicit: str | None) -> _Item:
        # vLLM folds `--cfg.a.b v` into `--cfg '{"a": {"b": v}}'`, taking the next token whatever it is.
        name = item.option or flag.flag
        clean = path.removesuffix("+")
        item.dotted, item.key = clean, f"{flag.dest}.{clean}"
        if explicit is None and nxt is not None:
            item.tokens.append(nxt)
        value = explicit if explicit is not None else nxt
        if not is_json_object_type(flag.type):
            item.problems.append(FlagProblem(name, value, "only JSON config flags take dotted keys"))
        elif not clean or "" in clean.split("."):
            item.problems.append(FlagProblem(name, value, "empty key in dotted flag"))
        if value is None:
            item.problems.append(FlagProblem(name, None, "expected a value"))
        else:
            item.values = [value]
        return item

    def _arity(self, flag: Flag, name: str, got: int) -> list[FlagProblem]:
        n = flag.nargs
        if n is None and got != 1:
            return [FlagProblem(name, None, "expected a value")]
        if n == "+" and got == 0:
            return [FlagProblem(name, None, "expected at least one value")]
        if isinstance(n, int) and got != n:
            return [FlagProblem(name, None, f"expected {n} values, got {got}")]
        return []

    def _check_values(self, flag: Flag, name: str, values: Sequence[str]) -> list[FlagProblem]:
        problems = []
        for value in values:
            try:
                converted = convert(self.engine, flag.type, value, flag.default)
            except BadValue as e:
                problems.append(FlagProblem(name, value, str(e)))
                continue
            if flag.choices is not None and not check_choice(converted, flag.choices):
                names = [str(c) for c in flag.choices]
                shown = ", ".join(names[:_MAX_CHOICES_SHOWN]) + (
                    ", ..." if len(names) > _MAX_CHOICES_SHOWN else ""
                )
                close = difflib.get_close_matches(value, names, n=1, cutoff=0.5)
                msg = f"invalid choice {value!r} (choose from {shown})"
                problems.append(FlagProblem(name, value, msg, close[0] if close else None))
        return problems


# -- playbook overrides ------------------------------------------------------------------------------


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    try:
        return json.dumps(value, separators=(",", ":"))
    except (TypeError, ValueError):
        raise ValueError(f"cannot pass {value!r} on an engine command line") from None


def overrides_to_argv(overrides: Mapping[str, object], spec: FlagSpec | None = None) -> list[str]:
    """Turn a playbook's raw flag mapping into argv tokens.

    True -> the bare flag; False or None -> omitted, except that with a `spec` whose engine has the other
    half of the switch (vLLM `--no-enforce-eager`, `--disable-prefix-caching`) False emits that, so it also
    beats a generated `--enforce-eager`. apply_overrides removes the rest. A list -> the flag followed by
    each item; a dict -> one compact JSON string.
    """
    argv: list[str] = []
    for key, value in overrides.items():
        if not key.startswith("-"):
            raise ValueError(f"override {key!r} is not a flag (write it as --{key})")
        if value is True:
            argv.append(key)
        elif value is False or value is None:
            negated = spec.negation(key) if spec is not None and value is False else None
            if negated:
                argv.append(negated)
        elif isinstance(value, list | tuple):
            argv += [key, *(_scalar(v) for v in value)]
        else:
            argv += [key, _scalar(value)]
    return argv


def merge_argv(
    spec: FlagSpec, base: Sequence[str], overrides: Sequence[str], *, remove: Iterable[str] = ()
) -> list[str]:
    """`base` with `overrides` applied: an override replaces every occurrence of the same flag (matched by
    dest, so aliases and `--no-X` count) in place of the first one; new flags go at the end. A dotted
    override (`--speculative-config.num_speculative_tokens 5`) is folded into a JSON value already in base,
    since vLLM would otherwise replace that whole JSON with the dotted keys alone. `remove` names flags
    to drop from base.
    """
    base_items, over_items = spec._scan(base), spec._scan(overrides)
    removed = {(f.dest if (f := spec.lookup(r)) else "?" + r) for r in remove}
    by_key: dict[str, list[int]] = {}
    for idx, it in enumerate(over_items):
        if it.key:
            by_key.setdefault(it.key, []).append(idx)
    whole = {it.flag.dest for it in over_items if it.flag and it.dotted is None}
    used: set[int] = set()
    out: list[str] = []

    def place(key: str) -> None:
        for idx in by_key.get(key, []):
            if idx not in used:
                used.add(idx)
                out.extend(over_items[idx].tokens)

    for it in base_items:
        dest = it.flag.dest if it.flag else it.key
        if dest in removed or it.key in removed:
            continue
        if it.key in by_key:
            place(it.key)
        elif it.dotted is not None and dest in whole:
            place(dest)
        elif it.flag and it.dotted is None and (folded := _fold(it, over_items, used)) is not None:
            out.extend(folded)
        else:
            out.extend(it.tokens)
    for idx, it in enumerate(over_items):
        if idx not in used:
            out.extend(it.tokens)
    return out


def _fold(base: _Item, over_items: list[_Item], used: set[int]) -> list[str] | None:
    assert base.flag is not None
    dotted = [
        i for i, o in enumerate(over_items) if o.flag is base.flag and o.dotted and o.values and i not in used
    ]
    if not dotted or len(base.values) != 1:
        return None
    try:
        obj = json.loads(base.values[0])
    except json.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    for i in dotted:
        o = over_items[i]
        assert o.dotted is not None
        *parents, leaf = o.dotted.split(".")
        node = obj
        for p in parents:
            child = node.get(p)
            if not isinstance(child, dict):
                child = node[p] = {}
            node = child
        node[leaf] = _dotted_value(o.values[0], append=(o.option or "").endswith("+"), old=node.get(leaf))
        used.add(i)
    return [base.option or base.flag.flag, json.dumps(obj, separators=(",", ":"))]


def _dotted_value(raw: str, *, append: bool, old: object) -> object:
    # Mirrors vLLM: `key+ a,b` extends a list; otherwise JSON, else a 32k-style integer, else the string.
    if append:
        return [*(old if isinstance(old, list) else []), *raw.split(",")]
    try:
        parsed: object = json.loads(raw)
    except json.JSONDecodeError:
        try:
            return convert("vllm", "human_readable_int", raw)
        except BadValue:
            return raw
    return parsed


def apply_overrides(spec: FlagSpec, base: Sequence[str], overrides: Mapping[str, object]) -> list[str]:
    """overrides_to_argv then merge_argv, with False/None dropping a switch the engine cannot negate."""
    argv = overrides_to_argv(overrides, spec)
    drop = [k for k, v in overrides.items() if v is None or (v is False and spec.negation(k) is None)]
    return merge_argv(spec, base, argv, remove=drop)
