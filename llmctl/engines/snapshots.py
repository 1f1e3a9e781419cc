"""Loads the packaged engine flag snapshots (llmctl/engines/flags/<engine>-<version>.json). Edge: file I/O."""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Literal, get_args

from llmctl.engines.flagspec import FlagSpec
from llmctl.errors import LlmctlError

Engine = Literal["vllm", "sglang"]
ENGINES: tuple[str, ...] = get_args(Engine)

# The engine releases llmctl is tested against; a snapshot of another version may sit beside them.
PINNED_VERSIONS: dict[str, str] = {"vllm": "0.33.0", "sglang": "0.5.23"}


def known_versions(engine: str) -> tuple[str, ...]:
    """Versions with a packaged snapshot for `engine`, oldest first; LlmctlError for an unknown engine."""
    if engine not in ENGINES:
        raise LlmctlError(f"unknown engine {engine!r}; known engines: {', '.join(ENGINES)}")
    prefix = f"{engine}-"
    found = [
        entry.name.removeprefix(prefix).removesuffix(".json")
        for entry in resources.files("llmctl.engines.flags").iterdir()
        if entry.name.startswith(prefix) and entry.name.endswith(".json")
    ]
    return tuple(sorted(found, key=_version_key))


def load_flagspec(engine: Engine, version: str | None = None) -> FlagSpec:
    """The flags of `engine` at `version` (default: the pinned one); cached, so call it freely."""
    return _load(engine, version or PINNED_VERSIONS.get(engine, ""))


@functools.cache
def _load(engine: str, version: str) -> FlagSpec:
    versions = known_versions(engine)
    if version not in versions:
        known = ", ".join(versions) or "none"
        raise LlmctlError(f"no flag snapshot for {engine} {version}; known {engine} versions: {known}")
    text = resources.files("llmctl.engines.flags").joinpath(f"{engine}-{version}.json").read_text("utf-8")
    try:
        spec = FlagSpec.from_snapshot(json.loads(text))
    except ValueError as e:
        raise LlmctlError(f"packaged flag snapshot {engine}-{version}.json is broken: {e}") from e
    if (spec.engine, spec.version) != (engine, version):
        raise LlmctlError(f"{engine}-{version}.json holds flags of {spec.engine} {spec.version}")
    return spec


def _version_key(version: str) -> tuple[tuple[int, str], ...]:
    return tuple((int(p), "") if p.isdigit() else (-1, p) for p in version.split("."))
