"""Capacity simulator (SimPy). Replays traffic through llmctl's own autoscaling and routing code.

- `sim.workload`: arrivals (Poisson, rate curves, MMPP bursts, Azure/Mooncake trace replay), `WorkloadSpec`
  and `generate` for a scenario's `workload:` section.
- `sim.replica` / `sim.replica_step`: replica models with one interface: `FastReplica` (event-jumping,
  the default), `StepReplica` (the emulated engine's scheduler step by step, the reference) and
  `ServiceTimeReplica` (plain servers for queueing checks).
- `sim.cluster`: `simulate(ClusterSpec, arrivals, duration_s) -> SimResult`, carrying out the actions of the
  reconcile core (`llmctl.reconcile`); `sim.from_plan.cluster_from_plan` builds the spec from a playbook and
  an inventory; `sim.scripted` replays recorded load or observations through the same controller code.
- `sim.outcome`: records, fleet timelines and `summarise` (latency, SLO, GPU-hours, cost).
- `sim.backfill`: GPU-hours an offline deployment recovers on an autoscaled one's idle spare slots.
- `sim.scenario` / `sim.sweep` / `sim.charts`: scenario files, parameter sweeps (processes or Ray), PNG charts.
"""
