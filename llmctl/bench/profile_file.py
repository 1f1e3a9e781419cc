"""Profile files (YAML or JSON): calibrated factors that `llmctl perf`, the emulator and the simulator load.

Format (both syntaxes):
    profile: vllm/meta-llama/Llama-3.1-8B-Instruct/H100-SXM/bf16/tp1
    memory_fraction: 0.9
    factors: {hbm_efficiency: 0.83, compute_efficiency: 0.61, overhead_s: 0.0012, ...}
    calibration: {points: 24, mean_rel_error: 0.03, max_rel_error: 0.08}   # informational

A profile of a local model directory names it by its path (`vllm//models/small/CPU-x86-AVX512-2c/bf16/tp1`);
the catalog does not know it, so it is resolved here from its config.json (I/O stays out of llmctl.perf).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from llmctl.catalog.models import find_model
from llmctl.config.models import resolve_model
from llmctl.errors import LlmctlError
from llmctl.perf.calibrate import CalibrationResult
from llmctl.perf.profile import (
    Profile,
    make_profile,
    parse_profile_name,
    profile_from_mapping,
    profile_to_dict,
)


def _is_json(path: Path) -> bool:
    return path.suffix.lower() == ".json"


def resolve_named_profile(name: str, base_dir: Path | None = None, **options: Any) -> Profile:
    """`llmctl.perf.profile.resolve_profile`, but a model that is not in the catalog may be a local model
    directory (relative paths from `base_dir`, then the cwd); keyword options as for `make_profile`."""
    engine, model, gpu, dtype, tp = parse_profile_name(name)
    return make_profile(engine, resolve_model(model, base_dir or Path.cwd()), gpu, dtype, tp, **options)


def load_profile_file(path: str | Path, *, base: Profile | None = None) -> Profile:
    """Read a profile file. Its keys name the profile; `base` supplies them when the file has none."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise LlmctlError(f"{p}: cannot read profile file: {exc.strerror or exc}") from None
    try:
        data: Any = json.loads(text) if _is_json(p) else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise LlmctlError(f"{p}:{exc.lineno}: invalid JSON: {exc.msg}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{p}:{mark.line + 1}" if mark is not None else str(p)
        raise LlmctlError(f"{where}: invalid YAML: {getattr(exc, 'problem', None) or exc}") from None
    name = data.get("profile") if isinstance(data, dict) else None
    if isinstance(name, str):
        try:
            model = parse_profile_name(name)[1]
            if find_model(model) is None:
                # Keyed by a local model path: the file's other keys then apply to that profile as a base.
                base = resolve_named_profile(name, p.parent)
                data = {k: v for k, v in data.items() if k != "profile"}
        except LlmctlError as exc:
            raise LlmctlError(f"{p}: {exc}") from None
    return profile_from_mapping(data, source=str(p), base=base)


def profile_file_data(profile: Profile, result: CalibrationResult | None = None) -> dict[str, Any]:
    data = profile_to_dict(profile)
    if result is not None:
        data["calibration"] = {
            "points": result.points,
            "fitted": sorted(result.fitted),
            "mean_rel_error": round(result.mean_rel_error, 6),
            "max_rel_error": round(result.max_rel_error, 6),
        }
    return data


def write_profile_file(path: str | Path, profile: Profile, result: CalibrationResult | None = None) -> None:
    p = Path(path)
    data = profile_file_data(profile, result)
    text = json.dumps(data, indent=2) + "\n" if _is_json(p) else yaml.safe_dump(data, sort_keys=False)
    try:
        p.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise LlmctlError(f"{p}: cannot write profile file: {exc.strerror or exc}") from None
