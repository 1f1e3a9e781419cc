"""Everything `llmctl perf show` reports about a profile, as plain data (the CLI renders it or prints JSON)."""

from __future__ import annotations

from typing import Any

from llmctl.catalog.gpus import GiB
from llmctl.perf.capacity import SWEEP_BATCHES, kv_fit, max_throughput, sweep
from llmctl.perf.cold_start import cold_start_time, wake_time
from llmctl.perf.profile import Profile
from llmctl.perf.speculative import SpecConfig, spec_break_even_batch
from llmctl.perf.step_time import StepBatch, step_model


def perf_report(
    profile: Profile,
    *,
    context: int,
    spec: SpecConfig | None = None,
    max_seqs: int | None = None,
    batches: tuple[int, ...] = SWEEP_BATCHES,
) -> dict[str, Any]:
    model = step_model(profile)
    fit = kv_fit(profile)
    rows: list[dict[str, Any]] = []
    spec_rows = {p.batch: p for p in sweep(profile, context, batches, spec=spec)} if spec else {}
    for point in sweep(profile, context, batches):
        detail = model.breakdown(StepBatch(point.batch, point.batch * context))
        row: dict[str, Any] = {
            "batch": point.batch,
            "step_ms": point.step_s * 1e3,
            "tokens_per_s": point.tokens_per_s,
            "fits": point.fits,
            "bound": detail.bound,
            "memory_ms": detail.memory_s * 1e3,
            "compute_ms": detail.compute_s * 1e3,
            "comm_ms": detail.comm_s * 1e3,
            "overhead_ms": detail.overhead_s * 1e3,
        }
        if point.batch in spec_rows:
            row["spec_token_ms"] = spec_rows[point.batch].step_s * 1e3
            row["spec_tokens_per_s"] = spec_rows[point.batch].tokens_per_s
        rows.append(row)
    best = max_throughput(profile, context, max_seqs=max_seqs)
    local = cold_start_time(profile, source="local")
    network = cold_start_time(profile, source="network")
    wake = wake_time(profile)
    report: dict[str, Any] = {
        "profile": profile.name,
        "device": profile.gpu.kind,
        "context": context,
        "memory_fraction": profile.memory_fraction,
        "kv_dtype": profile.kv_dtype,
        "cuda_graphs": profile.cuda_graphs,
        "factors": profile.factors.as_dict(),
        "memory": {
            "weights_gib_per_rank": fit.weights / GiB,
            "kv_bytes_per_token_per_rank": fit.kv_bytes_per_token,
            "kv_capacity_tokens": fit.kv_capacity_tokens,
            "max_batch_at_context": fit.kv_capacity_tokens // max(1, context),
        },
        "prefill_ms_at_context": model.prefill(context) * 1e3,
        "steps": rows,
        "max_throughput": None
        if best is None
        else {"batch": best.batch, "tokens_per_s": best.tokens_per_s, "step_ms": best.step_s * 1e3},
        "cold_start": {
            "local": {**local.phases(), "total_s": local.total_s},
            "network": {**network.phases(), "total_s": network.total_s},
            "wake_from_sleep": {
                "host_to_gpu_s": wake.host_to_gpu_s,
                "fixed_s": wake.fixed_s,
                "total_s": wake.total_s,
            },
        },
    }
    if spec is not None:
        kv_limit = kv_fit(profile, spec).kv_capacity_tokens // max(1, context)
        report["speculative"] = {
            "draft_params": spec.draft_params,
            "num_draft_tokens": spec.num_draft_tokens,
            "acceptance_rate": spec.acceptance_rate,
            "break_even_batch": spec_break_even_batch(profile, spec, context, max_batch=max(1, kv_limit)),
            "searched_up_to_batch": max(1, kv_limit),
        }
    return report
