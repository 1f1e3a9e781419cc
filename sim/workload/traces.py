"""Public LLM inference traces loaded into numpy arrays, and their replay (formats: ../shared/traces/README.md;
the Azure conversation trace ships in sim/traces).

Formats:
- Azure LLM inference trace 2023 (CSV): TIMESTAMP (wall clock, e.g. `2023-11-16 18:15:46.6805900`),
  ContextTokens, GeneratedTokens.
- Mooncake (JSON lines): timestamp (ms from the start), input_length, output_length, hash_ids (ids of the
  512-token prefix blocks a request shares with others).

Replay (`replay_times`) keeps a trace's own burstiness. `time_scale` stretches the clock (2 = half the rate,
every gap twice as long). `rate_scale` changes the mean rate in one of two documented ways:
- `thin` (default) keeps the trace's timescales: rate_scale <= 1 keeps each request with that probability;
  rate_scale > 1 superposes ceil(rate_scale) copies of the trace, each circularly shifted by a random offset
  and thinned to rate_scale / copies. Burst shapes and durations stay; bursts overlap more at higher scales.
- `compress` divides every timestamp by rate_scale: exact same sequence, faster clock, so bursts get shorter.
A trace shorter than the requested duration is looped (each pass continues where the last one ended).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np

from llmctl.errors import ConfigError

RateMode = Literal["thin", "compress"]


@dataclass(frozen=True)
class Trace:
    """A loaded trace: times in seconds from its first request, lengths, and prefix blocks when known."""

    file: str
    t_s: np.ndarray
    prompts: np.ndarray
    outputs: np.ndarray
    blocks: tuple[tuple[int, ...], ...] | None = None

    @property
    def span_s(self) -> float:
        return float(self.t_s[-1] - self.t_s[0]) if self.t_s.size else 0.0

    @property
    def mean_rate(self) -> float:
        return self.t_s.size / self.span_s if self.span_s > 0 else 0.0

    def peak_to_average(self, bin_s: float) -> float:
        """max / mean of per-bin request counts over bins of `bin_s` covering the trace."""
        counts = np.bincount(((self.t_s - self.t_s[0]) // bin_s).astype(np.int64))
        return float(counts.max() / counts.mean())


def _azure_seconds(stamp: str) -> float:
    # `YYYY-MM-DD HH:MM:SS.fffffff`; traces span hours, so a day number from the date suffices.
    date, _, clock = stamp.strip().partition(" ")
    y, m, d = (int(x) for x in date.split("-"))
    hh, mm, ss = clock.split(":")
    day = np.datetime64(f"{y:04d}-{m:02d}-{d:02d}", "D").astype(np.int64)
    return float(day) * 86_400.0 + int(hh) * 3600.0 + int(mm) * 60.0 + float(ss)


def _finish(file: str, t: list[float], p: list[int], o: list[int], b: list[tuple[int, ...]] | None) -> Trace:
    if not t:
        raise ConfigError(file, None, "", "the trace has no requests")
    times = np.asarray(t, dtype=float)
    order = np.argsort(times, kind="stable")
    times = times[order] - times[order[0]]
    blocks = tuple(b[i] for i in order.tolist()) if b is not None else None
    return Trace(
        file, times, np.asarray(p, dtype=np.int64)[order], np.asarray(o, dtype=np.int64)[order], blocks
    )


def load_azure(path: str | Path) -> Trace:
    file = str(path)
    t: list[float] = []
    p: list[int] = []
    o: list[int] = []
    with open(path, encoding="utf-8") as fh:
        header = fh.readline().strip().split(",")
        if header[:3] != ["TIMESTAMP", "ContextTokens", "GeneratedTokens"]:
            raise ConfigError(file, 1, "", "expected the header TIMESTAMP,ContextTokens,GeneratedTokens")
        for line_no, line in enumerate(fh, start=2):
            if not line.strip():
                continue
            cells = line.split(",")
            try:
                t.append(_azure_seconds(cells[0]))
                p.append(int(cells[1]))
                o.append(int(cells[2]))
            except (ValueError, IndexError) as exc:
                raise ConfigError(file, line_no, "", f"bad row {line.strip()!r}: {exc}") from None
            if p[-1] < 0 or o[-1] < 0:
                raise ConfigError(file, line_no, "", "token counts must not be negative")
    return _finish(file, t, p, o, None)


def load_mooncake(path: str | Path) -> Trace:
    file = str(path)
    t: list[float] = []
    p: list[int] = []
    o: list[int] = []
    b: list[tuple[int, ...]] = []
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                t.append(float(row["timestamp"]) / 1000.0)
                p.append(int(row["input_length"]))
                o.append(int(row["output_length"]))
                b.append(tuple(int(x) for x in row.get("hash_ids", ())))
            except (ValueError, KeyError, TypeError) as exc:
                raise ConfigError(file, line_no, "", f"bad trace line: {exc!r}") from None
    return _finish(file, t, p, o, b)


@lru_cache(maxsize=8)
def load_trace(path: str) -> Trace:
    """Load by extension (.csv: Azure, .jsonl/.json: Mooncake); cached, since sweeps replay one trace often."""
    if path.endswith(".csv"):
        return load_azure(path)
    if path.endswith((".jsonl", ".json")):
        return load_mooncake(path)
    raise ConfigError(path, None, "", "unknown trace format; expected an Azure .csv or a Mooncake .jsonl")


def replay_indices(
    trace: Trace,
    rng: np.random.Generator,
    duration_s: float,
    time_scale: float = 1.0,
    rate_scale: float = 1.0,
    rate_mode: RateMode = "thin",
    start_s: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """(times, row indices into the trace) of a replay over [0, duration_s), sorted by time.
    `start_s` skips that much of the (scaled) trace first, to replay a slice."""
    if time_scale <= 0 or rate_scale <= 0:
        raise ValueError("time_scale and rate_scale must be positive")
    stretch = time_scale / rate_scale if rate_mode == "compress" else time_scale
    # A pass lasts the span plus one mean gap, so looping does not put two requests on the same instant.
    period = (trace.span_s + trace.span_s / max(trace.t_s.size - 1, 1)) * stretch
    base = trace.t_s * stretch
    copies = 1 if rate_mode == "compress" else max(1, int(np.ceil(rate_scale)))
    keep = 1.0 if rate_mode == "compress" else rate_scale / copies
    times: list[np.ndarray] = []
    rows: list[np.ndarray] = []
    for c in range(copies):
        shift = 0.0 if c == 0 else float(rng.uniform(0.0, period))
        shifted = (base + shift) % period if c else base
        order = np.argsort(shifted, kind="stable")
        passes = int(np.ceil((duration_s + start_s) / period)) + 1
        for k in range(passes):
            t = shifted[order] + k * period - start_s
            sel = (t >= 0) & (t < duration_s)
            if keep < 1.0:
                sel &= rng.uniform(size=t.size) < keep
            times.append(t[sel])
            rows.append(order[sel])
    all_t, all_i = np.concatenate(times), np.concatenate(rows)
    order = np.argsort(all_t, kind="stable")
    return all_t[order], all_i[order]
