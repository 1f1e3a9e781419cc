"""Throughput of the performance model's hot paths (not run by CI): `python tests/bench/bench_perf.py`.

The simulator evaluates a decode step per engine iteration of every replica, so `StepModel.decode` must
stay in the low microseconds."""

from __future__ import annotations

import timeit

from llmctl.perf.profile import make_profile
from llmctl.perf.speculative import default_spec, spec_step_time
from llmctl.perf.step_time import StepBatch, decode_step_time, iteration_time, step_model


def main() -> None:
    profile = make_profile("vllm", "meta-llama/Llama-3.1-8B-Instruct", "H100-SXM", "bf16", 2)
    model = step_model(profile)
    spec = default_spec(profile.model)
    assert spec is not None
    contexts = list(range(1000, 1256))
    cases = {
        "StepModel.decode (aggregate, O(1))": lambda: model.decode(256, 256 * 1024),
        "decode_step_time (cached lookup)": lambda: decode_step_time(profile, 256, 256 * 1024),
        "StepModel.breakdown (StepBatch)": lambda: model.breakdown(StepBatch(256, 256 * 1024, 512, 1)),
        "iteration_time (256 sequences)": lambda: iteration_time(profile, contexts, [(512, 0)]),
        "spec_step_time": lambda: spec_step_time(profile, spec, 256, 256 * 1024),
    }
    for name, fn in cases.items():
        n, total = timeit.Timer(fn).autorange()
        print(f"{name:<40} {total / n * 1e6:8.2f} us/call")


if __name__ == "__main__":
    main()
