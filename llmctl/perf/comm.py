"""Tensor-parallel communication: the time of one all-reduce of a message between the ranks of one host.

time = latency + 2 (tp - 1) / tp x bytes / bus bandwidth: a ring all-reduce moves 2 (tp - 1) / tp of the message
through every rank's link, and nccl-tests reports "bus bandwidth" on exactly that scale, so measured bus
bandwidths plug in directly.
"""

from __future__ import annotations

from llmctl.catalog.gpus import GPU, gpu_link
from llmctl.perf.factors import EfficiencyFactors


def allreduce_bus_bandwidth(gpu: GPU, factors: EfficiencyFactors, tp: int | None = None) -> float:
    """Bytes/s of all-reduce bus bandwidth between `tp` GPUs of one host: the link's measured figure for that
    TP degree where the catalog has one (Vidur, net of latency: 564/719/825 GB/s at TP 2/4/8 on an H100 DGX,
    320/371/383 on an A100 DGX), else its single figure; scaled by comm_efficiency (1.0 = as measured with NCCL)."""
    link = gpu_link(gpu)
    measured = dict(link.tp_bus_bandwidth).get(tp) if tp else None
    return (measured or link.allreduce_bus_bandwidth) * factors.comm_efficiency


def allreduce_latency(gpu: GPU, tp: int, factors: EfficiencyFactors) -> float:
    """Fixed seconds of one all-reduce: factors.allreduce_latency_s for more than two ranks, and the link's
    measured TP-2 share of it for two (Vidur: 7 us against 37-38 us at TP 4/8 on H100, 10 against 61-62 us on
    A100), so that a calibrated latency keeps the measured TP-2 ratio."""
    if tp <= 1:
        return 0.0
    link = gpu_link(gpu)
    if tp == 2 and link.tp2_latency_s is not None and link.allreduce_latency_s > 0:
        return factors.allreduce_latency_s * link.tp2_latency_s / link.allreduce_latency_s
    return factors.allreduce_latency_s


def engine_allreduce_latency(gpu: GPU, tp: int, factors: EfficiencyFactors) -> float:
    """Fixed seconds of one all-reduce inside an engine's step: its one-shot kernel where the link has one
    (factors.custom_allreduce_latency_s > 0) and that beats NCCL, else NCCL's (`allreduce_latency`). The
    engines fall back to NCCL above a few MB (vLLM: 8 MiB), where the bandwidth term dominates anyway."""
    nccl = allreduce_latency(gpu, tp, factors)
    if tp <= 1 or factors.custom_allreduce_latency_s <= 0:
        return nccl
    return min(nccl, factors.custom_allreduce_latency_s)


def allreduce_time(gpu: GPU, tp: int, nbytes: float, factors: EfficiencyFactors) -> float:
    """Seconds for one all-reduce of `nbytes` across `tp` GPUs of one host (0 at TP 1)."""
    if tp <= 1:
        return 0.0
    bandwidth = allreduce_bus_bandwidth(gpu, factors, tp)
    return allreduce_latency(gpu, tp, factors) + 2.0 * (tp - 1) / tp * nbytes / bandwidth
