"""Every action asks first; confirming queues exactly one intent (kind, target, arg) in the store, and
cancelling queues nothing. Apply runs `llmctl apply PLAYBOOK -i INVENTORY --yes` as a subprocess."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Log
from tui_seed import NOW

from llmctl.state.intents import Intent, recent
from llmctl.state.store import Store
from llmctl.tui.app import DashboardApp
from llmctl.tui.screens.command_output import CommandOutputScreen
from llmctl.tui.screens.confirm import ConfirmScreen
from llmctl.tui.screens.scale import ScaleScreen, parse_replicas

SEEDED_INTENTS = 3


def new_intents(path: Path) -> list[Intent]:
    store = Store(path)
    try:
        return [i for i in reversed(recent(store, 100)) if i.id > SEEDED_INTENTS]
    finally:
        store.close()


async def settle(app: DashboardApp) -> None:
    await app.workers.wait_for_complete()
    await app.workers.wait_for_complete()


async def select_replica(
    app: DashboardApp, pilot: Pilot[None], deployment_row: int, replica_row: int
) -> None:
    await settle(app)
    deps = app.screen.query_one("#deployments", DataTable)
    deps.move_cursor(row=deployment_row)
    await pilot.pause()  # the replica table follows the highlighted deployment
    reps = app.screen.query_one("#replicas", DataTable)
    reps.focus()
    reps.move_cursor(row=replica_row)


@pytest.mark.parametrize(
    ("key", "kind", "deployment_row", "replica_row", "target"),
    [
        ("r", "restart", 0, 1, "batch-1"),
        ("x", "stop", 2, 0, "chat-0"),
        ("w", "wake", 1, 0, "burst-0"),
    ],
)
async def test_replica_action_confirmed_queues_the_intent(
    app: DashboardApp,
    seeded_store: Path,
    key: str,
    kind: str,
    deployment_row: int,
    replica_row: int,
    target: str,
) -> None:
    async with app.run_test(size=(120, 36)) as pilot:
        await select_replica(app, pilot, deployment_row, replica_row)
        await pilot.pause()
        await pilot.press(key)
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        assert target in app.screen.question
        await pilot.press("y")
        await settle(app)
        await pilot.pause()
    intents = new_intents(seeded_store)
    assert [(i.kind, i.target, i.arg, i.state) for i in intents] == [(kind, target, "", "pending")]


async def test_an_intent_the_controller_would_refuse_is_refused_at_once(
    app: DashboardApp, seeded_store: Path
) -> None:
    # chat's engine runs without sleep mode: the TUI is told at once, by the rules the controller applies.
    async with app.run_test(size=(120, 36)) as pilot:
        await select_replica(app, pilot, 2, 1)
        await pilot.pause()
        await pilot.press("z")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen) and "chat-1" in app.screen.question
        await pilot.press("y")
        await settle(app)
        await pilot.pause()
        said = [n.message for n in app._notifications]
    assert new_intents(seeded_store) == []
    assert any("sleep chat-1" in m and "without sleep mode" in m for m in said), said


@pytest.mark.parametrize("cancel", ["n", "escape", "click-no"])
async def test_replica_action_cancelled_queues_nothing(
    app: DashboardApp, seeded_store: Path, cancel: str
) -> None:
    async with app.run_test(size=(120, 36)) as pilot:
        await select_replica(app, pilot, 2, 0)
        await pilot.press("r")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        if cancel == "click-no":
            await pilot.click("#no")
        else:
            await pilot.press(cancel)
        await settle(app)
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
    assert new_intents(seeded_store) == []


async def test_replica_detail_actions_target_that_replica(app: DashboardApp, seeded_store: Path) -> None:
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app)
        app.open_replica("chat-1")
        await pilot.pause()
        await pilot.press("r")
        await pilot.pause()
        await pilot.click("#yes")
        await settle(app)
    assert [(i.kind, i.target) for i in new_intents(seeded_store)] == [("restart", "chat-1")]


async def test_scale_confirmed_queues_the_count(app: DashboardApp, seeded_store: Path) -> None:
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app)
        app.screen.query_one("#deployments", DataTable).move_cursor(row=2)  # chat
        await pilot.press("S")
        await pilot.pause()
        assert isinstance(app.screen, ScaleScreen)
        assert app.screen.query_one("#replicas", Input).value == "2"
        await pilot.press("9", "enter")  # replaces the selected "2"; more than its 2 slots
        await pilot.pause()
        assert isinstance(app.screen, ScaleScreen)  # refused, still asking
        await pilot.press("backspace", "1", "enter")
        await settle(app)
        await pilot.pause()
        assert not isinstance(app.screen, ScaleScreen)
    assert [(i.kind, i.target, i.arg) for i in new_intents(seeded_store)] == [("scale", "chat", "1")]


async def test_scale_auto_and_cancel(app: DashboardApp, seeded_store: Path) -> None:
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app)
        await pilot.press("S")
        await pilot.pause()
        await pilot.press("escape")
        await settle(app)
        assert new_intents(seeded_store) == []
        await pilot.press("S")
        await pilot.pause()
        app.screen.query_one("#replicas", Input).value = "auto"
        await pilot.click("#ok")
        await settle(app)
    assert [(i.kind, i.target, i.arg) for i in new_intents(seeded_store)] == [("scale", "batch", "auto")]


def test_parse_replicas() -> None:
    assert parse_replicas(" 2 ", 3) == "2"
    assert parse_replicas("AUTO", 3) == "auto"
    assert parse_replicas("4", 3) is None
    assert parse_replicas("-1", 3) is None
    assert parse_replicas("two", 3) is None


async def test_apply_runs_llmctl_apply_with_yes(seeded_store: Path, tmp_path: Path) -> None:
    playbook, inventory = tmp_path / "p.yaml", tmp_path / "i.yaml"
    playbook.write_text("deployments: []\n")
    inventory.write_text("hosts: {}\n")
    echo = ["python3", "-c", "import sys; print('ran', *sys.argv[1:])"]
    app = DashboardApp(
        seeded_store,
        now=lambda: NOW,
        refresh_s=None,
        llmctl_argv=echo,
        playbook=playbook,
        inventory=inventory,
    )
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app)
        await pilot.press("a")
        await pilot.pause()
        await pilot.press("enter")
        await settle(app)
        await pilot.pause()
        assert isinstance(app.screen, CommandOutputScreen)
        assert app.screen.returncode == 0
        line = app.screen.query_one("#output", Log).lines[0]
        assert line == f"ran apply {playbook} -i {inventory} --yes --state {seeded_store}"
    assert new_intents(seeded_store) == []


async def test_apply_refuses_missing_files_and_cancel_runs_nothing(app: DashboardApp, tmp_path: Path) -> None:
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app)
        await pilot.press("a")
        await pilot.pause()
        app.screen.query_one("#playbook", Input).value = str(tmp_path / "missing.yaml")
        await pilot.press("enter")
        await pilot.pause()
        assert "no such file" in str(app.screen.query_one("#error").render())
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, CommandOutputScreen)
        assert not [w for w in app.workers if w.group == "command"]


async def test_command_palette_offers_actions_on_the_fleet(app: DashboardApp, seeded_store: Path) -> None:
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert {"Scale chat", "Restart chat-0", "Wake burst-0", "Go to Fleet", "Apply a playbook"} <= set(
            titles
        )
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Stop chat-1")
        await pilot.wait_for_scheduled_animations()
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await settle(app)
    assert [(i.kind, i.target) for i in new_intents(seeded_store)] == [("stop", "chat-1")]
