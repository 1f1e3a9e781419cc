"""Resolve a playbook's `model` to its architecture: the catalog first, else a local Hugging Face config.json."""

from __future__ import annotations

import json
from pathlib import Path

from llmctl.catalog.models import MODELS, Model, find_model, model_from_hf_config
from llmctl.config.playbook import Playbook
from llmctl.config.source import LineMap
from llmctl.errors import ConfigError, LlmctlError


def resolve_model(name: str, base_dir: Path) -> Model:
    """Catalog entry for `name`, or the model described by `name` as a path (a directory holding config.json,
    or the config.json itself), relative paths taken from `base_dir` (the playbook's folder) then the cwd."""
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
            return model_from_hf_config(name, data)
    raise LlmctlError(
        f"unknown model {name!r}: not in the catalog ({', '.join(MODELS)}) and no config.json at that path"
    )


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
