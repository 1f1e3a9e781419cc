"""Workload-class presets (design.md): what each class optimises for, as data with the reason attached."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    workload: str
    engine: str
    engine_reason: str
    tp_preference: tuple[int, ...]  # tried in order; the first that fits the memory budget wins
    tp_reason: str
    speculative: bool
    speculative_reason: str
    sleep_mode: bool
    sleep_reason: str
    max_context: int
    concurrency: int  # sequences of max_context the KV cache must hold
    max_num_seqs: int
    max_batched_tokens: int
    fp8_reason: str


PRESETS: dict[str, Preset] = {
    "offline": Preset(
        workload="offline",
        engine="vllm",
        engine_reason="offline wants throughput: vLLM's scheduler keeps large mixed batches full",
        tp_preference=(1, 2, 4, 8),
        tp_reason="one GPU per replica maximises throughput per GPU; more only when the model does not fit",
        speculative=False,
        speculative_reason="at batches of hundreds speculative decoding costs throughput",
        sleep_mode=False,
        sleep_reason="batch replicas run until the job is done",
        max_context=8192,
        concurrency=32,
        max_num_seqs=512,
        max_batched_tokens=16384,
        fp8_reason="FP8 weights halve memory traffic and free memory for a larger KV cache (bigger batches)",
    ),
    "online": Preset(
        workload="online",
        engine="sglang",
        engine_reason="online wants low TTFT and inter-token latency: SGLang has low host "
        "overhead and EAGLE-3 speculative decoding",
        tp_preference=(2, 4, 8, 1),
        tp_reason="tensor parallel 2 lowers per-token latency, the usual sweet spot before all-reduce costs dominate",
        speculative=True,
        speculative_reason="EAGLE-3 cuts inter-token latency at the small batches online traffic runs",
        sleep_mode=False,
        sleep_reason="online keeps at least one replica warm",
        max_context=8192,
        concurrency=16,
        max_num_seqs=64,
        max_batched_tokens=8192,
        fp8_reason="FP8 weights halve the bytes each decode step reads, lowering inter-token latency",
    ),
    "semi-online": Preset(
        workload="semi-online",
        engine="vllm",
        engine_reason="bursty traffic: vLLM sleep mode gives a warm pool that wakes in seconds",
        tp_preference=(1, 2, 4, 8),
        tp_reason="the smallest replica that fits scales in the finest steps",
        speculative=False,
        speculative_reason="bursts reach batch sizes where speculative decoding stops paying off",
        sleep_mode=True,
        sleep_reason="sleeping replicas keep weights in host memory: waking is much faster than a cold start",
        max_context=8192,
        concurrency=16,
        max_num_seqs=256,
        max_batched_tokens=8192,
        fp8_reason="FP8 weights halve what a cold start loads and what a wake-up copies back",
    ),
}
