"""The real dashboard in a real terminal: `python -m llmctl.tui --state STORE` inside tmux, keys sent with
send-keys, the screen read with capture-pane (polled until the text appears, with a deadline)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tui_seed import NOW, seed_demo

from llmctl.state.intents import recent
from llmctl.state.store import Store

pytestmark = pytest.mark.skipif(
    shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)"
)
DEADLINE_S = 30.0


class Terminal:
    def __init__(self, session: str) -> None:
        self.session = session

    def send(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.session, *keys], check=True)

    def screen(self) -> str:
        out = subprocess.run(
            ["tmux", "capture-pane", "-p", "-t", self.session], capture_output=True, text=True
        )
        return out.stdout

    def wait_for(self, *texts: str) -> str:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            screen = self.screen()
            if all(t in screen for t in texts):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{texts} not on screen after {DEADLINE_S}s:\n{screen}")
            time.sleep(0.1)


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[tuple[Terminal, Path]]:
    store = seed_demo(tmp_path / "state.db")
    session = f"llmctl-tui-{tmp_path.name}"[:60]
    command = f"{sys.executable} -m llmctl.tui --state {store} --now {NOW} --refresh 0.5"
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "100", "-y", "30", command],
        check=True,
        env={"PATH": "/usr/bin:/bin", "TERM": "xterm-256color", "LLMCTL_STATE": str(store)},
    )
    try:
        yield Terminal(session), store
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def test_dashboard_in_tmux_shows_screens_and_queues_a_restart(terminal: tuple[Terminal, Path]) -> None:
    term, store = terminal
    screen = term.wait_for("Deployments", "chat", "2 ready", "1 sleeping")
    assert "S Scale" in screen and "f Fleet" in screen  # the footer lists the keys
    term.send("f")
    term.wait_for("Fleet", "gpu-a", "stale", "unknown", "GPUs on gpu-a", "chat-0")
    term.send("e")
    term.wait_for("Events", "restart #27 of batch-1", "pending")
    term.send("d")
    term.wait_for("Replicas of batch")
    term.send("Tab", "Down", "r")
    term.wait_for("Restart batch-1?")
    term.send("y")
    term.wait_for("requested: restart batch-1")
    s = Store(store)
    try:
        newest = recent(s, 1)[0]
    finally:
        s.close()
    assert (newest.kind, newest.target, newest.state) == ("restart", "batch-1", "pending")
    term.send("q")
