"""Start-up latency of a replica: cold start phase by phase, and wake-up from sleep mode.

The autoscaler and the simulator use these to decide how early to scale and what a warm pool of sleeping
replicas buys (vLLM --enable-sleep-mode, SGLang --enable-memory-saver keep the process and CUDA graphs
alive and park the weights in host memory).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Literal

from llmctl.perf.memory import DTYPE_BYTES, weight_bytes

if TYPE_CHECKING:
    from llmctl.catalog.gpus import GPU
    from llmctl.perf.profile import Profile

WeightSource = Literal["local", "network"]

GB = 1e9

# Sequential read of a local NVMe SSD when loading safetensors shards. Source: PCIe Gen4 NVMe datasheets
# give ~7 GB/s sequential read; safetensors loading through the page cache by one process typically
# reaches 2-3 GB/s in vLLM/SGLang start-up logs ("Loading weights took N seconds"). Conservative middle.
NVME_READ_BANDWIDTH = 2.5 * GB
# Download from the Hugging Face Hub (or an object store) on a cloud VM. Source: huggingface_hub docs note
# plain downloads are limited to a few hundred MB/s and hf_transfer can go beyond 1 GB/s on fast links;
# 2.5 Gbit/s is a typical cloud-VM figure. Override per site.
NETWORK_DOWNLOAD_BANDWIDTH = 0.3 * GB
# Fraction of the PCIe host link a pinned host->device copy reaches. Source: CUDA samples bandwidthTest on
# PCIe Gen4/Gen5 x16 reports ~80% of the per-direction link rate.
HOST_TO_DEVICE_EFFICIENCY = 0.8


@dataclass(frozen=True)
class ColdStartFactors:
    """Per-engine start-up constants. Defaults per engine come from `default_cold_start`."""

    local_disk_bandwidth: float = NVME_READ_BANDWIDTH
    network_bandwidth: float = NETWORK_DOWNLOAD_BANDWIDTH
    host_to_device_efficiency: float = HOST_TO_DEVICE_EFFICIENCY
    # Process start, Python/torch imports, NCCL set-up, memory profiling run, KV-cache allocation.
    # Source: vLLM and SGLang start-up logs on H100 hosts (tens of seconds from launch to weights loading
    # plus profiling); an estimate, calibrate from `llmctl` start-up events.
    engine_init_s: float = 20.0
    # torch.compile of the model graph. vLLM V1 compiles by default and caches the result on disk; its log
    # "torch.compile takes N s in total" shows ~10-20 s with a warm cache, more on the first run.
    # SGLang does not compile unless --enable-torch-compile.
    compile_s: float = 15.0
    # CUDA-graph capture: one graph per captured batch size, cost growing with the layers captured.
    # vLLM V1 captures 67 sizes up to 512 by default (its log "Graph capturing finished in ~5-10 secs" for
    # an 8B model); SGLang captures ~20-35 sizes up to --cuda-graph-max-bs ("Capture cuda graph end").
    cuda_graph_sizes: int = 67
    cuda_graph_s_per_size_layer: float = 3e-3
    # Dummy forward passes before the server reports healthy. Source: estimate from start-up logs.
    warmup_s: float = 2.0
    # Fixed part of a wake-up from sleep: re-mapping the memory pool and re-allocating the KV cache.
    # Source: estimate (vLLM sleep-mode docs describe wake-up as seconds dominated by the weight copy).
    wake_fixed_s: float = 0.5


def default_cold_start(engine: str, gpu: GPU | None = None) -> ColdStartFactors:
    if gpu is not None and gpu.is_cpu:
        # vLLM's CPU backend: no CUDA context or NCCL to set up and no CUDA graphs (it sets
        # cudagraph_capture_sizes = []), but torch.compile's inductor backend generates and builds C++ for
        # the model, slower than on a GPU; then a warm-up forward pass. Estimates, calibrate from start-ups.
        return ColdStartFactors(engine_init_s=10.0, compile_s=30.0, cuda_graph_sizes=0, warmup_s=5.0)
    if engine == "sglang":
        return ColdStartFactors(engine_init_s=15.0, compile_s=0.0, cuda_graph_sizes=30)
    return ColdStartFactors()


@dataclass(frozen=True)
class ColdStartBreakdown:
    """Seconds per phase of a cold start; `total_s` is their sum."""

    download_s: float  # network only: fetch the checkpoint to local disk
    disk_read_s: float  # read the checkpoint from local disk
    host_to_gpu_s: float  # copy each rank's shard over PCIe (ranks in parallel)
    engine_init_s: float
    compile_s: float
    cuda_graph_capture_s: float
    warmup_s: float

    def phases(self) -> dict[str, float]:
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}

    @property
    def total_s(self) -> float:
        return sum(self.phases().values())


@dataclass(frozen=True)
class WakeBreakdown:
    """Seconds to wake a sleeping replica: weights back from host memory, then a fixed re-mapping cost."""

    host_to_gpu_s: float
    fixed_s: float

    @property
    def total_s(self) -> float:
        return self.host_to_gpu_s + self.fixed_s


def _weights_per_rank(profile: Profile) -> float:
    return weight_bytes(profile.model, profile.dtype) / profile.tp


def _host_to_gpu_s(profile: Profile, extra_bytes: float = 0.0) -> float:
    per_rank = _weights_per_rank(profile) + extra_bytes / profile.tp
    return per_rank / (profile.gpu.host_link_bandwidth * profile.cold_start.host_to_device_efficiency)


def cold_start_time(
    profile: Profile,
    *,
    source: WeightSource = "local",
    bandwidth: float | None = None,
    draft_params: float = 0.0,
) -> ColdStartBreakdown:
    """Phases of starting a replica from nothing. `bandwidth` overrides the default for `source`."""
    f = profile.cold_start
    # The whole checkpoint passes through one host's disk (and network link) whatever the TP size;
    # an FP8 checkpoint is half the bytes of a BF16 one.
    checkpoint = weight_bytes(profile.model, profile.dtype) + draft_params * DTYPE_BYTES["bf16"]
    disk_bw = bandwidth if (bandwidth and source == "local") else f.local_disk_bandwidth
    net_bw = bandwidth if (bandwidth and source == "network") else f.network_bandwidth
    download = checkpoint / net_bw if source == "network" else 0.0
    graphs = profile.cuda_graphs
    capture = f.cuda_graph_sizes * f.cuda_graph_s_per_size_layer * profile.model.num_layers if graphs else 0.0
    return ColdStartBreakdown(
        download_s=download,
        disk_read_s=checkpoint / disk_bw,
        host_to_gpu_s=_host_to_gpu_s(profile, draft_params * DTYPE_BYTES["bf16"]),
        engine_init_s=f.engine_init_s,
        # --enforce-eager in vLLM also skips torch.compile.
        compile_s=f.compile_s if graphs else 0.0,
        cuda_graph_capture_s=capture,
        warmup_s=f.warmup_s,
    )


def wake_time(profile: Profile, *, draft_params: float = 0.0) -> WakeBreakdown:
    """Wake-up from sleep (vLLM sleep level 1 / SGLang memory saver): weights_per_rank over the host link."""
    return WakeBreakdown(
        host_to_gpu_s=_host_to_gpu_s(profile, draft_params * DTYPE_BYTES["bf16"]),
        fixed_s=profile.cold_start.wake_fixed_s,
    )
