"""Planning a back-fill deployment: one slot per spare of the deployment it borrows from, on that spare's
GPUs, with its own port; and the mistakes a playbook can make, reported at their line."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from llmctl.errors import ConfigError
from llmctl.planner import Plan

PlanYaml = Callable[[str, str], Plan]
HOST = "hosts:\n  a: {address: 10.0.0.1, gpus: {type: H100-SXM, count: 4}}\n"
OWNER = (
    "deployments:\n"
    "  - name: chat\n    model: Qwen/Qwen3-8B\n    workload: semi-online\n"
    "    scaling: {min_replicas: 0, max_replicas: 3}\n"
)


def borrower(extra: str = "", workload: str = "offline", target: str = "chat") -> str:
    return (
        f"  - name: enrich\n    model: meta-llama/Llama-3.1-8B-Instruct\n    workload: {workload}\n"
        f"    placement: {{backfill_for: {target}}}\n{extra}"
    )


def test_backfill_slots_borrow_each_spare_slots_gpus_with_their_own_ports(plan_yaml: PlanYaml) -> None:
    plan = plan_yaml(OWNER + borrower(), HOST)
    assert [r.name for r in plan.replicas] == ["chat-0"]
    assert [r.name for r in plan.spares] == ["chat-1", "chat-2"]
    assert [(r.name, r.shares_with) for r in plan.backfill] == [
        ("enrich-0", "chat-1"),
        ("enrich-1", "chat-2"),
    ]
    for spare, b in zip(plan.spares, plan.backfill, strict=True):
        assert (b.host, b.gpu_indices) == (spare.host, spare.gpu_indices)
        assert b.env["CUDA_VISIBLE_DEVICES"] == ",".join(map(str, spare.gpu_indices))
        assert b.shape.model == "meta-llama/Llama-3.1-8B-Instruct" and b.shape.tp == len(spare.gpu_indices)
    ports = [r.port for r in (*plan.replicas, *plan.spares, *plan.backfill)]
    assert len(set(ports)) == len(ports)
    # The GPU no spare uses (GPU 3) stays free: back-fill never takes GPUs of its own.
    used = {g for r in (*plan.replicas, *plan.spares, *plan.backfill) for g in r.gpu_indices}
    assert used == {0, 1, 2}


def test_no_spare_slot_means_a_warning_not_a_silent_nothing(plan_yaml: PlanYaml) -> None:
    one_gpu = "hosts:\n  a: {address: 10.0.0.1, gpus: {type: H100-SXM, count: 1}}\n"
    plan = plan_yaml(OWNER + borrower(), one_gpu)
    assert plan.backfill == ()
    assert any("enrich: back-fills chat's spare GPUs" in w and "will not run" in w for w in plan.warnings)


@pytest.mark.parametrize(
    ("playbook", "words"),
    [
        (OWNER + borrower(target="chat2"), "no deployment named 'chat2'"),
        (OWNER + borrower(target="enrich"), "cannot back-fill its own GPUs"),
        (OWNER + borrower(workload="online"), "offline work that can pause"),
        (OWNER.replace("max_replicas: 3", "max_replicas: 1"), "no spare replicas to lend"),
    ],
)
def test_backfill_mistakes_are_reported_at_their_line(plan_yaml: PlanYaml, playbook: str, words: str) -> None:
    if "enrich" not in playbook:
        playbook += borrower()
    with pytest.raises(ConfigError) as info:
        plan_yaml(playbook, HOST)
    err = info.value
    assert (err.file, err.line, err.field) == ("pb.yaml", 9, "deployments[1].placement.backfill_for")
    assert words in err.problem
