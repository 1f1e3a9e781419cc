"""The `workload:` section of a scenario file as pydantic models, and `generate` that turns it into arrivals.

A workload is one of (discriminated by `kind`):
  poisson  {rate}                                      constant-rate Poisson arrivals
  diurnal  {mean_rate, amplitude, period_s, peak_at_s} daily cycle (cosine), by thinning
  step     {steps: [{at_s, rate}, ...]}                piecewise-constant rate, by thinning
  ramp     {start_rate, end_rate, ramp_s, start_s}     linear ramp, by thinning
  mmpp     {rates: [...], mean_sojourn_s: [...]}       bursts: Markov-modulated Poisson
  trace    {path, time_scale, rate_scale, rate_mode, start_s, diurnal}  replay of an Azure/Mooncake trace
  mix      {parts: [workload, ...]}                    several workloads (deployments) on one timeline
Every kind but `mix` takes `deployment` (which deployment its requests go to) and `lengths`:
  {kind: fixed, prompt, output} | {kind: lognormal, prompt_median, prompt_sigma, output_median, output_sigma}
  | {kind: trace, path} (pairs resampled from a trace). A `trace` workload uses its own lengths by default.
Relative paths are resolved against `base_dir` (the scenario file's folder).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from llmctl.config.source import LineMap
from llmctl.errors import ConfigErrors, LlmctlError
from sim.workload.arrivals import (
    Arrival,
    LengthSampler,
    diurnal_curve,
    empirical_lengths,
    fixed_lengths,
    lognormal_lengths,
    merge,
    mmpp_times,
    poisson_times,
    ramp_curve,
    step_curve,
    thinned_times,
    to_arrivals,
)
from sim.workload.traces import load_trace, replay_indices


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- lengths ----------------------------------------------------------------------------------------------
class FixedLengths(_Strict):
    kind: Literal["fixed"]
    prompt: int = Field(ge=1)
    output: int = Field(ge=1)


class LognormalLengths(_Strict):
    kind: Literal["lognormal"]
    prompt_median: float = Field(gt=0)
    prompt_sigma: float = Field(default=1.0, ge=0)
    output_median: float = Field(gt=0)
    output_sigma: float = Field(default=1.0, ge=0)
    max_tokens: int = Field(default=32_768, ge=1)


class TraceLengths(_Strict):
    kind: Literal["trace"]
    path: str


Lengths = Annotated[FixedLengths | LognormalLengths | TraceLengths, Field(discriminator="kind")]
DEFAULT_LENGTHS = FixedLengths(kind="fixed", prompt=1024, output=256)


# --- arrival processes ------------------------------------------------------------------------------------
class _Part(_Strict):
    deployment: str = ""
    lengths: Lengths | None = None  # None: fixed 1024/256, or the trace's own for a trace replay


class PoissonSpec(_Part):
    kind: Literal["poisson"]
    rate: float = Field(gt=0)


class DiurnalSpec(_Part):
    kind: Literal["diurnal"]
    mean_rate: float = Field(gt=0)
    amplitude: float = Field(default=0.5, ge=0, le=1)
    period_s: float = Field(default=86_400, gt=0)
    peak_at_s: float = 14 * 3600  # mid-afternoon when the run starts at midnight


class RateStep(_Strict):
    at_s: float = Field(ge=0)
    rate: float = Field(ge=0)


class StepSpec(_Part):
    kind: Literal["step"]
    steps: tuple[RateStep, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> StepSpec:
        times = [s.at_s for s in self.steps]
        if times[0] != 0 or times != sorted(times):
            raise ValueError("steps must start at at_s: 0 and be in time order")
        return self


class RampSpec(_Part):
    kind: Literal["ramp"]
    start_rate: float = Field(ge=0)
    end_rate: float = Field(ge=0)
    ramp_s: float = Field(gt=0)
    start_s: float = Field(default=0, ge=0)


class MmppSpec(_Part):
    kind: Literal["mmpp"]
    rates: tuple[float, ...] = Field(min_length=1)
    mean_sojourn_s: tuple[float, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _matching(self) -> MmppSpec:
        if len(self.rates) != len(self.mean_sojourn_s):
            raise ValueError("rates and mean_sojourn_s need one entry per state")
        if any(r < 0 for r in self.rates) or any(s <= 0 for s in self.mean_sojourn_s):
            raise ValueError("rates must be >= 0 and sojourns > 0")
        return self


class DiurnalShape(_Strict):
    amplitude: float = Field(default=0.5, ge=0, le=1)
    period_s: float = Field(default=86_400, gt=0)
    peak_at_s: float = 14 * 3600


class TraceSpec(_Part):
    """Replay; with `diurnal`, the replay (at rate_scale, its peak) is thinned by a daily cosine, so a day
    keeps the trace's burstiness and lengths and gains a daily cycle (mean = peak / (1 + amplitude))."""

    kind: Literal["trace"]
    path: str
    time_scale: float = Field(default=1.0, gt=0)
    rate_scale: float = Field(default=1.0, gt=0)
    rate_mode: Literal["thin", "compress"] = "thin"
    start_s: float = Field(default=0, ge=0)
    diurnal: DiurnalShape | None = None


class MixSpec(_Strict):
    kind: Literal["mix"]
    parts: tuple[WorkloadSpec, ...] = Field(min_length=1)


WorkloadSpec = Annotated[
    PoissonSpec | DiurnalSpec | StepSpec | RampSpec | MmppSpec | TraceSpec | MixSpec,
    Field(discriminator="kind"),
]
MixSpec.model_rebuild()


class _Holder(_Strict):
    workload: WorkloadSpec


# Arrivals one simulation may draw: each lives in memory as a Python object (and the thinning samplers draw
# peak rate x duration candidates as one array first); ten million is already hours of simulated serving.
MAX_ARRIVALS = 10_000_000


def drawn_arrivals(spec: WorkloadSpec, duration_s: float) -> float | None:
    """How many arrival times generation draws over `duration_s`: the peak rate times the duration for the
    thinned and modulated kinds (they draw at the peak and discard), the rate for Poisson; None for a trace
    replay, whose size its file bounds."""
    if isinstance(spec, MixSpec):
        parts = [drawn_arrivals(p, duration_s) for p in spec.parts]
        return sum(p for p in parts if p is not None)
    if isinstance(spec, TraceSpec):
        return None
    peak: float
    if isinstance(spec, PoissonSpec):
        peak = spec.rate
    elif isinstance(spec, DiurnalSpec):
        peak = spec.mean_rate * (1 + spec.amplitude)
    elif isinstance(spec, StepSpec):
        peak = max(s.rate for s in spec.steps)
    elif isinstance(spec, RampSpec):
        peak = max(spec.start_rate, spec.end_rate)
    else:
        peak = max(spec.rates)
    return peak * duration_s


def too_many_arrivals(spec: WorkloadSpec, duration_s: float) -> str:
    """'' or why the workload cannot be generated in memory."""
    drawn = drawn_arrivals(spec, duration_s)
    if drawn is None or drawn <= MAX_ARRIVALS:
        return ""
    return (
        f"about {drawn:.3g} arrivals over duration_s {duration_s:g} (peak rate x duration); at most "
        f"{MAX_ARRIVALS:,} fit in memory: shorten duration_s or lower the rate"
    )


def parse_workload(
    data: Any,
    lines: LineMap | None = None,
    prefix: tuple[str | int, ...] = (),
    duration_s: float | None = None,
) -> WorkloadSpec:
    """Validate a `workload:` mapping found at `prefix` of a scenario file (and, given `duration_s`, that
    its arrivals fit in memory). Without the file's LineMap a bad section raises pydantic's
    ValidationError; with it, ConfigErrors naming the file, line and field."""
    try:
        spec = _Holder.model_validate({"workload": data}).workload
    except ValidationError as exc:
        if lines is None:
            raise
        errors = []
        for err in exc.errors():
            loc = _strip_tags(data, tuple(err["loc"])[1:])
            problem = "unknown field" if err["type"] == "extra_forbidden" else str(err["msg"])
            errors.append(lines.error((*prefix, *loc), problem.removeprefix("Value error, ")))
        raise ConfigErrors(errors) from None
    problem = too_many_arrivals(spec, duration_s) if duration_s is not None else ""
    if problem:
        if lines is None:
            raise LlmctlError(f"workload: {problem}")
        raise lines.error(prefix, problem)
    return spec


def _strip_tags(data: Any, loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    # pydantic puts the chosen `kind` into the error path (workload.poisson.rate); the file has no such key.
    out: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and node.get("kind") == part and part not in node:
            continue
        out.append(part)
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
    return tuple(out)


# --- generation -------------------------------------------------------------------------------------------
def _resolve(path: str, base_dir: Path | None) -> str:
    p = Path(path).expanduser()
    return str(p if p.is_absolute() or base_dir is None else base_dir / p)


def _sampler(lengths: Lengths | None, base_dir: Path | None) -> LengthSampler:
    if lengths is None:
        lengths = DEFAULT_LENGTHS
    if isinstance(lengths, FixedLengths):
        return fixed_lengths(lengths.prompt, lengths.output)
    if isinstance(lengths, LognormalLengths):
        return lognormal_lengths(
            lengths.prompt_median,
            lengths.prompt_sigma,
            lengths.output_median,
            lengths.output_sigma,
            lengths.max_tokens,
        )
    trace = load_trace(_resolve(lengths.path, base_dir))
    return empirical_lengths(trace.prompts, trace.outputs)


def _times(spec: WorkloadSpec, rng: np.random.Generator, duration_s: float) -> np.ndarray:
    if isinstance(spec, PoissonSpec):
        return poisson_times(rng, spec.rate, duration_s)
    if isinstance(spec, DiurnalSpec):
        curve = diurnal_curve(spec.mean_rate, spec.amplitude, spec.period_s, spec.peak_at_s)
        return thinned_times(rng, curve, spec.mean_rate * (1 + spec.amplitude), duration_s)
    if isinstance(spec, StepSpec):
        rates = [s.rate for s in spec.steps]
        return thinned_times(rng, step_curve([s.at_s for s in spec.steps], rates), max(rates), duration_s)
    if isinstance(spec, RampSpec):
        curve = ramp_curve(spec.start_rate, spec.end_rate, spec.ramp_s, spec.start_s)
        return thinned_times(rng, curve, max(spec.start_rate, spec.end_rate), duration_s)
    if isinstance(spec, MmppSpec):
        return mmpp_times(rng, spec.rates, spec.mean_sojourn_s, duration_s)
    raise TypeError(f"no arrival process for {type(spec).__name__}")


def _trace(
    spec: TraceSpec, rng: np.random.Generator, duration_s: float, base_dir: Path | None
) -> list[Arrival]:
    trace = load_trace(_resolve(spec.path, base_dir))
    times, rows = replay_indices(
        trace, rng, duration_s, spec.time_scale, spec.rate_scale, spec.rate_mode, spec.start_s
    )
    if spec.diurnal is not None:
        d = spec.diurnal
        keep = (1 + d.amplitude * np.cos(2 * np.pi * (times - d.peak_at_s) / d.period_s)) / (1 + d.amplitude)
        sel = rng.uniform(size=times.size) < keep
        times, rows = times[sel], rows[sel]
    if spec.lengths is None:
        prompts, outputs = trace.prompts[rows], trace.outputs[rows]
    else:
        prompts, outputs = _sampler(spec.lengths, base_dir)(rng, times.size)
    blocks = [trace.blocks[i] for i in rows.tolist()] if trace.blocks is not None else None
    return to_arrivals(times, prompts, outputs, spec.deployment, blocks)


def generate(
    spec: WorkloadSpec, duration_s: float, seed: int = 0, base_dir: str | Path | None = None
) -> list[Arrival]:
    """Arrivals over [0, duration_s), sorted by time; the same (spec, duration, seed) gives the same list.
    Parts of a mix draw from independent child streams, so adding a part does not reshuffle the others."""
    problem = too_many_arrivals(spec, duration_s)
    if problem:
        raise LlmctlError(f"workload: {problem}")
    base = Path(base_dir) if base_dir is not None else None
    return _generate(spec, duration_s, np.random.SeedSequence(seed), base)


def _generate(
    spec: WorkloadSpec, duration_s: float, seq: np.random.SeedSequence, base: Path | None
) -> list[Arrival]:
    if isinstance(spec, MixSpec):
        children = seq.spawn(len(spec.parts))
        return merge(_generate(p, duration_s, c, base) for p, c in zip(spec.parts, children, strict=True))
    rng = np.random.default_rng(seq)
    if isinstance(spec, TraceSpec):
        return _trace(spec, rng, duration_s, base)
    times = _times(spec, rng, duration_s)
    prompts, outputs = _sampler(spec.lengths, base)(rng, times.size)
    return to_arrivals(times, prompts, outputs, spec.deployment)
