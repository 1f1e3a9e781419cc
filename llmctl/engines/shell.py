"""Renders an argv (and environment) as one POSIX shell line for remote execution. Pure.

Every token is quoted, so the remote shell sees exactly the argv we built whatever the text holds
(`;`, quotes, `$()`, newlines): this line is what reaches a remote `sh -c`.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Words the shell parses specially when they start a command, even though shlex.quote leaves them bare.
_RESERVED = frozenset(
    {
        "!",
        "{",
        "}",
        "[[",
        "]]",
        "case",
        "do",
        "done",
        "elif",
        "else",
        "esac",
        "fi",
        "for",
        "function",
        "if",
        "in",
    }
    | {"select", "then", "time", "until", "while"}
)


def _quote(token: str) -> str:
    if "\x00" in token:
        raise ValueError(f"argv token {token!r} contains a NUL byte, which no command line can carry")
    return shlex.quote(token)


def _quote_command(token: str) -> str:
    quoted = _quote(token)
    # In command position a bare `A=b` is an assignment and a bare `if` a keyword; quoted, both are plain words.
    if quoted == token and ("=" in token or token in _RESERVED):
        return "'" + token + "'"
    return quoted


def render_command(argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    """`KEY='value' ... 'prog' 'arg' ...` such that `sh -c` runs exactly argv with env added."""
    if isinstance(argv, str):
        raise TypeError("argv must be a sequence of strings, not one string")
    if not argv:
        raise ValueError("cannot render an empty command")
    words = []
    for key, value in (env or {}).items():
        if not ENV_NAME.fullmatch(key):
            raise ValueError(f"environment variable name {key!r} is not a shell identifier")
        words.append(f"{key}={_quote(value)}")
    words.append(_quote_command(argv[0]))
    words.extend(_quote(t) for t in argv[1:])
    return " ".join(words)
