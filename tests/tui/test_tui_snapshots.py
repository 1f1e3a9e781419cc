"""SVG snapshots of the main screens against the seeded store with a frozen clock (regenerate with
`pytest tests/tui/test_tui_snapshots.py --snapshot-update` after a deliberate change, and look at them)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.app import App
from textual.pilot import Pilot
from tui_seed import NOW, seed_demo

import llmctl.tui.app
from llmctl.tui.app import DashboardApp
from llmctl.tui.screens.scale import ScaleScreen

SnapCompare = Callable[..., bool]


def make_app(tmp_path: Path) -> DashboardApp:
    store = seed_demo(tmp_path / "state.db")
    return DashboardApp(store, now=lambda: NOW, refresh_s=None, scenarios_dir=tmp_path / "no-scenarios")


async def loaded(pilot: Pilot[Any]) -> None:
    """Wait until the screen stops changing: the refresh worker has finished, and so have the updates it
    starts after a refresh (a table following its cursor scrolls, the replica table follows the highlighted
    deployment). On a loaded machine those land a frame or two later; a single pause raced them."""
    previous = ""
    for _ in range(50):
        await pilot.app.workers.wait_for_complete()
        await pilot.wait_for_scheduled_animations()
        await pilot.pause()
        current = re.sub(r"terminal-[0-9a-z-]+", "terminal", pilot.app.export_screenshot())
        if current == previous:
            return
        previous = current
    raise AssertionError("the screen never settled")


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
@pytest.mark.parametrize(
    "keys", [(), ("f",), ("e",), ("tab", "enter")], ids=["deployments", "fleet", "events", "replica"]
)
def test_screen_snapshot(
    snap_compare: SnapCompare, tmp_path: Path, keys: tuple[str, ...], size: tuple[int, int]
) -> None:
    async def shown(pilot: Pilot[Any]) -> None:
        await loaded(pilot)
        for key in keys:
            await pilot.press(key)
            await loaded(pilot)

    assert snap_compare(make_app(tmp_path), terminal_size=size, run_before=shown)


class DialogHost(App[None]):
    """The scale dialog alone, with the dashboard's styles. Over the dashboard, the 80-column deployments table
    behind it was now and then drawn scrolled sideways (about 1 run in 5 on a loaded machine), which made this
    snapshot flaky; the dialog is what this snapshot is about (test_tui_actions opens it with `S`)."""

    CSS_PATH = str(Path(llmctl.tui.app.__file__).with_name(DashboardApp.CSS_PATH))  # type: ignore[arg-type]

    def on_mount(self) -> None:
        self.push_screen(ScaleScreen("batch", 2, 2))


def test_scale_dialog_snapshot(snap_compare: SnapCompare) -> None:
    assert snap_compare(DialogHost(), terminal_size=(80, 24), run_before=loaded)
