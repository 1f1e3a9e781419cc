"""The simulated fleet (SimPy): arrivals -> gateway (routing, holding) -> replicas, and the controller loop
that scrapes them, asks the autoscaler and carries its decisions out, like the live controller does.

- Replicas go through the live phases: starting (cold start) or waking (from sleep) -> ready -> draining ->
  sleeping or stopped. Start-up and wake-up times come from the performance model (`llmctl.perf.cold_start`).
- Every `scrape_interval_s` the simulated controller scrapes each replica into the same `EngineSample` shape
  the live scraper parses (TTFT in the engine's histogram buckets), builds the Observation with the live
  function (`llmctl.reconcile.observe`: phases as of now, samples as scraped `metric_lag_s` ago), asks the
  deployment's `Autoscaler` (the live class), and carries out the actions the reconcile core plans
  (`llmctl.reconcile.actions.scale_actions`): it executes them, it decides nothing. A draining replica is
  put away by the live rule (`drain_outcome`): when idle, or stopped after `drain_timeout_s`.
- Replica models are lazy (`sim.replica`): they are brought up to date only when the gateway routes, the
  controller scrapes, or a sampler looks, so a request costs a few Python calls, not an event per token.

`simulate(spec, arrivals, duration_s)` is the entry point (`sim.from_plan` builds its `ClusterSpec` from a
playbook and an inventory through the planner); `sim.scripted` replays recorded load or observations
through the same controller code (the simulator's half of the same-moves checks).
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import simpy

from llmctl.autoscale import Autoscaler
from llmctl.autoscale.types import Decision, Observation, Phase
from llmctl.reconcile.actions import Action, Drain, Start, Wake, drain_outcome, scale_actions
from llmctl.reconcile.idle import in_use_now
from llmctl.reconcile.observe import observe
from llmctl.reconcile.sample import EngineSample, Histogram, histogram_of
from sim.backfill import BackfillSpec, recovery
from sim.outcome import FleetPoint, RequestRecord, Slo, summarise
from sim.replica import EngineShape, FastReplica, ReplicaModel
from sim.replica_step import ServiceTime, ServiceTimeReplica, StepReplica
from sim.router import SimGateway
from sim.workload import Arrival

PAID_PHASES = ("starting", "waking", "ready", "draining")  # sleeping replicas free their GPUs for other work


@dataclass(frozen=True)
class DeploymentSim:
    """One deployment as the simulator runs it. Give `engine` (the performance model), or `service_time`
    (a hook that makes each replica `servers` plain servers: queueing checks)."""

    name: str
    engine: EngineShape | None = None
    service_time: ServiceTime | None = None
    servers: int = 1
    gpus_per_replica: int = 1
    initial_replicas: int = 1  # ready at t = 0 (the rolled-out fleet)
    max_replicas: int | None = None  # planned slots; None = initial_replicas
    autoscaler: Callable[[], Autoscaler] | None = None  # factory: each run gets a fresh policy state
    cold_start_s: float = 60.0
    wake_s: float = 5.0
    sleep_mode: bool = False
    route: str = "least_outstanding"
    price_per_gpu_hour: float = 0.0
    backfill: BackfillSpec | None = None  # an offline deployment that borrows the idle spare slots
    model: Callable[[], ReplicaModel] | None = (
        None  # a replica model of your own (sim.scripted: replayed load)
    )

    @property
    def slots(self) -> int:
        return max(self.max_replicas or 0, self.initial_replicas)


@dataclass(frozen=True)
class ClusterSpec:
    deployments: tuple[DeploymentSim, ...]
    mode: Literal["fast", "step"] = "fast"  # replica model: event-jumping, or the scheduler step by step
    scrape_interval_s: float = 2.0  # the live controller's tick
    metric_lag_s: float = 0.0  # how stale the scraped metrics are when the policy sees them
    drain_timeout_s: float = 60.0
    sample_interval_s: float | None = None  # record (t, deployment, in system, ready) this often
    finish_within_s: float = 3600.0  # after the workload ends, keep running this long to finish requests
    # The live controller reads the gateway's held requests and last arrival through the store, which the
    # gateway writes this often: the simulated one sees them as of the last such pass (0: at once).
    demand_sync_s: float = 0.0


@dataclass(frozen=True)
class Sample:
    t_s: float
    deployment: str
    in_system: int  # held at the gateway + in the replicas (running and waiting)
    ready: int


@dataclass
class SimResult:
    records: list[RequestRecord]
    fleet: dict[str, list[FleetPoint]]  # per deployment
    total_fleet: list[FleetPoint]
    decisions: list[tuple[float, Decision]]  # the changed ones, as the live controller records them
    actions: list[tuple[float, str, Action]]  # (t, deployment, action) in the order carried out
    observations: list[tuple[float, Observation]]  # every observation a policy was given, in order
    samples: list[Sample]
    end_s: float  # the workload's duration: costs and summaries stop here
    offered: int
    rejected: dict[str, int]  # too long for the engine (max context / KV capacity)
    dropped: dict[str, int]  # aborted by a stop after a drain timed out
    unfinished: int  # still held or running when the simulation gave up
    prices: dict[str, float]
    backfill: dict[str, dict[str, Any]] = field(default_factory=dict)  # owner -> `Recovery.report`
    shed: dict[str, int] = field(default_factory=dict)  # 503s at the gateway: hold queue full or timed out

    def summary(
        self, deployment: str | None = None, slo: Slo = Slo(), bin_s: float = 60.0
    ) -> dict[str, object]:
        """`sim.outcome.summarise` for one deployment, or for the whole fleet at its GPU-weighted price."""
        if deployment is not None:
            recs = [r for r in self.records if r.deployment == deployment]
            out = summarise(recs, self.fleet[deployment], self.end_s, self.prices[deployment], slo, bin_s)
            return {**out, "backfill": self.backfill[deployment]} if deployment in self.backfill else out
        from sim.outcome import gpu_seconds

        weights = {d: gpu_seconds(tl, self.end_s) for d, tl in self.fleet.items()}
        total = sum(weights.values())
        price = sum(self.prices[d] * w for d, w in weights.items()) / total if total else 0.0
        return summarise(self.records, self.total_fleet, self.end_s, price, slo, bin_s)


# --- the simulated controller's view of one replica ---------------------------------------------------------
@dataclass
class _Replica:
    name: str
    slot: int
    phase: Phase
    model: ReplicaModel | None = None
    drain_then: str = ""  # draining: "sleep" or "stop"
    drain_since: float = 0.0
    ttft: Histogram = field(default_factory=Histogram)  # cumulative, as the engine's counter


@dataclass
class _Scrape:
    samples: dict[str, EngineSample]
    rate: float


@dataclass
class _Dep:
    spec: DeploymentSim
    gateway: SimGateway
    policy: Autoscaler | None
    replicas: list[_Replica] = field(default_factory=list)
    ready: list[_Replica] = field(default_factory=list)
    fleet: list[FleetPoint] = field(default_factory=list)
    history: deque[tuple[float, _Scrape]] = field(default_factory=deque)
    before: _Scrape | None = None  # the scrape before the one the policy sees (for TTFT deltas)
    dropped: int = 0
    last_active: float | None = None  # the controller's own record of use (a tick that saw demand)
    synced: tuple[int, float | None] | None = None  # (held, last request) as the gateway last wrote them

    @property
    def slot_names(self) -> list[str]:
        return [f"{self.spec.name}-{i}" for i in range(self.spec.slots)]


class _Cluster:
    def __init__(self, spec: ClusterSpec, env: simpy.Environment) -> None:
        self.spec = spec
        self.env = env
        self.records: list[RequestRecord] = []
        self.decisions: list[tuple[float, Decision]] = []
        self.actions: list[tuple[float, str, Action]] = []
        self.observations: list[tuple[float, Observation]] = []
        self.samples: list[Sample] = []
        self.total: list[FleetPoint] = []
        self.deps: dict[str, _Dep] = {}
        for d in spec.deployments:
            dep = _Dep(d, SimGateway(d.route), d.autoscaler() if d.autoscaler else None)
            self.deps[d.name] = dep
            for i in range(d.initial_replicas):
                dep.replicas.append(_Replica(f"{d.name}-{i}", i, "ready", self._model(d)))
            self._changed(dep)
        if spec.demand_sync_s > 0:
            env.process(self._gateway_sync(spec.demand_sync_s))

    def _model(self, d: DeploymentSim) -> ReplicaModel:
        if d.model is not None:
            return d.model()
        if d.service_time is not None:
            return ServiceTimeReplica(d.service_time, d.servers, d.name)
        if d.engine is None:
            raise ValueError(f"deployment {d.name!r} has neither an engine shape nor a service-time hook")
        return FastReplica(d.engine, d.name) if self.spec.mode == "fast" else StepReplica(d.engine, d.name)

    # --- bookkeeping -------------------------------------------------------------------------------------
    def _changed(self, dep: _Dep) -> None:
        """Phases changed: refresh the routable list and the fleet timelines."""
        dep.ready = [r for r in dep.replicas if r.phase == "ready"]
        now = self.env.now
        paid = sum(1 for r in dep.replicas if r.phase in PAID_PHASES)
        held = sum(1 for r in dep.replicas if r.phase != "stopped")
        point = FleetPoint(now, paid, paid * dep.spec.gpus_per_replica, held)
        _append(dep.fleet, point)
        reps = sum(d.fleet[-1].replicas for d in self.deps.values())
        gpus = sum(d.fleet[-1].gpus for d in self.deps.values())
        _append(self.total, FleetPoint(now, reps, gpus, sum(d.fleet[-1].held for d in self.deps.values())))

    def _sync(self, dep: _Dep, now: float) -> None:
        delay = dep.spec.engine.request_latency_s if dep.spec.engine is not None else 0.0
        for r in dep.replicas:
            if r.model is not None and r.model.next_event_s() <= now:
                done = r.model.advance(now)
                self.records.extend(_delayed(done, delay) if delay else done)

    # --- processes ---------------------------------------------------------------------------------------
    def arrivals(self, arrivals: Sequence[Arrival]) -> Generator[simpy.Event, Any, None]:
        env, deps = self.env, self.deps
        only = next(iter(deps.values())) if len(deps) == 1 else None
        for a in arrivals:
            if a.t_s > env.now:
                yield env.timeout(a.t_s - env.now)
            dep = deps.get(a.deployment) or (only if not a.deployment else None)
            if dep is None:
                raise ValueError(f"arrival for unknown deployment {a.deployment!r}; known: {', '.join(deps)}")
            dep.gateway.offer(a, env.now, dep.ready, self.records)

    def controller(self) -> Generator[simpy.Event, Any, None]:
        interval = self.spec.scrape_interval_s
        while True:
            yield self.env.timeout(interval)
            now = self.env.now
            for dep in self.deps.values():
                self._tick(dep, now)

    def _gateway_sync(self, interval: float) -> Generator[simpy.Event, Any, None]:
        while True:
            for dep in self.deps.values():
                dep.synced = (len(dep.gateway.held), dep.gateway.last_request_s)
            yield self.env.timeout(interval)

    def sampler(self, interval: float) -> Generator[simpy.Event, Any, None]:
        while True:
            now = self.env.now
            for name, dep in self.deps.items():
                self._sync(dep, now)
                inside = len(dep.gateway.held) + sum(r.model.in_flight for r in dep.replicas if r.model)
                self.samples.append(Sample(now, name, inside, len(dep.ready)))
            yield self.env.timeout(interval)

    # --- controller tick -----------------------------------------------------------------------------------
    def _tick(self, dep: _Dep, now: float) -> None:
        self._sync(dep, now)
        dep.gateway.expire(now)
        self._put_away_drained(dep, now)
        dep.history.append((now, self._scrape(dep)))
        if dep.policy is None:
            return
        obs = self._observe(dep, now)
        self.observations.append((now, obs))
        decision = dep.policy.decide(obs, now)
        if decision.changed:
            self.decisions.append((now, decision))
            actions = scale_actions(decision, dep.replicas, dep.slot_names, sleep_mode=dep.spec.sleep_mode)
            self._carry_out(dep, actions, now)

    def _scrape(self, dep: _Dep) -> _Scrape:
        """Each replica as the live scraper would read it: queue, running, KV usage, TTFT histogram."""
        samples: dict[str, EngineSample] = {}
        for r in dep.replicas:
            if r.model is None:
                continue
            r.ttft = histogram_of(r.model.take_ttfts(), base=r.ttft)
            m = r.model
            samples[r.name] = EngineSample(
                running=m.in_flight - m.queued, waiting=m.queued, kv_usage=m.kv_usage, ttft=r.ttft
            )
        rate = dep.gateway.window_arrivals / self.spec.scrape_interval_s
        dep.gateway.window_arrivals = 0
        return _Scrape(samples, rate)

    def _observe(self, dep: _Dep, now: float) -> Observation:
        """Phases as of now; samples as scraped `metric_lag_s` ago (the newest scrape that old)."""
        lag = self.spec.metric_lag_s
        while len(dep.history) > 1 and dep.history[1][0] <= now - lag + 1e-9:
            dep.before = dep.history.popleft()[1]
        seen = dep.history[0][1]
        held, last = dep.synced or (len(dep.gateway.held), dep.gateway.last_request_s)
        if dep.last_active is not None:
            last = dep.last_active if last is None else max(last, dep.last_active)
        obs = observe(
            dep.spec.name,
            dep.replicas,
            seen.samples,
            dep.before.samples if dep.before else {},
            held=held,
            arrival_rate=seen.rate,
            # As the live controller: the last request, else the apply (t = 0).
            last_request_at=last if last is not None else 0.0,
            now=now,
        )
        # The live controller's rule: a request in the deployment now holds its idle clock at zero.
        obs, busy = in_use_now(obs)
        if busy:
            dep.last_active = now
        return obs

    def _carry_out(self, dep: _Dep, actions: Sequence[Action], now: float) -> None:
        spec = dep.spec
        by_name = {r.name: r for r in dep.replicas}
        for a in actions:
            self.actions.append((now, spec.name, a))
            if isinstance(a, Wake) and a.replica in by_name:
                r = by_name[a.replica]
                r.phase = "waking"
                self.env.process(self._become_ready(dep, r, spec.wake_s))
            elif isinstance(a, Start):
                r = _Replica(a.slot, dep.slot_names.index(a.slot), "starting")
                dep.replicas.append(r)
                self.env.process(self._become_ready(dep, r, spec.cold_start_s))
            elif isinstance(a, Drain) and a.replica in by_name:
                r = by_name[a.replica]
                r.phase, r.drain_then, r.drain_since = "draining", a.then, now
        dep.replicas.sort(key=lambda r: r.slot)
        self._changed(dep)

    def _become_ready(self, dep: _Dep, r: _Replica, delay: float) -> Generator[simpy.Event, Any, None]:
        yield self.env.timeout(delay)
        now = self.env.now
        r.phase = "ready"
        r.model = self._model(dep.spec)
        self._changed(dep)
        dep.gateway.release(now, dep.ready, self.records)

    def _put_away_drained(self, dep: _Dep, now: float) -> None:
        changed = False
        for r in list(dep.replicas):
            if r.phase != "draining" or r.model is None:
                continue
            outcome = drain_outcome(
                "sleep" if r.drain_then == "sleep" else "stop",
                r.model.in_flight,
                now - r.drain_since,
                self.spec.drain_timeout_s,
            )
            if outcome is None:
                continue
            dep.dropped += r.model.abort_all()
            r.model = None
            changed = True
            if outcome == "sleep":
                r.phase = "sleeping"
            else:
                dep.replicas.remove(r)
        if changed:
            self._changed(dep)

    # --- the end -------------------------------------------------------------------------------------------
    def open_requests(self) -> int:
        return sum(
            len(d.gateway.held) + sum(r.model.in_flight for r in d.replicas if r.model)
            for d in self.deps.values()
        )


def _append(timeline: list[FleetPoint], p: FleetPoint) -> None:
    if timeline and (timeline[-1].replicas, timeline[-1].gpus) == (p.replicas, p.gpus):
        return
    if timeline and timeline[-1].t_s == p.t_s:
        timeline[-1] = p
    else:
        timeline.append(p)


PROGRESS_STEPS = 100  # a progress callback hears of the simulated time this often over the workload


def simulate(
    spec: ClusterSpec,
    arrivals: Sequence[Arrival],
    duration_s: float | None = None,
    progress: Callable[[float], None] | None = None,
) -> SimResult:
    """Run the fleet over `arrivals` (sorted by time; a deployment of "" goes to the only deployment).
    The workload ends at `duration_s` (default: the last arrival); the run goes on, controller included,
    until every request has finished or `finish_within_s` more has passed. `progress` is called with the
    fraction of the workload's time simulated so far (0..1), PROGRESS_STEPS times."""
    end = duration_s if duration_s is not None else (arrivals[-1].t_s if arrivals else 0.0)
    env = simpy.Environment()
    c = _Cluster(spec, env)
    env.process(c.arrivals(arrivals))
    env.process(c.controller())
    if spec.sample_interval_s:
        env.process(c.sampler(spec.sample_interval_s))
    if progress is None or end <= 0:
        env.run(until=end if end > 0 else 1e-9)
    else:
        # Running to intermediate times changes nothing: SimPy processes the same events in the same order.
        for i in range(1, PROGRESS_STEPS + 1):
            env.run(until=end * i / PROGRESS_STEPS)
            progress(i / PROGRESS_STEPS)
    return finish(c, env, spec, end, len(arrivals))


def finish(c: _Cluster, env: simpy.Environment, spec: ClusterSpec, end: float, offered: int) -> SimResult:
    """After the workload's end: run on, controller included, until every request has finished or
    `finish_within_s` more has passed, then gather the result (sim.pooled finishes its runs the same way)."""
    limit = end + spec.finish_within_s
    step = max(spec.scrape_interval_s, 1.0)
    while env.now < limit:
        for dep in c.deps.values():
            c._sync(dep, env.now)
        if c.open_requests() == 0:
            break
        nxt = min(
            [r.model.next_event_s() for d in c.deps.values() for r in d.replicas if r.model]
            + [env.now + step]
        )
        env.run(until=min(limit, max(nxt, env.now + 1e-6)))
    for dep in c.deps.values():
        c._sync(dep, env.now)
    return SimResult(
        records=c.records,
        fleet={n: d.fleet for n, d in c.deps.items()},
        total_fleet=c.total,
        decisions=c.decisions,
        actions=c.actions,
        observations=c.observations,
        samples=c.samples,
        end_s=end,
        offered=offered,
        rejected={n: d.gateway.rejected for n, d in c.deps.items()},
        dropped={n: d.dropped for n, d in c.deps.items()},
        shed={n: d.gateway.shed for n, d in c.deps.items()},
        unfinished=c.open_requests(),
        prices={n: d.spec.price_per_gpu_hour for n, d in c.deps.items()},
        backfill={
            n: recovery(d.fleet, d.spec.slots, d.spec.initial_replicas, bf.cold_start_s, end).report(bf)
            for n, d in c.deps.items()
            if (bf := d.spec.backfill) is not None
        },
    )


__all__ = [
    "ClusterSpec",
    "DeploymentSim",
    "Sample",
    "SimResult",
    "finish",
    "simulate",
]


def _delayed(records: list[RequestRecord], delay_s: float) -> list[RequestRecord]:
    """Records as the client sees them: first token and finish `delay_s` later (the request path)."""
    return [
        dataclasses.replace(r, first_token_s=r.first_token_s + delay_s, finish_s=r.finish_s + delay_s)
        for r in records
    ]
