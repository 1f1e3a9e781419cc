"""LoRA flags and environment on the planned command lines (checked against the engines' flag snapshots by
the plan itself), and the adapters' memory in the plan's decisions."""

from __future__ import annotations

import json
from collections.abc import Callable

from llmctl.planner import Plan
from llmctl.spec.deployment import AdapterSpec
from llmctl.spec.from_plan import desired_from_plan
from tests.unit.planner.conftest import plan_texts, playbook_from

INVENTORY = "hosts:\n  box:\n    connection: local\n    gpus: {type: H100-SXM, count: 2}\n"


def playbook(engine: str, adapters: str) -> str:
    return (
        "deployments:\n"
        "  - name: assist\n"
        "    model: meta-llama/Llama-3.1-8B-Instruct\n"
        "    workload: offline\n"
        f"    engine: {engine}\n"
        "    scaling: {min_replicas: 2}\n"
        f"    adapters:\n{adapters}"
    )


THREE = (
    "      - {name: sql, path: /m/sql, rank: 16}\n"
    "      - {name: support, path: /m/support, rank: 8, preload: false}\n"
    "      - {name: legal, path: /m/legal, rank: 24, preload: false}\n"
)


def after(argv: tuple[str, ...], flag: str) -> list[str]:
    i = argv.index(flag)
    rest = argv[i + 1 :]
    end = next((j for j, a in enumerate(rest) if a.startswith("--")), len(rest))
    return list(rest[:end])


def test_vllm_replicas_get_lora_flags_and_the_runtime_switch(plan_yaml: Callable[[str, str], Plan]) -> None:
    plan = plan_yaml(playbook("vllm", THREE), INVENTORY)
    assert len(plan.replicas) == 2
    for replica in plan.replicas:
        argv = replica.argv
        assert "--enable-lora" in argv
        assert after(argv, "--max-loras") == ["3"]
        assert after(argv, "--max-lora-rank") == ["32"]  # 24 rounds up to vLLM's next allowed rank
        modules = [json.loads(m) for m in after(argv, "--lora-modules")]
        assert modules == [{"name": "sql", "path": "/m/sql", "base_model_name": "assist"}]
        assert replica.env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "1"
    decision = next(d for d in plan.replicas[0].shape.decisions if d.what == "LoRA adapters")
    assert "2 loaded on first request" in decision.choice and "GiB per GPU" in decision.reason


def test_all_preloaded_needs_no_runtime_loading(plan_yaml: Callable[[str, str], Plan]) -> None:
    plan = plan_yaml(playbook("vllm", "      - {name: sql, path: /m/sql, rank: 8}\n"), INVENTORY)
    assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING" not in plan.replicas[0].env
    assert after(plan.replicas[0].argv, "--max-lora-rank") == ["8"]


def test_sglang_replicas_get_its_own_flags(plan_yaml: Callable[[str, str], Plan]) -> None:
    argv = plan_yaml(playbook("sglang", THREE), INVENTORY).replicas[0].argv
    assert after(argv, "--max-loras-per-batch") == ["3"] and after(argv, "--lora-target-modules") == ["all"]
    assert [json.loads(p) for p in after(argv, "--lora-paths")] == [
        {"lora_name": "sql", "lora_path": "/m/sql"}
    ]
    assert "--lora-modules" not in argv


def test_no_adapters_no_lora_flags(plan_yaml: Callable[[str, str], Plan]) -> None:
    text = playbook("vllm", "").replace("    adapters:\n", "")
    assert not any("lora" in a for a in plan_yaml(text, INVENTORY).replicas[0].argv)


def test_the_desired_state_carries_the_adapters_to_the_gateway() -> None:
    text = playbook("vllm", THREE)
    (desired,) = desired_from_plan(playbook_from(text)[0], plan_texts(text, INVENTORY))
    assert desired.adapters == (
        AdapterSpec("sql", "/m/sql", True),
        AdapterSpec("support", "/m/support", False),
        AdapterSpec("legal", "/m/legal", False),
    )
    assert desired.adapter_slots == 3
