"""The GPUs added for issue #17: figures positive and consistent, memory as marketed, product names as the
vendors' tools print them resolving to the right entry, and each multi-GPU host on a link."""

from __future__ import annotations

import pytest

from llmctl.catalog.gpus import GB, GPUS, LINKS, GiB, find_gpu, gpu_link

# Entry -> the memory its datasheet markets, in GB.
MARKETED_GB = {
    "H20": 96,
    "GH200-96GB": 96,
    "GH200-144GB": 144,
    "H100-NVL": 94,
    "H200-NVL": 141,
    "B300": 270,  # HGX B300: 2.1 TB over 8 GPUs
    "GB200": 186,  # NVL72: 13.4 TB over 72 GPUs
    "GB300": 279,  # NVL72: 20.1 TB over 72 GPUs
    "L40": 48,
    "RTX-6000-Ada": 48,
    "RTX-PRO-6000": 96,
    "RTX-A6000": 48,
    "A40": 48,
    "A30": 24,
    "T4": 16,
    "MI300X": 192,
    "MI325X": 256,
    "MI355X": 288,
}
NEW = sorted(MARKETED_GB)


@pytest.mark.parametrize("name", NEW)
def test_new_entries_are_positive_and_consistent(name: str) -> None:
    g = GPUS[name]
    assert g.memory_bytes > 0 and g.hbm_bandwidth > 0 and g.bf16_flops > 0
    assert g.interconnect_bandwidth > 0 and g.host_link_bandwidth > 0 and g.price_per_hour > 0
    if g.fp8_flops is not None:
        assert g.bf16_flops < g.fp8_flops <= 2.01 * g.bf16_flops  # FP8 at twice the 16-bit rate, dense
    # Dense figures: no current part reaches 3 PFLOP/s of dense BF16 or 10 TB/s per GPU.
    assert g.bf16_flops < 3e15 and g.hbm_bandwidth < 10e12
    assert g.source and g.aliases
    assert g.interconnect in ("nvlink", "pcie", "infinity-fabric")


@pytest.mark.parametrize("name", NEW)
def test_memory_matches_the_marketed_size(name: str) -> None:
    marketed = MARKETED_GB[name]
    got = GPUS[name].memory_bytes
    # As GB (10^9 bytes) within rounding, never more than the GiB reading of the same number.
    assert abs(got - marketed * GB) <= 0.01 * marketed * GB
    assert got <= marketed * GiB


def test_sparse_only_sources_say_they_were_halved() -> None:
    for name in ("GH200-96GB", "GH200-144GB", "H100-NVL", "H200-NVL", "RTX-6000-Ada", "RTX-A6000"):
        assert "halved" in GPUS[name].source, name


def test_system_figures_are_marked_as_estimates() -> None:
    for name in ("B300", "GB200", "GB300", "RTX-PRO-6000"):
        assert "estimate" in GPUS[name].source, name


# Product names exactly as nvidia-smi (--query-gpu=name), amd-smi (asic.market_name) and rocm-smi
# (Card Series) print them.
TOOL_NAMES = [
    ("NVIDIA H20", "H20"),
    ("NVIDIA GH200 480GB", "GH200-96GB"),
    ("NVIDIA GH200 144G HBM3e", "GH200-144GB"),
    ("NVIDIA H100 NVL", "H100-NVL"),
    ("NVIDIA H200 NVL", "H200-NVL"),
    ("NVIDIA B300 SXM6 AC", "B300"),
    ("NVIDIA GB200", "GB200"),
    ("NVIDIA GB300", "GB300"),
    ("NVIDIA L40", "L40"),
    ("NVIDIA RTX 6000 Ada Generation", "RTX-6000-Ada"),
    ("NVIDIA RTX PRO 6000 Blackwell Workstation Edition", "RTX-PRO-6000"),
    ("NVIDIA RTX PRO 6000 Blackwell Server Edition", "RTX-PRO-6000"),
    ("NVIDIA RTX A6000", "RTX-A6000"),
    ("NVIDIA A40", "A40"),
    ("NVIDIA A30", "A30"),
    ("Tesla T4", "T4"),
    ("AMD Instinct MI300X", "MI300X"),
    ("AMD Instinct MI300X VF", "MI300X"),
    ("AMD Instinct MI325X", "MI325X"),
    ("AMD Instinct MI355X", "MI355X"),
    # The entries llmctl had keep resolving.
    ("NVIDIA H100 80GB HBM3", "H100-SXM"),
    ("NVIDIA H100 PCIe", "H100-PCIe"),
    ("NVIDIA H200", "H200"),
    ("NVIDIA B200", "B200"),
    ("NVIDIA A100-SXM4-80GB", "A100-80GB"),
    ("NVIDIA A100 80GB PCIe", "A100-80GB"),
    ("NVIDIA L40S", "L40S"),
    ("NVIDIA L4", "L4"),
    ("NVIDIA A10G", "A10G"),
    ("NVIDIA GeForce RTX 4090", "RTX-4090"),
]


@pytest.mark.parametrize(("product", "entry"), TOOL_NAMES)
def test_tool_product_names_resolve(product: str, entry: str) -> None:
    found = find_gpu(product)
    assert found is not None and found.name == entry


@pytest.mark.parametrize(
    "product",
    [
        "NVIDIA RTX A4000",  # letters of "A40", not the A40
        "NVIDIA RTX PRO 6000 Blackwell Max-Q Workstation Edition",  # a 300 W part, clocked lower
        "AMD INSTINCT MI200 (MCM) OAM LC MBA HPE C2",  # MI250 or MI250X: not in the catalog
        "Radeon RX 7900 XT",
        "NVIDIA Foo 96GB",
    ],
)
def test_lookalike_names_stay_unknown(product: str) -> None:
    assert find_gpu(product) is None


def test_amd_entries_are_rocm_and_nvidia_ones_are_not() -> None:
    assert {n for n, g in GPUS.items() if g.is_rocm} == {"MI300X", "MI325X", "MI355X"}
    assert not GPUS["H100-SXM"].is_rocm


@pytest.mark.parametrize(
    ("name", "link"),
    [
        ("H20", "nvlink4-nvswitch"),
        ("H100-NVL", "nvlink4-bridge"),
        ("B300", "nvlink5-nvswitch"),
        ("GB200", "nvlink5-nvswitch"),
        ("MI300X", "infinity-fabric-mi300"),
        ("MI355X", "infinity-fabric-mi300"),
        ("L40", "pcie4"),
        ("RTX-PRO-6000", "pcie5"),
    ],
)
def test_links(name: str, link: str) -> None:
    assert gpu_link(GPUS[name]).name == link


def test_new_links_are_marked_as_estimates() -> None:
    for name in ("nvlink4-bridge", "infinity-fabric-mi300", "nvlink5-nvswitch"):
        assert LINKS[name].source.startswith("estimate"), name
