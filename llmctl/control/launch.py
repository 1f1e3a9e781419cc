"""Shell scripts that start, inspect and stop one replica on a host, so that it outlives the SSH session.

Pure: each function returns the argv (`sh -c SCRIPT`) that the fleet transport runs; nothing here executes.
Every value is quoted (llmctl.engines.shell); paths under `~/` are expanded by the remote shell on purpose,
since the home directory differs between hosts and users.

Layout per replica: RUN_DIR/pid (process group leader), RUN_DIR/log (stdout and stderr), RUN_DIR/cmd.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence

from llmctl.engines.api_key import KEY_FILES
from llmctl.engines.shell import ENV_NAME, render_command

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


# Every process of a replica carries RUN_DIR_ENV=<its run dir> in its environment (the launcher sets it and
# children inherit it): vLLM's EngineCore and Worker processes outlive a kill -9 of the API server as
# orphans holding the memory, and this finds them wherever they were re-parented. A process that cleared its
# environment still runs in the run dir the launcher cd'd into. Zombies are dead already. The marker, unlike
# a process group id, cannot match an unrelated process that was handed a reused pid.
RUN_DIR_ENV = "LLMCTL_RUN_DIR"
_MEMBERS_PY = (
    "import os,sys\n"
    "d=sys.argv[1]; real=os.path.realpath(d); mark=('%s=%s' % (sys.argv[2], d)).encode()\n"
    "me={os.getpid(),os.getppid()}\n"
    "for p in os.listdir('/proc'):\n"
    " if not p.isdigit() or int(p) in me: continue\n"
    " try:\n"
    "  if open('/proc/%s/stat'%p).read().rsplit(')',1)[1].split()[0]=='Z': continue\n"
    "  env=open('/proc/%s/environ'%p,'rb').read().split(b'\\0')\n"
    "  if os.readlink('/proc/%s/cwd'%p)==real or mark in env: print(p)\n"
    " except (OSError,IndexError): pass\n"
)
# Shell functions over it: `members` (of the replica in $d, an absolute path), and `reap GRACE` (TERM all,
# KILL what is left after GRACE seconds, then wait up to 5 s for them to be gone); `reap` leaves $left
# holding what survived (empty: all gone).
_REAP = (
    # Run from / so that neither this script nor the shell calling it counts as being in the run dir.
    f'members() {{ (cd / && python3 -c {shlex.quote(_MEMBERS_PY)} "$d" {RUN_DIR_ENV}); }}; '
    'reap() { m=$(members); [ -z "$m" ] && { left=""; return 0; }; '
    "kill -TERM $m 2>/dev/null; i=0; "
    'while [ -n "$(members)" ] && [ $i -lt $(($1 * 10)) ]; do sleep 0.1; i=$((i+1)); done; '
    'm=$(members); [ -n "$m" ] && kill -KILL $m 2>/dev/null; i=0; '
    'while [ -n "$(members)" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; '
    'left=$(members | tr "\\n" " "); }'
)
# Exit status of start_argv and stop_argv when processes of the replica survive SIGKILL (uninterruptible
# sleep, another user's process): starting beside them would fail on memory or on the port.
LEFTOVERS = 96
_ABSOLUTE = 'case $d in /*) ;; *) d="$PWD/$d";; esac'
# Seconds a crashed replica's leftovers get between SIGTERM and SIGKILL before a restart.
REAP_GRACE_S = 5


def start_argv(
    run_dir: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    bin_dir: str | None = None,
    port: int | None = None,
    key_file: str | None = None,
    key_env: str | None = None,
) -> list[str]:
    """Start `argv` detached (new session, no terminal) unless the replica already runs; prints its pid.
    Leftovers of an earlier run (orphaned engine children) are ended first, and must be gone (else exit
    LEFTOVERS). With `port`, refuses (exit PORT_TAKEN) when another process already accepts connections there.
    `key_file`: the command's standard input is the API key file's text, written to RUN_DIR/`key_file`
    readable by its owner alone (only when starting: an adopted replica keeps the key it runs with);
    `key_env` names the variable the engine reads it from, set from that file by the shell that becomes the
    engine. Without a key, key files of an earlier run are removed."""
    if key_env is not None and not ENV_NAME.fullmatch(key_env):
        raise ValueError(f"environment variable name {key_env!r} is not a shell identifier")
    if key_file is not None and key_file not in KEY_FILES:
        raise ValueError(f"key file {key_file!r} is not one of {KEY_FILES}")
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
    # The program's own pid is written by a shell that then becomes the program (exec): `$!` would name
    # setsid, which forks when it happens to lead a process group (as under some sshd sessions).
    detached = (
        'setsid nohup env "'
        + RUN_DIR_ENV
        + '=$d" '
        + render_command(
            [
                "env",
                *(f"{k}={v}" for k, v in env.items()),
                "sh",
                "-c",
                "echo $$ > pid; "
                + (
                    f"{key_env}=$(cat {key_file}) || exit 97; export {key_env}; "
                    if key_env and key_file
                    else ""
                )
                + 'exec "$@"',
                "sh",
                *argv,
            ]
        )
    )
    script = (
        f'{_ALIVE}; {_REAP}; d={d}; {_ABSOLUTE}; g=; mkdir -p "$d" || exit 97; '
        'if [ -f "$d/pid" ]; then g=$(cat "$d/pid"); if alive "$g"; then echo "running $g"; exit 0; fi; fi; '
        f"reap {REAP_GRACE_S}; "
        'if [ -n "$left" ]; then echo "processes of the previous run survive SIGKILL: $left" >&2; '
        f"exit {LEFTOVERS}; fi; "
        'cd "$d" || exit 97; '
        + (
            f"(umask 077 && rm -f {key_file} && cat > {key_file}) || exit 97; "
            if key_file
            else f"rm -f {' '.join(KEY_FILES)}; "
        )
        + f"{path}{probe}printf '%s\\n' {shlex.quote(command)} > cmd; "
        f"rm -f pid; {detached} > log 2>&1 < /dev/null & "
        "i=0; while [ ! -s pid ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; "
        '[ -s pid ] || { echo "the engine process did not start" >&2; exit 97; }; echo "started $(cat pid)"'
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
    """SIGTERM every process of the replica (its process group and anything running in its directory),
    SIGKILL after `grace_s`, and check they are gone; prints `stopped PID` or `absent`, or exits LEFTOVERS
    naming the survivors."""
    d = shell_path(run_dir)
    script = (
        f"{_REAP}; d={d}; {_ABSOLUTE}; g=; "
        '[ -f "$d/pid" ] && g=$(cat "$d/pid"); '
        'if [ -z "$g" ] && [ -z "$(members)" ]; then echo absent; exit 0; fi; '
        f"reap {int(grace_s)}; "
        'if [ -n "$left" ]; then echo "still running after SIGKILL: $left" >&2; '
        f"exit {LEFTOVERS}; fi; "
        'rm -f "$d/pid"; echo "stopped ${g:-orphans}"'
    )
    return _sh(script)


def log_tail_argv(run_dir: str, lines: int = 50) -> list[str]:
    return _sh(f'd={shell_path(run_dir)}; [ -f "$d/log" ] && tail -n {int(lines)} "$d/log" || true')
