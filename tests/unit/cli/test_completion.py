"""Shell completion is installable (issue #17): `llmctl --show-completion bash` prints a script, and the
script's completions reach through the lazily imported command group."""

from __future__ import annotations

from typer.testing import CliRunner, Result

from llmctl.cli.main import app


def _complete(words: str) -> Result:
    """What bash's completion function gets back for the words typed so far (the last one being completed)."""
    env = {
        "_LLMCTL_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split(" ")) - 1),
    }
    return CliRunner().invoke(app, [], prog_name="llmctl", env=env)


def test_show_completion_bash_prints_a_completion_script() -> None:
    out = CliRunner().invoke(app, ["--show-completion", "bash"], prog_name="llmctl")
    assert out.exit_code == 0, out.output
    assert "_LLMCTL_COMPLETE=complete_bash" in out.output
    assert "complete -o default -F _llmctl_completion llmctl" in out.output


def test_completion_lists_lazy_commands_and_their_options() -> None:
    assert _complete("llmctl pl").output.split() == ["plan"]
    assert _complete("llmctl hosts ").output.split() == ["list", "ping", "facts", "exec"]
    options = _complete("llmctl plan --").output.split()
    assert "--inventory" in options and "--json" in options
    # completion belongs to the root only, not to every sub-command
    assert "--install-completion" not in options and "--show-completion" not in options
