"""One profile per shape: the cold start and wake-up the desired state records (the autoscaler's costs, the
simulator's delays) are the ones the emulated engine actually takes for the same command line, EAGLE-3 head
included. Before, the desired state left the draft head out and the simulator counted it without the 5%
stand-in the emulator uses for models whose head the catalog does not size."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from llmctl.config.inventory import load_inventory
from llmctl.engines.emulator.config import parse_config
from llmctl.engines.emulator.startup import cold_start_seconds, wake_seconds
from llmctl.planning import plan_and_desired


@pytest.mark.parametrize("workload", ["online", "semi-online", "offline"])
def test_desired_startup_costs_are_the_emulators(tmp_path: Path, workload: str) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_text(
        yaml.safe_dump({"hosts": {"box": {"connection": "local", "gpus": {"type": "H100-SXM", "count": 4}}}})
    )
    pb = tmp_path / "pb.yaml"
    dep = {
        "name": "chat",
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "workload": workload,
        "engine": "emulated",
    }
    pb.write_text(yaml.safe_dump({"deployments": [dep]}))
    _plan, [desired] = plan_and_desired(pb, load_inventory(inv))
    slot = desired.slots[0]
    argv = list(slot.argv)
    config = parse_config(
        argv[argv.index("--flavour") + 1], argv[argv.index("--flavour") + 2 :], dict(slot.env)
    )
    if workload == "online":
        assert config.draft_params > 0, "the online preset runs EAGLE-3: the check must cover a draft head"
    assert desired.cold_start_s == pytest.approx(cold_start_seconds(config), rel=1e-9)
    assert desired.wake_s == pytest.approx(wake_seconds(config), rel=1e-9)
