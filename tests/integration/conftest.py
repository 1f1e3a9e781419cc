"""Real OpenSSH test hosts on loopback addresses (recipe: ../shared/notes/test-hosts.md).

`ssh_hosts` starts one sshd per simulated host on 127.0.1.N, each with its own host key and its own fake
`nvidia-smi` on the session PATH, logs in as a dedicated user with a generated key, and writes an inventory
and a known_hosts file for llmctl. Hosts: `gpu8` (8 x H100), `mixed` (2 x H100 + 2 x L40S), `cpu` (no
nvidia-smi, declares one L4), and `down` (in the inventory, no sshd: always unreachable).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

SSHD = "/usr/sbin/sshd"
USER = "llmctltest"
PORT = 2222

H100 = "NVIDIA H100 80GB HBM3"
L40S = "NVIDIA L40S"
GPUS: dict[str, list[str]] = {"gpu8": [H100] * 8, "mixed": [H100, H100, L40S, L40S]}


@dataclass
class SshHost:
    name: str
    address: str
    config: Path
    process: subprocess.Popen[bytes] | None = None


@dataclass
class SshHosts:
    root: Path
    key: Path
    known_hosts: Path
    inventory: Path
    home: Path
    hosts: dict[str, SshHost] = field(default_factory=dict)

    def env(self, state: Path) -> dict[str, str]:
        """Environment for running the llmctl CLI against these hosts."""
        return {
            **os.environ,
            "LLMCTL_KNOWN_HOSTS": str(self.known_hosts),
            "LLMCTL_STATE": str(state),
            "SSH_AUTH_SOCK": "",
            "COLUMNS": "200",
            "NO_COLOR": "1",
        }

    def stop(self, name: str) -> None:
        proc = self.hosts[name].process
        if proc and proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)

    def start(self, name: str) -> None:
        host = self.hosts[name]
        host.process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(host.config)], stderr=subprocess.DEVNULL)
        _wait_port(host.address, PORT)


def fake_nvidia_smi(gpus: list[str]) -> str:
    rows = "\n".join(
        f"{i}, {name}, {81559 if 'H100' in name else 46068}, {1024 * i}, {10 * i}, GPU-{i:08d}-test"
        for i, name in enumerate(gpus)
    )
    header = (
        "+-----------------------------------------------------------------------------------------+\n"
        "| NVIDIA-SMI 570.86.15              Driver Version: 570.86.15      CUDA Version: 12.8     |\n"
    )
    return (
        "#!/bin/sh\n"
        'case "$*" in\n'
        f"  *--query-gpu*) cat <<'ROWS'\n{rows}\nROWS\n  ;;\n"
        f"  *) cat <<'HDR'\n{header}HDR\n  ;;\n"
        "esac\n"
    )


def _wait_port(address: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((address, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"sshd on {address}:{port} did not start")


def _ensure_user(home: Path, pubkey: str) -> None:
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "-m", "-d", str(home), "-s", "/bin/bash", USER], check=True)
    subprocess.run(["usermod", "-p", "*", USER], check=True)  # a locked '!' password makes sshd refuse keys
    real_home = Path(pwd.getpwnam(USER).pw_dir)
    ssh_dir = real_home / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(pubkey)
    os.chmod(ssh_dir / "authorized_keys", 0o600)
    shutil.chown(ssh_dir, USER, USER)
    shutil.chown(ssh_dir / "authorized_keys", USER, USER)


@pytest.fixture(scope="session")
def ssh_hosts() -> Iterator[SshHosts]:
    if not Path(SSHD).exists() or os.geteuid() != 0:
        reason = "needs root and openssh-server (bash scripts/install-test-deps.sh)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"real SSH test hosts unavailable in CI: {reason}")
        pytest.skip(reason)
    # Not under pytest's tmp dir: that is private to root, and the test user must reach its fake nvidia-smi.
    root = Path(tempfile.mkdtemp(prefix="llmctl-sshd-"))
    os.chmod(root, 0o755)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    key = root / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    home = Path("/home") / USER
    _ensure_user(home, (root / "id_ed25519.pub").read_text())

    hosts: dict[str, SshHost] = {}
    known: list[str] = []
    names = ["gpu8", "mixed", "cpu", "down"]
    for n, name in enumerate(names, start=1):
        d = root / name
        (d / "bin").mkdir(parents=True)
        os.chmod(d, 0o755)
        os.chmod(d / "bin", 0o755)
        if name in GPUS:
            smi = d / "bin" / "nvidia-smi"
            smi.write_text(fake_nvidia_smi(GPUS[name]))
            smi.chmod(0o755)
        hostkey = d / "ssh_host_ed25519_key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(hostkey)], check=True)
        address = f"127.0.1.{n}"
        config = d / "sshd_config"
        config.write_text(
            f"ListenAddress {address}\nPort {PORT}\nHostKey {hostkey}\nPidFile {d / 'sshd.pid'}\n"
            "AuthenticationMethods publickey\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "UsePAM no\nSubsystem sftp internal-sftp\nMaxStartups 100:30:200\nStrictModes no\n"
            f"SetEnv PATH={d / 'bin'}:/usr/local/bin:/usr/bin:/bin LLMCTL_TEST_HOST={name}\n"
        )
        subprocess.run([SSHD, "-t", "-f", str(config)], check=True)
        pub = (d / "ssh_host_ed25519_key.pub").read_text().split()
        known.append(f"[{address}]:{PORT} {pub[0]} {pub[1]}")
        hosts[name] = SshHost(name, address, config)

    known_hosts = root / "known_hosts"
    known_hosts.write_text("\n".join(known) + "\n")
    inventory = root / "inventory.yaml"
    inv_hosts = {
        name: {
            "address": h.address,
            "port": PORT,
            "user": USER,
            "key": str(key),
            "groups": ["test", name],
            "workdir": f"~/.llmctl/{name}",
            "model_cache": f"~/.cache/{name}/huggingface",
        }
        for name, h in hosts.items()
    }
    inv_hosts["cpu"]["gpus"] = {"type": "L4", "count": 1}
    inv_hosts["gpu8"]["gpus"] = {"type": "H100-SXM", "count": 8}
    inventory.write_text(yaml.safe_dump({"hosts": inv_hosts}))
    fixture = SshHosts(root, key, known_hosts, inventory, home, hosts)
    for name in names:
        if name != "down":
            fixture.start(name)
    try:
        yield fixture
    finally:
        for name in names:
            fixture.stop(name)
        shutil.rmtree(root, ignore_errors=True)
