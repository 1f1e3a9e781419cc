"""`llmctl plan` sizes a CPU host from the facts `llmctl hosts facts` cached (cores, memory) over what the
inventory declares."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from llmctl.cli.main import app
from llmctl.fleet.facts import cached_facts
from llmctl.fleet.facts_parse import GpuFact, HostFacts
from llmctl.planner.placement import HostResources
from llmctl.state.store import Store

ROOT = Path(__file__).resolve().parents[3]
CONFIG = {"hidden_size": 256, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 64,
          "num_hidden_layers": 2, "intermediate_size": 512, "vocab_size": 512,
          "max_position_embeddings": 2048}  # fmt: skip


def test_cached_cpu_facts_size_the_cpu_host(tmp_path: Path) -> None:
    model = tmp_path / "tiny"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(CONFIG), encoding="utf-8")
    pb = tmp_path / "pb.yaml"
    pb.write_text(
        f"deployments:\n  - name: chat\n    model: {model}\n    workload: online\n    engine: vllm\n"
        "    serving: {max_context: 2048, concurrency: 4}\n",
        encoding="utf-8",
    )
    state = tmp_path / "state.db"
    store = Store(state)
    store.put_facts(
        "local", HostFacts(host="local", gpu_source="none", cpus=12, memory_mib=47 * 1024 + 300).to_dict()
    )
    gpu = GpuFact(0, "NVIDIA L4", 23034, 0, 0, "GPU-1", "L4")
    store.put_facts("gpu-host", HostFacts(host="gpu-host", gpus=(gpu,), cpus=32, memory_mib=1).to_dict())
    assert cached_facts(store)["gpu-host"] == HostResources(((0, "NVIDIA L4"),), 32, 1)
    store.close()

    args = ["plan", str(pb), "-i", str(ROOT / "inventory/local-cpu.yaml"), "--json", "--state", str(state)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, (result.output, result.exception)
    (r,) = json.loads(result.stdout)["replicas"]
    assert r["gpu_type"] == "CPU-x86-AVX512-12c-47GiB"  # facts, in whole GiB; the inventory says 4c/16 GiB
    # 47 GiB - 4.7 GiB headroom (10%) - 1.5 GiB engine overhead - ~0.04 GiB weights and activations = 40.7
    assert r["env"]["VLLM_CPU_KVCACHE_SPACE"] == "40"
