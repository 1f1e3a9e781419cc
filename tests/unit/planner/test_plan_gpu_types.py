"""Planning with operator-defined GPU types, GPUs facts report that nobody knows, and AMD GPUs (vLLM's
ROCm build)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from llmctl.catalog.gpus import GiB
from llmctl.config.inventory import Inventory, parse_inventory
from llmctl.config.models import resolve_models
from llmctl.config.playbook import Playbook, parse_playbook
from llmctl.config.source import LineMap, parse_yaml
from llmctl.engines.snapshots import load_flagspec
from llmctl.errors import PlanError
from llmctl.fleet.provision import ROCM_WHEEL_INDEX, steps_for, work_from_plan
from llmctl.planner import Plan, needed_flagspecs, plan_playbook
from llmctl.planner.placement import HostResources, host_states


def inventory_from(text: str) -> Inventory:
    data, lines = parse_yaml(text, "inv.yaml")
    return parse_inventory(data, lines)


def playbook_from(text: str) -> tuple[Playbook, LineMap]:
    data, lines = parse_yaml(text, "pb.yaml")
    return parse_playbook(data, lines), lines


PlanYaml = Callable[[str, str], Plan]
PB = "deployments:\n  - {name: chat, model: Qwen/Qwen3-8B, workload: online}\n"
PB_VLLM = "deployments:\n  - {name: chat, model: Qwen/Qwen3-8B, workload: online, engine: vllm}\n"
FOO = "gpu_types:\n  Foo: {memory_gib: 96, hbm_gbps: 2000, bf16_tflops: 400, fp8_tflops: 800}\n"


def plan_with_facts(inventory: str, facts: dict[str, HostResources]) -> Plan:
    pb, lines = playbook_from(PB)
    inv = inventory_from(inventory)
    specs = {k: load_flagspec(*k) for k in needed_flagspecs(pb)}
    return plan_playbook(pb, inv, resolve_models(pb, lines), specs, facts=facts, lines=lines)


def test_a_declared_operator_type_plans_like_a_catalog_gpu(plan_yaml: PlanYaml) -> None:
    plan = plan_yaml(PB, FOO + "hosts:\n  a: {address: 10.0.0.1, gpus: {type: Foo, count: 2}}\n")
    (r,) = plan.replicas
    assert r.shape.gpu_type == "Foo" and r.host == "a" and r.shape.est_tokens_per_s > 0
    assert r.shape.quantization == "fp8"  # the type has FP8 tensor cores: the online preset takes them
    assert not r.shape.rocm and r.env["CUDA_VISIBLE_DEVICES"] == ",".join(map(str, r.gpu_indices))


def test_an_unknown_gpu_from_facts_takes_the_hosts_operator_type_with_measured_memory() -> None:
    inv = FOO + "hosts:\n  a: {address: 10.0.0.1, gpus: {type: Foo, count: 2}}\n"
    facts = {
        "a": HostResources(
            ((0, "NVIDIA Foo 96GB"), (1, "NVIDIA Foo 96GB")), gpu_memory_mib={0: 90000, 1: 90000}
        )
    }
    (state,) = host_states(inventory_from(inv), facts)
    assert [s.gpu.name for s in state.slots] == ["Foo", "Foo"] and state.unknown == ""
    assert state.slots[0].gpu.memory_bytes == 90000 * 2**20 != 96 * GiB
    (r,) = plan_with_facts(inv, facts).replicas
    assert r.shape.gpu_type == "Foo"


def test_an_unknown_gpu_without_a_type_is_refused_with_the_yaml_to_add() -> None:
    inv = "hosts:\n  gpu-a: {address: 10.0.0.1}\n"
    facts = {
        "gpu-a": HostResources(
            ((0, "NVIDIA Foo 96GB"), (1, "NVIDIA Foo 96GB")), gpu_memory_mib={0: 98304, 1: 98304}
        )
    }
    with pytest.raises(PlanError) as info:
        plan_with_facts(inv, facts)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.endswith(
        "hosts.gpu-a: unknown GPU 'NVIDIA Foo 96GB' (from nvidia-smi): add to the inventory  "
        "gpu_types: {Foo: {memory_gib: 96, hbm_gbps: ..., bf16_tflops: ...}}  and  gpus: {type: Foo, count: 2}"
    )


def test_the_refusal_names_the_amd_tool_and_skips_when_another_host_serves_the_type() -> None:
    inv = "hosts:\n  rx: {address: 10.0.0.2}\n  l4: {address: 10.0.0.3, gpus: {type: L4, count: 1}}\n"
    facts = {
        "rx": HostResources(((0, "Radeon RX 7900 XT"),), gpu_memory_mib={0: 20464}, gpu_source="rocm-smi")
    }
    with pytest.raises(PlanError, match=r"hosts\.rx: unknown GPU 'Radeon RX 7900 XT' \(from rocm-smi\)"):
        plan_with_facts(inv, facts)
    pb, lines = playbook_from(
        "deployments:\n  - {name: chat, model: Qwen/Qwen3-8B, workload: online, placement: {gpu_type: L4}}\n"
    )
    specs = {k: load_flagspec(*k) for k in needed_flagspecs(pb)}
    plan = plan_playbook(pb, inventory_from(inv), resolve_models(pb, lines), specs, facts=facts, lines=lines)
    assert [r.host for r in plan.replicas] == ["l4"]


def test_an_amd_gpu_is_served_by_vllms_rocm_build(plan_yaml: PlanYaml) -> None:
    plan = plan_yaml(PB_VLLM, "hosts:\n  mi: {address: 10.0.0.4, gpus: {type: MI300X, count: 8}}\n")
    (r,) = plan.replicas
    assert r.shape.rocm and r.rocm and r.engine_package == "vllm"
    assert r.env["CUDA_VISIBLE_DEVICES"]  # vLLM's ROCm platform reads it too
    (work,) = work_from_plan(plan, [inventory_from("hosts:\n  mi: {address: 10.0.0.4}\n").hosts[0]], "0.1.0")
    assert work.rocm
    install = next(s for s in steps_for(work) if s.name == "install vllm")
    version = r.engine_version
    assert ROCM_WHEEL_INDEX.format(version=version, variant="rocm700") in install.do
    assert f"vllm=={version}+rocm700" in install.do and "--extra-index-url" in install.do
    other = ("--extra-index-url", f"https://wheels.vllm.ai/rocm/{version}/rocm721")
    install = next(s for s in steps_for(work, other) if s.name == "install vllm")
    assert f"vllm=={version}+rocm721" in install.do and install.do.count("--extra-index-url") == 1


def test_an_nvidia_host_installs_vllm_from_pypi(plan_yaml: PlanYaml) -> None:
    plan = plan_yaml(PB_VLLM, "hosts:\n  h: {address: 10.0.0.5, gpus: {type: H100-SXM, count: 8}}\n")
    (work,) = work_from_plan(plan, [inventory_from("hosts:\n  h: {address: 10.0.0.5}\n").hosts[0]], "0.1.0")
    install = next(s for s in steps_for(work) if s.name == "install vllm")
    assert not work.rocm and "--extra-index-url" not in install.do
