"""GPU pools on the dashboard (issue #18), driven with Pilot against a seeded store: pool `a` on gpu-p's four
GPUs, chat holding three and burst asleep on the last, with the pool's decisions as the controller records
them (tui_seed.seed_pool); and the same screens on a fleet without pools, where nothing of it shows."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import DataTable, Label
from tui_seed import NOW, seed_pool

from llmctl.tui.app import DashboardApp
from llmctl.tui.screens.events import EventsScreen
from llmctl.tui.screens.fleet import FleetScreen

SnapCompare = Callable[..., bool]


def pool_app(tmp_path: Path) -> DashboardApp:
    store = seed_pool(tmp_path / "state.db")
    return DashboardApp(store, now=lambda: NOW, refresh_s=None, scenarios_dir=tmp_path / "no-scenarios")


def cells(table: DataTable[object]) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def title(screen: FleetScreen | EventsScreen, selector: str) -> str:
    return str(screen.query_one(selector, Label).content)


async def fleet(app: DashboardApp, pilot: Pilot[Any]) -> FleetScreen:
    await app.workers.wait_for_complete()
    await pilot.press("f")
    await pilot.pause()
    screen = app.screen
    assert isinstance(screen, FleetScreen)
    return screen


async def test_the_pool_its_holders_and_its_decisions_on_the_fleet_screen(tmp_path: Path) -> None:
    app = pool_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await fleet(app, pilot)
        assert all(screen.query_one(s).display for s in FleetScreen.POOL_WIDGETS)
        assert title(screen, "#pools-title") == "Pools — 1 pool, 4 GPUs, 0 free"
        assert cells(screen.query_one("#pools", DataTable)) == [
            ["a", "chat p2 3/1-4, burst p1 1/0-1", "4/4", "0", "burst-3 on gpu-p:3"]
        ]
        assert title(screen, "#gpus-title") == "GPUs on gpu-p"
        assert [r[6] for r in cells(screen.query_one("#gpus", DataTable))] == [
            "chat-0 (pool a, ready)",
            "chat-1 (pool a, ready)",
            "chat-2 (pool a, ready)",
            "burst-3 (pool a, sleeping)",
        ]
        assert title(screen, "#pool-events-title").startswith("Pool events — a (on gpu-p)")
        events = cells(screen.query_one("#pool-events", DataTable))
        assert [(r[1], r[2], r[3]) for r in events] == [
            ("a", "burst-2", "pool-preempt"),
            ("a", "chat", "pool-wait"),
            ("a", "chat", "pool-grant"),
            ("a", "chat", "pool-refuse"),
        ]
        assert events[2][4] == "pool a: chat replica 3 toward its target 3 (target; gpu-p:2 -> chat-2)"

        await pilot.press("down")  # gpu-x: in no pool, its GPUs read as on any fleet
        await pilot.pause()
        assert title(screen, "#gpus-title") == "GPUs on gpu-x"
        assert [r[6] for r in cells(screen.query_one("#gpus", DataTable))] == ["embed-0", "free"]
        assert title(screen, "#pool-events-title") == "Pool events — gpu-x is in no pool"
        assert screen.query_one("#pool-events", DataTable).row_count == 0


async def test_a_fleet_without_pools_shows_no_pool_section(app: DashboardApp) -> None:
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await fleet(app, pilot)
        assert not any(screen.query_one(s).display for s in FleetScreen.POOL_WIDGETS)
        assert [r[6] for r in cells(screen.query_one("#gpus", DataTable))][:2] == ["chat-0", "chat-0"]
        await pilot.press("e")
        await pilot.pause()
        assert "p" not in app.screen.active_bindings  # no pool events: no pool filter offered
        before = app.screen.query_one("#events", DataTable).row_count
        await pilot.press("p")
        await pilot.pause()
        assert app.screen.query_one("#events", DataTable).row_count == before


async def test_p_shows_the_pool_events_alone_and_back(tmp_path: Path) -> None:
    app = pool_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("e")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, EventsScreen)
        assert "p" in screen.active_bindings
        table = screen.query_one("#events", DataTable)
        assert [r[2] for r in cells(table)] == [
            "ready", "pool-preempt", "pool-wait", "pool-grant", "pool-refuse", "ready",
        ]  # fmt: skip
        await pilot.press("p")
        await pilot.pause()
        assert [r[2] for r in cells(table)] == ["pool-preempt", "pool-wait", "pool-grant", "pool-refuse"]
        assert str(screen.sub_title).startswith("4 pool events shown")
        await pilot.press("slash", *"burst", "enter")  # the word filter narrows the pool events further
        await pilot.pause()
        assert [(r[1], r[2]) for r in cells(table)] == [("burst-2", "pool-preempt")]
        await pilot.press("escape", "p")
        await pilot.pause()
        assert table.row_count == 6 and str(screen.sub_title).startswith("6 events shown")


def test_fleet_with_a_pool_snapshot(snap_compare: SnapCompare, tmp_path: Path) -> None:
    from test_tui_snapshots import loaded

    async def shown(pilot: Pilot[Any]) -> None:
        await loaded(pilot)
        await pilot.press("f")
        await loaded(pilot)

    assert snap_compare(pool_app(tmp_path), terminal_size=(120, 40), run_before=shown)
