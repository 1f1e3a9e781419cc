"""Placement invariants over random fleets and playbooks: no GPU given twice, a tensor-parallel group on one
host and one GPU type, memory never exceeded, ports unique per host."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from llmctl.catalog.gpus import GPUS, get_gpu
from llmctl.catalog.models import MODELS
from llmctl.config.inventory import Inventory
from llmctl.config.models import resolve_models
from llmctl.config.playbook import Playbook
from llmctl.config.source import LineMap
from llmctl.engines.snapshots import load_flagspec
from llmctl.errors import LlmctlError
from llmctl.perf.memory import memory_fit
from llmctl.planner import needed_flagspecs, plan_playbook

gpu_names = st.sampled_from(sorted(GPUS))
host_gpus = st.one_of(
    st.tuples(gpu_names, st.integers(1, 8)).map(lambda t: [t[0]] * t[1]),
    st.lists(gpu_names, min_size=1, max_size=8),  # mixed-GPU hosts, as facts would report them
)
deployment = st.fixed_dictionaries(
    {
        "model": st.sampled_from(sorted(MODELS)),
        "workload": st.sampled_from(["offline", "online", "semi-online"]),
        "scaling": st.fixed_dictionaries({"min_replicas": st.integers(0, 4)}),
        "serving": st.fixed_dictionaries(
            {
                "tensor_parallel": st.sampled_from(["auto", 1, 2, 4, 8]),
                "quantization": st.sampled_from(["auto", "none"]),
                "kv_cache_dtype": st.sampled_from(["auto", "bf16", "fp8"]),
                "max_context": st.sampled_from([2048, 4096, 8192, 32768]),
                "concurrency": st.integers(1, 64),
            }
        ),
    }
)


@settings(max_examples=150, deadline=None)
@given(st.lists(host_gpus, min_size=1, max_size=5), st.lists(deployment, min_size=1, max_size=4))
def test_placement_invariants(hosts: list[list[str]], deployments: list[dict[str, Any]]) -> None:
    inv = Inventory.model_validate(
        {"file": "inv.yaml", "hosts": [{"name": f"h{i}"} for i in range(len(hosts))]}
    )
    facts = {f"h{i}": [(idx, name) for idx, name in enumerate(gpus)] for i, gpus in enumerate(hosts)}
    pb = Playbook.model_validate(
        {"file": "pb.yaml", "deployments": [{"name": f"d{i}", **d} for i, d in enumerate(deployments)]}
    )
    lines = LineMap("pb.yaml")
    specs = {k: load_flagspec(*k) for k in needed_flagspecs(pb)}
    try:
        plan = plan_playbook(pb, inv, resolve_models(pb, lines), specs, facts=facts, lines=lines)
    except LlmctlError:
        return  # refusing is allowed; what is planned must be sound

    taken = Counter((r.host, g) for r in plan.replicas for g in r.gpu_indices)
    assert all(n == 1 for n in taken.values()), "a GPU was given twice"
    ports = Counter((r.host, r.port) for r in plan.replicas)
    assert all(n == 1 for n in ports.values()), "a port was given twice on one host"
    for r in plan.replicas:
        host_gpus_ = dict(facts[r.host])
        assert len(r.gpu_indices) == r.shape.tp == len(set(r.gpu_indices))
        assert all(get_gpu(host_gpus_[g]).name == r.shape.gpu_type for g in r.gpu_indices), (
            "TP group mixes GPUs"
        )
        model = MODELS[r.shape.model]
        fit = memory_fit(
            model,
            get_gpu(r.shape.gpu_type),
            tp=r.shape.tp,
            weight_dtype="fp8" if r.shape.quantization == "fp8" else "bf16",
            kv_dtype=r.shape.kv_cache_dtype,
            memory_fraction=r.shape.memory_fraction,
            draft_params=model.eagle3_draft_params if r.shape.speculative_draft else 0.0,
        )
        needed = fit.needed_without_kv + r.shape.max_context * r.shape.concurrency * fit.kv_bytes_per_token
        assert needed <= fit.budget, "replica exceeds its GPU memory budget"
        assert r.shape.kv_capacity_tokens >= r.shape.max_context * r.shape.concurrency
    per_dep = Counter(r.deployment for r in plan.replicas)
    for d in pb.deployments:
        assert per_dep[d.name] == d.scaling.initial_replicas
