"""Playbook loading: presets' inputs, and errors with file, line and field, including for random garbage."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmctl.config.inventory import parse_inventory
from llmctl.config.playbook import load_playbook, parse_playbook
from llmctl.config.source import parse_yaml
from llmctl.errors import ConfigError, ConfigErrors, LlmctlError

ROOT = Path(__file__).resolve().parents[3]
GOOD = (
    "deployments:\n"
    "  - name: chat\n"
    "    model: meta-llama/Llama-3.1-8B-Instruct\n"
    "    workload: online\n"
    "    scaling: {min_replicas: 1, max_replicas: 2}\n"
)


def parse(text: str, file: str = "pb.yaml"):  # type: ignore[no-untyped-def]
    data, lines = parse_yaml(text, file)
    return parse_playbook(data, lines)


def errors_of(exc: BaseException) -> list[ConfigError]:
    return exc.errors if isinstance(exc, ConfigErrors) else [exc]  # type: ignore[list-item]


@pytest.mark.parametrize("path", sorted((ROOT / "playbooks").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_playbooks_load(path: Path) -> None:
    assert load_playbook(path).deployments


def test_good_playbook_defaults() -> None:
    pb = parse(GOOD)
    dep = pb.deployments[0]
    assert dep.engine == "auto" and dep.serving.tensor_parallel == "auto"
    assert dep.scaling.initial_replicas == 1 and dep.gateway.route == "least_outstanding"


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        (GOOD + "    replicas: 3\n", 6, "deployments[0].replicas", "unknown field"),
        (GOOD.replace("workload: online", "workload: realtime"), 4, "deployments[0].workload", "online"),
        (
            GOOD.replace("max_replicas: 2", "max_replicas: many"),
            5,
            "deployments[0].scaling.max_replicas",
            "integer",
        ),
        (
            GOOD.replace("max_replicas: 2", "max_replicas: 0"),
            5,
            "deployments[0].scaling.max_replicas",
            "greater than",
        ),
        (
            GOOD.replace("min_replicas: 1, max_replicas: 2", "min_replicas: 3, max_replicas: 2"),
            5,
            "deployments[0].scaling",
            "below min_replicas",
        ),
        (GOOD.replace("name: chat", "name: Chat_1"), 2, "deployments[0].name", "lowercase"),
        (
            GOOD + "    engine_args: {max-num-seqs: 4}\n",
            6,
            "deployments[0].engine_args",
            "starting with '--'",
        ),
        (GOOD + "    placement: {gpu_type: K80}\n", 6, "deployments[0].placement.gpu_type", "unknown GPU"),
        (
            GOOD + "    serving: {tensor_parallel: 3}\n",
            6,
            "deployments[0].serving.tensor_parallel",
            "power of two",
        ),
        (
            GOOD + "    gateway: {api_key_env: 'sk-123 secret'}\n",
            6,
            "deployments[0].gateway.api_key_env",
            "environment variable",
        ),
        ("deployments: []\n", 1, "deployments", "at least 1"),
        (
            GOOD.replace("    model: meta-llama/Llama-3.1-8B-Instruct\n", ""),
            2,
            "deployments[0].model",
            "required",
        ),
    ],
)
def test_errors_name_line_and_field(text: str, line: int, field: str, words: str) -> None:
    with pytest.raises(LlmctlError) as info:
        parse(text, file="playbooks/x.yaml")
    errs = errors_of(info.value)
    assert any(e.line == line and e.field == field and words in str(e) for e in errs), [str(e) for e in errs]
    assert all(e.file == "playbooks/x.yaml" for e in errs)


def test_duplicate_deployment_names() -> None:
    text = GOOD + "  - name: chat\n    model: Qwen/Qwen3-8B\n    workload: offline\n"
    with pytest.raises(ConfigError) as info:
        parse(text)
    assert info.value.line == 6 and "duplicate deployment name" in str(info.value)


yaml_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=12)
)
yaml_values = st.recursive(
    yaml_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_garbage_text_only_raises_config_errors(text: str) -> None:
    for parse_fn in (parse_playbook, parse_inventory):
        try:
            data, lines = parse_yaml(text, "fuzz.yaml")
            parse_fn(data, lines)
        except LlmctlError as exc:
            assert "fuzz.yaml" in str(exc)


@settings(max_examples=300, deadline=None)
@given(yaml_values)
def test_garbage_structures_only_raise_config_errors(value: object) -> None:
    import yaml

    text = yaml.safe_dump({"deployments": [value]} if not isinstance(value, dict) else value)
    for parse_fn in (parse_playbook, parse_inventory):
        try:
            data, lines = parse_yaml(text, "fuzz.yaml")
            parse_fn(data, lines)
        except LlmctlError as exc:
            assert "fuzz.yaml" in str(exc)


def test_small_hostile_values_are_one_line_at_their_field(tmp_path: Path) -> None:
    # Old code: `tensor_parallel: true` planned as TP 1; a NUL byte in an engine_args value ended in a
    # ValueError traceback from the argv renderer.
    import subprocess
    import sys

    base = "deployments:\n  - name: chat\n    model: Qwen/Qwen3-8B\n    workload: online\n"
    for text, where, words in [
        (
            base + "    serving:\n      tensor_parallel: true\n",
            ":6: deployments[0].serving.tensor_parallel",
            "integer",
        ),
        (
            base + '    engine_args:\n      --tokenizer: "a\\0b"\n',
            ":5: deployments[0].engine_args",
            "NUL byte",
        ),
    ]:
        pb = tmp_path / "pb.yaml"
        pb.write_text(text)
        out = subprocess.run(
            [sys.executable, "-m", "llmctl.cli.main", "plan", str(pb), "-i", "inventory/local.yaml"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        assert where in out.stderr and words in out.stderr, out.stderr


def test_a_port_out_of_range_is_a_usage_error_not_a_traceback() -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "llmctl.cli.main", "gateway", "--port", "70000"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2 and "Traceback" not in out.stderr and "65535" in out.stderr, out.stderr
