"""Detached batch jobs: their rows in the state store (table batch_jobs), starting one as a background
process in its own session (it outlives the terminal, as replicas do), and cancelling one with SIGTERM, on
which the runner writes out every result it has and exits; re-running the job's command resumes it."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmctl.batch.summary import Counters
from llmctl.errors import LlmctlError
from llmctl.state.store import Store

ACTIVE = ("starting", "running")
COLUMNS = (
    "id, created_at, deployment, input, output, log, argv, host, pid, state, total, done, failed, "
    "input_tokens, output_tokens, tokens_per_s, paused, updated_at, message, summary"
)


@dataclass(frozen=True)
class Job:
    id: str
    created_at: float
    deployment: str
    input: str
    output: str
    log: str
    argv: list[str]
    host: str
    pid: int | None
    state: str
    total: int
    done: int
    failed: int
    input_tokens: int
    output_tokens: int
    tokens_per_s: float
    paused: bool
    updated_at: float
    message: str
    summary: dict[str, Any] | None

    @classmethod
    def of(cls, row: tuple[Any, ...]) -> Job:
        values = list(row)
        values[6] = json.loads(values[6])
        values[16] = bool(values[16])
        values[19] = json.loads(values[19]) if values[19] else None
        return cls(*values)


def new_job_id() -> str:
    return f"batch-{secrets.token_hex(4)}"


def create_job(
    store: Store, job_id: str, deployment: str, input_path: Path, output: Path, log: Path, argv: list[str]
) -> None:
    now = time.time()
    store.db.execute(
        "INSERT INTO batch_jobs (id, created_at, deployment, input, output, log, argv, host, state, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'starting', ?)",
        (job_id, now, deployment, str(input_path), str(output), str(log), json.dumps(argv), _me(), now),
    )


def set_running(store: Store, job_id: str, pid: int) -> None:
    store.db.execute(
        "UPDATE batch_jobs SET pid = ?, host = ?, state = 'running', updated_at = ? WHERE id = ?",
        (pid, _me(), time.time(), job_id),
    )


def set_progress(store: Store, job_id: str, c: Counters, tokens_per_s: float) -> None:
    store.db.execute(
        "UPDATE batch_jobs SET total = ?, done = ?, failed = ?, input_tokens = ?, output_tokens = ?, "
        "tokens_per_s = ?, paused = ?, updated_at = ? WHERE id = ?",
        (
            c.total,
            c.already_done + c.done,
            c.failed,
            c.input_tokens,
            c.output_tokens,
            tokens_per_s,
            int(c.paused),
            time.time(),
            job_id,
        ),
    )


def finish_job(
    store: Store, job_id: str, state: str, message: str, summary: dict[str, Any] | None = None
) -> None:
    store.db.execute(
        "UPDATE batch_jobs SET state = ?, message = ?, summary = COALESCE(?, summary), updated_at = ? "
        "WHERE id = ?",
        (state, message, json.dumps(summary) if summary is not None else None, time.time(), job_id),
    )


def get_job(store: Store, job_id: str) -> Job:
    row = store.db.execute(f"SELECT {COLUMNS} FROM batch_jobs WHERE id = ?", (job_id,)).fetchone()
    if row is None:
        known = [j.id for j in list_jobs(store)[-5:]]
        hint = f"; recent: {', '.join(known)}" if known else "; there are none (llmctl batch run --detach)"
        raise LlmctlError(f"no batch job {job_id!r} in the state store {store.path}{hint}")
    return Job.of(row)


def list_jobs(store: Store) -> list[Job]:
    rows = store.db.execute(f"SELECT {COLUMNS} FROM batch_jobs ORDER BY created_at").fetchall()
    return [Job.of(r) for r in rows]


def _me() -> str:
    return socket.gethostname()


def alive(pid: int) -> bool:
    """Whether the process runs (a zombie, exited but not yet reaped by its parent, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def effective_state(job: Job) -> str:
    """The recorded state, except that an active job whose process is gone (killed, machine rebooted) is
    `died`: its output holds everything written, and re-running its command resumes it."""
    if job.state in ACTIVE and job.host == _me() and job.pid is not None and not alive(job.pid):
        return "died"
    return job.state


def spawn(argv: list[str], log: Path) -> int:
    """Start argv detached: a new session (no terminal, no SIGINT from the shell), output to `log`."""
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
    except OSError as exc:
        raise LlmctlError(f"cannot start the batch job ({argv[0]}): {exc.strerror or exc}") from None
    return proc.pid


def cancel(store: Store, job: Job, wait_s: float = 30.0, force: bool = False) -> str:
    """SIGTERM the job's process group and wait for it to write out its results and exit. Returns the state
    afterwards. `force` sends SIGKILL when it is still running after `wait_s` (its output stays consistent:
    every batch is fsynced and a torn last line is cut off on resume)."""
    state = effective_state(job)
    if state not in ACTIVE:
        return state
    if job.host != _me():
        raise LlmctlError(f"batch job {job.id} runs on {job.host}; cancel it there")
    assert job.pid is not None
    _signal(job.pid, signal.SIGTERM)
    deadline = time.monotonic() + wait_s
    while alive(job.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(job.pid):
        if not force:
            raise LlmctlError(
                f"batch job {job.id} (pid {job.pid}) is still finishing after {wait_s:g} s; "
                "wait, or cancel again with --force"
            )
        _signal(job.pid, signal.SIGKILL)
    after = get_job(store, job.id)
    if after.state in ACTIVE:  # killed before it could record its own end
        finish_job(store, job.id, "cancelled", "cancelled")
        return "cancelled"
    return after.state


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)  # the job leads its own session, so its group id is its pid
    except ProcessLookupError:
        pass
    except PermissionError:
        raise LlmctlError(f"not allowed to signal batch job process {pid}") from None
