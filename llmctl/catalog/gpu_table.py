"""The GPU catalog's data: one entry per part, every figure from the vendor's datasheet (the source string
names it). Lookup, links and CPU devices are in llmctl.catalog.gpus, which re-exports all of this.

Conventions, so that entries compare:
- FLOP/s are dense (no 2:4 sparsity), what inference kernels reach. Where a vendor publishes only sparse
  figures (NVIDIA's data-centre sheets mark them "with sparsity"), they are halved and the source says so.
- Memory is the datasheet's "GB" as 10^9 bytes for the parts added from 2025 on; vendors' HBM "GB" is
  often nearer GiB (an H200's 141 GB reads 143771 MiB in nvidia-smi), so this errs low, never high.
- Bandwidths are per direction: an "NVLink 900 GB/s" (bidirectional) is 450 GB/s here.
- Prices are rough on-demand rates per GPU-hour seen late 2025 (estimates; the inventory's price wins).
- "estimate" in a source: a figure derived from a system total or a neighbouring part, not printed per GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

GiB = 1024**3
GB = 1e9
TFLOPS = 1e12

Vendor = Literal["nvidia", "amd"]


@dataclass(frozen=True)
class GPU:
    name: str  # canonical catalog key, e.g. "H100-SXM"
    memory_bytes: int
    hbm_bandwidth: float  # bytes/s
    bf16_flops: float  # dense FLOP/s; FP16 on parts without BF16 (Turing), which engines then serve in fp16
    fp8_flops: float | None  # dense FLOP/s; None when the GPU has no FP8 tensor cores
    interconnect_bandwidth: float  # bytes/s per direction between GPUs of one host (NVLink, IF or PCIe)
    interconnect: str  # "nvlink" | "pcie" | "infinity-fabric" | "memory" (CPU)
    host_link_bandwidth: float  # bytes/s host<->device (PCIe, NVLink-C2C), used for weight load and wake
    price_per_hour: float  # USD per GPU-hour, typical on-demand
    aliases: tuple[str, ...]  # nvidia-smi / rocm-smi / amd-smi product names and common spellings
    source: str
    kind: Literal["gpu", "cpu"] = "gpu"  # cpu: a whole host's CPU and memory, served by vLLM's CPU backend
    cores: int = 0  # cpu only: logical CPUs (what `nproc` counts)
    vendor: Vendor = "nvidia"  # amd: served by vLLM's ROCm build

    @property
    def supports_fp8(self) -> bool:
        return self.fp8_flops is not None

    @property
    def is_cpu(self) -> bool:
        return self.kind == "cpu"

    @property
    def is_rocm(self) -> bool:
        return self.vendor == "amd"

    @property
    def memory_gib(self) -> float:
        return self.memory_bytes / GiB


PCIE6 = 128 * GB  # x16 Gen6, per direction
PCIE5 = 64 * GB  # x16 Gen5, per direction
PCIE4 = 32 * GB  # x16 Gen4, per direction
C2C = 450 * GB  # NVLink-C2C between Grace and its GPU(s): 900 GB/s bidirectional (GH200/GB200 datasheets)
NVLINK4 = 450 * GB  # 18 links, 900 GB/s bidirectional (H100/H200 SXM datasheets)
NVLINK5 = 900 * GB  # 18 links, 1.8 TB/s bidirectional (Blackwell datasheets)
# MI300X/MI325X: 7 Infinity Fabric links of 128 GB/s (bidirectional) each, one to every peer of an 8-GPU
# board: 896 GB/s in all, 448 GB/s per direction (AMD Instinct MI300X / MI325X datasheets).
IF_MI300 = 448 * GB


# fmt: off
# The table reads as one entry per block: kept out of the formatter's one-argument-per-line layout.
def _g(name: str, gb: float, tbps: float, bf16: float, fp8: float | None, link: float, kind: str,
       host: float, price: float, aliases: tuple[str, ...], source: str, vendor: Vendor = "nvidia") -> GPU:
    """An entry in datasheet units: memory in GB, bandwidth in TB/s, dense TFLOP/s."""
    return GPU(name, int(gb * GB), tbps * 1e12, bf16 * TFLOPS, None if fp8 is None else fp8 * TFLOPS,
               link, kind, host, price, aliases, source, vendor=vendor)


# The entries llmctl started with: memory in GiB where nvidia-smi shows at least that much.
_ORIGINAL = (
    GPU("H100-SXM", 80 * GiB, 3.35e12, 989 * TFLOPS, 1979 * TFLOPS, NVLINK4, "nvlink", PCIE5, 2.50,
        ("H100 80GB HBM3", "H100-SXM5", "H100 SXM", "H100"), "NVIDIA H100 datasheet (SXM5)"),
    GPU("H100-PCIe", 80 * GiB, 2.0e12, 756 * TFLOPS, 1513 * TFLOPS, PCIE5, "pcie", PCIE5, 2.00,
        ("H100 PCIe", "H100-PCIE"), "NVIDIA H100 datasheet (PCIe)"),
    GPU("H200", int(141 * GB), 4.8e12, 989 * TFLOPS, 1979 * TFLOPS, NVLINK4, "nvlink", PCIE5, 3.50,
        ("H200", "H200 SXM", "H200-SXM"), "NVIDIA H200 datasheet (SXM)"),
    GPU("B200", int(180 * GB), 8.0e12, 2250 * TFLOPS, 4500 * TFLOPS, NVLINK5, "nvlink", PCIE5, 5.50,
        ("B200",), "NVIDIA DGX B200 / HGX B200 datasheet (per GPU, dense)"),
    GPU("A100-80GB", 80 * GiB, 2.039e12, 312 * TFLOPS, None, 300 * GB, "nvlink", PCIE4, 1.80,
        ("A100-SXM4-80GB", "A100 80GB", "A100-80G", "A100-PCIE-80GB"), "NVIDIA A100 datasheet (SXM4 80GB)"),
    GPU("A100-40GB", 40 * GiB, 1.555e12, 312 * TFLOPS, None, 300 * GB, "nvlink", PCIE4, 1.30,
        ("A100-SXM4-40GB", "A100 40GB", "A100-40G", "A100-PCIE-40GB"), "NVIDIA A100 datasheet (SXM4 40GB)"),
    GPU("L40S", 48 * GiB, 864 * GB, 362 * TFLOPS, 733 * TFLOPS, PCIE4, "pcie", PCIE4, 1.00, ("L40S",),
        "NVIDIA L40S datasheet"),
    GPU("L4", 24 * GiB, 300 * GB, 121 * TFLOPS, 242 * TFLOPS, PCIE4, "pcie", PCIE4, 0.70, ("L4",),
        "NVIDIA L4 datasheet"),
    GPU("A10G", 24 * GiB, 600 * GB, 70 * TFLOPS, None, PCIE4, "pcie", PCIE4, 1.00, ("A10G",),
        "AWS G5 documentation (A10G tensor performance)"),
    GPU("RTX-4090", 24 * GiB, 1008 * GB, 165 * TFLOPS, 330 * TFLOPS, PCIE4, "pcie", PCIE4, 0.40,
        ("RTX 4090", "GeForce RTX 4090", "4090"),
        "NVIDIA Ada whitepaper (FP16 tensor with FP16 accumulate; FP32 accumulate is half)"),
)

# Hopper variants. NVIDIA's Hopper sheets print tensor figures "with sparsity": halved here.
_HOPPER = (
    # No public NVIDIA datasheet: the export-market H20's figures as reported at launch (2024).
    _g("H20", 96, 4.0, 148, 296, NVLINK4, "nvlink", PCIE5, 1.50, ("H20",),
       "reported H20 specifications (no public NVIDIA datasheet): 96 GB HBM3, 4.0 TB/s, 148 BF16 / 296 FP8"
       " TFLOPS dense, NVLink 900 GB/s; price an estimate"),
    # The GH200's GPU: 96 GB HBM3 at 4 TB/s or 144 GB HBM3e at 4.9 TB/s; Grace's memory is reached over C2C.
    _g("GH200-96GB", 96, 4.0, 989.5, 1979, NVLINK4, "nvlink", C2C, 1.50, ("GH200 480GB", "GH200 96GB", "GH200"),
       "NVIDIA GH200 Grace Hopper Superchip datasheet (HBM3 96 GB, 4 TB/s; BF16 1,979 / FP8 3,958 TFLOPS"
       " sparse, halved; NVLink-C2C 900 GB/s)"),
    _g("GH200-144GB", 144, 4.9, 989.5, 1979, NVLINK4, "nvlink", C2C, 2.50,
       ("GH200 144G HBM3e", "GH200 144GB", "GH200 144G"),
       "NVIDIA GH200 Grace Hopper Superchip datasheet (HBM3e 144 GB, 4.9 TB/s; BF16 1,979 / FP8 3,958 TFLOPS"
       " sparse, halved)"),
    # PCIe cards joined in pairs by an NVLink bridge (600 GB/s bidirectional), else by PCIe.
    _g("H100-NVL", 94, 3.9, 835.5, 1670.5, 300 * GB, "nvlink", PCIE5, 2.50, ("H100 NVL",),
       "NVIDIA H100 datasheet (H100 NVL: 94 GB, 3.9 TB/s; BF16 1,671 / FP8 3,341 TFLOPS sparse, halved;"
       " NVLink bridge 600 GB/s)"),
    _g("H200-NVL", 141, 4.8, 835.5, 1670.5, NVLINK4, "nvlink", PCIE5, 3.00, ("H200 NVL",),
       "NVIDIA H200 datasheet (H200 NVL: 141 GB, 4.8 TB/s; BF16 1,671 / FP8 3,341 TFLOPS sparse, halved;"
       " 2- or 4-way NVLink bridge 900 GB/s)"),
)

# Blackwell. NVIDIA publishes the B300, GB200 and GB300 figures per system (HGX B300: 8 GPUs; NVL72:
# 72 GPUs), sparse: divided by the GPU count and halved, hence "estimate" in their sources.
_BLACKWELL = (
    _g("B300", 270, 8.0, 2250, 4500, NVLINK5, "nvlink", PCIE6, 7.00, ("B300", "B300 SXM6 AC", "B300 SXM6"),
       "estimate from NVIDIA HGX B300 (8 GPUs: 2.1 TB HBM3e, FP8 72 / BF16 36 PFLOPS sparse) per GPU,"
       " halved; up to 8 TB/s HBM3e per GPU (Blackwell Ultra)"),
    _g("GB200", 186, 8.0, 2500, 5000, NVLINK5, "nvlink", C2C, 6.50, ("GB200",),
       "estimate from NVIDIA GB200 NVL72 (72 GPUs: 13.4 TB HBM3e at 576 TB/s, FP8 720 / BF16 360 PFLOPS"
       " sparse) per GPU, halved"),
    _g("GB300", 279, 8.0, 2500, 5000, NVLINK5, "nvlink", C2C, 8.00, ("GB300",),
       "estimate from NVIDIA GB300 NVL72 (72 GPUs: 20.1 TB HBM3e at 576 TB/s, FP8 360 / BF16 180 PFLOPS"
       " dense) per GPU"),
)

# Workstation and PCIe data-centre cards: no NVSwitch; NVLink bridges (A6000, A40, A30) join pairs only,
# so multi-GPU hosts are planned over PCIe.
_PCIE_CARDS = (
    _g("L40", 48, 0.864, 181.05, 362, PCIE4, "pcie", PCIE4, 0.90, ("L40",),
       "NVIDIA L40 datasheet (BF16 181.05 / FP8 362 TFLOPS dense; 362.1 / 724 with sparsity)"),
    _g("RTX-6000-Ada", 48, 0.960, 364.25, 728.5, PCIE4, "pcie", PCIE4, 0.80,
       ("RTX 6000 Ada Generation", "RTX 6000 Ada"),
       "NVIDIA RTX 6000 Ada datasheet (48 GB GDDR6, 960 GB/s; FP8 1,457 TFLOPS sparse, halved; BF16 half"
       " of FP8 per the Ada whitepaper)"),
    # Workstation and Server editions share the figures; the 300 W Max-Q edition clocks lower, so it is
    # left unknown (an operator gives it a gpu_types entry) rather than planned as the faster card.
    _g("RTX-PRO-6000", 96, 1.792, 500, 1000, PCIE5, "pcie", PCIE5, 1.80,
       ("RTX PRO 6000 Blackwell Workstation Edition", "RTX PRO 6000 Blackwell Server Edition"),
       "estimate from NVIDIA RTX PRO 6000 Blackwell datasheet (96 GB GDDR7, 1,792 GB/s; 4,000 AI TOPS ="
       " FP4 sparse): halved for dense, halved per doubling of width (FP8 1,000, BF16 500 TFLOPS)"),
    _g("RTX-A6000", 48, 0.768, 154.85, None, PCIE4, "pcie", PCIE4, 0.50, ("RTX A6000", "A6000"),
       "NVIDIA RTX A6000 datasheet (48 GB GDDR6, 768 GB/s; tensor 309.7 TFLOPS sparse, halved)"),
    _g("A40", 48, 0.696, 149.7, None, PCIE4, "pcie", PCIE4, 0.40, ("A40",),
       "NVIDIA A40 datasheet (48 GB GDDR6, 696 GB/s; BF16 149.7 / 299.4 TFLOPS with sparsity)"),
    _g("A30", 24, 0.933, 165, None, PCIE4, "pcie", PCIE4, 0.40, ("A30",),
       "NVIDIA A30 datasheet (24 GB HBM2, 933 GB/s; BF16 165 / 330 TFLOPS with sparsity)"),
    # Turing has no BF16: the FP16 tensor rate (mixed precision), and engines serve the model in fp16.
    _g("T4", 16, 0.320, 65, None, PCIE4 / 2, "pcie", PCIE4 / 2, 0.35, ("Tesla T4",),
       "NVIDIA T4 datasheet (16 GB GDDR6, 320 GB/s; FP16 mixed-precision 65 TFLOPS, no BF16; PCIe Gen3 x16)"),
)

# AMD Instinct (OAM, 8 per board, Infinity Fabric to every peer). AMD prints dense and sparse separately.
_AMD = (
    _g("MI300X", 192, 5.3, 1307.4, 2614.9, IF_MI300, "infinity-fabric", PCIE5, 2.50,
       ("Instinct MI300X", "MI300X"),
       "AMD Instinct MI300X datasheet (192 GB HBM3, 5.3 TB/s; BF16 1,307.4 / FP8 2,614.9 TFLOPS dense;"
       " 7 IF links x 128 GB/s); price an estimate", vendor="amd"),
    _g("MI325X", 256, 6.0, 1307.4, 2614.9, IF_MI300, "infinity-fabric", PCIE5, 3.00,
       ("Instinct MI325X", "MI325X"),
       "AMD Instinct MI325X datasheet (256 GB HBM3E, 6 TB/s; BF16 1,307.4 / FP8 2,614.9 TFLOPS dense;"
       " 7 IF links x 128 GB/s); price an estimate", vendor="amd"),
    # 256 CUs x 2.4 GHz x 8,192 FP8 FLOP per CU-clock (AMD at ISSCC 2026) = 5.03 PFLOPS, AMD's "5 PF" dense
    # FP8; BF16 at half the FP8 rate. Infinity Fabric taken as MI300X's (at least that; an estimate).
    _g("MI355X", 288, 8.0, 2516.6, 5033.2, IF_MI300, "infinity-fabric", PCIE5, 4.00,
       ("Instinct MI355X", "MI355X"),
       "AMD Instinct MI355X (CDNA 4 whitepaper, ISSCC 2026: 288 GB HBM3E, 8 TB/s, 256 CUs at 2.4 GHz;"
       " FP8 5.03 PFLOPS dense, BF16 half); IF bandwidth an estimate (MI300X's)", vendor="amd"),
)

# fmt: on

GPU_TABLE: tuple[GPU, ...] = (*_ORIGINAL, *_HOPPER, *_BLACKWELL, *_PCIE_CARDS, *_AMD)

# Which link each catalog GPU's multi-GPU hosts use (llmctl.catalog.gpus.LINKS). Unlisted GPUs go by
# their interconnect kind and bandwidth.
GPU_LINKS: dict[str, str] = {
    "H100-SXM": "nvlink4-nvswitch",
    "H200": "nvlink4-nvswitch",
    "H20": "nvlink4-nvswitch",
    # Multi-superchip GH200 nodes join their GPUs by NVLink 4 (no measurement: the SXM profile stands in).
    "GH200-96GB": "nvlink4-nvswitch",
    "GH200-144GB": "nvlink4-nvswitch",
    "H100-NVL": "nvlink4-bridge",
    "H200-NVL": "nvlink4-bridge",
    "B200": "nvlink5-nvswitch",
    "B300": "nvlink5-nvswitch",
    "GB200": "nvlink5-nvswitch",
    "GB300": "nvlink5-nvswitch",
    "A100-80GB": "nvlink3-nvswitch",
    "A100-40GB": "nvlink3-nvswitch",
    "H100-PCIe": "pcie5",
    "MI300X": "infinity-fabric-mi300",
    "MI325X": "infinity-fabric-mi300",
    "MI355X": "infinity-fabric-mi300",
}
