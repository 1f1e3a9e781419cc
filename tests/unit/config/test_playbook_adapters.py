"""Playbook `adapters:`: each adapter's fields, and model names unique across the playbook, with file:line."""

from __future__ import annotations

import pytest

from llmctl.config.playbook import parse_playbook
from llmctl.config.source import parse_yaml
from llmctl.errors import ConfigError, ConfigErrors

HEAD = (
    "deployments:\n"
    "  - name: chat\n"
    "    model: meta-llama/Llama-3.1-8B-Instruct\n"
    "    workload: online\n"
    "    adapters:\n"
)


def errors(text: str) -> list[ConfigError]:
    data, lines = parse_yaml(text, "pb.yaml")
    with pytest.raises((ConfigError, ConfigErrors)) as info:
        parse_playbook(data, lines)
    exc = info.value
    return exc.errors if isinstance(exc, ConfigErrors) else [exc]


def test_adapters_parse_with_preload_by_default() -> None:
    text = HEAD + "      - {name: sql, path: /m/sql, rank: 16}\n"
    text += "      - {name: legal, path: org/legal, rank: 8, preload: false}\n"
    data, lines = parse_yaml(text, "pb.yaml")
    dep = parse_playbook(data, lines).deployments[0]
    assert [(a.name, a.rank, a.preload) for a in dep.adapters] == [("sql", 16, True), ("legal", 8, False)]


@pytest.mark.parametrize(
    ("entry", "line", "field", "words"),
    [
        ("{name: 'a:b', path: /m, rank: 8}", 6, "deployments[0].adapters[0].name", "no ':'"),
        (
            "{name: a, path: /m, rank: 1024}",
            6,
            "deployments[0].adapters[0].rank",
            "less than or equal to 512",
        ),
        ("{name: a, path: /m}", 6, "deployments[0].adapters[0].rank", "required field is missing"),
        ("{name: a, path: '', rank: 8}", 6, "deployments[0].adapters[0].path", "at least 1"),
        ("{name: a, path: /m, rank: 8, alpha: 16}", 6, "deployments[0].adapters[0].alpha", "unknown field"),
    ],
)
def test_bad_adapter_fields_name_their_line(entry: str, line: int, field: str, words: str) -> None:
    errs = errors(HEAD + f"      - {entry}\n")
    assert any(e.line == line and e.field == field and words in str(e) for e in errs), [str(e) for e in errs]


def test_an_adapter_name_given_twice_is_refused() -> None:
    errs = errors(HEAD + "      - {name: a, path: /m/a, rank: 8}\n      - {name: a, path: /m/b, rank: 8}\n")
    assert any(e.field == "deployments[0].adapters" and "'a' is given twice" in str(e) for e in errs)


def test_model_names_are_one_namespace_across_deployments() -> None:
    other = (
        "  - name: code\n"
        "    model: meta-llama/Llama-3.1-8B-Instruct\n"
        "    workload: offline\n"
        "    adapters:\n"
        "      - {name: chat, path: /m/chat, rank: 8}\n"
    )
    errs = errors(HEAD + "      - {name: sql, path: /m/sql, rank: 8}\n" + other)
    assert [(e.line, e.field) for e in errs] == [(11, "deployments[1].adapters[0].name")]
    assert "already the model name of deployment 'chat'" in str(errs[0])
