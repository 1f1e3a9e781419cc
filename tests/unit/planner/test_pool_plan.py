"""Planning a GPU pool: members get candidate slots on every GPU group of the pool (shared, not split), the
pool is reported with its minimums and spare GPUs, and what cannot work is refused at its playbook line."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from llmctl.errors import ConfigError
from llmctl.planner import Plan

PlanYaml = Callable[[str, str], Plan]
HOSTS = (
    "hosts:\n"
    "  a: {address: 10.0.0.1, groups: [shared], gpus: {type: H100-SXM, count: 2}}\n"
    "  b: {address: 10.0.0.2, groups: [shared], gpus: {type: H100-SXM, count: 1}}\n"
    "  c: {address: 10.0.0.3, groups: [own], gpus: {type: H100-SXM, count: 1}}\n"
)


def member(name: str, pool: str = "shared", lo: int = 1, hi: int = 2, extra: str = "") -> str:
    return (
        f"  - name: {name}\n    model: Qwen/Qwen3-8B\n    workload: semi-online\n"
        f"    scaling: {{min_replicas: {lo}, max_replicas: {hi}}}\n"
        f"    placement: {{pool: {pool}{extra}}}\n"
    )


def test_members_share_every_gpu_of_the_pool_and_the_pool_is_reported(plan_yaml: PlanYaml) -> None:
    plan = plan_yaml("deployments:\n" + member("a1", extra=", priority: 2") + member("b1"), HOSTS)
    assert plan.replicas == () and plan.spares == ()
    slots = {(r.deployment, r.host, r.gpu_indices) for r in plan.pooled}
    gpus = {("a", (0,)), ("a", (1,)), ("b", (0,))}
    assert slots == {(d, h, g) for d in ("a1", "b1") for h, g in gpus}
    ports = [(r.host, r.port) for r in plan.pooled]
    assert len(set(ports)) == len(ports)
    (pool,) = plan.pools
    assert pool.name == "shared" and [g[:2] for g in pool.gpus] == [("a", 0), ("a", 1), ("b", 0)]
    assert [(m.deployment, m.priority, m.min_replicas, m.max_replicas) for m in pool.members] == [
        ("a1", 2, 1, 2),
        ("b1", 0, 1, 2),
    ]
    assert (pool.minimum_gpus, pool.spare_gpus) == (2, 1)


def test_gpus_of_deployments_placed_outside_the_pool_are_not_the_pools(plan_yaml: PlanYaml) -> None:
    fixed = "  - name: fixed\n    model: Qwen/Qwen3-8B\n    workload: online\n    placement: {host_group: shared}\n"
    plan = plan_yaml("deployments:\n" + fixed + member("a1"), HOSTS)
    taken = {(r.host, g) for r in plan.replicas for g in r.gpu_indices}
    assert taken and not taken & {(r.host, g) for r in plan.pooled for g in r.gpu_indices}
    assert len(plan.pools[0].gpus) == 3 - len(taken)


def test_the_whole_fleet_is_pool_all(plan_yaml: PlanYaml) -> None:
    plan = plan_yaml("deployments:\n" + member("a1", pool="all"), HOSTS)
    assert {r.host for r in plan.pooled} == {"a", "b", "c"}


@pytest.mark.parametrize(
    ("playbook", "field", "words"),
    [
        (member("a1", pool="nope"), "placement.pool", "no inventory group named 'nope'"),
        (
            member("a1", lo=2) + member("b1", lo=2),
            "scaling.min_replicas",
            "minimums do not fit at once (4 GPU(s) wanted, 3 in the pool)",
        ),
        (member("a1", extra=", gpu_type: L40S"), "placement.pool", "no host of pool 'shared' has L40S GPUs"),
    ],
)
def test_what_cannot_work_is_refused_at_its_line(
    plan_yaml: PlanYaml, playbook: str, field: str, words: str
) -> None:
    with pytest.raises(ConfigError) as err:
        plan_yaml("deployments:\n" + playbook, HOSTS)
    assert field in str(err.value) and words in str(err.value)
    assert "pb.yaml:" in str(err.value)


def test_members_of_one_pool_share_one_replica_width(plan_yaml: PlanYaml) -> None:
    wide = member("b1").replace("semi-online\n", "semi-online\n    serving: {tensor_parallel: 2}\n")
    with pytest.raises(ConfigError, match="share one replica width"):
        plan_yaml("deployments:\n" + member("a1") + wide, HOSTS)


@pytest.mark.parametrize(
    ("placement", "field", "words"),
    [
        ("{pool: shared, host_group: own}", "placement.host_group", "cannot be combined with pool"),
        ("{priority: 3}", "placement.priority", "set placement.pool too"),
        ("{pool: Bad_Name}", "placement.pool", "a pool is an inventory group or 'all'"),
    ],
)
def test_playbook_pool_settings_are_checked_at_their_line(
    plan_yaml: PlanYaml, placement: str, field: str, words: str
) -> None:
    text = (
        "deployments:\n  - name: a1\n    model: Qwen/Qwen3-8B\n    workload: semi-online\n"
        f"    placement: {placement}\n"
    )
    with pytest.raises(ConfigError) as err:
        plan_yaml(text, HOSTS)
    assert f"pb.yaml:5: deployments[0].{field}" in str(err.value) and words in str(err.value)


def test_a_pooled_deployment_cannot_be_back_filled(plan_yaml: PlanYaml) -> None:
    filler = "  - name: enrich\n    model: Qwen/Qwen3-8B\n    workload: offline\n    placement: {backfill_for: a1}\n"
    with pytest.raises(ConfigError, match="put enrich in pool 'shared' instead"):
        plan_yaml("deployments:\n" + member("a1") + filler, HOSTS)
