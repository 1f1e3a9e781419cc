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


@pytest.fixture(autouse=True, scope="session")
def no_hugging_face_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No test reaches the Hugging Face Hub: a model id outside the catalog is looked up in an empty cache of
    this session's own, offline (llmctl.config.hub reads these variables on each call)."""
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "HF_HOME", "HF_HUB_CACHE", "HF_TOKEN")}
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_HOME"] = str(tmp_path_factory.mktemp("hf_home"))
    os.environ.pop("HF_HUB_CACHE", None)
    os.environ.pop("HF_TOKEN", None)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
