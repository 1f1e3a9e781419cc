"""Fetch a model's config.json (and its safetensors index) from the Hugging Face Hub: the edge around the pure
config -> Model mapping (llmctl.catalog.hf_config).

Files come through `huggingface_hub.hf_hub_download`, so they land in (and are read back from) the standard
Hugging Face cache (HF_HOME, HF_HUB_CACHE); HF_TOKEN is used for gated repositories, and HF_HUB_OFFLINE=1
reads the cache only. The environment is read on each call, not at import, so a test or a shell that sets it
after start-up is honoured. Every failure is one line saying why, never a traceback.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmctl.errors import LlmctlError

# A checkpoint of several safetensors files lists them here; metadata.total_size is the exact weight bytes.
INDEX_FILE = "model.safetensors.index.json"
_TRUE = ("1", "true", "yes", "on")


class HubError(LlmctlError):
    """The model could not be had from the Hub; the message is the reason, to follow 'unknown model X: '."""


@dataclass(frozen=True)
class HubConfig:
    config: dict[str, Any]
    total_size: int | None  # bytes of all weights, from the safetensors index; None without one


def looks_like_repo_id(name: str) -> bool:
    """`org/name`: what the Hub serves. Paths (./x, /x, ~/x, a/b/c, x.json) are not asked for."""
    if name.startswith((".", "/", "~")) or name.endswith(".json") or "\\" in name:
        return False
    parts = name.split("/")
    return len(parts) == 2 and all(parts)


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def _cache_dir() -> str | None:
    # huggingface_hub fixes its cache path when first imported; read the variables now instead.
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return str(Path(os.environ["HF_HOME"]) / "hub")
    return None


def _download(repo_id: str, filename: str) -> str:
    from huggingface_hub import hf_hub_download  # imported on use: planning a catalog model needs none of it

    # huggingface_hub logs each retry of an unreachable hub as a warning; the failure is reported once, here.
    logger = logging.getLogger("huggingface_hub")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        path = hf_hub_download(
            repo_id,
            filename,
            cache_dir=_cache_dir(),
            local_files_only=offline(),
            token=os.environ.get("HF_TOKEN") or None,
        )
    finally:
        logger.setLevel(level)
    return str(path)


def _reason(repo_id: str, filename: str, exc: Exception) -> str:
    """One line for a failed download; the exception classes are huggingface_hub's."""
    from huggingface_hub import errors

    token = bool(os.environ.get("HF_TOKEN"))
    if isinstance(exc, errors.GatedRepoError):
        if token:
            return f"{repo_id} is gated on the Hugging Face Hub and HF_TOKEN's account has not been granted access"
        return f"{repo_id} is gated on the Hugging Face Hub: accept its licence there and set HF_TOKEN"
    if isinstance(exc, errors.RepositoryNotFoundError):
        hint = "" if token else " (a private repository needs HF_TOKEN)"
        return f"no repository {repo_id} on the Hugging Face Hub{hint}"
    if isinstance(exc, errors.RevisionNotFoundError):
        return f"{repo_id} has no main revision on the Hugging Face Hub"
    if isinstance(exc, errors.OfflineModeIsEnabled) or (
        isinstance(exc, errors.LocalEntryNotFoundError) and offline()
    ):
        return (
            f"{repo_id}/{filename} is not in the Hugging Face cache and HF_HUB_OFFLINE=1 forbids fetching it"
        )
    if isinstance(exc, errors.LocalEntryNotFoundError):
        return f"the Hugging Face Hub cannot be reached and {repo_id}/{filename} is not in the local cache"
    if isinstance(exc, errors.EntryNotFoundError | errors.RemoteEntryNotFoundError):
        return f"{repo_id} on the Hugging Face Hub has no {filename}"
    if isinstance(exc, errors.HFValidationError):
        return f"{repo_id!r} is not a valid Hugging Face repository id"
    if isinstance(exc, errors.HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", None)
        return f"the Hugging Face Hub refused {repo_id}/{filename} (HTTP {status or '?'})"
    if isinstance(exc, ConnectionError | TimeoutError):
        return f"the Hugging Face Hub cannot be reached for {repo_id}: {exc}"
    if isinstance(exc, OSError):
        return f"cannot read or write the Hugging Face cache for {repo_id}: {exc.strerror or exc}"
    return f"fetching {repo_id}/{filename} from the Hugging Face Hub failed: {type(exc).__name__}: {exc}"


def _read_json(path: str, what: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HubError(f"{what} from the Hugging Face Hub is not readable JSON: {exc}") from None
    if not isinstance(data, dict):
        raise HubError(f"{what} from the Hugging Face Hub is not a JSON object")
    return data


def fetch_config(repo_id: str) -> HubConfig:
    """config.json of `repo_id`, and its safetensors index's total size where the checkpoint has one.

    Raises HubError when config.json cannot be had; a missing or unreadable index only leaves the size unknown
    (single-file checkpoints have none)."""
    try:
        config = _read_json(_download(repo_id, "config.json"), f"{repo_id}/config.json")
    except HubError:
        raise
    except Exception as exc:  # huggingface_hub and requests/httpx raise many kinds; each becomes one line
        raise HubError(_reason(repo_id, "config.json", exc)) from None
    total: int | None = None
    try:
        index = _read_json(_download(repo_id, INDEX_FILE), f"{repo_id}/{INDEX_FILE}")
        size = (
            index.get("metadata", {}).get("total_size") if isinstance(index.get("metadata"), dict) else None
        )
        if isinstance(size, int | float) and not isinstance(size, bool) and size > 0:
            total = int(size)
    except Exception:  # no index (one-file checkpoint), or not cached while offline: the estimate stands
        total = None
    return HubConfig(config, total)
