"""Fixtures for the dashboard tests: a seeded store and an app reading it with a frozen clock and no
background refresh timer (tests refresh explicitly and wait for the worker)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tui_seed import NOW, seed_demo

from llmctl.tui.app import DashboardApp


@pytest.fixture
def seeded_store(tmp_path: Path) -> Path:
    return seed_demo(tmp_path / "state.db")


@pytest.fixture
def app(seeded_store: Path, tmp_path: Path) -> DashboardApp:
    return DashboardApp(
        seeded_store, now=lambda: NOW, refresh_s=None, scenarios_dir=tmp_path / "no-scenarios"
    )
