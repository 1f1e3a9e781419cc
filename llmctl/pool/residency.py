"""Co-residency of slots on one host (issue #18): several models may sleep on the same GPUs (their residue
is small: CUDA context, graph pool, activation workspace) or in the same host's RAM (level 1 backs every
weight up there), so a pool time-shares GPUs between models, within bounds this module checks:

- host RAM: what the residents hold (engine processes, level-1 weight backups) stays within the host's
  memory from facts less a headroom for the OS, the page cache and the API servers (perf.memory's
  `cpu_headroom_bytes`, the same rule a CPU replica's memory fit keeps);
- GPU memory: on each GPU, the running replica's share plus every sleeper's residue fits the GPU;
- one running replica per GPU, and the slots kept for one deployment on distinct GPU groups (a burst wakes
  them together, so two of them on the same GPUs could not both run).

Pure: plain data in, plain data out (the holdings come from llmctl.perf.cold_start.tier_holdings).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from llmctl.catalog.gpu_table import GiB
from llmctl.perf.cold_start import TierHoldings
from llmctl.perf.memory import cpu_headroom_bytes
from llmctl.pool.tiers import SlotTier

if TYPE_CHECKING:
    from llmctl.planner.placement import HostResources

MiB = 1024**2  # facts count memory in MiB (nvidia-smi, /proc/meminfo)


@dataclass(frozen=True)
class HostRoom:
    """One host as facts describe it: its memory, its GPUs and each GPU's memory (bytes)."""

    host: str
    ram_bytes: float
    gpus: tuple[int, ...]
    gpu_memory_bytes: float
    ram_headroom_bytes: float | None = None  # None: perf.memory.cpu_headroom_bytes(ram_bytes)

    @property
    def ram_budget(self) -> float:
        headroom = (
            cpu_headroom_bytes(self.ram_bytes) if self.ram_headroom_bytes is None else self.ram_headroom_bytes
        )
        return max(0.0, self.ram_bytes - headroom)


def room_from_facts(host: str, facts: HostResources, gpu_memory_bytes: float) -> HostRoom:
    """A host's room from gathered facts (llmctl hosts facts): its memory and GPUs; each GPU's memory as
    measured, else `gpu_memory_bytes` (the catalog's, for the GPU type the inventory declares)."""
    if not facts.memory_mib:
        raise ValueError(f"host {host!r}: its memory is unknown; gather facts (llmctl hosts facts)")
    indices = tuple(sorted(i for i, _ in facts.gpus))
    measured = [facts.gpu_memory_mib[i] * MiB for i in indices if facts.gpu_memory_mib.get(i)]
    return HostRoom(host, facts.memory_mib * MiB, indices, min(measured, default=gpu_memory_bytes))


@dataclass(frozen=True)
class Resident:
    """A slot on the host and what it holds there."""

    slot: SlotTier
    holdings: TierHoldings


class Limit(StrEnum):
    HOST_RAM = "host_ram"  # the host's memory (less headroom) cannot hold it
    GPU_MEMORY = "gpu_memory"  # a GPU's memory cannot hold it beside what is there
    GPU_BUSY = "gpu_busy"  # a running slot needs GPUs no other running replica holds
    SAME_DEPLOYMENT = "same_deployment"  # every GPU group already keeps a slot of this deployment
    NO_GPUS = "no_gpus"  # the host has fewer GPUs than one replica needs


@dataclass(frozen=True)
class Overflow:
    """A bound a slot would break on `host`: `need` bytes where `free` are left (0/0 for the GPU rules)."""

    host: str
    limit: Limit
    need_bytes: float
    free_bytes: float
    detail: str


def _gib(x: float) -> str:
    return f"{x / GiB:.1f} GiB"


def _on(room: HostRoom, residents: Sequence[Resident]) -> list[Resident]:
    return [r for r in residents if r.slot.host == room.host]


def ram_free(room: HostRoom, residents: Sequence[Resident]) -> float:
    return room.ram_budget - sum(r.holdings.host_ram_bytes for r in _on(room, residents))


def gpu_free(room: HostRoom, residents: Sequence[Resident], gpu: int) -> float:
    held = sum(r.holdings.gpu_bytes for r in _on(room, residents) if gpu in r.slot.gpus)
    return room.gpu_memory_bytes - held


def _groups(room: HostRoom, size: int) -> list[tuple[int, ...]]:
    """Aligned GPU groups of `size`, as tensor-parallel placement takes them (0-1, 2-3, ...)."""
    ordered = sorted(room.gpus)
    return [tuple(ordered[i : i + size]) for i in range(0, len(ordered) - size + 1, size)]


def _fits(
    room: HostRoom,
    residents: Sequence[Resident],
    group: tuple[int, ...],
    holdings: TierHoldings,
    deployment: str,
) -> Overflow | None:
    here = _on(room, residents)
    free_ram = ram_free(room, residents)
    if holdings.host_ram_bytes > free_ram:
        return Overflow(
            room.host,
            Limit.HOST_RAM,
            holdings.host_ram_bytes,
            free_ram,
            f"needs {_gib(holdings.host_ram_bytes)} of host RAM on {room.host}, "
            f"{_gib(max(0.0, free_ram))} free ({_gib(room.ram_budget)} after headroom, "
            f"{_gib(room.ram_budget - free_ram)} held by {len(here)} slot(s))",
        )
    same = [r for r in here if r.slot.deployment == deployment and r.slot.tier.has_process]
    if deployment and any(set(r.slot.gpus) & set(group) for r in same):
        return Overflow(
            room.host,
            Limit.SAME_DEPLOYMENT,
            0.0,
            0.0,
            f"GPUs {group} of {room.host} keep a slot of {deployment}",
        )
    if holdings.dedicated and any(r.holdings.dedicated and set(r.slot.gpus) & set(group) for r in here):
        return Overflow(
            room.host, Limit.GPU_BUSY, 0.0, 0.0, f"GPUs {group} of {room.host} run another replica"
        )
    tightest = min(group, key=lambda g: (gpu_free(room, residents, g), g))
    free_gpu = gpu_free(room, residents, tightest)
    if holdings.gpu_bytes > free_gpu:
        return Overflow(
            room.host,
            Limit.GPU_MEMORY,
            holdings.gpu_bytes,
            free_gpu,
            f"needs {_gib(holdings.gpu_bytes)} on GPU {tightest} of {room.host}, "
            f"{_gib(max(0.0, free_gpu))} free",
        )
    return None


def place(
    room: HostRoom, residents: Sequence[Resident], model: str, deployment: str, holdings: TierHoldings
) -> SlotTier | Overflow:
    """The slot on this host for one more replica holding `holdings`, or the bound it breaks. A tier with no
    engine process holds no GPU: its slot names none. Among the GPU groups that fit, the one with the most
    free GPU memory (a sleeper goes where no replica runs, if it can), then the lowest."""
    if not holdings.tier.has_process:
        free_ram = ram_free(room, residents)
        if holdings.host_ram_bytes > free_ram:
            free = _gib(max(0.0, free_ram))
            detail = f"needs {_gib(holdings.host_ram_bytes)} of host RAM on {room.host}, {free} free"
            return Overflow(room.host, Limit.HOST_RAM, holdings.host_ram_bytes, free_ram, detail)
        return SlotTier(room.host, (), model, holdings.tier, deployment)
    groups = _groups(room, holdings.gpus)
    if not groups:
        return Overflow(
            room.host,
            Limit.NO_GPUS,
            0.0,
            0.0,
            f"{room.host} has {len(room.gpus)} GPU(s), a replica needs {holdings.gpus}",
        )
    ranked = sorted(groups, key=lambda g: (-min(gpu_free(room, residents, i) for i in g), g))
    first: Overflow | None = None
    for group in ranked:
        why = _fits(room, residents, group, holdings, deployment)
        if why is None:
            return SlotTier(room.host, group, model, holdings.tier, deployment)
        first = first or why
    assert first is not None
    return first


def check(room: HostRoom, residents: Sequence[Resident]) -> tuple[Overflow, ...]:
    """Every bound the residents of this host break as they stand (empty: they fit)."""
    here = _on(room, residents)
    out: list[Overflow] = []
    held_ram = sum(r.holdings.host_ram_bytes for r in here)
    if held_ram > room.ram_budget:
        out.append(
            Overflow(
                room.host,
                Limit.HOST_RAM,
                held_ram,
                room.ram_budget,
                f"{room.host}: slots hold {_gib(held_ram)} of host RAM, {_gib(room.ram_budget)} after headroom",
            )
        )
    for gpu in sorted(room.gpus):
        on_gpu = [r for r in here if gpu in r.slot.gpus]
        held = sum(r.holdings.gpu_bytes for r in on_gpu)
        if held > room.gpu_memory_bytes:
            out.append(
                Overflow(
                    room.host,
                    Limit.GPU_MEMORY,
                    held,
                    room.gpu_memory_bytes,
                    f"{room.host} GPU {gpu}: slots hold {_gib(held)} of {_gib(room.gpu_memory_bytes)}",
                )
            )
        if sum(1 for r in on_gpu if r.holdings.dedicated) > 1:
            out.append(
                Overflow(room.host, Limit.GPU_BUSY, 0.0, 0.0, f"{room.host} GPU {gpu}: two running replicas")
            )
    return tuple(out)
