"""Replica launch scripts run for real through sh: detached start, idempotent re-start, status, log, stop."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from llmctl.control.launch import PORT_TAKEN, log_tail_argv, shell_path, start_argv, status_argv, stop_argv


def sh(argv: list[str], home: Path) -> str:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home)}
    return subprocess.run(
        argv, capture_output=True, text=True, check=True, env=env, timeout=60
    ).stdout.strip()


def test_shell_path_expands_home_only_at_the_start() -> None:
    assert shell_path("~/.llmctl/r 1") == "\"$HOME\"/'.llmctl/r 1'"
    assert shell_path("/srv/~x") == "'/srv/~x'"
    assert shell_path("/tmp/a;b") == "'/tmp/a;b'"


def test_start_status_log_stop(tmp_path: Path) -> None:
    hostile = "x; touch pwned"
    run_dir = "~/replicas/chat 0"
    program = [
        sys.executable,
        "-c",
        "import os,sys,time; print('up', sys.argv[1], os.environ['GREETING'], flush=True); time.sleep(600)",
        hostile,
    ]
    out = sh(start_argv(run_dir, program, {"GREETING": "$(touch pwned2)"}), tmp_path)
    assert out.startswith("started ")
    pid = int(out.split()[1])
    d = tmp_path / "replicas" / "chat 0"
    assert (d / "pid").read_text().strip() == str(pid)
    assert sh(start_argv(run_dir, program, {}), tmp_path) == f"running {pid}"  # idempotent: no second copy
    assert sh(status_argv(run_dir), tmp_path) == f"running {pid}"
    # The process runs in its own session, so it outlives the shell (and the SSH session) that started it.
    assert os.getsid(pid) == pid
    for _ in range(200):
        if "up" in sh(log_tail_argv(run_dir), tmp_path):
            break
        subprocess.run(["sleep", "0.05"], check=True)
    assert sh(log_tail_argv(run_dir), tmp_path) == f"up {hostile} $(touch pwned2)"
    assert sh(stop_argv(run_dir, grace_s=5), tmp_path) == f"stopped {pid}"
    assert sh(status_argv(run_dir), tmp_path) == "absent"
    assert not list(tmp_path.rglob("pwned*"))


def test_exited_process_is_reported(tmp_path: Path) -> None:
    run_dir = str(tmp_path / "r")
    out = sh(start_argv(run_dir, [sys.executable, "-c", "print('bye')"], {}), tmp_path)
    pid = int(out.split()[1])
    for _ in range(200):
        if sh(status_argv(run_dir), tmp_path) == f"exited {pid}":
            break
        subprocess.run(["sleep", "0.05"], check=True)
    assert sh(status_argv(run_dir), tmp_path) == f"exited {pid}"
    assert sh(log_tail_argv(run_dir), tmp_path) == "bye"


def test_a_port_already_taken_is_refused_before_starting(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        argv = start_argv(str(tmp_path / "r"), [sys.executable, "-c", "pass"], {}, port=port)
        out = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "HOME": str(tmp_path)})
        assert out.returncode == PORT_TAKEN and f"port {port} is already in use" in out.stderr
        assert not (tmp_path / "r" / "pid").exists()
    # Free again: it starts.
    out = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "HOME": str(tmp_path)})
    assert out.returncode == 0 and out.stdout.startswith("started ")


# A leader that starts two children the way vLLM's API server starts EngineCore and Worker: one stays in the
# process group and ignores SIGTERM, one leaves the group (setsid) and the run dir. Each writes its pid.
_FAMILY = """
import os, signal, subprocess, sys, time
ignore = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
away = "import os, time; os.setsid(); os.chdir('/'); time.sleep(600)"
for name, code in (("stubborn", ignore), ("away", away)):
    p = subprocess.Popen([sys.executable, "-c", code])
    open(name, "w").write(str(p.pid))
open("ready", "w").write("1")
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _start_family(tmp_path: Path) -> tuple[str, int, list[int]]:
    run_dir = str(tmp_path / "chat-0")
    out = sh(start_argv(run_dir, [sys.executable, "-c", _FAMILY], {}), tmp_path)
    leader = int(out.split()[1])
    d = Path(run_dir)
    for _ in range(400):
        if (d / "ready").exists():
            break
        subprocess.run(["sleep", "0.05"], check=True)
    children = [int((d / n).read_text()) for n in ("stubborn", "away")]
    assert all(_alive(p) for p in [leader, *children])
    return run_dir, leader, children


def test_restart_after_kill_9_of_the_leader_ends_its_orphans_first(tmp_path: Path) -> None:
    run_dir, leader, children = _start_family(tmp_path)
    os.kill(leader, 9)
    for _ in range(200):
        if sh(status_argv(run_dir), tmp_path) == f"exited {leader}":
            break
        subprocess.run(["sleep", "0.05"], check=True)
    assert all(_alive(p) for p in children)  # the orphans live on, as vLLM's EngineCore and Worker do
    out = sh(start_argv(run_dir, [sys.executable, "-c", "import time; time.sleep(600)"], {}), tmp_path)
    assert out.startswith("started ")
    assert not any(_alive(p) for p in children)
    assert sh(stop_argv(run_dir, grace_s=5), tmp_path) == f"stopped {out.split()[1]}"


def test_stop_leaves_no_process_of_the_replica(tmp_path: Path) -> None:
    run_dir, leader, children = _start_family(tmp_path)
    assert sh(stop_argv(run_dir, grace_s=1), tmp_path) == f"stopped {leader}"
    assert not any(_alive(p) for p in [leader, *children])
    assert sh(stop_argv(run_dir, grace_s=1), tmp_path) == "absent"


def test_stop_without_a_pid_file_still_ends_orphans(tmp_path: Path) -> None:
    run_dir, leader, children = _start_family(tmp_path)
    os.kill(leader, 9)
    (Path(run_dir) / "pid").unlink()
    assert sh(stop_argv(run_dir, grace_s=1), tmp_path) == "stopped orphans"
    assert not any(_alive(p) for p in children)


def test_the_api_key_reaches_the_engine_from_a_private_file_never_through_argv(tmp_path: Path) -> None:
    """The key arrives on stdin, lands in RUN_DIR/key (mode 0600) and in the engine's environment; no
    command line of the launch (the script's, the engine's) carries it, nor does the recorded `cmd`."""
    key = "k3y-" + "s" * 40
    run_dir = str(tmp_path / "r")
    program = [
        sys.executable,
        "-c",
        "import os,time; print('key', os.environ['VLLM_API_KEY'] == open('key').read(), flush=True); "
        "time.sleep(600)",
    ]
    argv = start_argv(run_dir, program, {}, key_file="key", key_env="VLLM_API_KEY")
    assert not any(key in word for word in argv)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(argv, input=key, capture_output=True, text=True, env=env, timeout=60, check=True)
    pid = int(done.stdout.split()[-1])
    d = tmp_path / "r"
    assert (d / "key").stat().st_mode & 0o777 == 0o600
    assert (d / "key").read_text() == key
    assert key not in (d / "cmd").read_text()
    for _ in range(200):
        if "key" in (d / "log").read_text():
            break
        subprocess.run(["sleep", "0.05"], check=True)
    assert (d / "log").read_text().strip() == "key True"
    assert key.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
    # Adopted rather than started again: the running engine keeps its key, the file is not rewritten.
    again = subprocess.run(argv, input="other", capture_output=True, text=True, env=env, timeout=60)
    assert again.stdout.strip() == f"running {pid}" and (d / "key").read_text() == key
    assert sh(stop_argv(run_dir, grace_s=5), tmp_path) == f"stopped {pid}"
    # Started again without a key (the host became local): the old key file goes.
    out = sh(start_argv(run_dir, [sys.executable, "-c", "print(1)"], {}), tmp_path)
    assert out.startswith("started ") and not (d / "key").exists()
