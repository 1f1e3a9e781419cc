"""Load a playbook and an inventory from disk and plan them: the edge around the pure planner, shared by
`llmctl plan`, `llmctl provision` and (later) `llmctl apply`."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from llmctl.config.inventory import Inventory, load_inventory
from llmctl.config.models import resolve_models
from llmctl.config.playbook import read_playbook
from llmctl.engines.snapshots import Engine, load_flagspec
from llmctl.planner import Plan, needed_flagspecs, plan_playbook
from llmctl.planner.placement import GpuFacts
from llmctl.spec.deployment import DesiredDeployment
from llmctl.spec.from_plan import desired_from_plan


def plan_files(
    playbook_path: str | Path, inventory: str | Path | Inventory, facts: GpuFacts | None = None
) -> Plan:
    return plan_and_desired(playbook_path, inventory, facts)[0]


def plan_and_desired(
    playbook_path: str | Path, inventory: str | Path | Inventory, facts: GpuFacts | None = None
) -> tuple[Plan, list[DesiredDeployment]]:
    """The plan, and each deployment's desired state as `llmctl apply` records it for the controller."""
    playbook, lines = read_playbook(playbook_path)
    inv = inventory if isinstance(inventory, Inventory) else load_inventory(inventory)
    models = resolve_models(playbook, lines)
    specs = {
        (engine, version): load_flagspec(cast(Engine, engine), version)
        for engine, version in needed_flagspecs(playbook)
    }
    plan = plan_playbook(playbook, inv, models, specs, facts=facts, lines=lines)
    return plan, desired_from_plan(playbook, plan)
