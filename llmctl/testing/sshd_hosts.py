"""Real OpenSSH servers on loopback addresses as stand-in GPU hosts (recipe: ../shared/notes/test-hosts.md).

Each host gets its own sshd on 127.0.N.M, its own host key and a fake `nvidia-smi` on the session PATH
printing that host's GPUs in nvidia-smi's real CSV format. A dedicated user logs in with a generated key.
`SshdHosts.inventory` and `.known_hosts` are files llmctl (and Ansible) can use directly. Needs root.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

SSHD = "/usr/sbin/sshd"
USER = "llmctltest"
PORT = 2222


@dataclass
class SshdHost:
    name: str
    address: str
    config: Path
    gpus: list[str]
    process: subprocess.Popen[bytes] | None = None


@dataclass
class SshdHosts:
    root: Path
    key: Path
    known_hosts: Path
    inventory: Path
    home: Path
    hosts: dict[str, SshdHost] = field(default_factory=dict)

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

    def start(self, name: str) -> None:
        host = self.hosts[name]
        if host.process is not None and host.process.poll() is None:
            return  # running: a second sshd could not bind, and the first would be left behind
        host.process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(host.config)], stderr=subprocess.DEVNULL)

    def wait(self, name: str, timeout: float = 10.0) -> None:
        address = self.hosts[name].address
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((address, PORT), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"sshd on {address}:{PORT} did not start")

    def stop(self, name: str) -> None:
        proc = self.hosts[name].process
        if proc and proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)

    def drop(self, name: str) -> None:
        """The host drops off the network: its sshd stops and so do its open sessions (stopping the listener
        alone leaves established connections, such as the controller's pooled one, working)."""
        proc = self.hosts[name].process
        sessions = _children(proc.pid) if proc and proc.poll() is None else []
        self.stop(name)
        for pid in sessions:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)

    def close(self) -> None:
        for name in self.hosts:
            self.stop(name)
        shutil.rmtree(self.root, ignore_errors=True)


def available() -> str | None:
    """None when sshd test hosts can run here, else the reason they cannot."""
    if not Path(SSHD).exists():
        return "openssh-server is not installed (bash scripts/install-test-deps.sh)"
    if os.geteuid() != 0:
        return "starting sshd test hosts needs root"
    return None


def fake_nvidia_smi(gpus: list[str], apps: Sequence[tuple[int, int, int]] = ()) -> str:
    """`apps`: (GPU index, pid, MiB used) of processes `--query-compute-apps` lists (default none)."""
    procs = "".join(f"GPU-{i:08d}-test, {pid}, {mib}\n" for i, pid, mib in apps)
    rows = "\n".join(
        f"{i}, {name}, {81559 if 'H100' in name else 46068}, {1024 * i}, {10 * i}, GPU-{i:08d}-test"
        for i, name in enumerate(gpus)
    )
    header = (
        "+-----------------------------------------------------------------------------------------+\n"
        "| NVIDIA-SMI 570.86.15              Driver Version: 570.86.15      CUDA Version: 12.8     |\n"
    )
    return (
        '#!/bin/sh\ncase "$*" in\n'
        f"  *--query-gpu*) cat <<'ROWS'\n{rows}\nROWS\n  ;;\n"
        f"  *--query-compute-apps*) cat <<'APPS'\n{procs}APPS\n  ;;\n"
        f"  *) cat <<'HDR'\n{header}HDR\n  ;;\nesac\n"
    )


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


def _ensure_user(pubkey: str) -> Path:
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "-m", "-d", f"/home/{USER}", "-s", "/bin/bash", USER], check=True)
    subprocess.run(["usermod", "-p", "*", USER], check=True)  # a locked '!' password makes sshd refuse keys
    home = Path(pwd.getpwnam(USER).pw_dir)
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    keys = ssh_dir / "authorized_keys"
    # Appended, not replaced: a benchmark and a test session may run side by side, each with its own key.
    existing = keys.read_text() if keys.exists() else ""
    if pubkey.strip() not in existing:
        keys.write_text(existing + ("" if not existing or existing.endswith("\n") else "\n") + pubkey)
    os.chmod(keys, 0o600)
    shutil.chown(ssh_dir, USER, USER)
    shutil.chown(keys, USER, USER)
    return home


def start_hosts(
    specs: dict[str, list[str]],
    subnet: int = 1,
    down: tuple[str, ...] = (),
    declared: dict[str, dict[str, object]] | None = None,
) -> SshdHosts:
    """Start one sshd per host in `specs` (name -> nvidia-smi GPU names; empty: no nvidia-smi) on
    127.0.`subnet`.N; hosts in `down` are in the inventory but get no sshd."""
    # Not under pytest's tmp dir: that is private to root, and the test user must reach its fake nvidia-smi.
    root = Path(tempfile.mkdtemp(prefix="llmctl-sshd-"))
    os.chmod(root, 0o755)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    key = root / "id_ed25519"
    _keygen(key)
    home = _ensure_user((root / "id_ed25519.pub").read_text())
    hosts: dict[str, SshdHost] = {}
    known: list[str] = []
    for n, (name, gpus) in enumerate(specs.items(), start=1):
        d = root / name
        (d / "bin").mkdir(parents=True)
        for p in (d, d / "bin"):
            os.chmod(p, 0o755)
        if gpus:
            smi = d / "bin" / "nvidia-smi"
            smi.write_text(fake_nvidia_smi(gpus))
            smi.chmod(0o755)
        hostkey = d / "ssh_host_ed25519_key"
        _keygen(hostkey)
        address = f"127.0.{subnet}.{n}"
        config = d / "sshd_config"
        config.write_text(
            f"ListenAddress {address}\nPort {PORT}\nHostKey {hostkey}\nPidFile {d / 'sshd.pid'}\n"
            "AuthenticationMethods publickey\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "UsePAM no\nSubsystem sftp internal-sftp\nMaxStartups 100:30:200\nStrictModes no\n"
            f"SetEnv PATH={d / 'bin'}:/usr/local/bin:/usr/bin:/bin LLMCTL_TEST_HOST={name}\n"
        )
        pub = (d / "ssh_host_ed25519_key.pub").read_text().split()
        known.append(f"[{address}]:{PORT} {pub[0]} {pub[1]}")
        hosts[name] = SshdHost(name, address, config, gpus)
    known_hosts = root / "known_hosts"
    known_hosts.write_text("\n".join(known) + "\n")
    inv_hosts: dict[str, dict[str, object]] = {
        name: {
            "address": h.address,
            "port": PORT,
            "user": USER,
            "key": str(key),
            "groups": ["test", name],
            "workdir": f"~/.llmctl/{name}",
            "model_cache": f"~/.cache/{name}/huggingface",
            **(declared or {}).get(name, {}),
        }
        for name, h in hosts.items()
    }
    inventory = root / "inventory.yaml"
    inventory.write_text(yaml.safe_dump({"hosts": inv_hosts}))
    cluster = SshdHosts(root, key, known_hosts, inventory, home, hosts)
    try:
        for name in hosts:
            if name not in down:
                cluster.start(name)
        for name in hosts:
            if name not in down:
                cluster.wait(name)
    except Exception:
        cluster.close()
        raise
    return cluster


def _children(pid: int) -> list[int]:
    out = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(proc.name))
        except (OSError, ValueError, IndexError):
            continue
    return out
