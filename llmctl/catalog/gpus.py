"""GPU facts: memory, bandwidth, dense FLOP/s and a typical rental price, from vendor datasheets.

All FLOP/s are *dense* (no 2:4 sparsity), which is what inference kernels reach. Prices are typical
on-demand cloud rates per GPU-hour in late 2025; the inventory's own price always wins over them.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmctl.errors import LlmctlError

GiB = 1024**3
GB = 1e9
TFLOPS = 1e12


@dataclass(frozen=True)
class GPU:
    name: str  # canonical catalog key, e.g. "H100-SXM"
    memory_bytes: int
    hbm_bandwidth: float  # bytes/s
    bf16_flops: float  # dense FLOP/s
    fp8_flops: float | None  # dense FLOP/s; None when the GPU has no FP8 tensor cores
    interconnect_bandwidth: float  # bytes/s per direction between GPUs of one host (NVLink or PCIe)
    interconnect: str  # "nvlink" | "pcie"
    host_link_bandwidth: float  # bytes/s host<->device (PCIe), used for weight load and wake-from-sleep
    price_per_hour: float  # USD per GPU-hour, typical on-demand
    aliases: tuple[str, ...]  # substrings of nvidia-smi names and common spellings
    source: str

    @property
    def supports_fp8(self) -> bool:
        return self.fp8_flops is not None

    @property
    def memory_gib(self) -> float:
        return self.memory_bytes / GiB


_PCIE5 = 64 * GB  # x16 Gen5, per direction
_PCIE4 = 32 * GB  # x16 Gen4, per direction

GPUS: dict[str, GPU] = {
    g.name: g
    for g in (
        GPU(
            "H100-SXM",
            80 * GiB,
            3.35e12,
            989 * TFLOPS,
            1979 * TFLOPS,
            450 * GB,
            "nvlink",
            _PCIE5,
            2.50,
            ("H100 80GB HBM3", "H100-SXM5", "H100 SXM", "H100"),
            "NVIDIA H100 datasheet (SXM5)",
        ),
        GPU(
            "H100-PCIe",
            80 * GiB,
            2.0e12,
            756 * TFLOPS,
            1513 * TFLOPS,
            _PCIE5,
            "pcie",
            _PCIE5,
            2.00,
            ("H100 PCIe", "H100-PCIE"),
            "NVIDIA H100 datasheet (PCIe)",
        ),
        GPU(
            "H200",
            int(141 * GB),
            4.8e12,
            989 * TFLOPS,
            1979 * TFLOPS,
            450 * GB,
            "nvlink",
            _PCIE5,
            3.50,
            ("H200", "H200 SXM", "H200-SXM"),
            "NVIDIA H200 datasheet (SXM)",
        ),
        GPU(
            "B200",
            int(180 * GB),
            8.0e12,
            2250 * TFLOPS,
            4500 * TFLOPS,
            900 * GB,
            "nvlink",
            _PCIE5,
            5.50,
            ("B200",),
            "NVIDIA DGX B200 / HGX B200 datasheet (per GPU, dense)",
        ),
        GPU(
            "A100-80GB",
            80 * GiB,
            2.039e12,
            312 * TFLOPS,
            None,
            300 * GB,
            "nvlink",
            _PCIE4,
            1.80,
            ("A100-SXM4-80GB", "A100 80GB", "A100-80G", "A100-PCIE-80GB"),
            "NVIDIA A100 datasheet (SXM4 80GB)",
        ),
        GPU(
            "A100-40GB",
            40 * GiB,
            1.555e12,
            312 * TFLOPS,
            None,
            300 * GB,
            "nvlink",
            _PCIE4,
            1.30,
            ("A100-SXM4-40GB", "A100 40GB", "A100-40G", "A100-PCIE-40GB"),
            "NVIDIA A100 datasheet (SXM4 40GB)",
        ),
        GPU(
            "L40S",
            48 * GiB,
            864 * GB,
            362 * TFLOPS,
            733 * TFLOPS,
            _PCIE4,
            "pcie",
            _PCIE4,
            1.00,
            ("L40S",),
            "NVIDIA L40S datasheet",
        ),
        GPU(
            "L4",
            24 * GiB,
            300 * GB,
            121 * TFLOPS,
            242 * TFLOPS,
            _PCIE4,
            "pcie",
            _PCIE4,
            0.70,
            ("L4",),
            "NVIDIA L4 datasheet",
        ),
        GPU(
            "A10G",
            24 * GiB,
            600 * GB,
            70 * TFLOPS,
            None,
            _PCIE4,
            "pcie",
            _PCIE4,
            1.00,
            ("A10G",),
            "AWS G5 documentation (A10G tensor performance)",
        ),
        GPU(
            "RTX-4090",
            24 * GiB,
            1008 * GB,
            165 * TFLOPS,
            330 * TFLOPS,
            _PCIE4,
            "pcie",
            _PCIE4,
            0.40,
            ("RTX 4090", "GeForce RTX 4090", "4090"),
            "NVIDIA Ada whitepaper (FP16 tensor with FP16 accumulate; FP32 accumulate is half)",
        ),
    )
}


def _normalise(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def find_gpu(name: str) -> GPU | None:
    """Catalog entry for a catalog key, alias or nvidia-smi name (e.g. 'NVIDIA H100 80GB HBM3')."""
    if name in GPUS:
        return GPUS[name]
    wanted = _normalise(name.removeprefix("NVIDIA ").removeprefix("nvidia "))
    for gpu in GPUS.values():
        if wanted == _normalise(gpu.name) or any(wanted == _normalise(a) for a in gpu.aliases):
            return gpu
    # nvidia-smi names carry extra words ("NVIDIA H100 80GB HBM3"); the longest alias contained wins so that
    # "H100 PCIe" is not taken for the bare "H100".
    best: tuple[int, GPU] | None = None
    for gpu in GPUS.values():
        for alias in (gpu.name, *gpu.aliases):
            a = _normalise(alias)
            if a and a in wanted and (best is None or len(a) > best[0]):
                best = (len(a), gpu)
    return best[1] if best else None


def get_gpu(name: str) -> GPU:
    gpu = find_gpu(name)
    if gpu is None:
        raise LlmctlError(f"unknown GPU type {name!r}; known: {', '.join(GPUS)}")
    return gpu
