"""One corrupt deployment row is that deployment's problem alone. Found by the chaos run: with `decoy`'s
row not JSON, `llmctl batch run -d chat` refused to start ("deployment 'decoy' ... is not valid JSON"), and
so did `stop chat`, `status`, intents for chat, and `apply`, the very repair the error message advises."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from llmctl.batch.target import from_store
from llmctl.cli.rollout import _settings, record_apply, record_stop
from llmctl.errors import LlmctlError
from llmctl.spec.deployment import DesiredDeployment, ScalingSpec
from llmctl.state.desired import load_desired, put_desired, read_desired, set_stopped
from llmctl.state.intents import submit
from llmctl.state.store import Store


def dep(name: str) -> DesiredDeployment:
    return DesiredDeployment(
        name, "online", "vllm", "least_outstanding", None, ScalingSpec(1, 1, "in_flight", 4, 60), 30.0, 2.0,
        False, 1,
    )  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "s.db")
    put_desired(s, dep("chat"))
    put_desired(s, dep("decoy"))
    s.db.execute("UPDATE deployments SET spec = '{not json' WHERE name = 'decoy'")
    return s


def test_the_others_are_served_stopped_and_steered(store: Store) -> None:
    assert set(load_desired(store)) == {"chat"}
    target = from_store(store, "chat", None)
    assert target is not None and target.deployment == "chat"
    assert set_stopped(store, "chat", True).stopped
    record_stop(store, {"chat"})
    submit(store, "scale", "chat", "0")  # raises when refused


def test_the_corrupt_one_says_why_when_asked_for(store: Store) -> None:
    with pytest.raises(LlmctlError, match="'decoy' in the state store is not valid JSON"):
        from_store(store, "decoy", None)
    with pytest.raises(LlmctlError, match="re-apply its playbook"):
        set_stopped(store, "decoy", True)


def test_apply_rewrites_the_corrupt_row_and_leaves_one_it_does_not_name(store: Store) -> None:
    state = read_desired(store)
    lines = _settings(state.deployments, [dep("chat"), dep("decoy")], state.unreadable)
    assert any(line.startswith("decoy: unreadable in the store") for line in lines)
    record_apply(store, [replace(dep("decoy"), route="round_robin")])
    after = read_desired(store)
    assert not after.unreadable and after.deployments["decoy"].route == "round_robin"
    assert after.deployments["chat"].removed  # not in the playbook applied
