"""Shell scripts that start, inspect and stop one replica on a host, so that it outlives the SSH session.

Pure: each function returns the argv (`sh -c SCRIPT`) that the fleet transport runs; nothing here executes.
Every value is quoted (llmctl.engines.shell); paths under `~/` are expanded by the remote shell on purpose,
since the home directory differs between hosts and users.

Layout per replica: RUN_DIR/pid (process group leader), RUN_DIR/log (stdout and stderr), RUN_DIR/cmd.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence

from llmctl.engines.shell import render_command

# Seconds between SIGTERM and SIGKILL: engines release GPU memory and finish in-flight work on SIGTERM.
STOP_GRACE_S = 30


def shell_path(path: str) -> str:
    """A path as a shell word: `~/x` becomes "$HOME"/'x' (expanded remotely), anything else is quoted."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def _sh(script: str) -> list[str]:
    return ["sh", "-c", script]


# A process is alive when `ps` reports it and it is not a zombie (a killed child can linger as one).
_ALIVE = 'alive() { s=$(ps -o stat= -p "$1" 2>/dev/null) && [ -n "$s" ] && [ "${s#Z}" = "$s" ]; }'


# Exit status of start_argv when something else already listens on the replica's port: a stray process
# there would answer the health check in the new replica's place.
PORT_TAKEN = 98


def start_argv(
    run_dir: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    bin_dir: str | None = None,
    port: int | None = None,
) -> list[str]:
    """Start `argv` detached (new session, no terminal) unless the replica already runs; prints its pid.
    With `port`, refuses (exit PORT_TAKEN) when another process already accepts connections there."""
    d = shell_path(run_dir)
    path = f'PATH={shell_path(bin_dir)}:"$PATH"; export PATH; ' if bin_dir else ""
    probe = (
        "python3 -c 'import socket,sys; sys.exit(socket.socket().connect_ex((\"127.0.0.1\", int(sys.argv[1]))) == 0)' "
        f'{int(port)} || {{ echo "port {int(port)} is already in use by another process" >&2; exit {PORT_TAKEN}; }}; '
        if port is not None
        else ""
    )
    command = render_command(argv, env)
    # Assignments work only at the start of a command, so after setsid/nohup the env travels through env(1).
    detached = render_command(["setsid", "nohup", "env", *(f"{k}={v}" for k, v in env.items()), *argv])
    script = (
        f'{_ALIVE}; d={d}; mkdir -p "$d" && cd "$d" || exit 97; '
        'if [ -f pid ] && alive "$(cat pid)"; then echo "running $(cat pid)"; exit 0; fi; '
        f"{path}{probe}printf '%s\\n' {shlex.quote(command)} > cmd; "
        f"{detached} > log 2>&1 < /dev/null & "
        'echo $! > pid; echo "started $!"'
    )
    return _sh(script)


def status_argv(run_dir: str) -> list[str]:
    """Prints `running PID`, `exited PID` or `absent`."""
    d = shell_path(run_dir)
    script = (
        f"{_ALIVE}; d={d}; "
        'if [ ! -f "$d/pid" ]; then echo absent; exit 0; fi; p=$(cat "$d/pid"); '
        'if alive "$p"; then echo "running $p"; else echo "exited $p"; fi'
    )
    return _sh(script)


def stop_argv(run_dir: str, grace_s: int = STOP_GRACE_S) -> list[str]:
    """SIGTERM the replica's process group, SIGKILL after `grace_s`; prints `stopped PID` or `absent`."""
    d = shell_path(run_dir)
    script = (
        f"{_ALIVE}; d={d}; "
        'if [ ! -f "$d/pid" ]; then echo absent; exit 0; fi; p=$(cat "$d/pid"); '
        'kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null; '
        f'i=0; while alive "$p" && [ $i -lt {int(grace_s) * 10} ]; do sleep 0.1; i=$((i+1)); done; '
        'if alive "$p"; then kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null; fi; '
        'rm -f "$d/pid"; echo "stopped $p"'
    )
    return _sh(script)


def log_tail_argv(run_dir: str, lines: int = 50) -> list[str]:
    return _sh(f'd={shell_path(run_dir)}; [ -f "$d/log" ] && tail -n {int(lines)} "$d/log" || true')
