"""Playbook: the deployments an operator wants, each shaped by its workload class.

deployments:
  - name: chat
    model: meta-llama/Llama-3.1-8B-Instruct
    workload: online            # offline | online | semi-online
    engine: auto                # auto | vllm | sglang | emulated
    targets: {ttft_ms: {p50: 150, p99: 500}, itl_ms: {p50: 15, p99: 40}}
    scaling: {min_replicas: 1, max_replicas: 4, signal: in_flight, target: 16}
    placement: {gpu_type: H100-SXM, host_group: h100}
    engine_args: {--max-num-seqs: 256}

GPU pools: `placement: {pool: NAME, priority: 1, weight: 1.0}` makes the deployment a tenant of pool NAME,
which is an inventory group (its hosts' GPUs) or `all` (the whole fleet). Nothing else declares a pool:
every deployment naming the same pool shares its GPUs, less those of deployments placed the usual way. Each
keeps its own scaling.min_replicas/max_replicas; the planner checks that every member's minimum fits at once,
spare GPUs belong to the pool, and the controller grants them at run time by priority (higher first; weight
shares among equals), preempting lower-priority or over-target replicas (drained first). An offline member
is back-fill work: it only gets GPUs no serving member wants and is the first to give way (llmctl.pool).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

from llmctl.catalog.gpus import GPUS, find_gpu
from llmctl.config.adapters import Adapter, adapter_name_clash, duplicate_adapter
from llmctl.config.source import LineMap, load_yaml, validate
from llmctl.errors import ConfigError

WorkloadClass = Literal["offline", "online", "semi-online"]
EngineChoice = Literal["auto", "vllm", "sglang", "emulated"]
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Percentiles(Strict):
    p50: float | None = Field(default=None, gt=0)
    p99: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Percentiles:
        if self.p50 is not None and self.p99 is not None and self.p50 > self.p99:
            raise ValueError(f"p50 ({self.p50}) cannot exceed p99 ({self.p99})")
        return self


class Targets(Strict):
    """Latency targets in milliseconds: time to first token and inter-token latency."""

    ttft_ms: Percentiles = Percentiles()
    itl_ms: Percentiles = Percentiles()


class ScheduleStep(Strict):
    """From `at` (UTC, "HH:MM", daily) on, run `replicas` until the next step."""

    at: str
    replicas: int = Field(ge=0, le=1024)

    @field_validator("at")
    @classmethod
    def _clock(cls, value: str) -> str:
        m = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", value)
        if not m:
            raise ValueError(f"{value!r} is not a time of day as HH:MM (00:00 to 23:59, UTC)")
        return f"{int(m.group(1)):02d}:{m.group(2)}"

    @property
    def seconds(self) -> float:
        hours, minutes = self.at.split(":")
        return int(hours) * 3600.0 + int(minutes) * 60.0


class Scaling(Strict):
    min_replicas: int = Field(default=1, ge=0, le=1024)
    max_replicas: int | None = Field(default=None, ge=1, le=1024)
    signal: Literal["in_flight", "queue_depth", "ttft_slo", "schedule"] = "in_flight"
    target: float = Field(default=16, gt=0)  # per-replica in-flight or queue target; ignored by ttft_slo
    idle_timeout_s: float = Field(default=300, ge=0)  # scale to zero after this long without requests
    # Scale down only to the largest replica count wished for in this window: a burst that returns within
    # it finds its replicas still up.
    down_window_s: float = Field(default=60, ge=0)
    # signal: schedule: replica counts by time of day (UTC), repeating daily.
    schedule: tuple[ScheduleStep, ...] = ()

    @model_validator(mode="after")
    def _bounds(self) -> Scaling:
        if self.max_replicas is not None and self.max_replicas < self.min_replicas:
            raise ValueError(
                f"max_replicas ({self.max_replicas}) is below min_replicas ({self.min_replicas})"
            )
        if self.signal == "schedule" and not self.schedule:
            raise ValueError("signal schedule needs a schedule: [{at: 'HH:MM', replicas: N}, ...]")
        if self.schedule and self.signal != "schedule":
            raise ValueError(f"a schedule is only read with signal: schedule (this one is {self.signal})")
        times = [step.at for step in self.schedule]
        if len(set(times)) != len(times):
            raise ValueError(f"schedule: two steps at the same time ({', '.join(times)})")
        top = self.max_replicas if self.max_replicas is not None else max(self.min_replicas, 1)
        for step in self.schedule:
            if not self.min_replicas <= step.replicas <= top:
                raise ValueError(
                    f"schedule at {step.at} asks {step.replicas} replicas, outside min_replicas..max_replicas"
                    f" ({self.min_replicas}..{top})"
                )
        return self

    @property
    def initial_replicas(self) -> int:
        # A deployment allowed to scale to zero still gets one replica at rollout, so it can be verified.
        return max(1, self.min_replicas)


class Placement(Strict):
    gpu_type: str | None = None
    host_group: str | None = None
    hosts: tuple[str, ...] = ()
    # Back-fill: run on the spare GPUs of this autoscaled deployment while it does not use them, and give
    # them back (the replica is stopped; a batch job pauses and resumes) as soon as it scales up onto them.
    backfill_for: str | None = None
    # GPU pool (see the module docstring): an inventory group or `all`; priority and weight only apply here.
    pool: str | None = None
    priority: StrictInt = Field(default=0, ge=-1000, le=1000)
    weight: float = Field(default=1.0, gt=0, le=1000)

    @field_validator("gpu_type")
    @classmethod
    def _known_gpu(cls, value: str | None) -> str | None:
        if value is None:
            return None
        gpu = find_gpu(value)
        if gpu is None:
            raise ValueError(f"unknown GPU type {value!r}; known: {', '.join(GPUS)}")
        return gpu.name


class Gateway(Strict):
    route: Literal["least_outstanding", "round_robin", "prefix_affinity"] = "least_outstanding"
    api_key_env: str | None = None  # name of the environment variable holding the key, never the key itself

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError(f"{value!r} is not an environment variable name")
        return value


class Serving(Strict):
    """How each replica is shaped; 'auto' lets the workload-class preset decide."""

    tensor_parallel: StrictInt | Literal["auto"] = "auto"  # strict: `true` is not TP 1
    quantization: Literal["auto", "none", "fp8"] = "auto"
    kv_cache_dtype: Literal["auto", "bf16", "fp8"] = "auto"
    speculative: Literal["auto", "off", "eagle3"] = "auto"
    max_context: int | None = Field(default=None, ge=256)
    concurrency: int | None = Field(default=None, ge=1, le=4096)  # sequences of max_context that must fit
    gpu_memory_fraction: float = Field(default=0.90, gt=0.1, le=0.98)
    weights_from: Literal["local_disk", "network"] = "local_disk"

    @field_validator("tensor_parallel")
    @classmethod
    def _power_of_two(cls, value: int | str) -> int | str:
        if isinstance(value, int) and (value < 1 or value & (value - 1)):
            raise ValueError("tensor_parallel must be a power of two (1, 2, 4, 8)")
        return value


EngineArgValue = bool | int | float | str | list[int | float | str] | dict[str, Any]


def _has_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    return False


# Flags llmctl sets on every replica, and what to change instead: an engine listening where nothing looks,
# under a name the gateway does not route, or with a key only the playbook knows, breaks routing.
MANAGED_FLAGS: dict[str, str] = {
    "--port": "the planner assigns each replica's port (see `llmctl plan`)",
    "--host": "the planner binds replicas (loopback on local hosts); use the inventory host's address",
    "--served-model-name": "replicas serve the deployment's name; rename the deployment (name:)",
    "--api-key": "use gateway.api_key_env (clients authenticate at the gateway)",
    "--model": "use model:",
    "--model-path": "use model:",
}


class Deployment(Strict):
    name: str
    model: str
    workload: WorkloadClass
    engine: EngineChoice = "auto"
    engine_version: str | None = None
    emulate: Literal["vllm", "sglang"] | None = None  # API flavour of the emulated engine; default by class
    targets: Targets = Targets()
    scaling: Scaling = Scaling()
    placement: Placement = Placement()
    gateway: Gateway = Gateway()
    serving: Serving = Serving()
    engine_args: dict[str, EngineArgValue] = Field(default_factory=dict)
    adapters: tuple[Adapter, ...] = ()  # LoRA adapters on the base model (llmctl.config.adapters)

    @field_validator("adapters")
    @classmethod
    def _unique_adapters(cls, value: tuple[Adapter, ...]) -> tuple[Adapter, ...]:
        twice = duplicate_adapter(value)
        if twice:
            raise ValueError(f"adapter name {twice!r} is given twice")
        return value

    @field_validator("name")
    @classmethod
    def _dns_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                f"{value!r}: use lowercase letters, digits and '-' (at most 63, like a DNS label)"
            )
        return value

    @field_validator("engine_args")
    @classmethod
    def _flags(cls, value: dict[str, EngineArgValue]) -> dict[str, EngineArgValue]:
        for key in value:
            if not key.startswith("--"):
                raise ValueError(f"engine_args key {key!r} must be a flag starting with '--'")
            managed = MANAGED_FLAGS.get(key.split("=", 1)[0])
            if managed:
                raise ValueError(f"engine_args {key!r} is set by llmctl: {managed}")
            if _has_nul(key) or _has_nul(value[key]):
                raise ValueError(f"engine_args {key!r}: a NUL byte cannot be passed on a command line")
        return value

    @model_validator(mode="after")
    def _emulate_only_for_emulated(self) -> Deployment:
        if self.emulate is not None and self.engine != "emulated":
            raise ValueError("'emulate' applies only to engine: emulated")
        return self


class Playbook(Strict):
    file: str = ""
    deployments: tuple[Deployment, ...] = Field(min_length=1)

    def deployment(self, name: str) -> Deployment:
        for d in self.deployments:
            if d.name == name:
                return d
        raise KeyError(name)


def parse_playbook(data: Any, lines: LineMap) -> Playbook:
    if not isinstance(data, dict):
        raise ConfigError(lines.file, 1, "", "a playbook is a mapping with a 'deployments' list")
    playbook = validate(Playbook, {**data, "file": lines.file}, lines)
    seen: dict[str, int] = {}
    for i, dep in enumerate(playbook.deployments):
        if dep.name in seen:
            raise lines.error(("deployments", i, "name"), f"duplicate deployment name {dep.name!r}")
        seen[dep.name] = i
    clash = adapter_name_clash([(d.name, d.adapters) for d in playbook.deployments])
    if clash:
        raise lines.error(("deployments", clash[0], "adapters", clash[1], "name"), clash[2])
    for i, dep in enumerate(playbook.deployments):
        problem = _backfill_problem(playbook, dep)
        if problem:
            raise lines.error(("deployments", i, "placement", "backfill_for"), problem)
        pool_problem = _pool_problem(playbook, dep)
        if pool_problem:
            raise lines.error(("deployments", i, "placement", pool_problem[0]), pool_problem[1])
    return playbook


def _pool_problem(playbook: Playbook, dep: Deployment) -> tuple[str, str] | None:
    """(field, problem) of a placement whose pool settings make no sense together."""
    place = dep.placement
    if place.pool is None:
        unused = [f for f in ("priority", "weight") if f in place.model_fields_set]
        if unused:
            return unused[0], f"{unused[0]} ranks the tenants of a GPU pool; set placement.pool too"
        return None
    if not _NAME.match(place.pool) and place.pool != "all":
        return "pool", f"{place.pool!r} is not a group name; a pool is an inventory group or 'all'"
    for other, why in (
        ("host_group", "the pool's group already says where"),
        ("hosts", "the pool's group already says where"),
        ("backfill_for", "offline work in a pool is back-fill already: it gets only GPUs nobody else wants"),
    ):
        if getattr(place, other):
            return other, f"{other} cannot be combined with pool ({why})"
    lenders = [d.name for d in playbook.deployments if d.placement.backfill_for == dep.name]
    if lenders:
        return "pool", (
            f"{', '.join(lenders)} back-fills this deployment, but a pooled deployment's spare GPUs belong to "
            f"the pool: put {', '.join(lenders)} in pool {place.pool!r} instead"
        )
    return None


def _backfill_problem(playbook: Playbook, dep: Deployment) -> str | None:
    target = dep.placement.backfill_for
    if target is None:
        return None
    names = [d.name for d in playbook.deployments]
    if target == dep.name:
        return "a deployment cannot back-fill its own GPUs"
    if target not in names:
        return f"no deployment named {target!r} in this playbook (have: {', '.join(names)})"
    host = playbook.deployment(target)
    if host.placement.backfill_for is not None:
        return f"{target!r} is itself a back-fill deployment; back-fill the deployment that owns the GPUs"
    if (host.scaling.max_replicas or 0) <= host.scaling.initial_replicas:
        return f"{target!r} has no spare replicas to lend (its scaling.max_replicas is not above its initial count)"
    if dep.workload != "offline":
        return f"back-fill is for offline work that can pause; this deployment is {dep.workload}"
    return None


def read_playbook(path: str | Path) -> tuple[Playbook, LineMap]:
    """The playbook and where each of its values came from (for errors found after validation)."""
    data, lines = load_yaml(path)
    if isinstance(data, dict) and "file" in data:
        raise lines.error(("file",), "unknown field")
    return parse_playbook(data, lines), lines


def load_playbook(path: str | Path) -> Playbook:
    return read_playbook(path)[0]
