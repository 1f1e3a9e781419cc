"""scripts/conformance.py: the table it prints and the exit status CI reads (engines replaced by rows)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from llmctl.bench.conformance import Row

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "conformance.py"
ARGS = ["--reference", "http://ref", "--candidate", "http://cand", "--model", "tiny"]


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("conformance_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rows(*extra: Row) -> list[Row]:
    return [
        Row("completion.object", "text_completion", "text_completion", "same"),
        Row("metrics.family vllm:prompt_tokens", "counter", "counter", "same"),
        Row("version.value", "0.32.0", "0.33.0", "deliberate", "pinned"),
        *extra,
    ]


def test_exits_1_only_when_a_check_differs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    script = load()
    monkeypatch.setattr(script, "run", lambda *a: rows())
    assert script.main(ARGS) == 0
    differing = Row("completion.keys", {"metrics": "null", "id": "str"}, {"id": "str"}, "differs")
    monkeypatch.setattr(script, "run", lambda *a: rows(differing))
    assert script.main([*ARGS, "--markdown"]) == 1
    table = capsys.readouterr().out
    # A differing object shows only what differs; agreeing metric checks are counted, not listed.
    assert '| `completion.keys` | {"metrics":"null"} | — | differs |' in table
    assert "| `metrics.family *` (1 checks) | same on both | same on both | same |" in table
    assert "| `version.value` | 0.32.0 | 0.33.0 | deliberate(pinned) |" in table
    assert "2 same, 1 differs, 1 deliberate of 4 checks." in table
