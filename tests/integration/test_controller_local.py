"""The controller and gateway on a local host with emulated engines: real processes, HTTP and store.

Crash -> restart with the reason in the events; controller restart -> adoption, no duplicates; a replica
that keeps failing -> backoff, then given up and marked failed; intents from `llmctl restart` and
`llmctl scale` carried out by the running controller."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from llmctl.testing.local_fleet import LocalFleet, engines_under, wait_for

pytestmark = pytest.mark.slow
INTERVAL_S = 1.0


@pytest.fixture
def env(tmp_path: Path) -> Iterator[LocalFleet]:
    e = LocalFleet(tmp_path)
    e.interval_s = INTERVAL_S
    yield e
    if e.controller is not None:
        e.stop_controller()
    e.llmctl("stop", "--all", "-i", str(e.inventory))


def complete(port: int, model: str) -> httpx.Response:
    return httpx.post(
        f"http://127.0.0.1:{port}/v1/completions",
        json={"model": model, "prompt": "hello", "max_tokens": 4},
        timeout=30,
    )


def test_a_killed_replica_is_restarted_within_two_intervals_with_the_reason(env: LocalFleet) -> None:
    env.apply(env.playbook())
    env.start_controller()
    victim = env.rows()["chat-0"]
    assert victim.pid is not None
    killed_at = time.time()
    os.killpg(victim.pid, signal.SIGKILL)
    crashed = wait_for("a crash event", lambda: env.event("chat-0", "crashed", killed_at))
    restarted = wait_for("a restart", lambda: env.event("chat-0", "started", killed_at))
    assert restarted.at - killed_at <= 2 * INTERVAL_S, (restarted.at - killed_at, crashed.reason)
    assert f"process exited {victim.pid}" in crashed.reason and "restart 1/5 now" in crashed.reason
    wait_for("chat-0 ready again", lambda: env.rows()["chat-0"].phase == "ready")
    row = env.rows()["chat-0"]
    assert row.restarts == 1 and row.pid != victim.pid
    assert complete(env.gateway_port, "chat").status_code == 200


def test_a_restarted_controller_adopts_replicas_and_starts_none_twice(env: LocalFleet) -> None:
    env.apply(env.playbook())
    before = {n: r.pid for n, r in env.rows().items()}
    env.start_controller()
    wait_for("adoption", lambda: env.event("chat-1", "adopted"))
    env.stop_controller()
    env.start_controller()
    wait_for("second adoption", lambda: len([e for e in env.events() if e.kind == "adopted"]) == 4)
    time.sleep(3 * INTERVAL_S)  # let a few ticks pass: nothing may be started in them
    after = {n: r.pid for n, r in env.rows().items()}
    assert after == before
    assert not [
        e for e in env.events() if e.kind in ("started", "crashed") and e.reason.startswith("restart")
    ]
    assert len(engines_under(env.tmp / "w")) == 2
    out = env.llmctl("apply", str(env.playbook()), "-i", str(env.inventory), "--yes")
    assert out.returncode == 0 and "nothing to change" in out.stdout


def test_a_replica_that_keeps_failing_backs_off_then_is_given_up(env: LocalFleet) -> None:
    env.apply(env.playbook(scaling={"min_replicas": 1}))
    env.start_controller("--max-restarts", "2")
    row = env.rows()["chat-0"]
    assert row.pid is not None
    # Take the replica's port, then kill it: every restart now fails to bind and exits.
    os.killpg(row.pid, signal.SIGKILL)
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        wait_for("the port to free", lambda: _try_bind(squatter, row.port))
        squatter.listen()
        gave_up = wait_for("giving up", lambda: env.event("chat-0", "gave-up"), timeout=60)
    crashes = [e for e in env.events() if e.subject == "chat-0" and e.kind == "crashed"]
    assert [c.reason.split("; restart ")[-1] for c in crashes] == ["1/2 now", "2/2 in 1 s"]
    assert "restarted 2 times already" in gave_up.reason
    final = env.rows()["chat-0"]
    assert final.phase == "failed" and f"port {row.port} is already in use" in final.reason
    status = env.llmctl("status", "--json")
    assert '"phase": "failed"' in status.stdout


def _try_bind(s: socket.socket, port: int) -> bool:
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        return False
    return True


def test_restart_and_scale_go_through_the_running_controller(env: LocalFleet) -> None:
    env.apply(env.playbook(scaling={"min_replicas": 1, "max_replicas": 2}))
    env.start_controller()
    old = env.rows()["chat-0"].pid
    out = env.llmctl("restart", "chat-0", "-i", str(env.inventory))
    assert out.returncode == 0, out.stderr
    assert "the running controller" in out.stdout and "restarted: pid" in out.stdout
    wait_for(
        "chat-0 ready", lambda: env.rows()["chat-0"].phase == "ready" and env.rows()["chat-0"].pid != old
    )
    asked = time.time()
    out = env.llmctl("scale", "chat", "2")
    assert out.returncode == 0, out.stderr
    wait_for("two ready replicas", lambda: [r.phase for r in env.rows().values()] == ["ready", "ready"])
    scale = env.event("chat", "scale", asked)
    assert scale is not None and "pinned to 2 by llmctl scale" in scale.reason
    out = env.llmctl("scale", "chat", "7")
    assert out.returncode == 2 and "pick 0..2" in out.stderr


def test_stop_with_a_running_controller_stays_stopped_and_apply_wants_it_again(env: LocalFleet) -> None:
    # Old code: `llmctl stop` deleted the rows behind the controller's back, and within a tick the controller
    # started the deployment again ("chat wants 2 replica(s); chat-0 is missing").
    env.apply(env.playbook())
    env.start_controller()
    out = env.llmctl("stop", "chat", "-i", str(env.inventory))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "the running controller" in out.stdout and "every replica stopped" in out.stdout
    stopped_at = time.time()
    time.sleep(4 * INTERVAL_S)  # several ticks: none may start a replica
    assert env.rows() == {} and env.event("chat-0", "started", stopped_at) is None
    status = env.llmctl("status")
    assert "stopped (no replica wanted until the next apply): chat" in status.stdout
    out = env.llmctl("apply", str(env.playbook()), "-i", str(env.inventory), "--yes")
    assert out.returncode == 0 and "stopped, wanted again" in out.stdout, out.stdout + out.stderr
    assert [r.phase for r in env.rows().values()] == ["ready", "ready"]


def test_apply_of_a_setting_that_changes_no_command_line_is_recorded(env: LocalFleet) -> None:
    # Old code: the diff of command lines was empty, so apply said "nothing to change" and recorded nothing.
    env.apply(env.playbook(scaling={"min_replicas": 1, "max_replicas": 2, "idle_timeout_s": 300}))
    out = env.llmctl(
        "apply",
        str(env.playbook(scaling={"min_replicas": 1, "max_replicas": 2, "idle_timeout_s": 120})),
        "-i",
        str(env.inventory),
        "--yes",
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert (
        "chat: scaling.idle_timeout_s 300.0 -> 120.0" in out.stdout
        and "generation 2 reconciled" in out.stdout
    )
    spec = json.loads(env.llmctl("status", "--json").stdout)
    assert spec and all(r["phase"] == "ready" for r in spec)
