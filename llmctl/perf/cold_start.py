"""Start-up latency of a replica: cold start phase by phase, wake-up from sleep mode, and the cold-start
tiers of a slot (issue #18, llmctl.perf.tiers): seconds from each tier to RUNNING and what each tier holds.

The autoscaler and the simulator use these to decide how early to scale and what a warm pool of sleeping
replicas buys (vLLM --enable-sleep-mode, SGLang --enable-memory-saver keep the process and CUDA graphs
alive; vLLM sleep level 1 parks the weights in host memory, level 2 discards them).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Literal

from llmctl.catalog.gpu_table import GiB
from llmctl.perf.memory import DTYPE_BYTES, FIXED_OVERHEAD_BYTES, activation_bytes, weight_bytes
from llmctl.perf.tiers import Tier

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

# --- sleep-mode wake-ups, fitted to the vLLM blog "Zero-Reload Model Switching with vLLM Sleep Mode"
# (blog.vllm.ai/2025/10/26/sleep-mode.html; A100, PCIe Gen4 host link, vLLM 0.11.0, TP 1): wake times
# Qwen3-0.6B (1.5 GB bf16) / Phi-3-vision-128k (8.3 GB): level 1 0.26 s / 0.82 s, level 2 0.85 s / 2.58 s.
# Level 1's slope is 12.1 GB/s, 38% of the link: the allocator restores each backed-up allocation with its
# own copy, well below bandwidthTest's pinned rate; its intercept is the fixed part.
WAKE_COPY_EFFICIENCY = 0.38
WAKE_FIXED_S = 0.15
# Level 2 is level 1's wake plus a re-read of the checkpoint into the kept allocations (vLLM
# /collective_rpc reload_weights, then /reset_prefix_cache): the blog's level-2 minus level-1 times give
# 5.8 GB/s (the files come back from the page cache) and 0.32 s of fixed cost. A host whose page cache lost
# the files reads them from disk: the re-read is never slower than `local_disk_bandwidth`.
RELOAD_BANDWIDTH = 5.8 * GB
RELOAD_FIXED_S = 0.32

# --- what a tier holds besides the weights
# GPU memory a sleeping replica keeps per rank: what the sleep allocator does not manage (CUDA context,
# NCCL buffers, the CUDA-graph pool, the activation workspace). vLLM docs ("Sleep Mode") say a sleep
# releases "up to 90%+ of GPU memory"; a level-1 log reads "Sleep mode freed 83.28 GiB memory, 5.82 GiB
# memory is still in use" for a 75 GiB model. Counted as the memory fit's overhead plus its activations.
# Host memory of one engine rank's process (Python, torch, CUDA libraries), asleep or running. Estimate:
# a few GiB of resident set per vLLM/SGLang worker in `ps`; calibrate from host facts.
ENGINE_PROCESS_HOST_BYTES = 2 * GiB
# On-disk size of one model's compile caches (torch.compile/inductor artefacts, Triton and FlashInfer JIT
# kernels). Estimate: hundreds of MiB per model and shape under ~/.cache/vllm/torch_compile_cache.
COMPILE_CACHE_BYTES = 0.5 * GiB


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
    # torch.compile of the model graph on a cache miss. vLLM V1 compiles by default and caches the result
    # on disk; first-run logs read "torch.compile takes N s in total" with N of 15-35 s for 1-8B models
    # (e.g. 30.7 s, 34.6 s; one 14.8 s on a small model). SGLang does not compile unless
    # --enable-torch-compile.
    compile_s: float = 15.0
    # The same with the compile cache warm: vLLM logs "Directly load the compiled graph(s) ... from the
    # cache, took 0.7-1.9 s" and "torch.compile took 2.9-4.9 s in total" (Dynamo's bytecode transform is
    # still run). Never more than `compile_s`.
    compile_cached_s: float = 3.0
    # CUDA-graph capture: one graph per captured batch size, cost growing with the layers captured.
    # vLLM V1 captures 67 sizes up to 512 by default (its log "Graph capturing finished in ~5-10 secs" for
    # an 8B model); SGLang captures ~20-35 sizes up to --cuda-graph-max-bs ("Capture cuda graph end").
    cuda_graph_sizes: int = 67
    cuda_graph_s_per_size_layer: float = 3e-3
    # Dummy forward passes before the server reports healthy. Source: estimate from start-up logs.
    warmup_s: float = 2.0
    # Wake-up from sleep: fixed part, copy efficiency, level-2 re-read (sources above).
    wake_fixed_s: float = WAKE_FIXED_S
    wake_copy_efficiency: float = WAKE_COPY_EFFICIENCY
    reload_bandwidth: float = RELOAD_BANDWIDTH
    reload_fixed_s: float = RELOAD_FIXED_S
    # vLLM's sleep mode runs on CUDA and ROCm only (vLLM docs, "Sleep Mode"); not on its CPU backend.
    sleep_supported: bool = True


def default_cold_start(engine: str, gpu: GPU | None = None) -> ColdStartFactors:
    if gpu is not None and gpu.is_cpu:
        # vLLM's CPU backend: no CUDA context or NCCL to set up and no CUDA graphs (it sets
        # cudagraph_capture_sizes = []), but torch.compile's inductor backend generates and builds C++ for
        # the model, slower than on a GPU (a warm cache skips the build: estimate 5 s); then a warm-up
        # forward pass. Estimates, calibrate from start-ups.
        return ColdStartFactors(
            engine_init_s=10.0,
            compile_s=30.0,
            compile_cached_s=5.0,
            cuda_graph_sizes=0,
            warmup_s=5.0,
            sleep_supported=False,
        )
    if engine == "sglang":
        return ColdStartFactors(engine_init_s=15.0, compile_s=0.0, compile_cached_s=0.0, cuda_graph_sizes=30)
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


def _draft_bytes(draft_params: float) -> float:
    return draft_params * DTYPE_BYTES["bf16"]


def _checkpoint_bytes(profile: Profile, draft_params: float = 0.0) -> float:
    # The whole checkpoint passes through one host's disk (and network link) whatever the TP size;
    # an FP8 checkpoint is half the bytes of a BF16 one.
    return weight_bytes(profile.model, profile.dtype) + _draft_bytes(draft_params)


def _host_to_gpu_s(profile: Profile, extra_bytes: float = 0.0, efficiency: float | None = None) -> float:
    per_rank = (weight_bytes(profile.model, profile.dtype) + extra_bytes) / profile.tp
    eff = profile.cold_start.host_to_device_efficiency if efficiency is None else efficiency
    return per_rank / (profile.gpu.host_link_bandwidth * eff)


def cold_start_time(
    profile: Profile,
    *,
    source: WeightSource = "local",
    bandwidth: float | None = None,
    draft_params: float = 0.0,
    compile_cached: bool = False,
) -> ColdStartBreakdown:
    """Phases of starting a replica from nothing. `bandwidth` overrides the default for `source`;
    `compile_cached`: the engine's compile cache is warm (Tier.COMPILE_WARM)."""
    f = profile.cold_start
    checkpoint = _checkpoint_bytes(profile, draft_params)
    disk_bw = bandwidth if (bandwidth and source == "local") else f.local_disk_bandwidth
    net_bw = bandwidth if (bandwidth and source == "network") else f.network_bandwidth
    download = checkpoint / net_bw if source == "network" else 0.0
    graphs = profile.cuda_graphs
    capture = f.cuda_graph_sizes * f.cuda_graph_s_per_size_layer * profile.model.num_layers if graphs else 0.0
    compile_s = min(f.compile_cached_s, f.compile_s) if compile_cached else f.compile_s
    return ColdStartBreakdown(
        download_s=download,
        disk_read_s=checkpoint / disk_bw,
        host_to_gpu_s=_host_to_gpu_s(profile, _draft_bytes(draft_params)),
        engine_init_s=f.engine_init_s,
        # --enforce-eager in vLLM also skips torch.compile.
        compile_s=compile_s if graphs else 0.0,
        cuda_graph_capture_s=capture,
        warmup_s=f.warmup_s,
    )


def wake_time(profile: Profile, *, draft_params: float = 0.0) -> WakeBreakdown:
    """Wake-up from sleep level 1 (SGLang: memory saver with a CPU backup of the weights): each rank's
    weights over the host link at the sleep allocator's copy rate, plus the fixed re-mapping cost."""
    f = profile.cold_start
    return WakeBreakdown(
        host_to_gpu_s=_host_to_gpu_s(profile, _draft_bytes(draft_params), f.wake_copy_efficiency),
        fixed_s=f.wake_fixed_s,
    )


# --- cold-start tiers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TierTransition:
    """Seconds from `tier` to RUNNING, phase by phase. `via` is the rung whose path is taken: a slot may
    always fall back to a lower rung's path (stop the sleeper and start from disk, whose checkpoint and
    compile cache an asleep slot keeps), so a rung is never slower than the one below it."""

    tier: Tier
    via: Tier
    download_s: float = 0.0
    disk_read_s: float = 0.0
    engine_init_s: float = 0.0
    compile_s: float = 0.0
    cuda_graph_capture_s: float = 0.0
    warmup_s: float = 0.0
    reload_s: float = 0.0  # level 2: the checkpoint re-read into the kept allocations
    host_to_gpu_s: float = 0.0
    wake_fixed_s: float = 0.0

    def phases(self) -> dict[str, float]:
        return {f.name: float(getattr(self, f.name)) for f in fields(self) if f.name not in ("tier", "via")}

    @property
    def total_s(self) -> float:
        return sum(self.phases().values())


@dataclass(frozen=True)
class TierHoldings:
    """What one slot on `tier` holds: GPU memory on each of its `gpus`, host RAM and local disk (bytes).
    `dedicated`: the GPUs serve this replica alone (RUNNING); an asleep slot's residue can share a GPU
    with other sleepers and one running replica."""

    tier: Tier
    gpus: int
    gpu_bytes: float  # per GPU
    host_ram_bytes: float
    disk_bytes: float
    dedicated: bool = False


def _own_path(
    profile: Profile, tier: Tier, draft_params: float, network_bandwidth: float | None
) -> TierTransition:
    f = profile.cold_start
    if tier is Tier.RUNNING:
        return TierTransition(tier, tier)
    if tier.asleep:
        wake = wake_time(profile, draft_params=draft_params)
        reload_s = 0.0
        if tier is Tier.ASLEEP_DISCARDED:
            reread_bw = max(f.reload_bandwidth, f.local_disk_bandwidth)
            reload_s = f.reload_fixed_s + _checkpoint_bytes(profile, draft_params) / reread_bw
        return TierTransition(
            tier, tier, reload_s=reload_s, host_to_gpu_s=wake.host_to_gpu_s, wake_fixed_s=wake.fixed_s
        )
    cold = cold_start_time(
        profile,
        source="network" if tier is Tier.ABSENT else "local",
        bandwidth=network_bandwidth if tier is Tier.ABSENT else None,
        draft_params=draft_params,
        compile_cached=tier is Tier.COMPILE_WARM,
    )
    return TierTransition(tier, tier, **cold.phases())


def tier_ladder(
    profile: Profile, *, draft_params: float = 0.0, network_bandwidth: float | None = None
) -> tuple[TierTransition, ...]:
    """Each tier's transition to RUNNING, indexed by Tier (ABSENT first). A rung whose own path is slower
    than the rung below (a site override can make it so), or that the device cannot take (no sleep mode on
    vLLM's CPU backend), takes the lower rung's path: `via` says which."""
    ladder: list[TierTransition] = []
    for tier in Tier:
        own = _own_path(profile, tier, draft_params, network_bandwidth)
        below = ladder[-1] if ladder else None
        unsupported = tier.asleep and not profile.cold_start.sleep_supported
        if below is not None and (unsupported or own.total_s > below.total_s):
            own = replace(below, tier=tier)
        ladder.append(own)
    return tuple(ladder)


def tier_transition(
    profile: Profile, tier: Tier, *, draft_params: float = 0.0, network_bandwidth: float | None = None
) -> TierTransition:
    return tier_ladder(profile, draft_params=draft_params, network_bandwidth=network_bandwidth)[tier]


def sleep_residue_bytes(profile: Profile) -> float:
    """GPU memory one rank of a sleeping replica keeps: the memory fit's fixed overhead plus its activation
    workspace, which the sleep allocator does not manage (sources with the module's constants)."""
    return FIXED_OVERHEAD_BYTES + activation_bytes(profile.model, profile.max_batched_tokens, profile.tp)


def tier_holdings(profile: Profile, tier: Tier, *, draft_params: float = 0.0) -> TierHoldings:
    """What a slot of this profile holds on `tier`. Disk: the checkpoint from ON_DISK up, the compile cache
    from COMPILE_WARM up (asleep and running slots keep both). Host RAM: the engine's processes once one
    runs, plus the whole replica's weights at level 1 (every rank's backup is on the same host). GPU: the
    sleep residue per rank when asleep, the engine's memory share when running (vLLM
    --gpu-memory-utilization, SGLang --mem-fraction-static). A device without sleep mode holds what the
    rung it falls back to holds."""
    if tier.asleep and not profile.cold_start.sleep_supported:
        return replace(tier_holdings(profile, Tier.COMPILE_WARM, draft_params=draft_params), tier=tier)
    checkpoint = _checkpoint_bytes(profile, draft_params)
    disk = (checkpoint if tier >= Tier.ON_DISK else 0.0) + (
        COMPILE_CACHE_BYTES if tier >= Tier.COMPILE_WARM else 0.0
    )
    processes = ENGINE_PROCESS_HOST_BYTES * profile.tp if tier.has_process else 0.0
    weights_in_ram = checkpoint if tier is Tier.ASLEEP_IN_RAM else 0.0
    if tier is Tier.RUNNING:
        gpu = profile.gpu.memory_bytes * profile.memory_fraction
    elif tier.asleep:
        gpu = sleep_residue_bytes(profile)
    else:
        gpu = 0.0
    return TierHoldings(
        tier=tier,
        gpus=profile.tp,
        gpu_bytes=gpu,
        host_ram_bytes=processes + weights_in_ram,
        disk_bytes=disk,
        dedicated=tier is Tier.RUNNING,
    )
