"""plan_playbook: deployments + inventory -> replicas with exact argv, env, host, GPUs and port. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from llmctl.catalog.gpus import GPU, find_gpu
from llmctl.catalog.models import Model, find_model
from llmctl.config.inventory import Inventory
from llmctl.config.playbook import Deployment, Playbook
from llmctl.config.source import LineMap
from llmctl.engines import emulated, sglang, vllm
from llmctl.engines.flagspec import FlagSpec, merge_argv, overrides_to_argv
from llmctl.errors import ConfigError, PlanError
from llmctl.planner.cpu import cpu_engine_version, shape_cpu_replica
from llmctl.planner.lora import lora_args, lora_env
from llmctl.planner.placement import GpuFacts, HostState, eligible, host_states, selected
from llmctl.planner.pool import plan_pools
from llmctl.planner.shape import DoesNotFit, flavour_of, shape_replica
from llmctl.planner.types import Plan, PlannedReplica, Shape

ENGINES = {"vllm": vllm, "sglang": sglang}
FlagSpecs = Mapping[tuple[str, str], FlagSpec]


def needed_flagspecs(playbook: Playbook, inventory: Inventory | None = None) -> set[tuple[str, str]]:
    """(flavour, version) pairs whose flag snapshots the plan will validate against. A deployment that may
    land on a CPU host also needs vLLM's CPU version (and, emulated, the pinned vLLM flags it imitates);
    without the inventory any host may be one."""
    cpu_hosts = inventory is None or any(h.accelerator == "cpu" for h in inventory.hosts)
    out = set()
    for dep in playbook.deployments:
        _, flavour, _ = flavour_of(dep)
        out.add((flavour, dep.engine_version or ENGINES[flavour].DEFAULT_VERSION))
        if cpu_hosts and dep.engine != "sglang" and dep.emulate != "sglang":
            out.add(("vllm", cpu_engine_version(dep)))
    return out


def _flagspec(shape: Shape, flagspecs: FlagSpecs) -> FlagSpec:
    """The snapshot of the shape's engine version; for a CPU replica whose vLLM CPU snapshot the caller did
    not load (flagspecs built by hand), the pinned vLLM one, and the plan warns."""
    spec = flagspecs.get((shape.flavour, shape.engine_version))
    if spec is None and shape.device == "cpu":
        spec = flagspecs.get((shape.flavour, ENGINES[shape.flavour].DEFAULT_VERSION))
    if spec is None:
        raise PlanError(
            f"no {shape.flavour} {shape.engine_version} flag snapshot was loaded to check the command line "
            "against (needed_flagspecs(playbook, inventory) lists the ones a plan needs)"
        )
    return spec


def _shape(dep: Deployment, model: Model, gpu: GPU, gpus_on_host: int) -> Shape:
    if gpu.is_cpu:
        return shape_cpu_replica(dep, model, gpu)
    shape = shape_replica(dep, model, gpu, gpus_on_host)
    # The same flags and sizing: vLLM's ROCm build takes the CUDA build's command line (and reads
    # CUDA_VISIBLE_DEVICES); only the package it is installed from differs.
    return replace(shape, rocm=True) if gpu.is_rocm and shape.engine == "vllm" else shape


def _program(shape: Shape) -> tuple[str, ...]:
    if shape.engine == "emulated":
        return emulated.program(shape.flavour)
    return vllm.program(shape) if shape.flavour == "vllm" else sglang.PROGRAM


def _error(lines: LineMap | None, file: str, path: tuple[str | int, ...], problem: str) -> ConfigError:
    return lines.error(path, problem) if lines else ConfigError(file, None, ".".join(map(str, path)), problem)


def _argv(dep: Deployment, shape: Shape, host_state: HostState, port: int, spec: FlagSpec) -> tuple[str, ...]:
    engine = ENGINES[shape.flavour]
    # Local replicas listen on loopback only; remote ones must be reachable by the gateway.
    bind = "127.0.0.1" if host_state.host.connection == "local" else "0.0.0.0"
    base = [
        *engine.build_args(shape, bind=bind, port=port, served_name=dep.name),
        *lora_args(dep, shape.flavour),
    ]
    args = base
    if dep.engine_args:
        overrides = overrides_to_argv(dep.engine_args, spec)
        # Checked appended to the generated flags (argparse lets a repeated flag win), before merging: a stray
        # value in an override would otherwise be read as a positional and could replace the model.
        problems = spec.validate([*base, *overrides])
        if problems:
            raise DoesNotFit("; ".join(str(p) for p in problems))
        args = merge_argv(spec, base, overrides)
    return (*_program(shape), *args)


def _check_flags(
    dep: Deployment,
    index: int,
    shape: Shape,
    argv: tuple[str, ...],
    spec: FlagSpec,
    lines: LineMap | None,
    file: str,
) -> None:
    problems = spec.validate(list(argv[len(_program(shape)) :]))
    if problems:
        details = "; ".join(str(p) for p in problems)
        raise _error(
            lines,
            file,
            ("deployments", index, "engine_args"),
            f"the {shape.flavour} {shape.engine_version} command line is invalid: {details}",
        )


def plan_playbook(
    playbook: Playbook,
    inventory: Inventory,
    models: Mapping[str, Model],
    flagspecs: FlagSpecs,
    facts: GpuFacts | None = None,
    lines: LineMap | None = None,
) -> Plan:
    """Plan every deployment in order on one shared pool of GPUs. `models` maps each deployment's `model` to
    its resolved architecture; `lines` (optional) lets constraint errors name the playbook line."""
    states = host_states(inventory, facts)
    replicas: list[PlannedReplica] = []
    warnings: list[str] = []
    for d_index, dep in enumerate(playbook.deployments):
        if dep.placement.backfill_for or dep.placement.pool:
            continue  # it owns no GPUs: its slots are planned on another deployment's spares (or a pool) below
        model = models[dep.model]
        place = dep.placement
        _check_cpu_hosts(dep, states, inventory)
        candidates = eligible(states, place.host_group, place.hosts, place.gpu_type)
        _check_unknown_gpus(dep, states, inventory, bool(candidates))
        if not candidates:
            raise _impossible(dep, d_index, inventory, states, lines, playbook.file)
        warnings.extend(_model_path_warning(dep, model))
        shapes: dict[tuple[str, int], Shape] = {}
        for r_index in range(dep.scaling.initial_replicas):
            replica = _place_one(
                dep, d_index, r_index, model, candidates, shapes, flagspecs, lines, playbook.file
            )
            replicas.append(replica)
    spares: list[PlannedReplica] = []
    for d_index, dep in enumerate(playbook.deployments):
        want = (dep.scaling.max_replicas or 0) - dep.scaling.initial_replicas
        if want <= 0 or dep.placement.backfill_for or dep.placement.pool:
            continue
        place = dep.placement
        candidates = eligible(states, place.host_group, place.hosts, place.gpu_type)
        shapes = {}
        placed = 0
        for r_index in range(dep.scaling.initial_replicas, dep.scaling.initial_replicas + want):
            try:
                spares.append(
                    _place_one(
                        dep,
                        d_index,
                        r_index,
                        models[dep.model],
                        candidates,
                        shapes,
                        flagspecs,
                        lines,
                        playbook.file,
                    )
                )
            except PlanError:
                break
            placed += 1
        if placed < want:
            warnings.append(
                f"{dep.name}: room for {placed} more replica(s) on free GPUs, max_replicas asks {want}"
                " more; scale-up will stop early unless GPUs free up"
            )
    backfill: list[PlannedReplica] = []
    for d_index, dep in enumerate(playbook.deployments):
        if dep.placement.backfill_for:
            lent = [s for s in spares if s.deployment == dep.placement.backfill_for]
            if not lent:
                warnings.append(
                    f"{dep.name}: back-fills {dep.placement.backfill_for}'s spare GPUs, but no spare replica of it"
                    " could be placed; it will not run"
                )
            for i, spare in enumerate(lent):
                backfill.append(
                    _backfill_one(
                        dep, d_index, i, spare, models[dep.model], states, flagspecs, lines, playbook.file
                    )
                )
    pooled = plan_pools(
        playbook,
        inventory,
        states,
        models,
        _shape,
        lambda dep, d_index, r_index, shape, state, gpus, port: _replica(
            dep, d_index, r_index, shape, state, gpus, port, flagspecs, lines, playbook.file
        ),
        lambda state, shape: state.port(state.host.engine_port or ENGINES[shape.flavour].DEFAULT_PORT),
        lambda path, problem: _error(lines, playbook.file, path, problem),
    )
    warnings.extend(pooled.warnings)
    for r in (*replicas, *spares, *backfill, *pooled.slots):
        if r.shape.device == "cpu" and (r.shape.flavour, r.shape.engine_version) not in flagspecs:
            fallback = ENGINES[r.shape.flavour].DEFAULT_VERSION
            warnings.append(
                f"{r.name}: command line checked against {r.shape.flavour} {fallback}'s flags: the "
                f"{r.shape.flavour} {r.shape.engine_version} snapshot (the CPU backend's) was not loaded"
            )
    return Plan(
        playbook=playbook.file,
        inventory=inventory.file,
        replicas=tuple(replicas),
        warnings=tuple(warnings),
        spares=tuple(spares),
        backfill=tuple(backfill),
        pooled=pooled.slots,
        pools=pooled.pools,
    )


def _backfill_one(
    dep: Deployment,
    d_index: int,
    r_index: int,
    spare: PlannedReplica,
    model: Model,
    states: list[HostState],
    flagspecs: FlagSpecs,
    lines: LineMap | None,
    file: str,
) -> PlannedReplica:
    """A replica of `dep` on the GPUs of another deployment's spare slot, shaped for that slot's GPUs."""
    state = next(st for st in states if st.host.name == spare.host)
    gpu = next(g.gpu for g in state.slots if g.index == spare.gpu_indices[0])
    where = ("deployments", d_index, "placement", "backfill_for")
    try:
        shape = _shape(dep, model, gpu, len(spare.gpu_indices))
    except DoesNotFit as exc:
        problem = f"does not fit on {spare.name}'s {len(spare.gpu_indices)} GPU(s): {exc}"
        raise _error(lines, file, where, problem) from None
    port = state.port(state.host.engine_port or ENGINES[shape.flavour].DEFAULT_PORT)
    return _replica(
        dep, d_index, r_index, shape, state, spare.gpu_indices[: shape.tp], port, flagspecs, lines, file,
        shares_with=spare.name,
    )  # fmt: skip


def _place_one(
    dep: Deployment,
    d_index: int,
    r_index: int,
    model: Model,
    candidates: list[tuple[HostState, GPU]],
    shapes: dict[tuple[str, int], Shape],
    flagspecs: FlagSpecs,
    lines: LineMap | None,
    file: str,
) -> PlannedReplica:
    misfits: list[str] = []
    fields: set[tuple[str, ...]] = set()
    full: list[str] = []
    for state, gpu in candidates:
        total = state.count(gpu.name)
        key = (gpu.name, total)
        if key not in shapes:
            try:
                shapes[key] = _shape(dep, model, gpu, total)
            except DoesNotFit as exc:
                misfits.append(str(exc))
                fields.add(exc.field)
                continue
        shape = shapes[key]
        name = f"{dep.name}-{r_index}"
        gpus = state.take(gpu.name, shape.tp, name)
        if gpus is None:
            full.append(f"{state.host.name}: {len(state.free(gpu.name))} of {total} {gpu.name} free")
            continue
        port = state.port(state.host.engine_port or ENGINES[shape.flavour].DEFAULT_PORT)
        return _replica(dep, d_index, r_index, shape, state, gpus, port, flagspecs, lines, file)
    if misfits and not full:
        field = next(iter(fields)) if len(fields) == 1 else ()
        if field and len(set(misfits)) == 1:  # one playbook field asks for what no candidate host can do
            raise _error(lines, file, ("deployments", d_index, *field), misfits[0])
        raise PlanError(misfits[0] if len(set(misfits)) == 1 else "\n".join(dict.fromkeys(misfits)))
    tp = max((s.tp for s in shapes.values()), default=1)
    raise PlanError(
        f"deployment {dep.name!r}: no room for replica {r_index} ({tp} GPU(s) on one host); "
        + ("; ".join(full) if full else "no matching GPUs")
        + f". Lower scaling.min_replicas or add hosts ({file})"
    )


def _replica(
    dep: Deployment,
    d_index: int,
    r_index: int,
    shape: Shape,
    state: HostState,
    gpus: tuple[int, ...],
    port: int,
    flagspecs: FlagSpecs,
    lines: LineMap | None,
    file: str,
    shares_with: str = "",
) -> PlannedReplica:
    spec = _flagspec(shape, flagspecs)
    try:
        argv = _argv(dep, shape, state, port, spec)
    except DoesNotFit as exc:
        raise _error(
            lines,
            file,
            ("deployments", d_index, "engine_args"),
            f"invalid for {shape.flavour} {shape.engine_version}: {exc}",
        ) from None
    _check_flags(dep, d_index, shape, argv, spec, lines, file)
    # A CPU replica has no GPUs to pick; its slot index 0 is the whole host's CPU.
    visible = {} if shape.device == "cpu" else {"CUDA_VISIBLE_DEVICES": ",".join(map(str, gpus))}
    env = {**visible, **ENGINES[shape.flavour].env(shape), **lora_env(dep, shape.flavour)}
    if shape.device == "cpu" and state.host.cpu_bind:
        # An explicit binding replaces vLLM's automatic one, and with it the reserved cores.
        env = {k: v for k, v in env.items() if k != vllm.CPU_RESERVED_ENV}
        env[vllm.CPU_BIND_ENV] = state.host.cpu_bind
    if shape.engine == "emulated":
        env.update(emulated.env(shape.gpu_type))
    return PlannedReplica(
        deployment=dep.name,
        index=r_index,
        host=state.host.name,
        address=state.host.address,
        gpu_indices=gpus,
        port=port,
        shape=shape,
        argv=argv,
        env=env,
        shares_with=shares_with,
    )


def _check_cpu_hosts(dep: Deployment, states: list[HostState], inventory: Inventory) -> None:
    """A CPU host the placement selects but whose memory or cores are unknown is an inventory to complete."""
    place = dep.placement
    wanted = find_gpu(place.gpu_type) if place.gpu_type else None
    if wanted is not None and not wanted.is_cpu:
        return  # the placement asks for a GPU type: CPU hosts are not in the running
    for st in selected(states, place.host_group, place.hosts):
        if st.problem:
            raise PlanError(f"{inventory.file}: {st.problem}")


def _check_unknown_gpus(dep: Deployment, states: list[HostState], inventory: Inventory, placed: bool) -> None:
    """A selected host whose facts report a GPU no one knows is refused with the YAML that would make it
    usable, unless the placement asks for a GPU type that other hosts offer (then that host is not needed)."""
    place = dep.placement
    if place.gpu_type and placed:
        return
    problems = [st.unknown for st in selected(states, place.host_group, place.hosts) if st.unknown]
    if problems:
        raise PlanError(f"{inventory.file}: {'; '.join(problems)}")


def _model_path_warning(dep: Deployment, model: Model) -> list[str]:
    """A local model directory given as a relative path resolves from the playbook's folder here, but the
    engine resolves it from its own working directory on the host ({workdir}/replicas/<name>)."""
    if find_model(model.name) is not None:
        return []
    if model.name.endswith(".json"):
        return [f"{dep.name}: model {model.name!r} is a config file; engines load the directory holding it"]
    if model.name.startswith("/"):
        return []
    return [
        f"{dep.name}: model {model.name!r} is a relative path; the engine starts in its replica's directory on"
        " the host, where it does not resolve: write the model directory's absolute path"
    ]


def _impossible(
    dep: Deployment,
    d_index: int,
    inventory: Inventory,
    states: list[HostState],
    lines: LineMap | None,
    file: str,
) -> ConfigError:
    place = dep.placement
    groups = sorted({g for h in inventory.hosts for g in h.groups})
    # GPU types on the hosts the placement selects, from facts where gathered, else as declared.
    types = sorted({gpu.name for st, gpu in eligible(states, place.host_group, place.hosts, None)})
    if place.host_group and place.host_group not in groups:
        return _error(
            lines,
            file,
            ("deployments", d_index, "placement", "host_group"),
            f"no host in {inventory.file} is in group {place.host_group!r} (groups: {', '.join(groups) or 'none'})",
        )
    if place.hosts:
        missing = [h for h in place.hosts if h not in {x.name for x in inventory.hosts}]
        if missing:
            return _error(
                lines,
                file,
                ("deployments", d_index, "placement", "hosts"),
                f"no host named {', '.join(missing)} in {inventory.file}",
            )
    if place.gpu_type:
        return _error(
            lines,
            file,
            ("deployments", d_index, "placement", "gpu_type"),
            f"no selected host in {inventory.file} has {place.gpu_type} GPUs (have: {', '.join(types) or 'none'})",
        )
    return _error(
        lines,
        file,
        ("deployments", d_index, "placement"),
        f"no host in {inventory.file} matches this placement or has GPUs",
    )
