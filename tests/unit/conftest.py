"""A Hugging Face cache laid out as huggingface_hub lays it out, in a test's own HF_HOME: what a model id outside
the catalog is resolved from, with no network (tests/conftest.py keeps every test offline)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "catalog" / "fixtures"
COMMIT = "0123456789abcdef0123456789abcdef01234567"

SeedHub = Callable[..., Path]


@pytest.fixture
def seed_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SeedHub:
    """seed_hub(repo_id, fixture=..., total_size=...) puts that repo's config.json (a fixture file, byte for
    byte) and optionally a safetensors index into HF_HOME/hub/models--org--name/snapshots/<commit>/."""
    home = tmp_path / "hf_home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def seed(repo_id: str, fixture: str, total_size: int | None = None) -> Path:
        repo = home / "hub" / ("models--" + repo_id.replace("/", "--"))
        snapshot = repo / "snapshots" / COMMIT
        snapshot.mkdir(parents=True, exist_ok=True)
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / "main").write_text(COMMIT, encoding="utf-8")
        (snapshot / "config.json").write_bytes((FIXTURES / f"{fixture}.json").read_bytes())
        if total_size is not None:
            index = {"metadata": {"total_size": total_size}, "weight_map": {}}
            (snapshot / "model.safetensors.index.json").write_text(json.dumps(index), encoding="utf-8")
        return snapshot

    return seed
