#!/usr/bin/env python3
"""Regenerate llmctl/engines/flags/<engine>-<version>.json from an engine's own argparse parser.

Run it inside a venv where the engine imports (see /work/shared/engine-flags/README.md: CPU torch, the engine
wheel with --no-deps, VLLM_TARGET_DEVICE=cpu for vLLM). It never starts the engine; it only builds the parser
and walks its actions, so the snapshot is exactly what `vllm serve` / `sglang.launch_server` accept.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import json
import os
import sys
import textwrap
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

FLAGS_DIR = Path(__file__).resolve().parent.parent / "llmctl" / "engines" / "flags"


def describe_type(fn: object) -> str | None:
    """Name an argparse `type` callable the way the snapshots do: `int`, `loads`, `_optional_type(str)`.

    vLLM wraps types in closures (`optional_type(int)` returns `_optional_type`); the wrapped callables
    live in the closure cells, so private (underscore) closures are shown with what they wrap.
    """
    if fn is None:
        return None
    if isinstance(fn, partial):
        return describe_type(fn.func)
    name = getattr(fn, "__name__", None) or type(fn).__name__
    closure = getattr(fn, "__closure__", None)
    if name.startswith("_") and closure:
        inner = []
        for cell in closure:
            try:
                content = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            if callable(content):
                inner.append(describe_type(content) or "None")
        if inner:
            return f"{name}({', '.join(inner)})"
    return name


def jsonable(value: object) -> object:
    """The value itself when JSON can hold it, else its repr (dataclass configs, enums, sets)."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def describe_action(action: argparse.Action) -> dict[str, Any]:
    """One snapshot entry; key order matches the packaged files."""
    options = list(action.option_strings)
    # The primary spelling is the first long option; short forms like -tp are aliases.
    primary = next((o for o in options if o.startswith("--")), options[0] if options else action.dest)
    entry: dict[str, Any] = {
        "flag": primary,
        "aliases": [o for o in options if o != primary],
        "dest": action.dest,
        "action": type(action).__name__,
        # Switches (store_true, BooleanOptionalAction, vLLM's EnableDisableAction) take no value: "bool".
        "type": "bool" if action.nargs == 0 else describe_type(action.type),
        "nargs": action.nargs,
        "default": jsonable(action.default),
        "choices": None if action.choices is None else [jsonable(c) for c in action.choices],
        "required": bool(action.required),
    }
    if action.const is not None:
        entry["const"] = jsonable(action.const)
    return entry


def walk(parser: argparse.ArgumentParser) -> list[dict[str, Any]]:
    return [
        describe_action(a)
        for a in parser._actions  # argparse keeps no public list of actions
        if not isinstance(a, argparse._HelpAction | argparse._SubParsersAction)
    ]


def vllm_parser() -> tuple[str, argparse.ArgumentParser]:
    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
    import vllm  # type: ignore[import-not-found]

    try:
        from vllm.entrypoints.common.cli_args import make_arg_parser  # type: ignore[import-not-found]
    except ImportError:  # 0.32 and older (the CPU wheel) keep it under launchers
        from vllm.entrypoints.launchers.cli_args import make_arg_parser  # type: ignore[import-not-found]

    try:
        from vllm.utils.argparse_utils import FlexibleArgumentParser  # type: ignore[import-not-found]
    except ImportError:  # older layouts
        from vllm.utils import FlexibleArgumentParser  # type: ignore[import-not-found]

    parser = FlexibleArgumentParser(prog="vllm serve")
    # `vllm serve MODEL`: the serve subcommand adds the positional before the engine flags.
    parser.add_argument("model_tag", type=str, nargs="?")
    parser = make_arg_parser(parser)
    return str(vllm.__version__), parser


def sglang_resolution(cls: type) -> tuple[set[str], dict[str, object]]:
    """Fields ServerArgs assigns after parsing (`resolvable`) and literal fallbacks for None defaults.

    Read from the source: a field is resolvable when any method other than the CLI plumbing assigns
    `self.<field>`; its fallback is the constant in `if self.<field> is None: self.<field> = <constant>`.
    """
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    resolved: set[str] = set()
    fallback: dict[str, object] = {}
    skip = {"add_cli_args", "from_cli_args", "__init__"}
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef) or fn.name in skip:
            continue
        for node in ast.walk(fn):
            targets = node.targets if isinstance(node, ast.Assign) else []
            if isinstance(node, ast.AugAssign | ast.AnnAssign):
                targets = [node.target]
            for t in targets:
                if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self":
                    resolved.add(t.attr)
            if isinstance(node, ast.If) and _is_none_test(node.test):
                field = node.test.left.attr  # type: ignore[attr-defined]
                for stmt in node.body:
                    if (
                        isinstance(stmt, ast.Assign)
                        and len(stmt.targets) == 1
                        and isinstance(stmt.targets[0], ast.Attribute)
                        and stmt.targets[0].attr == field
                        and isinstance(stmt.value, ast.Constant)
                    ):
                        fallback.setdefault(field, stmt.value.value)
    return resolved, fallback


def _is_none_test(test: ast.expr) -> bool:
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Attribute)
        and isinstance(test.left.value, ast.Name)
        and test.left.value.id == "self"
        and len(test.ops) == 1
        and isinstance(test.ops[0], ast.Is)
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value is None
    )


def sglang_parser() -> tuple[str, argparse.ArgumentParser, Callable[[dict[str, Any]], None]]:
    import sglang  # type: ignore[import-not-found]
    from sglang.srt.server_args import ServerArgs  # type: ignore[import-not-found]

    parser = argparse.ArgumentParser(prog="sglang.launch_server")
    ServerArgs.add_cli_args(parser)
    resolved, fallback = sglang_resolution(ServerArgs)

    def annotate(entry: dict[str, Any]) -> None:
        entry["resolvable"] = entry["dest"] in resolved
        if entry["dest"] in fallback and entry["default"] is None:
            entry["fallback"] = jsonable(fallback[entry["dest"]])

    return str(sglang.__version__), parser, annotate


def snapshot(engine: str) -> dict[str, Any]:
    if engine == "vllm":
        version, parser = vllm_parser()
        flags = walk(parser)
    else:
        version, parser, annotate = sglang_parser()
        flags = walk(parser)
        for entry in flags:
            annotate(entry)
    return {"engine": engine, "version": version, "n_flags": len(flags), "flags": flags}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Write llmctl/engines/flags/<engine>-<version>.json from the installed engine's parser.",
        epilog="Needs the engine importable in this interpreter; see /work/shared/engine-flags/README.md.",
    )
    ap.add_argument("engine", choices=["vllm", "sglang"], help="which engine's parser to read")
    ap.add_argument("--out-dir", type=Path, default=FLAGS_DIR, help="where to write (default: %(default)s)")
    ap.add_argument("--stdout", action="store_true", help="print the JSON instead of writing a file")
    args = ap.parse_args(argv)
    data = snapshot(args.engine)
    text = json.dumps(data, indent=1)  # the packaged files' exact format: indent 1, no trailing newline
    if args.stdout:
        sys.stdout.write(text + "\n")
        return 0
    path = args.out_dir / f"{data['engine']}-{data['version']}.json"
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path} ({data['n_flags']} flags)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
