"""Placement: which host and GPU indices each replica gets, and its port. First fit in inventory order;
a tensor-parallel group never spans hosts or GPU types, no GPU is given twice, ports are unique per host.

A CPU host (`accelerator: cpu`) offers one slot, index 0, whose device is the host's CPU with the host's
memory: from facts where gathered, else as the inventory declares it (`cpu: {cores, memory_gib}`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from llmctl.catalog.gpus import GPU, GiB, cpu_device
from llmctl.catalog.gpus import find_gpu as find_catalog_gpu
from llmctl.config.gpu_types import unknown_gpu_message, with_memory
from llmctl.config.inventory import Host, Inventory

MiB = 1024**2


@dataclass(frozen=True)
class GpuSlot:
    index: int
    gpu: GPU


@dataclass
class HostState:
    host: Host
    slots: list[GpuSlot]
    used: dict[int, str] = field(default_factory=dict)  # GPU index -> replica holding it
    ports: set[int] = field(default_factory=set)
    problem: str = ""  # why a CPU host offers no slot (its memory or cores are unknown)
    # GPUs its facts report that neither the catalog nor the inventory's gpu_types knows: what to add, in words.
    unknown: str = ""

    def free(self, gpu_name: str) -> list[int]:
        return [s.index for s in self.slots if s.gpu.name == gpu_name and s.index not in self.used]

    def count(self, gpu_name: str) -> int:
        return sum(1 for s in self.slots if s.gpu.name == gpu_name)

    def gpu_types(self) -> list[GPU]:
        seen: dict[str, GPU] = {}
        for s in self.slots:
            seen.setdefault(s.gpu.name, s.gpu)
        return list(seen.values())

    def take(self, gpu_name: str, n: int, owner: str) -> tuple[int, ...] | None:
        free = self.free(gpu_name)
        if len(free) < n:
            return None
        # Prefer a contiguous run: neighbouring indices usually share an NVLink/PCIe switch.
        for start in range(len(free) - n + 1):
            run = free[start : start + n]
            if run[-1] - run[0] == n - 1:
                break
        else:
            run = free[:n]
        for i in run:
            self.used[i] = owner
        return tuple(run)

    def port(self, base: int) -> int:
        port = base
        while port in self.ports:
            port += 1
        self.ports.add(port)
        return port


@dataclass(frozen=True)
class HostResources:
    """What gathered facts say about one host: its GPUs, logical CPUs and memory (MiB)."""

    gpus: Sequence[tuple[int, str]] = ()
    cpus: int | None = None
    memory_mib: int | None = None
    # GPU index -> memory the tool measured (MiB): what an operator-typed GPU is planned with. These two
    # describe the GPUs above rather than being resources of their own: left out of comparisons.
    gpu_memory_mib: Mapping[int, int] = field(default_factory=dict, compare=False)
    gpu_source: str = field(default="nvidia-smi", compare=False)  # the tool that reported them, for messages


# Facts gathered from hosts: host name -> [(GPU index, nvidia-smi name)], or HostResources (which also carries
# CPUs and memory, what a CPU host is planned from). Declared GPUs and CPUs are used where absent.
GpuFacts = Mapping[str, Sequence[tuple[int, str]] | HostResources]


def _cpu_state(host: Host, facts: Sequence[tuple[int, str]] | HostResources | None) -> HostState:
    gathered = facts if isinstance(facts, HostResources) else None
    cores = (gathered.cpus if gathered else None) or (host.cpu.cores if host.cpu else None)
    memory: float | None = None
    if gathered and gathered.memory_mib:
        memory = gathered.memory_mib * MiB
    elif host.cpu:
        memory = host.cpu.memory_gib * GiB
    if not cores or not memory:
        missing = [w for w, v in (("memory", memory), ("core count", cores)) if not v]
        problem = (
            f"host {host.name!r} has accelerator: cpu but its {' and '.join(missing)} "
            f"{'are' if len(missing) > 1 else 'is'} unknown: add "
            "cpu: {cores: N, memory_gib: G} to it in the inventory, or gather facts (llmctl hosts facts)"
        )
        return HostState(host, [], problem=problem)
    if memory < GiB:
        return HostState(
            host, [], problem=f"host {host.name!r}: {memory / GiB:.2f} GiB of memory is too little"
        )
    return HostState(host, [GpuSlot(0, cpu_device(cores, int(memory)))])


def host_states(inventory: Inventory, facts: GpuFacts | None = None) -> list[HostState]:
    states = []
    for host in inventory.hosts:
        gathered = facts.get(host.name) if facts else None
        if host.accelerator == "cpu":
            states.append(_cpu_state(host, gathered))
            continue
        slots: list[GpuSlot] = []
        unknown = ""
        if gathered is not None:
            slots, unknown = _gathered_slots(inventory, host, gathered)
        elif host.gpus:
            slots = [GpuSlot(i, host.gpus.gpu) for i in range(host.gpus.count)]
        states.append(HostState(host, slots, unknown=unknown))
    return states


def _gathered_slots(
    inventory: Inventory, host: Host, gathered: Sequence[tuple[int, str]] | HostResources
) -> tuple[list[GpuSlot], str]:
    """Slots from facts. An operator-defined type is planned with the memory the tool measured; a GPU nobody
    knows takes the host's declared operator type where it has one, and is otherwise left out, with the
    YAML that would make it usable."""
    resources = gathered if isinstance(gathered, HostResources) else HostResources(tuple(gathered))
    declared = host.gpus.gpu if host.gpus else None
    fallback = declared if declared is not None and declared.name in inventory.gpu_types else None
    slots: list[GpuSlot] = []
    unknown: dict[str, tuple[int, int | None]] = {}  # product name -> (count, measured MiB)
    for index, name in resources.gpus:
        gpu = inventory.find_gpu(name)
        measured = resources.gpu_memory_mib.get(index)
        if gpu is None and fallback is not None:
            gpu = fallback
        if gpu is None or gpu.is_cpu:
            count, _ = unknown.get(name, (0, None))
            unknown[name] = (count + 1, measured)
            continue
        if gpu.name in inventory.gpu_types:
            gpu = with_memory(gpu, measured)
        slots.append(GpuSlot(index, gpu))
    message = "; ".join(
        unknown_gpu_message(host.name, name, mib, resources.gpu_source, count, inventory.gpu_types)
        for name, (count, mib) in unknown.items()
    )
    return slots, message


def selected(states: list[HostState], host_group: str | None, hosts: Sequence[str]) -> list[HostState]:
    """Hosts a placement's host_group and hosts select."""
    return [
        st
        for st in states
        if not (host_group and host_group not in st.host.groups) and not (hosts and st.host.name not in hosts)
    ]


def _wanted(gpu: GPU, gpu_type: str | None) -> bool:
    if gpu_type is None:
        return True
    # A CPU type in a placement selects CPU hosts, whatever their cores and memory: those are the host's.
    wanted = find_catalog_gpu(gpu_type)
    return gpu.name == gpu_type or bool(gpu.is_cpu and wanted is not None and wanted.is_cpu)


def eligible(
    states: list[HostState], host_group: str | None, hosts: Sequence[str], gpu_type: str | None
) -> list[tuple[HostState, GPU]]:
    out = []
    for st in selected(states, host_group, hosts):
        for gpu in st.gpu_types():
            if _wanted(gpu, gpu_type):
                out.append((st, gpu))
    return out
