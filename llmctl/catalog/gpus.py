"""GPU facts: memory, bandwidth, dense FLOP/s and a typical rental price, from vendor datasheets (the
table itself is llmctl.catalog.gpu_table); the lookup by name, the interconnect links and CPU devices.

All FLOP/s are *dense* (no 2:4 sparsity), which is what inference kernels reach. Prices are typical
on-demand cloud rates per GPU-hour in late 2025; the inventory's own price always wins over them.

A CPU host (vLLM's CPU backend) is a device too: `cpu_device(cores, memory)` builds one, named
`CPU-x86-AVX512-<cores>c-<GiB>GiB`, from per-core numbers scaled by the host's core count (see below).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from llmctl.catalog.gpu_table import GB, GPU, GPU_LINKS, GPU_TABLE, PCIE5, TFLOPS, GiB
from llmctl.errors import LlmctlError

# Re-exported: the catalog's users import the GPU type and units from here.
__all__ = ["GB", "GPU", "GPUS", "GPU_LINKS", "LINKS", "TFLOPS", "GiB", "Link", "cpu_device", "find_gpu",
           "get_gpu", "gpu_link", "match_gpu"]  # fmt: skip

_PCIE5 = PCIE5
_PCIE4 = 32 * GB  # x16 Gen4, per direction

GPUS: dict[str, GPU] = {g.name: g for g in GPU_TABLE}


# --- interconnects: all-reduce latency and bus bandwidth as measured, per link generation ----------------
@dataclass(frozen=True)
class Link:
    """What an all-reduce between the GPUs of one host achieves: a fixed latency per call and the bus
    bandwidth (nccl-tests' scale: 2 (n-1)/n x bytes / time) of large messages."""

    name: str
    allreduce_latency_s: float  # small-message latency with more than two ranks
    allreduce_bus_bandwidth: float  # bytes/s
    source: str
    # Two ranks exchange once, directly: NCCL's small-message latency at TP 2 is a fraction of TP 4/8's.
    tp2_latency_s: float | None = None  # None: same as allreduce_latency_s
    # Measured bus bandwidth per TP degree where it differs (NVLS/ring efficiency grows with ranks), net of
    # the fixed latency: 2 (n-1)/n x 128 MiB / (t(128 MiB) - t(4 KiB)), so that latency + bytes / bandwidth
    # gives the measured time back; a TP degree not listed takes allreduce_bus_bandwidth.
    tp_bus_bandwidth: tuple[tuple[int, float], ...] = ()


LINKS: dict[str, Link] = {
    lk.name: lk
    for lk in (
        Link(
            "nvlink4-nvswitch",
            37.5e-6,
            650 * GB,
            # Medians of torch.distributed/NCCL all_reduce in CUDA graphs on an H100 DGX: 4 KiB messages
            # 7 us (TP2), 38 us (TP4), 37 us (TP8); 128 MiB messages 245/318/322 us, i.e. bus bandwidth
            # 548/633/729 GB/s (NVLink SHARP reduces in the switch, so it exceeds the 450 GB/s per-direction
            # link). microsoft/vidur data/profiling/network/h100_dgx/all_reduce.csv.
            "Vidur h100_dgx all_reduce profile",
            tp2_latency_s=7e-6,
            tp_bus_bandwidth=((2, 564 * GB), (4, 719 * GB), (8, 825 * GB)),
        ),
        Link(
            "nvlink3-nvswitch",
            61.5e-6,
            330 * GB,
            # Same profile on an A100 DGX: 4 KiB 10/61/62 us (TP2/4/8), 128 MiB 430/603/675 us = bus bandwidth
            # 312/334/348 GB/s. microsoft/vidur data/profiling/network/a100_dgx/all_reduce.csv.
            "Vidur a100_dgx all_reduce profile",
            tp2_latency_s=10e-6,
            tp_bus_bandwidth=((2, 320 * GB), (4, 371 * GB), (8, 383 * GB)),
        ),
        Link(
            "nvlink5-nvswitch",
            37.5e-6,
            1300 * GB,
            # No measurement in the published set: NVLink 5 doubles NVLink 4's per-GPU bandwidth (NVIDIA B200
            # datasheet, 1.8 TB/s bidirectional), so twice the measured NVLink 4 bus bandwidth; same latency.
            "estimate: 2x nvlink4-nvswitch bandwidth (NVIDIA B200 datasheet)",
            tp2_latency_s=7e-6,
        ),
        Link(
            "nvlink4-bridge",
            37.5e-6,
            240 * GB,
            # No measurement in the published set: H100 NVL / H200 NVL cards are joined by NVLink bridges
            # (300-450 GB/s per direction, datasheets), without NVSwitch's in-switch reduction; 80% of the
            # H100 NVL bridge's 300 GB/s, the NVLink 4 latencies.
            "estimate: 80% of the H100 NVL bridge (NVIDIA H100 datasheet), nvlink4-nvswitch latency",
            tp2_latency_s=7e-6,
        ),
        Link(
            "infinity-fabric-mi300",
            37.5e-6,
            315 * GB,
            # No measurement in the published set: an MI300X board links every GPU to each peer directly
            # (7 x 128 GB/s, 448 GB/s per direction, AMD datasheet); RCCL rings over the mesh reach about
            # 70% of that; latency as NVLink 4's, TP 2 as an A100's direct pair.
            "estimate: 70% of MI300X Infinity Fabric (AMD MI300X datasheet), nvlink4-nvswitch latency",
            tp2_latency_s=10e-6,
        ),
        Link(
            "pcie5",
            30e-6,
            0.6 * _PCIE5,
            # No measurement in the published set: all-reduce through host bridges; nccl-tests on PCIe-only
            # hosts show tens of microseconds of small-message latency and ~60% of the link as bus bandwidth.
            "estimate: nccl-tests on PCIe hosts, 60% of x16 Gen5",
        ),
        Link("pcie4", 30e-6, 0.6 * _PCIE4, "estimate: nccl-tests on PCIe hosts, 60% of x16 Gen4"),
        # A CPU replica runs TP 1; the entry only keeps every device resolvable.
        Link("memory", 10e-6, 10 * GB, "CPU host: no tensor parallelism across sockets"),
    )
}


def gpu_link(gpu: GPU) -> Link:
    """The all-reduce characteristics of a GPU's host; by interconnect kind where the catalog names none."""
    if gpu.name in GPU_LINKS:
        return LINKS[GPU_LINKS[gpu.name]]
    if gpu.interconnect == "nvlink":
        return LINKS["nvlink4-nvswitch"]
    if gpu.interconnect == "infinity-fabric":
        return LINKS["infinity-fabric-mi300"]
    if gpu.interconnect == "pcie":
        return LINKS["pcie5" if gpu.interconnect_bandwidth >= _PCIE5 else "pcie4"]
    return LINKS["memory"]


# --- CPU hosts ------------------------------------------------------------------------------------------
# "cores" are logical CPUs as the host's facts count them (`nproc`). Sources and reasoning:
# - FLOP/s: an AVX-512 BF16 core (Intel Cooper Lake / Sapphire Rapids and later, AMD Zen 4 and later) issues
#   VDPBF16PS on 2 FMA ports; each 512-bit instruction does 32 bf16 multiply-adds = 64 FLOP, so peak is
#   2 x 32 x 2 = 128 FLOP/cycle per physical core (Intel Intrinsics Guide / optimisation manual, port 0+5).
#   At a 2.0 GHz all-core AVX-512 clock (Xeon Platinum 8480+ base clock; heavy AVX-512 turbo sits near it)
#   that is 256 GFLOP/s per physical core. x86 servers and cloud vCPUs run SMT-2: two logical CPUs share one
#   core's FMA ports (and vLLM binds its OpenMP threads to one logical CPU per physical core), so a logical
#   CPU counts for half: 128 GFLOP/s. AMX tiles (Sapphire Rapids) go beyond this; calibrate to see it.
# - Memory bandwidth: one physical core streams ~10-15 GB/s on its own (single-thread STREAM triad on
#   Sapphire Rapids / Genoa servers, bounded by the misses a core keeps in flight), i.e. ~6 GB/s per logical
#   CPU; the sum is capped by one socket's DDR5: 8 channels x DDR5-4800 x 8 bytes = 307 GB/s peak. One
#   socket, because vLLM's CPU backend binds a TP-1 engine's threads and memory to NUMA node 0.
# - Price: general-purpose cloud vCPUs cost ~$0.05 per vCPU-hour on demand (AWS m7i.large, 2 vCPU / 8 GiB,
#   $0.1008/h in us-east-1, late 2025).
# - Memory when a name gives none: 4 GiB per logical CPU, the general-purpose cloud ratio (m7i, n2-standard).
CPU_FAMILY = "CPU-x86-AVX512"
CPU_BF16_FLOPS_PER_CORE = 128e9
CPU_BANDWIDTH_PER_CORE = 6 * GB
CPU_SOCKET_BANDWIDTH = 307 * GB
CPU_PRICE_PER_CORE_HOUR = 0.05
CPU_DEFAULT_GIB_PER_CORE = 4
_CPU_NAME = re.compile(r"^cpu-x86-avx512-(\d+)c(?:-(\d+)gib)?$")


def cpu_device(cores: int, memory_bytes: int) -> GPU:
    """The device a CPU host offers the planner: its logical CPUs and memory, rounded down to whole GiB
    (so that the name, which carries both, gives back exactly this device). The name leaves the memory out
    where it is the default for that core count: CPU-x86-AVX512-2c is 2 cores with 8 GiB."""
    if cores < 1:
        raise LlmctlError(f"a CPU device needs at least one core, got {cores}")
    gib = int(memory_bytes // GiB)
    if gib < 1:
        raise LlmctlError(f"a CPU device needs at least 1 GiB of memory, got {memory_bytes / GiB:.2f} GiB")
    bandwidth = min(cores * CPU_BANDWIDTH_PER_CORE, CPU_SOCKET_BANDWIDTH)
    return GPU(
        name=f"{CPU_FAMILY}-{cores}c" + ("" if gib == cores * CPU_DEFAULT_GIB_PER_CORE else f"-{gib}GiB"),
        memory_bytes=gib * GiB,
        hbm_bandwidth=bandwidth,
        bf16_flops=cores * CPU_BF16_FLOPS_PER_CORE,
        fp8_flops=None,  # vLLM's CPU backend serves bf16; no FP8 matmul units
        # Tensor parallelism on one host would go through shared memory; a CPU replica runs TP 1.
        interconnect_bandwidth=bandwidth,
        interconnect="memory",
        # "Loading onto the device" is a copy from the page cache into the engine's memory.
        host_link_bandwidth=bandwidth,
        price_per_hour=cores * CPU_PRICE_PER_CORE_HOUR,
        aliases=(),
        source="per-core AVX-512 BF16 peak and DDR5 bandwidth, see llmctl/catalog/gpus.py",
        kind="cpu",
        cores=cores,
    )


def _find_cpu(name: str) -> GPU | None:
    m = _CPU_NAME.match(name.strip().lower())
    if m is None:
        return None
    cores = int(m.group(1))
    gib = int(m.group(2)) if m.group(2) else cores * CPU_DEFAULT_GIB_PER_CORE
    if cores < 1 or gib < 1:
        return None
    return cpu_device(cores, gib * GiB)


def _normalise(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def _words(text: str) -> tuple[str, ...]:
    return tuple(w for w in re.split(r"[^a-z0-9]+", text.lower()) if w)


def _contains(words: tuple[str, ...], part: tuple[str, ...]) -> bool:
    n = len(part)
    return n > 0 and any(words[i : i + n] == part for i in range(len(words) - n + 1))


def match_gpu(name: str, gpus: Iterable[GPU]) -> GPU | None:
    """The GPU among `gpus` that a catalog key, alias or tool-reported product name names: an exact match of
    the name or an alias (ignoring case and punctuation), else the longest alias whose words appear in order
    in the name. Words, not letters: 'NVIDIA GH200 480GB' is not an 'H200' and 'RTX A4000' not an 'A40'."""
    candidates = list(gpus)
    wanted = _normalise(re.sub(r"^\s*(nvidia|amd)\s+", "", name, flags=re.IGNORECASE))
    for gpu in candidates:
        if wanted == _normalise(gpu.name) or any(wanted == _normalise(a) for a in gpu.aliases):
            return gpu
    # Tool names carry extra words ("NVIDIA H100 80GB HBM3", "AMD Instinct MI300X VF"); the longest alias
    # contained wins so that "H100 PCIe" is not taken for the bare "H100".
    words = _words(name)
    best: tuple[int, GPU] | None = None
    for gpu in candidates:
        # Aliases only: a key like "RTX-PRO-6000" would also claim the slower Max-Q edition's name.
        for alias in gpu.aliases:
            a = _words(alias)
            size = len(_normalise(alias))
            if _contains(words, a) and (best is None or size > best[0]):
                best = (size, gpu)
    return best[1] if best else None


def find_gpu(name: str) -> GPU | None:
    """Catalog entry for a catalog key, alias or nvidia-smi / rocm-smi / amd-smi product name (e.g. 'NVIDIA
    H100 80GB HBM3', 'AMD Instinct MI300X'), or the CPU device a name like 'CPU-x86-AVX512-16c-96GiB'
    describes (without '-<N>GiB': 4 GiB per core)."""
    if name in GPUS:
        return GPUS[name]
    if name.strip().lower().startswith("cpu-"):
        return _find_cpu(name)
    return match_gpu(name, GPUS.values())


def get_gpu(name: str) -> GPU:
    gpu = find_gpu(name)
    if gpu is None:
        known = f"{', '.join(GPUS)}, {CPU_FAMILY}-<cores>c[-<GiB>GiB]"
        raise LlmctlError(f"unknown GPU type {name!r}; known: {known}")
    return gpu
