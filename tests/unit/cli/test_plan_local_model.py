"""Regression: a playbook whose `model:` is a local directory holding config.json plans, simulates and sizes
batches end to end. The loader resolves the directory once; everything after it carries the resolved Model
(shape_profile used to look the path up in the catalog by name and failed with "unknown model")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmctl.cli.main import app
from llmctl.planner.shape import shape_profile
from llmctl.planning import plan_and_desired

ROOT = Path(__file__).resolve().parents[3]
# A Llama-shaped model small enough that anything fits: the point is the path, not the size.
TINY_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 256,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 64,
    "num_hidden_layers": 2,
    "intermediate_size": 512,
    "vocab_size": 512,
    "max_position_embeddings": 2048,
}
runner = CliRunner()


def tiny_model(root: Path) -> Path:
    model = root / "models" / "tiny-llama"
    model.mkdir(parents=True)
    (model / "config.json").write_text(json.dumps(TINY_CONFIG), encoding="utf-8")
    return model


def playbook(root: Path, model: str, engine: str = "emulated") -> Path:
    path = root / "pb.yaml"
    path.write_text(
        "deployments:\n"
        "  - name: chat\n"
        f"    model: {model}\n"
        "    workload: online\n"
        f"    engine: {engine}\n"
        "    serving: {max_context: 1024, concurrency: 4}\n"
        "    scaling: {min_replicas: 1, max_replicas: 2}\n",
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize("relative", [False, True], ids=["absolute", "relative-to-playbook"])
def test_plan_json_with_a_local_model_directory(tmp_path: Path, relative: bool) -> None:
    model_dir = tiny_model(tmp_path)
    pb = playbook(tmp_path, "models/tiny-llama" if relative else str(model_dir))
    result = runner.invoke(app, ["plan", str(pb), "-i", str(ROOT / "inventory/local.yaml"), "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    data = json.loads(result.stdout)
    (replica,) = data["replicas"]
    assert replica["model"] == ("models/tiny-llama" if relative else str(model_dir))
    assert replica["kv_capacity_tokens"] > 0 and replica["est_tokens_per_s"] > 0
    # The engine starts in its replica's directory on the host: a relative path would not resolve there.
    assert any("relative path" in w for w in data["warnings"]) == relative


def test_simulator_and_batch_sizing_take_the_planned_local_model(tmp_path: Path) -> None:
    from llmctl.batch.sizing import replica_shape, size_concurrency
    from sim.from_plan import cluster_from_plan

    model_dir = tiny_model(tmp_path)
    pb = playbook(tmp_path, str(model_dir))
    inventory = ROOT / "inventory/local.yaml"
    plan, desired = plan_and_desired(pb, inventory)
    (replica,) = plan.replicas
    profile = shape_profile(replica.shape)
    assert profile.model.num_layers == 2 and profile.model.hidden_size == 256
    assert desired[0].cold_start_s > 0

    cluster = cluster_from_plan(pb, inventory)
    (dep,) = cluster.deployments
    assert dep.engine is not None and dep.engine.kv_capacity_tokens == replica.shape.kv_capacity_tokens

    sizing = size_concurrency([replica_shape(replica.shape)], tokens_per_request=512)
    assert sizing.per_replica == min(replica.shape.max_num_seqs, replica.shape.kv_capacity_tokens // 512)
    assert sizing.concurrency >= sizing.per_replica
