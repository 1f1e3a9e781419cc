"""Parse `amd-smi static --asic --bus --vram --json` into GPU facts. Pure: text in, GpuFacts out.

amd-smi (ROCm 6.x on) prints one object per GPU, keyed by section: {"gpu": 0, "asic": {"market_name":
"AMD Instinct MI300X", "asic_serial": ...}, "bus": {"bdf": ...}, "vram": {"type": "HBM3", "size":
{"value": 196592, "unit": "MB"}}}. Releases up to ROCm 6.4 print a JSON list of them; ROCm 7's amd-smi
wraps the list as {"gpu_data": [...]}. Its "MB" is MiB (an MI300X's 192 GiB reads 196592 to 196608).
Static data carries no use or load: those read 0.
"""

from __future__ import annotations

import json
from typing import Any

from llmctl.catalog.gpus import find_gpu
from llmctl.fleet.facts_parse import GpuFact

_TO_MIB = {"b": 1 / 2**20, "kb": 1 / 1024, "kib": 1 / 1024, "mb": 1, "mib": 1, "gb": 1024, "gib": 1024}


def _json(text: str) -> Any:
    # Some builds print a warning line before the JSON (a missing driver module, a deprecation): skip to it.
    starts = [i for i in (text.find("["), text.find("{")) if i >= 0]
    if not starts:
        raise ValueError("amd-smi printed no JSON")
    try:
        return json.loads(text[min(starts) :])
    except json.JSONDecodeError as exc:
        raise ValueError(f"amd-smi output is not JSON: {exc}") from None


def _mib(size: Any) -> int:
    """A size as amd-smi gives it: {"value": N, "unit": "MB"}, a bare number (MB), or "N MB"."""
    value: Any
    if isinstance(size, dict):
        value, unit = size.get("value"), str(size.get("unit", "MB"))
    elif isinstance(size, str) and " " in size.strip():
        value, unit = size.split()[0], size.split()[1]
    else:
        value, unit = size, "MB"
    try:
        return int(float(value) * _TO_MIB.get(unit.strip().lower(), 1))
    except (TypeError, ValueError):
        return 0  # "N/A": unknown, as nvidia-smi's [N/A]


def parse_amd_smi_static(text: str) -> tuple[GpuFact, ...]:
    data = _json(text)
    if isinstance(data, dict):
        data = data.get("gpu_data", [data] if "asic" in data else [])
    if not isinstance(data, list):
        raise ValueError("amd-smi static: expected a list of GPUs")
    gpus = []
    for n, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise ValueError(f"amd-smi static: GPU entry {n} is not an object")
        asic = entry.get("asic") or {}
        name = str(asic.get("market_name") or "").strip()
        if not name or name == "N/A":
            raise ValueError(f"amd-smi static: GPU {entry.get('gpu', n)} has no asic.market_name")
        index = int(entry.get("gpu", n))
        total = _mib((entry.get("vram") or {}).get("size"))
        serial = str(asic.get("asic_serial") or "")
        uuid = (
            serial
            if serial and serial != "N/A"
            else str((entry.get("bus") or {}).get("bdf") or f"amd-{index}")
        )
        gpu = find_gpu(name)
        gpus.append(GpuFact(index, name, total, 0, 0, uuid, gpu.name if gpu else None))
    return tuple(gpus)
