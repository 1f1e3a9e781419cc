"""Each slot's cold-start tier from its replica's phase and recorded sleep level (llmctl.reconcile.tiers),
the store's round trip of the level (migration 10), and `llmctl status --json` showing it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmctl.cli.main import app
from llmctl.perf.tiers import Tier
from llmctl.reconcile.tiers import replica_tier, sleep_tier, slot_tiers
from llmctl.spec.deployment import DesiredDeployment, ScalingSpec, Slot
from llmctl.state.desired import put_desired
from llmctl.state.records import ReplicaRow, put_replica, replicas
from llmctl.state.store import Store


def row(name: str, phase: str, level: int = 0, host: str = "a") -> ReplicaRow:
    return ReplicaRow(name, "d", host, "127.0.0.1", "0", 8000, 1, phase, "h", 0.0, 0, "", sleep_level=level)


def dep(hosts: tuple[str, ...]) -> DesiredDeployment:
    return DesiredDeployment(
        name="d",
        workload="semi-online",
        flavour="vllm",
        route="least_outstanding",
        api_key_env=None,
        scaling=ScalingSpec(0, len(hosts), "in_flight", 4, 60),
        cold_start_s=30.0,
        wake_s=1.0,
        sleep_mode=True,
        initial=0,
        slots=tuple(
            Slot(f"d-{i}", h, "127.0.0.1", (0,), 8000 + i, ("e",), {}, "h", "vllm")
            for i, h in enumerate(hosts)
        ),
    )


@pytest.mark.parametrize(
    ("phase", "level", "tier"),
    [
        ("ready", 0, Tier.RUNNING),
        ("draining", 0, Tier.RUNNING),  # it still answers what it holds
        ("sleeping", 1, Tier.ASLEEP_IN_RAM),
        ("sleeping", 2, Tier.ASLEEP_DISCARDED),
        ("waking", 2, Tier.ASLEEP_DISCARDED),  # not serving until the wake is done
        ("sleeping", 0, Tier.ASLEEP_IN_RAM),  # a row from before levels were kept slept at level 1
        ("starting", 0, Tier.ON_DISK),
        ("backoff", 0, Tier.ON_DISK),
        ("stopped", 0, Tier.ON_DISK),
    ],
)
def test_a_replica_tier_follows_its_phase_and_level(phase: str, level: int, tier: Tier) -> None:
    assert replica_tier(row("d-0", phase, level)) is tier


def test_slots_without_a_replica_stand_on_the_hosts_floor() -> None:
    d = dep(("a", "b", "c"))
    tiers = slot_tiers(d, [row("d-0", "sleeping", 2)], compile_warm_hosts={"c"})
    assert tiers == {"d-0": Tier.ASLEEP_DISCARDED, "d-1": Tier.ON_DISK, "d-2": Tier.COMPILE_WARM}
    with pytest.raises(ValueError, match="sleep level must be 1 or 2"):
        sleep_tier(3)


def test_the_sleep_level_round_trips_and_status_json_shows_the_tier(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    put_desired(store, dep(("a", "a")))
    put_replica(store, row("d-0", "sleeping", 2))
    put_replica(store, row("d-1", "ready"))
    assert [r.sleep_level for r in replicas(store)] == [2, 0]
    out = CliRunner().invoke(app, ["status", "--json", "--state", str(tmp_path / "s.db")])
    assert out.exit_code == 0, out.output
    shown = {r["name"]: (r["tier"], r["sleep_level"]) for r in json.loads(out.output)}
    assert shown == {"d-0": ("ASLEEP_DISCARDED", 2), "d-1": ("RUNNING", 0)}
