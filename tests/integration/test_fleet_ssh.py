"""The fleet against real sshd hosts on loopback: facts, fan-out, upload, trust, failures, hostile values."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from llmctl.config.inventory import load_inventory
from llmctl.fleet.facts import gather
from llmctl.fleet.facts_parse import HostFacts
from llmctl.fleet.pool import Fleet
from llmctl.fleet.ssh import SSHOptions
from llmctl.fleet.transport import CommandResult, HostKeyMismatch, HostUnreachable
from llmctl.state.store import Store

pytestmark = pytest.mark.sshd


def fleet(hosts, known_hosts: Path, accept_new: bool = False) -> Fleet:  # type: ignore[no-untyped-def]
    inv = load_inventory(hosts.inventory)
    opts = SSHOptions(
        known_hosts=known_hosts, accept_new_host_keys=accept_new, agent_path="", use_ssh_config=False
    )
    return Fleet(inv.hosts, opts)


def cli(hosts, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    # -i goes right after the subcommand: after `--` it would belong to the remote command.
    argv = [*args[:2], "-i", str(hosts.inventory), *args[2:]]
    return subprocess.run(
        [sys.executable, "-m", "llmctl.cli.main", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env=hosts.env(tmp_path / "state.db"),
    )


async def test_facts_from_nvidia_smi_declared_and_unreachable(ssh_hosts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = Store(tmp_path / "state.db")
    async with fleet(ssh_hosts, ssh_hosts.known_hosts) as f:
        results = await gather(f, f.hosts, store)
    gpu8, mixed, cpu, down = (results[n] for n in ("gpu8", "mixed", "cpu", "down"))
    assert isinstance(gpu8, HostFacts) and isinstance(mixed, HostFacts) and isinstance(cpu, HostFacts)
    assert [g.catalog for g in gpu8.gpus] == ["H100-SXM"] * 8 and gpu8.gpu_source == "nvidia-smi"
    assert (gpu8.driver_version, gpu8.cuda_version) == ("570.86.15", "12.8")
    assert [g.catalog for g in mixed.gpus] == ["H100-SXM", "H100-SXM", "L40S", "L40S"]
    assert cpu.gpu_source == "declared" and [g.catalog for g in cpu.gpus] == ["L4"]
    assert "no nvidia-smi" in cpu.notes[0]
    assert cpu.cpus and cpu.memory_mib and cpu.disk_free_mib and cpu.python
    assert isinstance(down, HostUnreachable) and "127.0.1.4:2222" in str(down)
    cached = store.all_facts()
    assert set(cached) == {"gpu8", "mixed", "cpu"}  # the unreachable host keeps no stale facts
    assert HostFacts.from_dict(cached["mixed"][1]) == mixed


def test_cli_exec_fans_out_and_fails_when_a_host_is_down(ssh_hosts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = cli(ssh_hosts, tmp_path, "hosts", "exec", "--json", "--", "sh", "-c", 'echo "$LLMCTL_TEST_HOST"')
    assert out.returncode == 1, out.stderr
    data = json.loads(out.stdout)
    assert {n: data[n]["stdout"].strip() for n in ("gpu8", "mixed", "cpu")} == {
        "gpu8": "gpu8",
        "mixed": "mixed",
        "cpu": "cpu",
    }
    assert "cannot connect" in data["down"]["error"]
    ok = cli(ssh_hosts, tmp_path, "hosts", "exec", "--limit", "gpu8,mixed,cpu", "--", "true")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "Traceback" not in out.stderr + ok.stderr


def test_cli_ping_and_facts_then_list_uses_cache(ssh_hosts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ping = cli(ssh_hosts, tmp_path, "hosts", "ping", "--json")
    rows = {r["host"]: r for r in json.loads(ping.stdout)}
    assert ping.returncode == 1 and rows["gpu8"]["reachable"] and not rows["down"]["reachable"]
    facts = cli(ssh_hosts, tmp_path, "hosts", "facts", "--limit", "mixed")
    assert facts.returncode == 0, facts.stdout + facts.stderr
    listing = cli(ssh_hosts, tmp_path, "hosts", "list", "--json")
    gpus = {r["name"]: r["gpus"] for r in json.loads(listing.stdout)}
    assert gpus["mixed"] == "2 x H100-SXM, 2 x L40S" and gpus["gpu8"] == "8 x H100-SXM (declared)"


async def test_upload_and_hostile_values_arrive_verbatim(ssh_hosts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    hostile = "x; touch /tmp/pwned-llmctl $(touch /tmp/pwned2-llmctl) `id` 'q\" \n"
    local = tmp_path / "payload.txt"
    local.write_text("hello over sftp\n")
    async with fleet(ssh_hosts, ssh_hosts.known_hosts) as f:
        host = next(h for h in f.hosts if h.name == "gpu8")
        t = f.transport(host)
        await t.upload(local, "~/uploads/nested/payload.txt")
        got = await t.run(["cat", "uploads/nested/payload.txt"], check=True)
        echoed = await t.run(["printf", "%s", hostile], check=True)
        facts_model = await t.run(["sh", "-c", 'printf "%s" "$1"', "sh", hostile], check=True)
    assert got.stdout == "hello over sftp\n"
    assert echoed.stdout == hostile and facts_model.stdout == hostile
    assert not Path("/tmp/pwned-llmctl").exists() and not Path("/tmp/pwned2-llmctl").exists()


async def test_wrong_host_key_is_refused_with_a_clear_message(ssh_hosts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    pub = (tmp_path / "other_key.pub").read_text().split()
    bad = tmp_path / "known_hosts"
    bad.write_text(f"[127.0.1.1]:2222 {pub[0]} {pub[1]}\n")
    async with fleet(ssh_hosts, bad, accept_new=True) as f:
        host = next(h for h in f.hosts if h.name == "gpu8")
        with pytest.raises(HostKeyMismatch) as info:
            await f.transport(host).run(["true"])
    msg = str(info.value)
    assert msg.startswith("gpu8: ") and "does not match" in msg and "ssh-keygen -R '[127.0.1.1]:2222'" in msg


async def test_new_host_keys_need_explicit_trust_which_records_them(ssh_hosts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    known = tmp_path / "fresh_known_hosts"
    async with fleet(ssh_hosts, known) as f:
        refused = await f.run(["true"], hosts=[h for h in f.hosts if h.name == "mixed"])
    assert isinstance(refused["mixed"], HostKeyMismatch) and "--accept-new-host-keys" in str(refused["mixed"])
    async with fleet(ssh_hosts, known, accept_new=True) as f:
        trusted = await f.run(["true"], hosts=[h for h in f.hosts if h.name == "mixed"])
    assert isinstance(trusted["mixed"], CommandResult) and trusted["mixed"].ok
    recorded = known.read_text()
    assert recorded.startswith("[127.0.1.2]:2222 ssh-ed25519 ")
    assert (
        recorded.split()[2] == (ssh_hosts.root / "mixed" / "ssh_host_ed25519_key.pub").read_text().split()[1]
    )
    async with fleet(ssh_hosts, known) as f:  # trusted from now on without the flag
        again = await f.run(["true"], hosts=[h for h in f.hosts if h.name == "mixed"])
    assert isinstance(again["mixed"], CommandResult) and again["mixed"].ok
