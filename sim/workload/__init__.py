"""Workloads for the simulator: arrival processes, request lengths and trace replay, as `Arrival` lists.

`generate(spec, duration_s, seed, base_dir)` is the entry point from a scenario's `workload:` section
(`parse_workload` validates one); the functions in `arrivals` and `traces` are the building blocks.
Pure (numpy only): no simpy, no clock."""

from sim.workload.arrivals import (
    Arrival,
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
from sim.workload.spec import WorkloadSpec, generate, parse_workload
from sim.workload.traces import Trace, load_azure, load_mooncake, load_trace, replay_indices

__all__ = [
    "Arrival",
    "Trace",
    "WorkloadSpec",
    "diurnal_curve",
    "empirical_lengths",
    "fixed_lengths",
    "generate",
    "load_azure",
    "load_mooncake",
    "load_trace",
    "lognormal_lengths",
    "merge",
    "mmpp_times",
    "parse_workload",
    "poisson_times",
    "ramp_curve",
    "replay_indices",
    "step_curve",
    "thinned_times",
    "to_arrivals",
]
