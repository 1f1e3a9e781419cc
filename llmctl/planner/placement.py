"""Placement: which host and GPU indices each replica gets, and its port. First fit in inventory order;
a tensor-parallel group never spans hosts or GPU types, no GPU is given twice, ports are unique per host."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from llmctl.catalog.gpus import GPU, find_gpu
from llmctl.config.inventory import Host, Inventory


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


# Facts gathered from hosts: host name -> [(GPU index, nvidia-smi name)]. Declared GPUs are used where absent.
GpuFacts = Mapping[str, Sequence[tuple[int, str]]]


def host_states(inventory: Inventory, facts: GpuFacts | None = None) -> list[HostState]:
    states = []
    for host in inventory.hosts:
        slots: list[GpuSlot] = []
        if facts and host.name in facts:
            for index, name in facts[host.name]:
                gpu = find_gpu(name)
                if gpu is not None:  # a GPU the catalog does not know cannot be planned for
                    slots.append(GpuSlot(index, gpu))
        elif host.gpus:
            slots = [GpuSlot(i, host.gpus.gpu) for i in range(host.gpus.count)]
        states.append(HostState(host, slots))
    return states


def eligible(
    states: list[HostState], host_group: str | None, hosts: Sequence[str], gpu_type: str | None
) -> list[tuple[HostState, GPU]]:
    out = []
    for st in states:
        if host_group and host_group not in st.host.groups:
            continue
        if hosts and st.host.name not in hosts:
            continue
        for gpu in st.gpu_types():
            if gpu_type is None or gpu.name == gpu_type:
                out.append((st, gpu))
    return out
