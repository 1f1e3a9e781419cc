"""Failure modes and trust over real SSH: timeouts, auth failure, host keys from the CLI, a jump host, and a
hostile model name pushed through the provisioning weights step to a real host."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from llmctl.config.inventory import Host, load_inventory
from llmctl.fleet.pool import Fleet
from llmctl.fleet.provision import HostWork, steps_for
from llmctl.fleet.ssh import SSHOptions, SSHTransport
from llmctl.fleet.transport import CommandTimeout, HostUnreachable

pytestmark = pytest.mark.sshd


def host(hosts, name: str, **update: object) -> Host:  # type: ignore[no-untyped-def]
    h = load_inventory(hosts.inventory).host(name)
    return h.model_copy(update=update)


def transport(hosts, h: Host, known_hosts: Path | None = None) -> SSHTransport:  # type: ignore[no-untyped-def]
    opts = SSHOptions(known_hosts=known_hosts or hosts.known_hosts, agent_path="", use_ssh_config=False)
    return SSHTransport(h, opts)


def cli(hosts, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return subprocess.run(
        [sys.executable, "-m", "llmctl.cli.main", *args[:2], "-i", str(hosts.inventory), *args[2:]],
        capture_output=True,
        text=True,
        timeout=60,
        env=hosts.env(tmp_path / "state.db"),
    )


async def test_command_timeout_names_host_and_command_and_the_connection_survives(ssh_hosts) -> None:  # type: ignore[no-untyped-def]
    t = transport(ssh_hosts, host(ssh_hosts, "gpu8"))
    try:
        with pytest.raises(CommandTimeout) as info:
            await t.run(["sleep", "30"], timeout=0.5)
        assert str(info.value) == "gpu8: sleep 30: timed out after 0.5 s"
        assert (await t.run(["true"])).ok
    finally:
        await t.close()


async def test_wrong_user_key_is_an_authentication_failure(ssh_hosts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    other = tmp_path / "not_authorized"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    t = transport(ssh_hosts, host(ssh_hosts, "mixed", key=str(other)))
    with pytest.raises(HostUnreachable) as info:
        await t.run(["true"])
    assert str(info.value).startswith("mixed: authentication failed at 127.0.1.2:2222")


async def test_jump_host_tunnels_to_the_target(ssh_hosts) -> None:  # type: ignore[no-untyped-def]
    t = transport(ssh_hosts, host(ssh_hosts, "mixed", jump="llmctltest@127.0.1.1:2222"))
    try:
        r = await t.run(["sh", "-c", 'echo "$LLMCTL_TEST_HOST"'], check=True)
        assert r.stdout == "mixed\n" and t._jump is not None
    finally:
        await t.close()


def test_cli_refuses_a_changed_host_key_and_records_new_ones_only_when_asked(
    ssh_hosts, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    key = tmp_path / "impostor"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    kind, blob = (tmp_path / "impostor.pub").read_text().split()[:2]
    bad = tmp_path / "bad_known_hosts"
    bad.write_text(f"[127.0.1.1]:2222 {kind} {blob}\n")
    out = cli(
        ssh_hosts,
        tmp_path,
        "hosts",
        "ping",
        "--limit",
        "gpu8",
        "--known-hosts",
        str(bad),
        "--accept-new-host-keys",
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "host key for 127.0.1.1:2222 does not match" in out.stdout and "ssh-keygen -R" in out.stdout

    fresh = tmp_path / "fresh" / "known_hosts"
    out = cli(ssh_hosts, tmp_path, "hosts", "ping", "--limit", "cpu", "--known-hosts", str(fresh))
    assert out.returncode == 1 and "--accept-new-host-keys" in out.stdout and not fresh.exists()
    out = cli(
        ssh_hosts,
        tmp_path,
        "hosts",
        "ping",
        "--limit",
        "cpu",
        "--known-hosts",
        str(fresh),
        "--accept-new-host-keys",
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert fresh.read_text().startswith("[127.0.1.3]:2222 ssh-ed25519 ")


async def test_hostile_model_name_reaches_the_host_verbatim_through_provisioning(
    ssh_hosts, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    hostile = "x; touch /tmp/pwned-llmctl-ssh $(touch /tmp/pwned-llmctl-ssh2) `id` 'q\""
    for p in ("/tmp/pwned-llmctl-ssh", "/tmp/pwned-llmctl-ssh2"):
        Path(p).unlink(missing_ok=True)
    h = host(
        ssh_hosts,
        "cpu",
        workdir="~/.llmctl/hostile",
        model_cache="~/.cache/hostile; touch /tmp/pwned-llmctl-ssh",
    )
    fake_hf = tmp_path / "hf"
    fake_hf.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$HOME/hostile-hf-args"\n')
    weights = steps_for(HostWork(h, (), (hostile,)))[-1]
    async with Fleet(
        [h], SSHOptions(known_hosts=ssh_hosts.known_hosts, agent_path="", use_ssh_config=False)
    ) as f:
        t = f.transport(h)
        # The test user's home outlives test sessions: start from nothing.
        await t.run(
            ["rm", "-rf", ".llmctl/hostile", ".cache/hostile; touch /tmp/pwned-llmctl-ssh", "hostile-hf-args"]
        )
        await t.upload(fake_hf, "~/.llmctl/hostile/venv/bin/hf")
        await t.run(["chmod", "+x", ".llmctl/hostile/venv/bin/hf"], check=True)
        assert weights.check is not None and not (await t.run(weights.check)).ok
        await t.run(weights.do, check=True)
        assert (await t.run(weights.check)).ok
        args = await t.run(["cat", "hostile-hf-args"], check=True)
    assert args.stdout.splitlines() == ["download", hostile]
    assert not Path("/tmp/pwned-llmctl-ssh").exists() and not Path("/tmp/pwned-llmctl-ssh2").exists()
    assert (ssh_hosts.home / ".cache" / "hostile; touch /tmp/pwned-llmctl-ssh").is_dir()
