"""Synthetic arrival processes and request lengths. Pure numpy, seeded by the caller's `np.random.Generator`.

Every generator returns a sorted float array of arrival times in [0, duration_s); `to_arrivals` zips times
with request lengths into the `Arrival` list the simulator consumes, and `merge` puts several deployments'
workloads on one timeline.

- `poisson_times`: homogeneous Poisson process.
- `thinned_times`: non-homogeneous Poisson process with a rate curve, by Lewis-Shedler thinning: draw a
  Poisson process at the curve's maximum and keep each point with probability rate(t) / max.
- `mmpp_times`: Markov-modulated Poisson process (bursts): a continuous-time Markov chain over states with
  their own rates; exponential sojourns of the given means; the next state is drawn uniformly among the others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

FloatArray = np.ndarray
RateCurve = Callable[[np.ndarray], np.ndarray]  # vectorised: times (s) -> rates (req/s)


@dataclass(frozen=True)
class Arrival:
    """One request offered to the fleet: when, how long its prompt and answer are, for which deployment, and
    the ids of its prefix blocks (Mooncake traces) for prefix-affinity routing."""

    t_s: float
    prompt_tokens: int
    output_tokens: int
    deployment: str = ""
    blocks: tuple[int, ...] = ()


# --- arrival times ----------------------------------------------------------------------------------------
def poisson_times(rng: np.random.Generator, rate: float, duration_s: float) -> FloatArray:
    if rate <= 0 or duration_s <= 0:
        return np.empty(0)
    # Conditional on the count, Poisson arrival times are uniform order statistics: one vectorised draw.
    n = int(rng.poisson(rate * duration_s))
    return np.sort(rng.uniform(0.0, duration_s, n))


def thinned_times(rng: np.random.Generator, curve: RateCurve, peak: float, duration_s: float) -> FloatArray:
    """Arrivals of a Poisson process whose rate follows `curve`, which must stay within [0, peak]."""
    candidates = poisson_times(rng, peak, duration_s)
    if candidates.size == 0:
        return candidates
    rates = np.asarray(curve(candidates), dtype=float)
    if np.any(rates > peak * (1 + 1e-9)) or np.any(rates < 0):
        raise ValueError("rate curve leaves [0, peak]")
    return candidates[rng.uniform(0.0, peak, candidates.size) < rates]


def diurnal_curve(
    mean: float, amplitude: float, period_s: float = 86_400.0, peak_at_s: float = 0.0
) -> RateCurve:
    """mean * (1 + amplitude * cos(2 pi (t - peak_at) / period)); amplitude in [0, 1]."""
    if not 0.0 <= amplitude <= 1.0:
        raise ValueError("diurnal amplitude must be in [0, 1]")

    def curve(t: np.ndarray) -> np.ndarray:
        return np.asarray(mean * (1.0 + amplitude * np.cos(2 * np.pi * (t - peak_at_s) / period_s)))

    return curve


def step_curve(times_s: Sequence[float], rates: Sequence[float]) -> RateCurve:
    """rates[i] from times_s[i] on; times_s[0] must be 0 and times increasing."""
    if len(times_s) != len(rates) or not times_s or times_s[0] != 0 or list(times_s) != sorted(times_s):
        raise ValueError("step curve needs increasing times starting at 0, one rate each")
    edges, values = np.asarray(times_s, dtype=float), np.asarray(rates, dtype=float)

    def curve(t: np.ndarray) -> np.ndarray:
        return np.asarray(values[np.searchsorted(edges, t, side="right") - 1])

    return curve


def ramp_curve(start_rate: float, end_rate: float, ramp_s: float, start_s: float = 0.0) -> RateCurve:
    """start_rate until start_s, linear to end_rate over ramp_s, then end_rate."""

    def curve(t: np.ndarray) -> np.ndarray:
        frac = np.clip((t - start_s) / max(ramp_s, 1e-12), 0.0, 1.0)
        return np.asarray(start_rate + (end_rate - start_rate) * frac)

    return curve


def mmpp_times(
    rng: np.random.Generator, rates: Sequence[float], mean_sojourn_s: Sequence[float], duration_s: float
) -> FloatArray:
    """Markov-modulated Poisson arrivals, starting in state 0. Two states (base, burst) is the usual use."""
    if len(rates) != len(mean_sojourn_s) or len(rates) < 1:
        raise ValueError("MMPP needs one mean sojourn per state")
    parts: list[FloatArray] = []
    t, state, n = 0.0, 0, len(rates)
    while t < duration_s:
        stay = min(float(rng.exponential(mean_sojourn_s[state])), duration_s - t)
        parts.append(t + poisson_times(rng, rates[state], stay))
        t += stay
        if n > 1:
            state = (state + 1 + int(rng.integers(n - 1))) % n
    return np.concatenate(parts) if parts else np.empty(0)


# --- request lengths --------------------------------------------------------------------------------------
LengthSampler = Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]]


def fixed_lengths(prompt: int, output: int) -> LengthSampler:
    def sample(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        return np.full(n, prompt, dtype=np.int64), np.full(n, output, dtype=np.int64)

    return sample


def lognormal_lengths(
    prompt_median: float, prompt_sigma: float, output_median: float, output_sigma: float, max_tokens: int
) -> LengthSampler:
    """Independent lognormal prompt and output lengths (median, log-space sigma), clipped to [1, max_tokens]."""

    def sample(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        p = rng.lognormal(np.log(prompt_median), prompt_sigma, n)
        o = rng.lognormal(np.log(output_median), output_sigma, n)
        return (
            np.clip(np.rint(p), 1, max_tokens).astype(np.int64),
            np.clip(np.rint(o), 1, max_tokens).astype(np.int64),
        )

    return sample


def empirical_lengths(prompts: np.ndarray, outputs: np.ndarray) -> LengthSampler:
    """Resample (prompt, output) pairs jointly from observed ones (a trace), keeping their correlation."""
    if prompts.size == 0 or prompts.size != outputs.size:
        raise ValueError("empirical lengths need matching, non-empty prompt and output arrays")

    def sample(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        idx = rng.integers(0, prompts.size, n)
        return prompts[idx].astype(np.int64), outputs[idx].astype(np.int64)

    return sample


# --- assembly ---------------------------------------------------------------------------------------------
def to_arrivals(
    times: np.ndarray,
    prompts: np.ndarray,
    outputs: np.ndarray,
    deployment: str = "",
    blocks: Sequence[tuple[int, ...]] | None = None,
) -> list[Arrival]:
    # Trace lengths of 0 exist (the Azure code trace has a few); an engine needs at least one of each.
    p = np.maximum(prompts, 1).tolist()
    o = np.maximum(outputs, 1).tolist()
    ts = times.tolist()
    if blocks is None:
        return [Arrival(t, a, b, deployment) for t, a, b in zip(ts, p, o, strict=True)]
    return [Arrival(t, a, b, deployment, k) for t, a, b, k in zip(ts, p, o, blocks, strict=True)]


def merge(workloads: Iterable[Sequence[Arrival]]) -> list[Arrival]:
    """Several workloads on one timeline; a stable sort keeps each one's own order at equal times."""
    out = [a for w in workloads for a in w]
    out.sort(key=lambda a: a.t_s)
    return out
