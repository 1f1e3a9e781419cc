"""LoRA adapters in the emulated engine: which are registered (served under their own model name), which are
resident in the engine's adapter cache, and how long loading one takes. Pure: the caller passes the clock.

As vLLM 0.32 does it (entrypoints/openai/models/serving.py, lora/worker_manager.py): an adapter named by
--lora-modules or /v1/load_lora_adapter is registered and loaded into an LRU cache of max_cpu_loras adapters
(default max_loras); a request for a registered adapter that was evicted reads it from disk again. SGLang
keeps up to --max-loaded-loras in memory the same way (--lora-eviction-policy lru, its default).

The load time is a fixed overhead (LOAD_OVERHEAD_S, measured) plus the adapter's bytes over the local disk's
read bandwidth (the performance model's NVMe figure, as for a cold start): the files' own size when the
directory is there, else the size its rank gives on this model (planner.lora.adapter_bytes).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from llmctl.catalog.models import Model
from llmctl.perf.cold_start import NVME_READ_BANDWIDTH
from llmctl.planner.lora import adapter_bytes

WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")
# What a load costs beyond reading the weights (parsing adapter_config.json, the worker round trip, building
# the LoRA model): a real vLLM 0.32 (CPU backend) answered /v1/load_lora_adapter for a 30 KB rank-16 adapter
# of a 2-layer model in 15 ms, nearly all of it this.
LOAD_OVERHEAD_S = 0.015


@dataclass(frozen=True)
class LoraSettings:
    max_loras: int  # adapters in one batch (vLLM --max-loras, SGLang --max-loras-per-batch)
    max_cached: int  # adapters kept loaded (vLLM --max-cpu-loras, SGLang --max-loaded-loras)
    max_rank: int
    static: tuple[tuple[str, str], ...]  # (name, path) given on the command line
    runtime_updates: bool  # the load/unload endpoints are served


@dataclass(frozen=True)
class AdapterFiles:
    path: str
    rank: int | None  # adapter_config.json's r; None when the path is not a local directory (a repo id)
    bytes: int | None  # the weight files' size on disk


class AdapterNotFound(Exception):
    pass


def read_adapter(path: str) -> AdapterFiles:
    """What the engine finds at `path`: a directory with adapter_config.json (PEFT's layout), or a repo id the
    emulator does not fetch. A local-looking path with no adapter is not found, as in the engines."""
    p = Path(path)
    config = p / "adapter_config.json"
    if config.is_file():
        try:
            rank = int(json.loads(config.read_text()).get("r", 0)) or None
        except (ValueError, AttributeError, OSError):
            rank = None
        size = sum((p / f).stat().st_size for f in WEIGHT_FILES if (p / f).is_file())
        return AdapterFiles(path, rank, size or None)
    if path.startswith(("/", ".", "~")) or p.exists() or path.count("/") != 1:
        raise AdapterNotFound(path)
    return AdapterFiles(path, None, None)


@dataclass(frozen=True)
class Registered:
    name: str
    path: str
    rank: int
    load_s: float  # one load from disk


class AdapterCache:
    def __init__(self, settings: LoraSettings, model: Model) -> None:
        self.settings = settings
        self.model = model
        self.registered: dict[str, Registered] = {}
        self._resident: OrderedDict[str, float] = OrderedDict()  # name -> when its load completes
        self.loads = 0
        self.evictions = 0

    def describe(self, name: str, files: AdapterFiles) -> Registered:
        rank = files.rank or self.settings.max_rank
        size = files.bytes if files.bytes is not None else adapter_bytes(self.model, rank)
        return Registered(name, files.path, rank, LOAD_OVERHEAD_S + size / NVME_READ_BANDWIDTH)

    def register(self, adapter: Registered, now: float) -> float:
        """Register and load it (the engines load on registration); seconds until it is loaded."""
        self.registered[adapter.name] = adapter
        self._resident.pop(adapter.name, None)
        return self.use(adapter.name, now)

    def unregister(self, name: str) -> None:
        self.registered.pop(name, None)
        self._resident.pop(name, None)

    def resident(self) -> tuple[str, ...]:
        """Loaded adapters, least recently used first."""
        return tuple(self._resident)

    def use(self, name: str, now: float) -> float:
        """A request for a registered adapter: seconds it waits for the adapter to be loaded (0 when it is
        resident and its load is over; the rest of a load in progress; a whole load after an eviction)."""
        ready = self._resident.get(name)
        if ready is not None:
            self._resident.move_to_end(name)
            return max(0.0, ready - now)
        adapter = self.registered[name]
        while len(self._resident) >= self.settings.max_cached:
            self._resident.popitem(last=False)
            self.evictions += 1
        self._resident[name] = now + adapter.load_s
        self.loads += 1
        return adapter.load_s
