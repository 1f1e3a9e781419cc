"""Each screen against the seeded store, driven with Pilot: what it shows and how it responds."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Label, Log, OptionList, Static
from tui_seed import NOW

from llmctl.state.host_checks import HostCheck, put_host_check
from llmctl.state.store import Store
from llmctl.tui.app import DashboardApp
from llmctl.tui.screens.deployments import DeploymentsScreen
from llmctl.tui.screens.events import EventsScreen
from llmctl.tui.screens.fleet import FleetScreen
from llmctl.tui.screens.help import HelpScreen
from llmctl.tui.screens.replica import ReplicaScreen
from llmctl.tui.screens.simulation import SimulationScreen
from llmctl.tui.sim_adapter import ProgressCallback, SimSummary, SimulatorUnavailable


def column(table: DataTable[object], index: int) -> list[str]:
    return [str(table.get_row_at(r)[index]) for r in range(table.row_count)]


async def settle(app: DashboardApp) -> None:
    await app.workers.wait_for_complete()
    await app.workers.wait_for_complete()  # a finished worker may have started the next (a refresh)


async def test_deployments_screen_shows_each_deployment_and_its_replicas(app: DashboardApp) -> None:
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(app)
        await pilot.pause()
        assert isinstance(app.screen, DeploymentsScreen)
        deps = app.screen.query_one("#deployments", DataTable)
        assert column(deps, 0) == ["batch", "burst", "chat"]
        assert column(deps, 1) == ["offline", "semi-online", "online"]
        chat = deps.get_row("chat")
        assert str(chat[3]) == "2 ready"
        assert str(chat[7]).endswith("/2200")  # p99 TTFT over the 500 ms target...
        assert any("red" in str(span.style) for span in chat[7].spans)  # ...is shown in red
        replicas = app.screen.query_one("#replicas", DataTable)
        assert column(replicas, 0) == ["batch-0", "batch-1"]
        await pilot.press("down", "down")
        await pilot.pause()
        assert column(replicas, 0) == ["chat-0", "chat-1"]
        assert app.screen.query_one("#label-requests_per_s", Label).content.startswith("req/s (peak")


async def test_enter_on_a_replica_opens_its_detail_with_the_command_line(app: DashboardApp) -> None:
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app)
        await pilot.press("tab", "down", "enter")
        await pilot.pause()
        assert isinstance(app.screen, ReplicaScreen)
        assert app.screen.replica == "batch-1"
        detail = str(app.screen.query_one("#replica-detail", Static).content)
        assert "vllm serve meta-llama/Llama-3.1-8B-Instruct --port 8201" in detail
        assert "CUDA out of memory" in detail and "restarts 3" in detail
        events = app.screen.query_one("#replica-events", DataTable)
        assert events.row_count == 6 and all(k == "restart" for k in column(events, 1))
        await pilot.press("escape")
        assert isinstance(app.screen, DeploymentsScreen)


async def test_replica_log_tail_comes_from_llmctl_logs(seeded_store: Path) -> None:
    echo = ["python3", "-c", "import sys; print('log of', *sys.argv[1:])"]
    app = DashboardApp(seeded_store, now=lambda: NOW, refresh_s=None, llmctl_argv=echo)
    async with app.run_test() as pilot:
        await settle(app)
        app.open_replica("chat-0")
        await pilot.pause()
        await pilot.press("l")
        await settle(app)
        await pilot.pause()
        log = app.screen.query_one("#log", Log)
        assert log.lines[0].startswith("log of logs chat-0 -n 100 -i inventory/local.yaml --state ")
        assert log.lines[0].endswith(" -f")
        assert "ended" in str(app.screen.query_one("#log-title", Label).content)


async def test_replica_log_follows_new_lines_until_stopped(seeded_store: Path, tmp_path: Path) -> None:
    """`l` streams `llmctl logs -f` line by line while it runs; `l` again kills it."""
    feed = tmp_path / "feed"
    feed.write_text("")
    # A stand-in for `llmctl logs -f`: prints each line appended to `feed`, forever.
    tail = ["python3", "-c", (
        "import sys, time\n"
        f"f = open({str(feed)!r})\n"
        "while True:\n"
        "    line = f.readline()\n"
        "    if line: print(line, end='', flush=True)\n"
        "    else: time.sleep(0.01)\n"
    )]  # fmt: skip
    app = DashboardApp(seeded_store, now=lambda: NOW, refresh_s=None, llmctl_argv=tail)
    async with app.run_test() as pilot:
        await settle(app)
        app.open_replica("chat-0")
        await pilot.pause()
        await pilot.press("l")
        screen = app.screen
        assert isinstance(screen, ReplicaScreen)
        log = screen.query_one("#log", Log)
        for n in (1, 2, 3):
            with feed.open("a") as f:
                f.write(f"line {n}\n")
            await until(pilot, lambda n=n: len(log.lines) >= n)  # type: ignore[misc]
        assert list(log.lines) == ["line 1", "line 2", "line 3"]
        proc = screen._tail
        assert proc is not None and proc.poll() is None
        await pilot.press("l")
        assert proc.wait(timeout=10) != 0  # terminated, not ended on its own
        assert "stopped" in str(screen.query_one("#log-title", Label).content)
        with feed.open("a") as f:
            f.write("line 4\n")
        await settle(app)
        assert list(log.lines) == ["line 1", "line 2", "line 3"]


async def until(pilot: Pilot[None], ready: Callable[[], bool], deadline_s: float = 10.0) -> None:
    """Pause the pilot until `ready()` holds; fail past the deadline (a stream that never arrives)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while not ready():
        assert loop.time() < end, "timed out waiting for the dashboard"
        await pilot.pause(0.02)


async def test_fleet_screen_shows_reachability_and_gpu_holders(app: DashboardApp) -> None:
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app)
        await pilot.press("f")
        await pilot.pause()
        assert isinstance(app.screen, FleetScreen)
        hosts = app.screen.query_one("#hosts", DataTable)
        assert column(hosts, 0) == ["gpu-a", "gpu-b", "gpu-c"]
        assert column(hosts, 1) == ["ok", "stale", "unknown"]
        assert column(hosts, 2) == ["20s", "2.0h", "never"]
        gpus = app.screen.query_one("#gpus", DataTable)
        assert column(gpus, 6) == ["chat-0", "chat-0", "chat-1", "chat-1", "free", "free", "free", "free"]
        await pilot.press("down")
        await pilot.pause()
        assert column(gpus, 6) == ["batch-0", "batch-1", "free", "free"]


async def test_fleet_screen_prefers_the_controllers_reachability_checks(seeded_store: Path) -> None:
    store = Store(seeded_store)
    put_host_check(store, HostCheck("gpu-b", NOW - 10, True, "3.1 ms"))  # stale facts, checked just now
    put_host_check(store, HostCheck("gpu-c", NOW - 10, False, "connection refused"))
    put_host_check(store, HostCheck("gpu-a", NOW - 3600, False, "timed out"))  # an old check says nothing
    store.close()
    app = DashboardApp(seeded_store, now=lambda: NOW, refresh_s=None)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app)
        await pilot.press("f")
        await pilot.pause()
        hosts = app.screen.query_one("#hosts", DataTable)
        assert column(hosts, 1) == ["ok", "ok", "down"]
        await pilot.press("down", "down")
        await pilot.pause()
        title = str(app.screen.query_one("#gpus-title", Label).content)
        assert title.startswith("GPUs on gpu-c") and "down: connection refused" in title


async def test_events_screen_filters_and_follows_new_events(app: DashboardApp, seeded_store: Path) -> None:
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(app)
        await pilot.press("e")
        await pilot.pause()
        assert isinstance(app.screen, EventsScreen)
        events = app.screen.query_one("#events", DataTable)
        assert events.row_count == 30
        assert events.cursor_row == 29  # following: on the newest
        intents = app.screen.query_one("#intents", DataTable)
        assert column(intents, 2) == ["scale", "sleep", "restart"]
        assert column(intents, 5) == ["pending", "done", "failed"]
        await pilot.press("slash", *"batch-1 restart")
        await pilot.pause()
        assert app.screen.query_one("#filter", Input).value == "batch-1 restart"
        assert events.row_count == 6 and set(column(events, 1)) == {"batch-1"}
        await pilot.press("escape")
        await pilot.pause()
        assert events.row_count == 30
        from tui_seed import put_event

        from llmctl.state.store import Store

        store = Store(seeded_store)
        put_event(store, NOW, "chat-0", "failed", "engine exited: OOM")
        store.close()
        await pilot.press("ctrl+r")
        await settle(app)
        await pilot.pause()
        assert events.row_count == 31 and events.cursor_row == 30
        assert events.get_row_at(30)[3] == "engine exited: OOM"


async def test_help_lists_the_keys(app: DashboardApp) -> None:
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        assert "restart the selected replica" in str(app.screen.query_one("#help-text", Static).content)
        await pilot.press("escape")
        assert isinstance(app.screen, DeploymentsScreen)


def fake_runner(summaries: list[SimSummary]) -> tuple[list[float], object]:
    seen: list[float] = []

    def run(path: Path, progress: ProgressCallback) -> SimSummary:
        for step in (0.25, 0.5, 1.0):
            progress(step)
            seen.append(step)
        return summaries.pop(0)

    return seen, run


async def test_simulation_runs_a_scenario_and_compares_with_the_previous_run(
    seeded_store: Path, tmp_path: Path
) -> None:
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    (scenarios / "bursty.yaml").write_text("{}\n")
    (scenarios / "steady.yaml").write_text("{}\n")
    runs = [
        SimSummary("bursty", {"ttft_p99_s": 0.8, "cost_usd": 120.0}, {"replicas": (1.0, 2.0, 3.0)}),
        SimSummary("steady", {"ttft_p99_s": 0.4, "cost_usd": 150.0}, {"replicas": (2.0, 2.0, 2.0)}),
    ]
    progress, runner = fake_runner(runs)
    app = DashboardApp(
        seeded_store, now=lambda: NOW, refresh_s=None, scenarios_dir=scenarios, sim_runner=runner
    )  # type: ignore[arg-type]
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("s")
        await pilot.pause()
        assert isinstance(app.screen, SimulationScreen)
        options = app.screen.query_one("#scenarios", OptionList)
        assert options.option_count == 2
        options.focus()
        await pilot.press("enter")
        await settle(app)
        await pilot.pause()
        assert progress == [0.25, 0.5, 1.0]
        summary = app.screen.query_one("#sim-summary", DataTable)
        assert summary.get_row("ttft_p99_s") == ["ttft_p99_s", "-", "800 ms", ""]
        await pilot.press("down", "enter")
        await settle(app)
        await pilot.pause()
        row = summary.get_row("cost_usd")
        assert row[:3] == ["cost_usd", "$120", "$150"] and str(row[3]) == "+25%"
        assert "done: steady (previous: bursty)" in str(app.screen.query_one("#sim-status", Label).content)


async def test_simulation_says_when_the_simulator_is_missing(seeded_store: Path, tmp_path: Path) -> None:
    (tmp_path / "one.yaml").write_text("{}\n")

    def missing(path: Path, progress: ProgressCallback) -> SimSummary:
        raise SimulatorUnavailable("simulator not available: no scenario runner (sim.scenario)")

    app = DashboardApp(
        seeded_store, now=lambda: NOW, refresh_s=None, scenarios_dir=tmp_path, sim_runner=missing
    )
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("s")
        await pilot.pause()
        app.screen.query_one("#scenarios", OptionList).focus()
        await pilot.press("enter")
        await settle(app)
        await pilot.pause()
        status = str(app.screen.query_one("#sim-status", Label).content)
        assert status.startswith("simulator not available")
