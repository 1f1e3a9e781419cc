"""SVG snapshots of the main screens against the seeded store with a frozen clock (regenerate with
`pytest tests/tui/test_tui_snapshots.py --snapshot-update` after a deliberate change, and look at them)."""

from __future__ import annotations

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
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
@pytest.mark.parametrize(
    "keys", [(), ("f",), ("e",), ("tab", "enter")], ids=["deployments", "fleet", "events", "replica"]
)
def test_screen_snapshot(
    snap_compare: SnapCompare, tmp_path: Path, keys: tuple[str, ...], size: tuple[int, int]
) -> None:
    assert snap_compare(make_app(tmp_path), press=keys, terminal_size=size, run_before=loaded)


def test_scale_dialog_snapshot(snap_compare: SnapCompare, tmp_path: Path) -> None:
    assert snap_compare(make_app(tmp_path), press=("S",), terminal_size=(80, 24), run_before=loaded)
