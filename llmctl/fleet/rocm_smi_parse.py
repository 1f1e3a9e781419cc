"""Parse `rocm-smi --showproductname --showuse --showmeminfo vram --json` into GPU facts. Pure.

rocm-smi (deprecated for amd-smi, still what many ROCm hosts have) prints {"card0": {"Card Series": "AMD
Instinct MI300X", "VRAM Total Memory (B)": "206141652992", "VRAM Total Used Memory (B)": "...", "GPU use
(%)": "0", ...}, ...}: every value a string, sizes in bytes. Key spellings vary by release ("Card series"
in ROCm 5, "Card Series" in 6), so keys are matched without case.
"""

from __future__ import annotations

import json
import re
from typing import Any

from llmctl.catalog.gpus import find_gpu
from llmctl.fleet.facts_parse import GpuFact

_CARD = re.compile(r"^card(\d+)$")


def _int(value: Any) -> int:
    try:
        return int(float(str(value).strip()))
    except ValueError:
        return 0  # "N/A"


def parse_rocm_smi_json(text: str) -> tuple[GpuFact, ...]:
    start = text.find("{")
    if start < 0:
        raise ValueError("rocm-smi printed no JSON")
    try:
        data = json.loads(text[start:])
    except json.JSONDecodeError as exc:
        raise ValueError(f"rocm-smi output is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("rocm-smi: expected an object of cards")
    gpus = []
    for key, fields in data.items():
        m = _CARD.match(key)
        if not m or not isinstance(fields, dict):
            continue  # "system" and other non-card sections
        f = {str(k).strip().lower(): str(v).strip() for k, v in fields.items()}
        # The marketing name: Card Series where the release fills it in, else the device name; the
        # "Card Model" is a PCI device id (0x74a1) on current releases.
        name = next(
            (f[k] for k in ("card series", "device name", "card model") if f.get(k) not in (None, "", "N/A")),
            "",
        )
        if not name:
            raise ValueError(f"rocm-smi: {key} has no product name")
        index = int(m.group(1))
        total = _int(f.get("vram total memory (b)", 0)) // 2**20
        used = _int(f.get("vram total used memory (b)", 0)) // 2**20
        util = _int(f.get("gpu use (%)", 0))
        uuid = next((f[k] for k in ("unique id", "guid") if f.get(k) not in (None, "", "N/A")), key)
        gpu = find_gpu(name)
        gpus.append(GpuFact(index, name, total, used, util, uuid, gpu.name if gpu else None))
    return tuple(sorted(gpus, key=lambda g: g.index))
