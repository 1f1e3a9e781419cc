"""The fleet screen before any facts are gathered (issue #17): `llmctl demo` applies the local demo on a
host with four declared GPUs and never runs `hosts facts`; the fleet screen said "1 hosts, 0 GPUs" while the
deployments screen showed replicas on GPUs 0-3. The GPUs come from the applied plan's slots."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable, Label
from tui_seed import NOW

from llmctl.planning import plan_and_desired
from llmctl.state.desired import put_desired
from llmctl.state.records import ReplicaRow, put_replica
from llmctl.state.store import Store
from llmctl.tui.app import DashboardApp
from llmctl.tui.data import DECLARED_NOTE, SnapshotReader
from llmctl.tui.screens.fleet import FleetScreen

ROOT = Path(__file__).resolve().parents[2]


def demo_store(path: Path) -> Path:
    """The local demo as `llmctl demo` leaves it: desired deployments and ready replicas, no host facts."""
    plan, desired = plan_and_desired(ROOT / "playbooks/local-demo.yaml", ROOT / "inventory/local.yaml")
    store = Store(path)
    with store.transaction():
        for d in desired:
            put_desired(store, d)
        for r in plan.replicas:
            gpus = ",".join(map(str, r.gpu_indices))
            row = ReplicaRow(
                r.name, r.deployment, r.host, r.address, gpus, r.port, 4242, "ready", "h", NOW, 0, ""
            )
            put_replica(store, row)
    assert store.all_facts() == {}
    store.close()
    return path


def test_declared_gpus_and_their_holders_without_facts(tmp_path: Path) -> None:
    store = Store(demo_store(tmp_path / "state.db"))
    (host,) = SnapshotReader().read(store, NOW).hosts
    store.close()
    assert host.name == "local" and host.fact_age_s is None
    assert [(g.index, g.name, g.replica, g.declared) for g in host.gpus] == [
        (0, "H100-SXM", "chat-0", True),
        (1, "H100-SXM", "chat-0", True),
        (2, "H100-SXM", "enrich-0", True),
        (3, "H100-SXM", "summarise-0", True),
    ]
    assert host.notes == (DECLARED_NOTE,)


async def test_fleet_screen_lists_declared_gpus_in_the_singular(tmp_path: Path) -> None:
    app = DashboardApp(demo_store(tmp_path / "state.db"), now=lambda: NOW, refresh_s=None)
    async with app.run_test(size=(120, 36)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("f")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, FleetScreen)
        assert str(screen.sub_title).startswith("1 host, 4 GPUs,")
        hosts = screen.query_one("#hosts", DataTable)
        assert [str(c) for c in hosts.get_row("local")][3:6] == [
            "4/4",
            "-",
            "-",
        ]  # held; memory, util unknown
        gpus = screen.query_one("#gpus", DataTable)
        rows = [[str(c) for c in gpus.get_row_at(i)] for i in range(gpus.row_count)]
        assert [(r[1], r[5], r[6]) for r in rows] == [
            ("H100-SXM", "-", "chat-0"),
            ("H100-SXM", "-", "chat-0"),
            ("H100-SXM", "-", "enrich-0"),
            ("H100-SXM", "-", "summarise-0"),
        ]
        assert DECLARED_NOTE in str(screen.query_one("#gpus-title", Label).content)
