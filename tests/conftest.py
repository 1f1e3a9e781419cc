"""Keep every test away from the user's own state store and known_hosts."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="session")
def isolated_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("state") / "state.db"
    old = os.environ.get("LLMCTL_STATE")
    os.environ["LLMCTL_STATE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("LLMCTL_STATE", None)
    else:
        os.environ["LLMCTL_STATE"] = old
