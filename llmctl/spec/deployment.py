"""The desired state of one deployment, typed: everything the controller, the gateway and the simulator need
to run it without the playbook or the planner: the replica slots (argv, env, host, GPUs, port), how it
scales, how the gateway routes it and what a start-up or wake-up costs. `llmctl apply` writes it
(llmctl.spec.from_plan builds it from a plan); the store codec is llmctl.state.desired.

Slots are ordered: the first `initial` run after an apply; the rest are spare placements on free GPUs that
the controller fills, in order, when the autoscaler asks for more replicas. Every apply records a new
`generation`; `stopped` is what `llmctl stop` sets: the deployment is kept, with no replica wanted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llmctl.autoscale import (
    Autoscaler,
    Bounds,
    InFlightTarget,
    Pinned,
    QueueDepth,
    Schedule,
    Signal,
    StartupCosts,
    TtftSlo,
)
from llmctl.planner.types import Shape


@dataclass(frozen=True)
class Slot:
    """Where and how one replica of the deployment runs."""

    name: str
    host: str
    address: str
    gpus: tuple[int, ...]
    port: int
    argv: tuple[str, ...]
    env: dict[str, str]
    spec_hash: str
    engine: str  # vllm | sglang | emulated
    shares_with: str = ""  # back-fill: the other deployment's slot whose GPUs these are
    # How the planner shaped it (model, GPU, TP, quantization, KV, scheduler limits): what the simulator and
    # batch sizing model the replica by. None in stores written before slots carried it.
    shape: Shape | None = None

    @property
    def flavour(self) -> str:
        """The engine's API (vllm | sglang); an emulated replica speaks that of the engine it emulates."""
        if self.engine != "emulated":
            return self.engine
        if self.shape is not None:
            return self.shape.flavour
        argv = list(self.argv)
        return argv[argv.index("--flavour") + 1] if "--flavour" in argv[:-1] else "vllm"


@dataclass(frozen=True)
class ScalingSpec:
    min_replicas: int
    max_replicas: int
    signal: str
    target: float
    idle_timeout_s: float
    ttft_target_s: float | None = None
    warm_pool: int = 0  # replicas kept asleep instead of stopped on scale-down (sleep-capable engines)
    down_window_s: float = 60.0
    schedule: tuple[
        tuple[float, int], ...
    ] = ()  # (seconds after 00:00 UTC, replicas), sorted; signal schedule

    @property
    def autoscaled(self) -> bool:
        return self.max_replicas > max(1, self.min_replicas) or self.min_replicas == 0


@dataclass(frozen=True)
class AdapterSpec:
    """A LoRA adapter the gateway serves as its own model name on the deployment (llmctl.config.adapters)."""

    name: str
    path: str
    preload: bool


@dataclass(frozen=True)
class DesiredDeployment:
    name: str
    workload: str
    flavour: str  # API the replicas speak: vllm | sglang
    route: str
    api_key_env: str | None
    scaling: ScalingSpec
    cold_start_s: float
    wake_s: float
    sleep_mode: bool
    initial: int
    slots: tuple[Slot, ...] = field(default_factory=tuple)
    # The playbook's latency targets, {ttft_ms: {p50, p99}, itl_ms: {p50, p99}}: shown against measurements.
    targets: dict[str, dict[str, float | None]] = field(default_factory=dict)
    # Back-fill: the deployment whose idle spare slots this one runs on (each slot's `shares_with`).
    backfill_for: str | None = None
    generation: int = 0  # raised by every apply; the controller records the one it has reconciled
    stopped: bool = False  # `llmctl stop`: no replica wanted until the next apply
    removed: bool = False  # no longer in the playbook: stopped, then forgotten once its replicas are gone
    # GPU pool (llmctl.pool): its slots are candidates on the pool's GPUs, which the pool step grants.
    pool: str | None = None
    pool_priority: int = 0
    pool_weight: float = 1.0
    adapters: tuple[AdapterSpec, ...] = ()  # LoRA adapters, each a model name at the gateway
    adapter_slots: int = 0  # adapters a replica keeps loaded (planner.lora: vLLM --max-loras)

    def slot(self, name: str) -> Slot | None:
        return next((s for s in self.slots if s.name == name), None)

    def costs(self) -> StartupCosts:
        return StartupCosts(self.cold_start_s, self.wake_s, self.scaling.warm_pool)

    def pinned(self, n: int) -> Autoscaler:
        """The policy while `llmctl scale N` pins the deployment: N at once, every step allowed."""
        bounds = Bounds(
            n, n, max_step_up=max(n, 1), max_step_down=1024, down_window_s=0.0, idle_timeout_s=None
        )
        return Autoscaler(Pinned(n), bounds, self.costs())

    def autoscaler(self) -> Autoscaler:
        s = self.scaling
        signal: Signal
        if s.signal == "ttft_slo" and s.ttft_target_s:
            signal = TtftSlo(s.ttft_target_s)
        elif s.signal == "schedule" and s.schedule:
            signal = Schedule(s.schedule)
        elif s.signal == "queue_depth":
            signal = QueueDepth(s.target, per_replica=int(s.target))
        else:
            signal = InFlightTarget(s.target)
        bounds = Bounds(
            min_replicas=s.min_replicas,
            max_replicas=max(s.max_replicas, s.min_replicas),
            up_window_s=0.0,
            down_window_s=s.down_window_s,
            idle_timeout_s=s.idle_timeout_s,
        )
        return Autoscaler(signal, bounds, self.costs())
