"""`llmctl doctor` against real sshd test hosts (subnet 6): one host healthy and one broken in each way the
doctor checks (unreachable, unknown host key, no venv, wrong engine version, a busy GPU, a taken port, too
little disk for the weights, no token for a gated model); each row's status and fix, --json, exit code."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmctl.engines import vllm
from llmctl.testing.sshd_hosts import SshdHosts, available, fake_nvidia_smi, start_hosts

pytestmark = [pytest.mark.sshd, pytest.mark.slow]

H100 = "NVIDIA H100 80GB HBM3"
SMALL = "meta-llama/Llama-3.1-8B-Instruct"  # gated; ~17 GiB of BF16 weights
HUGE = "meta-llama/Llama-3.1-70B-Instruct"  # ~151 GiB of BF16 weights: more than the test disk has free
NAMES = ("good", "down", "newkey", "novenv", "oldeng", "busygpu", "porttaken", "nodisk", "notoken")
HOSTS = {f"doc-{n}": n for n in NAMES}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fake_venv(venv: Path, version: str) -> None:
    """A venv whose vllm is a stub distribution at `version`: the doctor reads metadata and finds the module."""
    python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else shutil.which("python3")
    assert python
    subprocess.run([python, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python3*/site-packages"))
    (site / "vllm").mkdir()
    (site / "vllm" / "__init__.py").write_text("")
    info = site / f"vllm-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: vllm\nVersion: {version}\n")


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[SshdHosts, dict[str, int]]]:
    reason = available()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"real SSH test hosts unavailable in CI: {reason}")
        pytest.skip(reason)
    # Ports picked free now, one per host: the hosts share loopback's network stack, and no fixed port.
    ports = {h: _free_port() for h in HOSTS}
    declared = {h: {"gpus": {"type": "H100-SXM", "count": 2}, "engine_port": ports[h]} for h in HOSTS}
    hosts = start_hosts({h: [H100, H100] for h in HOSTS}, subnet=6, down=("doc-down",), declared=declared)
    try:
        for h in HOSTS:
            shutil.rmtree(hosts.home / ".llmctl" / h, ignore_errors=True)
            shutil.rmtree(hosts.home / ".cache" / h, ignore_errors=True)
            if h != "doc-novenv":
                _fake_venv(
                    hosts.home / ".llmctl" / h / "venv",
                    "0.20.0" if h == "doc-oldeng" else vllm.DEFAULT_VERSION,
                )
            cache = hosts.home / ".cache" / h / "huggingface"
            cache.mkdir(parents=True)
            if h != "doc-notoken":
                (cache / "token").write_text("hf_test_not_a_real_token\n")
        for d in (".llmctl", ".cache"):
            subprocess.run(["chown", "-R", "llmctltest:llmctltest", str(hosts.home / d)], check=True)
        smi = hosts.root / "doc-busygpu" / "bin" / "nvidia-smi"
        smi.write_text(fake_nvidia_smi([H100, H100], apps=[(0, 4242, 30000)]))
        # The host key of doc-newkey is not known: its line leaves known_hosts.
        lines = hosts.known_hosts.read_text().splitlines()
        newkey = f"[{hosts.hosts['doc-newkey'].address}]:2222"
        hosts.known_hosts.write_text("\n".join(x for x in lines if not x.startswith(newkey + " ")) + "\n")
        yield hosts, ports
    finally:
        for h in HOSTS:
            shutil.rmtree(hosts.home / ".llmctl" / h, ignore_errors=True)
            shutil.rmtree(hosts.home / ".cache" / h, ignore_errors=True)
        hosts.close()


def _playbook(path: Path) -> Path:
    deps = [
        {
            "name": f"d-{h}",
            "model": HUGE if h == "doc-nodisk" else SMALL,
            "workload": "offline",
            "engine": "vllm",
            "scaling": {"min_replicas": 1, "max_replicas": 1},
            "placement": {"hosts": [h]},
        }
        for h in HOSTS
    ]
    path.write_text(yaml.safe_dump({"deployments": deps}))
    return path


def doctor(hosts: SshdHosts, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmctl.cli.main", "doctor", *args, "-i", str(hosts.inventory)],
        capture_output=True,
        text=True,
        timeout=180,
        env=hosts.env(tmp / "state.db"),
    )


def rows_of(out: subprocess.CompletedProcess[str]) -> dict[tuple[str, str], dict[str, Any]]:
    data = json.loads(out.stdout)
    assert set(data) == {"ok", "checks"} and data["ok"] is False
    for r in data["checks"]:
        assert set(r) == {"host", "name", "status", "detail", "fix"}
        assert r["status"] in ("ok", "warn", "fail", "skip")
    return {(r["host"], r["name"]): r for r in data["checks"]}


def test_doctor_with_playbook_names_each_broken_host(
    cluster: tuple[SshdHosts, dict[str, int]], tmp_path: Path
) -> None:
    hosts, ports = cluster
    tmp = tmp_path
    pb = _playbook(tmp / "playbook.yaml")
    known_before = hosts.known_hosts.read_text()
    with socket.socket() as listener:  # something else already listens on doc-porttaken's engine port
        listener.bind(("127.0.0.1", ports["doc-porttaken"]))
        listener.listen()
        out = doctor(hosts, tmp, str(pb), "--json")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    rows = rows_of(out)

    def status(host: str, name: str) -> str:
        return str(rows[(host, name)]["status"])

    # The healthy host: nothing fails.
    good = {name: r["status"] for (h, name), r in rows.items() if h == "doc-good"}
    assert set(good.values()) <= {"ok"}, good
    assert {"reachable", "host key", "python", "venv", "engine vllm", "gpus", "gpus free", "driver"} <= set(
        good
    )
    assert {f"port {ports['doc-good']}", "disk", f"hf token {SMALL}"} <= set(good)

    down = rows[("doc-down", "reachable")]
    assert down["status"] == "fail" and "cannot connect to 127.0.6.2:2222" in down["detail"]
    assert "ssh -p 2222" in down["fix"] and status("doc-down", "probe") == "skip"

    key = rows[("doc-newkey", "host key")]
    assert key["status"] == "fail" and "SHA256:" in key["detail"]
    assert "--accept-new-host-keys" in key["fix"] and "ssh-keyscan -p 2222 127.0.6.3" in key["fix"]
    assert status("doc-newkey", "engine vllm") == "ok"  # probed all the same, through a throwaway known_hosts
    assert hosts.known_hosts.read_text() == known_before  # the operator's file is left as it was

    venv = rows[("doc-novenv", "venv")]
    assert (
        venv["status"] == "fail" and "llmctl provision" in venv["fix"] and "--limit doc-novenv" in venv["fix"]
    )
    assert status("doc-novenv", "engine vllm") == "skip"

    engine = rows[("doc-oldeng", "engine vllm")]
    assert (
        engine["status"] == "fail"
        and f"vllm 0.20.0; the plan pins {vllm.DEFAULT_VERSION}" in engine["detail"]
    )
    assert f"pip install vllm=={vllm.DEFAULT_VERSION}" in engine["fix"]

    busy = rows[("doc-busygpu", "gpus free")]
    assert busy["status"] == "fail" and "pid(s) 4242" in busy["detail"] and "kill 4242" in busy["fix"]

    port = rows[("doc-porttaken", f"port {ports['doc-porttaken']}")]
    assert port["status"] == "fail" and "engine_port:" in port["fix"] and "ss -ltnp" in port["fix"]

    free = shutil.disk_usage(hosts.home).free
    disk = rows[("doc-nodisk", "disk")]
    if free < 150 * 2**30:  # the 70B checkpoint needs ~162 GiB with headroom
        assert disk["status"] == "fail" and "model_cache:" in disk["fix"], disk
    assert status("doc-good", "disk") == "ok"

    token = rows[("doc-notoken", f"hf token {SMALL}")]
    assert token["status"] == "fail" and f"https://huggingface.co/{SMALL}" in token["fix"]
    assert "/token" in token["fix"]

    for h in ("doc-busygpu", "doc-porttaken", "doc-notoken", "doc-oldeng"):
        assert status(h, "reachable") == "ok" and status(h, "host key") == "ok"


def test_doctor_without_playbook_is_host_level(
    cluster: tuple[SshdHosts, dict[str, int]], tmp_path: Path
) -> None:
    hosts, _ = cluster
    tmp = tmp_path
    out = doctor(hosts, tmp, "--limit", "doc-good,doc-down")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "doc-down" in out.stdout and "block an apply" in out.stdout
    ok = doctor(hosts, tmp, "--limit", "doc-good", "--json")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    data = json.loads(ok.stdout)
    assert data["ok"] is True
    names = {r["name"] for r in data["checks"]}
    assert "engines" in names and not any(n.startswith(("port", "disk", "hf token")) for n in names)
