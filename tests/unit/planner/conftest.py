from __future__ import annotations

from collections.abc import Callable

import pytest

from llmctl.config.inventory import Inventory, parse_inventory
from llmctl.config.models import resolve_models
from llmctl.config.playbook import Playbook, parse_playbook
from llmctl.config.source import LineMap, parse_yaml
from llmctl.engines.snapshots import load_flagspec
from llmctl.planner import Plan, needed_flagspecs, plan_playbook


def inventory_from(text: str) -> Inventory:
    data, lines = parse_yaml(text, "inv.yaml")
    return parse_inventory(data, lines)


def playbook_from(text: str) -> tuple[Playbook, LineMap]:
    data, lines = parse_yaml(text, "pb.yaml")
    return parse_playbook(data, lines), lines


def plan_texts(playbook: str, inventory: str) -> Plan:
    pb, lines = playbook_from(playbook)
    inv = inventory_from(inventory)
    specs = {k: load_flagspec(*k) for k in needed_flagspecs(pb)}
    return plan_playbook(pb, inv, resolve_models(pb, lines), specs, lines=lines)


@pytest.fixture
def plan_yaml() -> Callable[[str, str], Plan]:
    return plan_texts
