"""Resolve a playbook's `model` to its architecture: the catalog first (a cache of known facts, no I/O), else a
local Hugging Face config.json, else the model's config.json from the Hugging Face Hub (llmctl.config.hub)."""

from __future__ import annotations

import json
from pathlib import Path

from llmctl.catalog.hf_config import model_from_hf_config
from llmctl.catalog.models import Model, find_model
from llmctl.config.hub import HubError, fetch_config, looks_like_repo_id
from llmctl.config.playbook import Playbook
from llmctl.config.source import LineMap
from llmctl.errors import ConfigError, LlmctlError


def _local_total_size(directory: Path) -> int | None:
    """Exact weight bytes from a local checkpoint's safetensors index, when it has one (else the estimate)."""
    try:
        index = json.loads((directory / "model.safetensors.index.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    size = index.get("metadata", {}).get("total_size") if isinstance(index, dict) else None
    return int(size) if isinstance(size, int) and not isinstance(size, bool) and size > 0 else None


def resolve_model(name: str, base_dir: Path) -> Model:
    """Catalog entry for `name`, or the model described by `name` as a path (a directory holding config.json,
    or the config.json itself), relative paths taken from `base_dir` (the playbook's folder) then the cwd, or,
    for an `org/name` id, the Hub's config.json (and safetensors index, for the checkpoint's exact size)."""
    found = find_model(name)
    if found:
        return found
    for root in (base_dir, Path.cwd()):
        candidate = (root / name).expanduser()
        config = candidate / "config.json" if candidate.is_dir() else candidate
        if config.is_file():
            try:
                data = json.loads(config.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise LlmctlError(f"{config}: not a readable JSON config: {exc}") from None
            if not isinstance(data, dict):
                raise LlmctlError(f"{config}: a config.json must be a JSON object")
            return model_from_hf_config(name, data, _local_total_size(config.parent))
    if not looks_like_repo_id(name):
        raise LlmctlError(
            f"unknown model {name!r}: not in the catalog, no config.json at that path, and not a Hugging Face "
            "repository id (org/name)"
        )
    try:
        hub = fetch_config(name)
    except HubError as exc:
        raise LlmctlError(f"unknown model {name!r}: not in the catalog or at that path, and {exc}") from None
    try:
        return model_from_hf_config(name, hub.config, hub.total_size)
    except LlmctlError as exc:
        raise LlmctlError(f"{exc} (config.json from the Hugging Face Hub)") from None


def resolve_models(playbook: Playbook, lines: LineMap) -> dict[str, Model]:
    base = Path(playbook.file).parent if playbook.file else Path.cwd()
    out: dict[str, Model] = {}
    for i, dep in enumerate(playbook.deployments):
        if dep.model in out:
            continue
        try:
            out[dep.model] = resolve_model(dep.model, base)
        except LlmctlError as exc:
            raise ConfigError(
                lines.file, lines.line_of(("deployments", i, "model")), f"deployments[{i}].model", str(exc)
            ) from None
    return out
