"""Shadow replay: a recorded window of the live fleet (the gateway's request log, the deployment's desired
state, the replicas as the controller's events left them) run again through the simulator, with the same
arrival times and token counts and the same autoscaler, controller core and gateway routing code.

`replay(window)` builds the simulated deployment from the desired state (the planner's shape and its
performance profile; a `time_scale` for rehearsals whose emulated engines ran faster than real time), starts
it as the fleet stood when the window opened (ready replicas, sleeping ones, the last request before it),
and runs the simulator over the window's arrivals. Cold starts take what the fleet's replicas took in the
window (measured from the decision to ready) when it has any: an input measured like the arrivals, not a
prediction; the modelled one is reported beside it. The simulated controller ticks when the live one did
(`sim.shadow_observed.tick_times`). `sim.shadow_compare` holds the two runs side by side.
"""

from __future__ import annotations

import statistics
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import simpy

from llmctl.gateway.request_log import LoggedRequest
from llmctl.perf.profile import Profile
from llmctl.spec.deployment import DesiredDeployment
from sim.cluster import ClusterSpec, DeploymentSim, SimResult, _Cluster, _Replica
from sim.replica import EngineShape
from sim.shadow_observed import ObservedFleet
from sim.workload import Arrival

# How often the live gateway writes its demand (held requests, last arrival) to the store the controller
# reads: StoreSync.run's pass interval (tests/sim/test_sim_idle_clock.py holds them equal).
GATEWAY_SYNC_S = 0.5


@dataclass(frozen=True)
class Window:
    """Everything one deployment's replay needs."""

    deployment: DesiredDeployment
    requests: tuple[LoggedRequest, ...]  # in the window, in arrival order
    since: float  # unix seconds
    duration_s: float
    observed: ObservedFleet
    interval_s: float  # the controller's tick (from its metric samples)
    # The deployment's last sign of use before the window (a request, its apply), relative to `since`:
    # where the policy's idle clock starts. None: long ago.
    last_request_before_s: float | None = None
    time_scale: float = 1.0  # the emulated engines' LLMCTL_EMULATOR_TIME_SCALE
    ticks: tuple[float, ...] = ()  # the live controller's tick times (`tick_times`); none: every interval


class _Scaled:
    """A step timer whose steps take `scale` times as long: an emulator at a time scale."""

    def __init__(self, timer: Any, scale: float) -> None:
        self.timer, self.scale = timer, scale

    def step(self, batch: Any) -> float:
        return float(self.timer.step(batch)) * self.scale


def profile_of(dd: DesiredDeployment) -> Profile:
    from llmctl.planner.shape import shape_profile

    shape = dd.slots[0].shape if dd.slots else None
    if shape is None:
        raise ValueError(f"deployment {dd.name!r}: its slots carry no shape (applied by an older llmctl)")
    return shape_profile(shape)


def _controller(c: _Cluster, state: Any, w: Window) -> Generator[simpy.Event, Any, None]:
    """The simulated controller ticking when the live one did (`Window.ticks`), then every interval."""

    def tick() -> None:
        c._tick(state, c.env.now)

    for t in w.ticks:
        if t > c.env.now:
            yield c.env.timeout(t - c.env.now)
        tick()
    while True:
        yield c.env.timeout(w.interval_s)
        tick()


@dataclass(frozen=True)
class Replayed:
    result: SimResult
    cold_start_s: float  # what the replay used
    modelled_cold_start_s: float  # the desired state's, at the time scale
    profile: Profile


def deployment_sim(
    w: Window, profile: Profile | None = None, request_latency_s: float | None = None
) -> tuple[DeploymentSim, Profile, float]:
    """The simulated deployment for the window (the `sim.from_plan` recipe, on the stored desired state)."""
    from llmctl.engines.emulator.timing import step_timer
    from llmctl.perf.speculative import SpecConfig
    from llmctl.planner.shape import shape_draft_params

    dd = w.deployment
    shape = dd.slots[0].shape if dd.slots else None
    if shape is None:
        raise ValueError(f"deployment {dd.name!r}: its slots carry no shape (applied by an older llmctl)")
    prof = profile or profile_of(dd)
    draft = shape_draft_params(shape)
    timer = step_timer(prof, SpecConfig(draft_params=draft) if draft else None)
    s = w.time_scale
    engine = EngineShape(
        _Scaled(timer, s) if s != 1.0 else timer,
        shape.kv_capacity_tokens,
        shape.max_num_seqs,
        shape.max_batched_tokens,
        shape.max_context,
        # The emulator models no request path: what its requests pay outside the steps is real HTTP, at
        # no time scale, which `--calibrate` learns with the rest.
        request_latency_s
        if request_latency_s is not None
        else 0.0
        if dd.slots[0].engine == "emulated"
        else prof.factors.request_latency_s * s,
    )
    colds = w.observed.cold_starts_s
    cold = statistics.median(colds) if colds else dd.cold_start_s * s
    dep = DeploymentSim(
        name=dd.name,
        engine=engine,
        gpus_per_replica=len(dd.slots[0].gpus) or shape.tp,
        initial_replicas=w.observed.ready_at_start,
        max_replicas=len(dd.slots),
        autoscaler=dd.autoscaler if dd.scaling.autoscaled else None,
        cold_start_s=cold,
        wake_s=dd.wake_s * s,
        sleep_mode=dd.sleep_mode,
        route=dd.route,
    )
    return dep, prof, cold


def arrivals_of(w: Window) -> list[Arrival]:
    """Each logged request again, at its time, with its token counts; refused ones (4xx: the engine ran
    nothing) are left out, a client's hang-up (499) and the gateway's 503s are not."""
    return [
        Arrival(r.at - w.since, max(1, r.prompt_tokens), max(1, r.output_tokens), w.deployment.name)
        for r in w.requests
        if not 400 <= r.status < 500 or r.status == 499
    ]


def replay(w: Window, profile: Profile | None = None, request_latency_s: float | None = None) -> Replayed:
    """`profile`: other factors (a calibration's); `request_latency_s`: the request path outside the steps in
    real seconds (default: the profile's at the time scale; none for emulated engines)."""
    dep, prof, cold = deployment_sim(w, profile, request_latency_s)
    spec = ClusterSpec(
        (dep,),
        scrape_interval_s=w.interval_s,
        finish_within_s=max(60.0, w.duration_s),
        demand_sync_s=GATEWAY_SYNC_S,
    )
    arrivals = arrivals_of(w)
    env = simpy.Environment()
    c = _Cluster(spec, env)
    state = c.deps[dep.name]
    # The fleet as it stood: ready replicas on the first slots (as the cluster built them), sleepers on theirs.
    slots = state.slot_names
    ready = {r.name for r in state.replicas}
    free = [n for n in slots if n not in ready]
    for name in w.observed.asleep_at_start:
        target = name if name in free else (free[0] if free else None)
        if target is None:
            break
        free.remove(target)
        state.replicas.append(_Replica(target, slots.index(target), "sleeping"))
    state.replicas.sort(key=lambda r: r.slot)
    c._changed(state)
    # Without one the simulator would take t = 0 for the apply, and wake an idle deployment at once.
    idle = -1e9 if w.last_request_before_s is None else w.last_request_before_s
    state.gateway.last_request_s = idle
    env.process(c.arrivals(arrivals))
    env.process(_controller(c, state, w))
    env.run(until=w.duration_s if w.duration_s > 0 else 1e-9)
    limit = w.duration_s + spec.finish_within_s
    while env.now < limit:
        c._sync(state, env.now)
        if c.open_requests() == 0:
            break
        nxt = min([r.model.next_event_s() for r in state.replicas if r.model] + [env.now + 1.0])
        env.run(until=min(limit, max(nxt, env.now + 1e-6)))
    c._sync(state, env.now)
    result = SimResult(
        records=c.records,
        fleet={dep.name: state.fleet},
        total_fleet=c.total,
        decisions=c.decisions,
        actions=c.actions,
        observations=c.observations,
        samples=c.samples,
        end_s=w.duration_s,
        offered=len(arrivals),
        rejected={dep.name: state.gateway.rejected},
        dropped={dep.name: state.dropped},
        unfinished=c.open_requests(),
        prices={dep.name: 0.0},
        shed={dep.name: state.gateway.shed},
    )
    return Replayed(result, cold, w.deployment.cold_start_s * w.time_scale, prof)
