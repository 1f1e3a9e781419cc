"""The planner on the shipped examples and on the failures users meet: too big, impossible, hostile."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from llmctl.engines import emulated, sglang, vllm
from llmctl.engines.shell import render_command
from llmctl.engines.snapshots import load_flagspec
from llmctl.errors import ConfigError, LlmctlError, PlanError
from llmctl.planner import Plan, PlannedReplica
from llmctl.planning import plan_files

ROOT = Path(__file__).resolve().parents[3]
PlanYaml = Callable[[str, str], Plan]
H100_HOST = "hosts:\n  a: {address: 10.0.0.1, gpus: {type: H100-SXM, count: 8}}\n"


def engine_args(r: PlannedReplica) -> list[str]:
    if r.shape.engine == "emulated":
        return list(r.argv[len(emulated.program(r.shape.flavour)) :])
    program = vllm.PROGRAM if r.shape.flavour == "vllm" else sglang.PROGRAM
    assert tuple(r.argv[: len(program)]) == program
    return list(r.argv[len(program) :])


def flag_value(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


# local-cpu.yaml names a model directory the user downloads (a placeholder path): tests/unit/planner/
# test_plan_cpu.py plans it on inventory/local-cpu.yaml with the placeholder pointed at a config.json.
GPU_PLAYBOOKS = sorted(p.name for p in (ROOT / "playbooks").glob("*.yaml") if p.name != "local-cpu.yaml")


@pytest.mark.parametrize("inventory", ["local.yaml", "example-ssh.yaml", "example-ansible.yaml"])
@pytest.mark.parametrize("playbook", GPU_PLAYBOOKS)
def test_every_shipped_example_plans_to_valid_command_lines(playbook: str, inventory: str) -> None:
    plan = plan_files(ROOT / "playbooks" / playbook, ROOT / "inventory" / inventory)
    assert plan.replicas
    for r in (*plan.replicas, *plan.spares, *plan.backfill):
        spec = load_flagspec(r.shape.flavour, r.shape.engine_version)
        assert spec.validate(engine_args(r)) == [], r.name
        assert r.env["CUDA_VISIBLE_DEVICES"] == ",".join(map(str, r.gpu_indices))


def test_online_example_is_sglang_tp2_fp8_eagle3() -> None:
    plan = plan_files(ROOT / "playbooks/online-chat.yaml", ROOT / "inventory/example-ssh.yaml")
    (r,) = plan.replicas
    args = engine_args(r)
    assert r.shape.engine == "sglang" and r.argv[:3] == ("python3", "-m", "sglang.launch_server")
    assert flag_value(args, "--tp-size") == "2" and len(r.gpu_indices) == 2
    assert flag_value(args, "--quantization") == "fp8"
    assert flag_value(args, "--speculative-algorithm") == "EAGLE3"
    assert flag_value(args, "--speculative-draft-model-path") == "yuhuili/EAGLE3-LLaMA3.1-Instruct-8B"
    assert "--enable-metrics" in args


def test_offline_example_is_vllm_with_large_batching_knobs() -> None:
    plan = plan_files(ROOT / "playbooks/offline-batch.yaml", ROOT / "inventory/example-ssh.yaml")
    assert len(plan.replicas) == 2
    for r in plan.replicas:
        args = engine_args(r)
        assert r.argv[:2] == ("vllm", "serve") and args[0] == "Qwen/Qwen3-8B"
        assert int(flag_value(args, "--max-num-seqs")) >= 256
        assert int(flag_value(args, "--max-num-batched-tokens")) >= 8192
        assert "--enable-chunked-prefill" in args and r.shape.tp == 1
        assert r.shape.speculative_draft is None


def test_semi_online_example_enables_sleep_mode() -> None:
    plan = plan_files(ROOT / "playbooks/semi-online-burst.yaml", ROOT / "inventory/example-ssh.yaml")
    (r,) = plan.replicas
    assert "--enable-sleep-mode" in r.argv and r.env["VLLM_SERVER_DEV_MODE"] == "1"


def test_no_fp8_on_a100(plan_yaml: PlanYaml) -> None:
    inv = "hosts:\n  a: {gpus: {type: A100-80GB, count: 8}}\n"
    pb = "deployments:\n  - {name: c, model: Qwen/Qwen3-8B, workload: online}\n"
    (r,) = plan_yaml(pb, inv).replicas
    assert r.shape.quantization == "none" and "--quantization" not in r.argv
    assert any(d.what == "weights" and "no FP8" in d.reason for d in r.shape.decisions)


def test_model_too_large_names_deployment_memory_and_alternatives(plan_yaml: PlanYaml) -> None:
    inv = "hosts:\n  small: {gpus: {type: L4, count: 2}}\n"
    pb = "deployments:\n  - {name: big-chat, model: meta-llama/Llama-3.1-70B-Instruct, workload: offline}\n"
    with pytest.raises(PlanError) as info:
        plan_yaml(pb, inv)
    msg = str(info.value)
    assert "'big-chat'" in msg and "does not fit on L4" in msg
    assert "needs" in msg and "GiB" in msg and "available" in msg
    assert "would fit:" in msg and ("H200" in msg or "B200" in msg)


def test_too_large_suggests_tensor_parallel_when_host_is_bigger_than_asked(plan_yaml: PlanYaml) -> None:
    pb = (
        "deployments:\n  - {name: big, model: meta-llama/Llama-3.1-70B-Instruct, workload: offline,"
        " serving: {tensor_parallel: 1, quantization: none}}\n"
    )
    with pytest.raises(PlanError) as info:
        plan_yaml(pb, H100_HOST)
    # 141 GB of bf16 weights: TP 2 leaves no room for KV cache, TP 4 does; fp8 alone still fits nothing at TP 1.
    assert "tensor_parallel: 4" in str(info.value) and "quantization: fp8" not in str(info.value)


def test_auto_tp_grows_until_the_model_fits(plan_yaml: PlanYaml) -> None:
    pb = "deployments:\n  - {name: big, model: meta-llama/Llama-3.1-70B-Instruct, workload: offline}\n"
    (r,) = plan_yaml(pb, H100_HOST.replace("H100-SXM", "A100-80GB")).replicas
    # 141 GB of bf16 weights leave an A100-80GB pair no room for KV cache: TP 4 is the first that fits.
    assert r.shape.tp == 4 and r.shape.quantization == "none"
    assert any(d.what == "tensor parallel" and "does not fit" in d.reason for d in r.shape.decisions)


def test_unknown_host_group_is_reported_at_its_line(plan_yaml: PlanYaml) -> None:
    pb = (
        "deployments:\n  - name: c\n    model: Qwen/Qwen3-8B\n    workload: online\n"
        "    placement:\n      host_group: h200-pool\n"
    )
    with pytest.raises(ConfigError) as info:
        plan_yaml(pb, H100_HOST)
    err = info.value
    assert (err.file, err.line, err.field) == ("pb.yaml", 6, "deployments[0].placement.host_group")


def test_missing_gpu_type_is_reported_at_its_line(plan_yaml: PlanYaml) -> None:
    pb = "deployments:\n  - name: c\n    model: Qwen/Qwen3-8B\n    workload: online\n    placement: {gpu_type: B200}\n"
    with pytest.raises(ConfigError) as info:
        plan_yaml(pb, H100_HOST)
    assert info.value.line == 5 and "B200" in str(info.value)


def test_not_enough_gpus_names_what_is_free(plan_yaml: PlanYaml) -> None:
    pb = "deployments:\n  - {name: c, model: Qwen/Qwen3-8B, workload: online, scaling: {min_replicas: 5}}\n"
    with pytest.raises(PlanError, match=r"no room for replica 4 .*a: 0 of 8 H100-SXM free"):
        plan_yaml(pb, H100_HOST)


def test_unknown_model_is_reported_at_its_line(plan_yaml: PlanYaml) -> None:
    pb = "deployments:\n  - name: c\n    model: acme/not-a-model\n    workload: online\n"
    with pytest.raises(ConfigError) as info:
        plan_yaml(pb, H100_HOST)
    assert info.value.line == 3 and "unknown model" in str(info.value)


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("--max-num-seqz: 4", "unknown flag"),
        ("--max-num-seqs: lots", "--max-num-seqs"),
        ("--kv-cache-dtype: [fp8, stray]", "unexpected positional"),
    ],
)
def test_bad_engine_override_is_refused_at_its_line(plan_yaml: PlanYaml, override: str, words: str) -> None:
    pb = (
        "deployments:\n  - name: c\n    model: Qwen/Qwen3-8B\n    workload: offline\n"
        f"    engine_args:\n      {override}\n"
    )
    with pytest.raises(LlmctlError) as info:
        plan_yaml(pb, H100_HOST)
    assert "pb.yaml:5" in str(info.value) and words in str(info.value)


def test_engine_override_replaces_generated_flag(plan_yaml: PlanYaml) -> None:
    pb = (
        "deployments:\n  - name: c\n    model: Qwen/Qwen3-8B\n    workload: offline\n"
        "    engine_args: {--max-num-seqs: 1024, --gpu-memory-utilization: 0.85}\n"
    )
    (r,) = plan_yaml(pb, H100_HOST).replicas
    assert r.argv.count("--max-num-seqs") == 1 and flag_value(list(r.argv), "--max-num-seqs") == "1024"
    assert flag_value(list(r.argv), "--gpu-memory-utilization") == "0.85"


def test_hostile_values_render_as_one_quoted_argument(tmp_path: Path, plan_yaml: PlanYaml) -> None:
    hostile_dir = tmp_path / "x; touch pwned-$(id -u) `id`"
    hostile_dir.mkdir()
    (hostile_dir / "config.json").write_text(
        '{"num_hidden_layers": 2, "hidden_size": 512, "num_attention_heads": 8, "num_key_value_heads": 8,'
        ' "intermediate_size": 1024, "vocab_size": 1000, "max_position_embeddings": 4096}'
    )
    served = "chat'; rm -rf ~ #"
    pb = yaml.safe_dump(
        {
            "deployments": [
                {
                    "name": "c",
                    "model": str(hostile_dir),
                    "workload": "offline",
                    "engine_args": {"--tokenizer": served},
                }
            ]
        }
    )
    (r,) = plan_yaml(pb, H100_HOST).replicas
    line = render_command(r.argv, r.env)
    words = shlex.split(line)
    assert words[0] == f"CUDA_VISIBLE_DEVICES={r.env['CUDA_VISIBLE_DEVICES']}"
    assert words[1:] == list(r.argv)
    # Run the same argv through a real shell with printf in place of the engine: every value comes back
    # verbatim and nothing it contains is executed.
    echo_line = render_command(("printf", "%s\\n", *r.argv[2:]), r.env)
    out = subprocess.run(["sh", "-c", echo_line], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == list(r.argv[2:])
    assert str(hostile_dir) in out.stdout.splitlines() and served in out.stdout.splitlines()
    assert not any(p.name.startswith("pwned") for p in tmp_path.iterdir())


def test_plan_capacity_comes_from_the_performance_model() -> None:
    from llmctl.perf.capacity import kv_capacity_tokens, max_throughput
    from llmctl.perf.profile import make_profile

    plan = plan_files(ROOT / "playbooks/offline-batch.yaml", ROOT / "inventory/example-ssh.yaml")
    s = plan.replicas[0].shape
    profile = make_profile(
        s.flavour,
        s.model,
        s.gpu_type,
        "fp8",
        s.tp,
        kv_dtype=s.kv_cache_dtype,
        memory_fraction=s.memory_fraction,
        max_batched_tokens=s.max_batched_tokens,
    )
    assert kv_capacity_tokens(profile) == s.kv_capacity_tokens
    best = max_throughput(profile, s.est_context, max_seqs=s.max_num_seqs)
    assert best is not None and best.tokens_per_s == pytest.approx(s.est_tokens_per_s)
    assert s.est_batch == best.batch > 0
