"""A playbook's fixed schedule (`scaling.signal: schedule`): its mistakes reported at their line, and the
desired state's policy scaling to each step's count at its time of day, after a trip through the store."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from llmctl.autoscale.types import Observation, ReplicaView
from llmctl.config.playbook import parse_playbook
from llmctl.config.source import parse_yaml
from llmctl.errors import ConfigError, ConfigErrors, LlmctlError
from llmctl.planning import plan_and_desired
from llmctl.state.desired import load_desired, put_desired
from llmctl.state.store import Store

HEAD = "deployments:\n  - name: chat\n    model: Qwen/Qwen3-8B\n    workload: online\n"
DAY = 86_400.0


def scaling(text: str) -> str:
    return HEAD + "    scaling:\n" + "".join(f"      {line}\n" for line in text.splitlines())


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("min_replicas: 1\nmax_replicas: 4\nsignal: schedule", 5, "needs a schedule"),
        ("max_replicas: 4\nschedule: [{at: '08:00', replicas: 2}]", 5, "only read with signal: schedule"),
        ("max_replicas: 4\nsignal: schedule\nschedule: [{at: '25:00', replicas: 2}]", 8, "HH:MM"),
        ("max_replicas: 4\nsignal: schedule\nschedule: [{at: '08:00', replicas: 9}]", 5, "outside"),
        (
            "max_replicas: 4\nsignal: schedule\nschedule: [{at: '08:00', replicas: 2}, {at: '8:00', replicas: 3}]",
            5,
            "same time",
        ),
    ],
)
def test_schedule_mistakes_name_their_line(text: str, line: int, words: str) -> None:
    data, lines = parse_yaml(scaling(text), "pb.yaml")
    with pytest.raises(LlmctlError) as info:
        parse_playbook(data, lines)
    errs = info.value.errors if isinstance(info.value, ConfigErrors) else [info.value]
    assert any(isinstance(e, ConfigError) and e.line == line and words in str(e) for e in errs), [
        str(e) for e in errs
    ]


def test_the_schedule_scales_to_each_steps_count_at_its_time(tmp_path: Path) -> None:
    inv = tmp_path / "inv.yaml"
    box = {"connection": "local", "gpus": {"type": "H100-SXM", "count": 8}}
    inv.write_text(yaml.safe_dump({"hosts": {"box": box}}))
    pb = tmp_path / "pb.yaml"
    steps = [{"at": "20:00", "replicas": 1}, {"at": "08:00", "replicas": 3}]
    dep = {
        "name": "chat", "model": "meta-llama/Llama-3.1-8B-Instruct", "workload": "online", "engine": "emulated",
        "scaling": {"min_replicas": 1, "max_replicas": 3, "signal": "schedule", "schedule": steps},
    }  # fmt: skip
    pb.write_text(yaml.safe_dump({"deployments": [dep]}))
    _plan, (desired,) = plan_and_desired(pb, inv)
    store = Store(tmp_path / "state.db")
    put_desired(store, desired)
    stored = load_desired(store)["chat"]
    assert stored.scaling.schedule == ((8 * 3600.0, 3), (20 * 3600.0, 1)) and len(stored.slots) == 3

    policy = stored.autoscaler()
    day = 20_000 * DAY  # some day, at 00:00 UTC

    def ready(n: int) -> Observation:
        return Observation("chat", tuple(ReplicaView(f"chat-{i}", "ready") for i in range(n)))

    assert policy.decide(ready(1), day + 7.5 * 3600).target == 1  # before 08:00 the 20:00 step holds
    morning = policy.decide(ready(1), day + 8.5 * 3600)
    assert morning.target == 3 and "schedule at 8.50 h says 3" in morning.reason
    # After 20:00, down to 1, one replica per decision (max_step_down), the replicas following.
    n, targets = 3, []
    for hour in (20.1, 20.2, 20.3):
        n = policy.decide(ready(n), day + hour * 3600).target
        targets.append(n)
    assert targets == [2, 1, 1]
