"""render_command must hand a remote shell exactly the argv we built, whatever the text holds."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmctl.engines.shell import render_command

# Any text a str can hold except NUL (no argv can carry it) and lone surrogates (not encodable).
TEXT = st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"))
NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True)

HOSTILE = [
    "x; touch {pwned}",
    "$(touch {pwned})",
    "`touch {pwned}`",
    "'; touch {pwned}; echo '",
    '"; touch {pwned}; echo "',
    "a\ntouch {pwned}",
    "&& touch {pwned} &",
    "| touch {pwned}",
    "$HOME ${{HOME}} ~ * ? [a] {{a,b}}",
    "> {pwned}",
    "-n",
    "",
    "\\",
    "it's",
    "tab\there\r\n",
    "émoji 🚀",
]


@given(st.lists(TEXT, min_size=1, max_size=6), st.dictionaries(NAMES, TEXT, max_size=3))
def test_round_trips_through_shlex(argv: list[str], env: dict[str, str]) -> None:
    words = shlex.split(render_command(argv, env))
    assert words == [f"{k}={v}" for k, v in env.items()] + argv


def _run_sh(line: str) -> str:
    done = subprocess.run(["/bin/sh", "-c", line], capture_output=True, check=True, timeout=10)
    return done.stdout.decode("utf-8", "surrogateescape")


@pytest.mark.parametrize("template", HOSTILE)
def test_sh_prints_hostile_values_verbatim(template: str, tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    hostile = template.format(pwned=pwned)
    out = _run_sh(
        f"cd {shlex.quote(str(tmp_path))} && " + render_command(["printf", "%s\\n", hostile, hostile])
    )
    assert out == f"{hostile}\n{hostile}\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("template", HOSTILE)
def test_sh_env_values_arrive_verbatim(template: str, tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    hostile = template.format(pwned=pwned)
    out = _run_sh(render_command(["sh", "-c", 'printf "%s" "$LLMCTL_X"'], {"LLMCTL_X": hostile}))
    assert out == hostile
    assert not pwned.exists()


@settings(max_examples=40, deadline=None)
@given(st.lists(TEXT, min_size=1, max_size=4))
def test_sh_argv_survives_arbitrary_text(args: list[str]) -> None:
    out = _run_sh(render_command(["printf", "%s\\0", *args]))
    assert out.split("\0")[:-1] == args


@pytest.mark.parametrize("word", ["if", "while", "{", "!", "A=b", "time"])
def test_command_word_is_never_a_keyword_or_assignment(word: str) -> None:
    line = render_command([word, "x"])
    assert shlex.split(line) == [word, "x"]
    assert line.startswith("'")


def test_env_prefix_and_validation() -> None:
    assert (
        render_command(["vllm", "serve", "m"], {"VLLM_API_KEY": "a b"}) == "VLLM_API_KEY='a b' vllm serve m"
    )
    for bad in ["1A", "A-B", "A B", "", "A;B", "Ä"]:
        with pytest.raises(ValueError, match="not a shell identifier"):
            render_command(["true"], {bad: "x"})
    with pytest.raises(ValueError, match="empty"):
        render_command([])
    with pytest.raises(ValueError, match="NUL"):
        render_command(["echo", "a\x00b"])
    with pytest.raises(TypeError):
        render_command("echo hi")
