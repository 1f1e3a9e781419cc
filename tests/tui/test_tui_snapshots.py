"""SVG snapshots of the main screens against the seeded store with a frozen clock (regenerate with
`pytest tests/tui/test_tui_snapshots.py --snapshot-update` after a deliberate change, and look at them)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from tui_seed import NOW, seed_demo

from llmctl.tui.app import DashboardApp

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


def test_scale_dialog_snapshot(snap_compare: SnapCompare, tmp_path: Path) -> None:
    async def dialog_open(pilot: Pilot[Any]) -> None:
        await loaded(pilot)
        await pilot.press("S")
        await loaded(pilot)

    assert snap_compare(make_app(tmp_path), terminal_size=(80, 24), run_before=dialog_open)
