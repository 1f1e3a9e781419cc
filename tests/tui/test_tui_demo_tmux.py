"""The README's local demo in a real terminal: `llmctl demo` inside tmux rolls out, sends traffic and ends in
the live dashboard, with the controller and traffic still running; a person sees every deployment ready
and serving, restarts a replica from the dashboard, watches the controller do it, and quits, which stops
everything."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmctl.testing.local_fleet import engines_under, free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)"),
]


def screen(session: str) -> str:
    return subprocess.run(
        ["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True
    ).stdout


def wait_for(session: str, *texts: str, timeout: float = 90.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        s = screen(session)
        if all(t in s for t in texts):
            return s
        if time.monotonic() > deadline:
            raise AssertionError(f"{texts} not on screen after {timeout:g} s:\n{s}")
        time.sleep(0.2)


def send(session: str, *keys: str) -> None:
    subprocess.run(["tmux", "send-keys", "-t", session, *keys], check=True)


def test_demo_ends_in_a_live_dashboard_that_steers_the_controller(tmp_path: Path) -> None:
    session = f"llmctl-demo-{tmp_path.name}"[:60]
    state = tmp_path / "demo.db"
    command = (
        f"cd {tmp_path} && {sys.executable} -m llmctl.cli.main demo --duration 2 --tui "
        f"--state {state} --gateway-port {free_port()}; echo DEMO-EXITED; sleep 600"
    )
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "48", command],
        check=True,
        env={"PATH": "/usr/bin:/bin", "TERM": "xterm-256color", "HOME": str(tmp_path)},
    )
    try:
        # The dashboard opens on Deployments with all three of the demo's deployments ready.
        shown = wait_for(session, "Deployments", "chat", "enrich", "summarise", "1 ready")
        assert "S Scale" in shown
        send(session, "e")
        wait_for(session, "Events", "adopted")  # the controller started beside the dashboard took over
        send(session, "d")
        wait_for(session, "Replicas of")
        send(session, "Tab")
        asked = None
        for _ in range(20):  # keys sent while the screen is still switching are lost: ask until it asks back
            send(session, "r")
            try:
                asked = re.search(r"Restart (\S+)\?", wait_for(session, "carries it out", timeout=1.0))
                break
            except AssertionError:
                continue
        assert asked, screen(session)
        name = asked.group(1)
        send(session, "y")
        send(session, "e")
        wait_for(session, "restart-done", name, timeout=60)  # carried out by the running controller
        send(session, "q")
        wait_for(session, "DEMO-EXITED", "replicas stopped", timeout=120)
        assert name.split("-")[0] in ("chat", "enrich", "summarise")
        assert engines_under(tmp_path / ".llmctl") == []  # the replicas ran under HOME=tmp_path
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
        # Whatever happened above, leave no engine running (the demo was cut short if the test failed).
        inventory = Path(__file__).resolve().parents[2] / "inventory" / "local.yaml"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "llmctl.cli.main",
                "stop",
                "--all",
                "--state",
                str(state),
                "-i",
                str(inventory),
            ],
            capture_output=True,
            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        )
