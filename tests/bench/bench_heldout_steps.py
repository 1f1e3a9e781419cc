"""Where a held-out miss comes from: the real engine's own step times (vLLM's
`--enable-logging-iteration-details` lines, saved by bench_heldout_real.py as heldout-real-cpu.iters.csv)
against the calibrated step model, by kind of step. A step model that is right here while the request
latencies are off points at queueing or at the per-request path; a step model that is off here is the fit.

    .venv/bin/python tests/bench/bench_heldout_steps.py tests/bench/results/heldout-real-cpu.iters.csv \\
        tests/bench/results/heldout-real-cpu.run1.profile.yaml [--context 80]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from llmctl.bench.profile_file import load_profile_file
from llmctl.perf.step_time import StepBatch, StepModel


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("iters", type=Path)
    ap.add_argument("profile", type=Path)
    ap.add_argument("--context", type=int, default=80, help="assumed context per decoding sequence")
    ap.add_argument("--first", type=int, default=0, help="first iteration index to include")
    args = ap.parse_args()
    rows = [r for r in csv.DictReader(args.iters.open()) if int(r["iteration"]) >= args.first]
    model = StepModel(load_profile_file(args.profile))
    kinds: dict[str, list[tuple[float, float, int]]] = {}
    for r in rows:
        ctx_reqs, ctx_tok, gen = int(r["ctx_reqs"]), int(r["ctx_tokens"]), int(r["gen_reqs"])
        batch = StepBatch(
            decode_seqs=gen,
            decode_context_tokens=gen * args.context,
            prefill_tokens=ctx_tok,
            prefill_seqs=ctx_reqs,
        )
        measured = float(r["elapsed_ms"]) / 1000
        kind = (
            f"decode, batch {gen}"
            if not ctx_reqs
            else f"with prefill, {ctx_tok // 64 * 64}-{ctx_tok // 64 * 64 + 63} tok"
        )
        kinds.setdefault(kind, []).append((measured, model.step(batch), ctx_tok + gen))
    print(
        "| step | n | measured median ms | predicted median ms | predicted/measured (sums) | measured ms/token |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for kind in sorted(
        kinds,
        key=lambda k: (
            k.startswith("with"),
            int(k.split()[-2 if k.startswith("with") else -1].split("-")[0]),
        ),
    ):
        m, p, tok = (np.array(x) for x in zip(*kinds[kind], strict=True))
        print(
            f"| {kind} | {m.size} | {np.median(m) * 1000:.0f} | {np.median(p) * 1000:.0f} | {p.sum() / m.sum():.2f} | "
            f"{np.median(m / tok) * 1000:.1f} |"
        )
    # One line per token kind: a least-squares split of the measured step time.
    a = np.array([[1.0, int(r["ctx_tokens"]), int(r["gen_reqs"])] for r in rows])
    y = np.array([float(r["elapsed_ms"]) for r in rows])
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    print(
        f"\nleast squares over {len(rows)} steps: {coef[0]:.1f} ms + {coef[1]:.2f} ms per prefill token + "
        f"{coef[2]:.2f} ms per decoding sequence"
    )


if __name__ == "__main__":
    main()
