"""The dashboard app: switches between the screens, refreshes the snapshot in a worker thread on an
interval, and turns confirmed actions into intents (or, for apply, a `llmctl apply --yes` subprocess)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen

from llmctl.state import intents
from llmctl.state.store import Store, default_path
from llmctl.tui.data import DeploymentView, Snapshot, SnapshotReader
from llmctl.tui.screens.apply import ApplyScreen
from llmctl.tui.screens.base import SnapshotScreen
from llmctl.tui.screens.command_output import CommandOutputScreen
from llmctl.tui.screens.confirm import ConfirmScreen
from llmctl.tui.screens.deployments import DeploymentsScreen
from llmctl.tui.screens.events import EventsScreen
from llmctl.tui.screens.fleet import FleetScreen
from llmctl.tui.screens.help import HelpScreen
from llmctl.tui.screens.replica import ReplicaScreen
from llmctl.tui.screens.scale import ScaleScreen
from llmctl.tui.screens.simulation import SimulationScreen
from llmctl.tui.sim_adapter import ScenarioRunner, run_scenario

REFRESH_S = 2.0
LLMCTL = (sys.executable, "-m", "llmctl.cli.main")
DEFAULT_SCENARIOS = Path(__file__).resolve().parents[2] / "sim" / "scenarios"
REPLICA_ACTIONS = {
    "restart": "Restart",
    "stop": "Stop",
    "sleep": "Put to sleep",
    "wake": "Wake",
}


class DashboardApp(App[None]):
    CSS_PATH = "dashboard.tcss"
    TITLE = "llmctl"
    MODES: ClassVar[dict[str, str | Callable[[], Screen[Any]]]] = {
        "fleet": FleetScreen,
        "deployments": DeploymentsScreen,
        "events": EventsScreen,
        "simulation": SimulationScreen,
    }
    DEFAULT_MODE = "deployments"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f", "switch_mode('fleet')", "Fleet"),
        Binding("d", "switch_mode('deployments')", "Deploys"),
        Binding("e", "switch_mode('events')", "Events"),
        Binding("s", "switch_mode('simulation')", "Sim"),
        Binding("a", "apply", "Apply"),
        Binding("question_mark", "help", "Help"),
        Binding("ctrl+r", "refresh_now", "Refresh", show=False),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        state: Path | None = None,
        *,
        inventory: Path = Path("inventory/local.yaml"),
        playbook: Path = Path("playbooks/local-demo.yaml"),
        now: Callable[[], float] = time.time,
        refresh_s: float | None = REFRESH_S,
        scenarios_dir: Path = DEFAULT_SCENARIOS,
        sim_runner: ScenarioRunner = run_scenario,
        llmctl_argv: Sequence[str] = LLMCTL,
    ) -> None:
        super().__init__()
        self.state = default_path() if state is None else state  # resolve $LLMCTL_STATE once
        self.inventory = inventory
        self.playbook = playbook
        self.now = now
        self.refresh_s = refresh_s
        self.scenarios_dir = scenarios_dir
        self.sim_runner = sim_runner
        self.llmctl_argv = tuple(llmctl_argv)
        self.reader = SnapshotReader()
        self.snapshot = Snapshot(now=now())
        self.refreshes = 0  # snapshots shown so far (tests and the benchmark wait on it)

    def on_mount(self) -> None:
        self.refresh_snapshot()
        if self.refresh_s:
            self.set_interval(self.refresh_s, self.refresh_snapshot)

    # -- reading -----------------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="refresh")
    def refresh_snapshot(self) -> None:
        try:
            store = Store(self.state)
            try:
                snapshot = self.reader.read(store, self.now())
            finally:
                store.close()
        except Exception as exc:  # a bad read keeps the last snapshot
            self.call_from_thread(self.notify, f"cannot read {self.state}: {exc}", severity="error")
            return
        self.call_from_thread(self.show_snapshot, snapshot)

    def show_snapshot(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.refreshes += 1
        for screen in self.screen_stack:
            if isinstance(screen, SnapshotScreen) and screen.is_mounted:
                screen.show(snapshot)

    def action_refresh_now(self) -> None:
        self.refresh_snapshot()

    # -- actions -----------------------------------------------------------------------------------------

    def request_scale(self, dep: DeploymentView) -> None:
        current = dep.pinned if dep.pinned is not None else sum(n for p, n in dep.phases if p != "stopped")

        def chosen(arg: str | None) -> None:
            if arg is not None:
                self.submit_intent("scale", dep.name, arg)

        self.push_screen(ScaleScreen(dep.name, current, dep.slots), chosen)

    def request_replica_action(self, kind: str, replica: str) -> None:
        def confirmed(yes: bool | None) -> None:
            if yes:
                self.submit_intent(kind, replica)

        detail = "The controller carries it out; see Events for the outcome."
        self.push_screen(ConfirmScreen(f"{REPLICA_ACTIONS[kind]} {replica}?", detail), confirmed)

    @work(thread=True, group="intents")
    def submit_intent(self, kind: str, target: str, arg: str = "") -> None:
        try:
            store = Store(self.state)
            try:
                number = intents.submit(store, kind, target, arg)
            finally:
                store.close()
        except Exception as exc:  # shown to the person who asked
            self.call_from_thread(self.notify, f"{kind} {target}: {exc}", severity="error")
            return
        what = f"{kind} {target} {arg}".strip()
        self.call_from_thread(self.notify, f"requested: {what} (intent #{number})")
        self.call_from_thread(self.refresh_snapshot)

    def apply_argv(self, playbook: Path, inventory: Path) -> list[str]:
        return [
            *self.llmctl_argv,
            "apply",
            str(playbook),
            "-i",
            str(inventory),
            "--yes",
            "--state",
            str(self.state),
        ]

    def logs_argv(self, replica: str, lines: int, follow: bool = False) -> list[str]:
        return [
            *self.llmctl_argv, "logs", replica, "-n", str(lines), "-i", str(self.inventory), "--state", str(self.state),
            *(["-f"] if follow else []),
        ]  # fmt: skip

    def action_apply(self) -> None:
        def chosen(paths: tuple[Path, Path] | None) -> None:
            if paths is not None:
                argv = self.apply_argv(*paths)
                self.push_screen(CommandOutputScreen(f"llmctl apply {paths[0]}", argv), lambda _code: None)
                self.refresh_snapshot()

        self.push_screen(ApplyScreen(self.playbook, self.inventory), chosen)

    def open_replica(self, replica: str) -> None:
        self.push_screen(ReplicaScreen(replica))

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for mode, label in (("fleet", "Fleet"), ("deployments", "Deployments"), ("events", "Events")):
            yield SystemCommand(f"Go to {label}", f"Show the {label} screen", self._switcher(mode))
        yield SystemCommand("Go to Simulation", "Run and compare scenarios", self._switcher("simulation"))
        yield SystemCommand("Apply a playbook", "Run llmctl apply --yes", self.action_apply)
        yield SystemCommand("Refresh", "Read the state store now", self.refresh_snapshot)
        for dep in self.snapshot.deployments:
            yield SystemCommand(f"Scale {dep.name}", "Pin the replica count or hand back", self._scaler(dep))
            for r in dep.replicas:
                for kind, label in REPLICA_ACTIONS.items():
                    yield SystemCommand(
                        f"{label} {r.name}", f"{dep.name} on {r.row.host}", self._actor(kind, r.name)
                    )
                yield SystemCommand(f"Open {r.name}", "Replica detail and log tail", self._opener(r.name))

    def _switcher(self, mode: str) -> Callable[[], object]:
        return lambda: self.switch_mode(mode)

    def _scaler(self, dep: DeploymentView) -> Callable[[], None]:
        return lambda: self.request_scale(dep)

    def _actor(self, kind: str, replica: str) -> Callable[[], None]:
        return lambda: self.request_replica_action(kind, replica)

    def _opener(self, replica: str) -> Callable[[], None]:
        return lambda: self.open_replica(replica)
