"""Parse what the facts script prints on a host. Pure: text in, HostFacts out."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from llmctl.catalog.gpus import find_gpu

SECTION = re.compile(r"^@@ (\w+)$")


@dataclass(frozen=True)
class GpuFact:
    index: int
    name: str  # as nvidia-smi (or amd-smi, rocm-smi) reports it
    memory_total_mib: int
    memory_used_mib: int
    utilization_pct: int
    uuid: str
    catalog: str | None  # catalog GPU type, None when unknown to llmctl


@dataclass(frozen=True)
class HostFacts:
    host: str
    gpus: tuple[GpuFact, ...] = ()
    # nvidia-smi | amd-smi | rocm-smi, or "declared" (no such tool: the inventory's GPUs) or "none"
    gpu_source: str = "nvidia-smi"
    driver_version: str | None = None
    cuda_version: str | None = None
    cpus: int | None = None
    memory_mib: int | None = None
    disk_free_mib: int | None = None  # at the model cache (or its nearest existing parent)
    os: str | None = None
    python: str | None = None
    engines: dict[str, str] = field(default_factory=dict)  # engine -> version installed in the llmctl venv
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HostFacts:
        gpus = tuple(GpuFact(**g) for g in d.get("gpus", ()))
        return cls(**{**d, "gpus": gpus, "notes": tuple(d.get("notes", ()))})

    def gpu_slots(self) -> list[tuple[int, str]]:
        """(index, name) pairs in the form the planner takes as facts."""
        return [(g.index, g.name) for g in self.gpus]


def sections(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        m = SECTION.match(line.strip())
        if m:
            current = out.setdefault(m.group(1), [])
        elif current is not None and line.strip():
            current.append(line.rstrip())
    return out


# The query parse_gpu_csv reads: the scripts that gather facts (llmctl.fleet.facts, llmctl.doctor.probe) run
# this one command line, so the columns they ask for are the ones parsed.
NVIDIA_SMI_GPUS = (
    "nvidia-smi --query-gpu=index,name,memory.total,memory.used,utilization.gpu,uuid"
    " --format=csv,noheader,nounits"
)


def parse_gpu_csv(lines: list[str]) -> tuple[GpuFact, ...]:
    """The output of NVIDIA_SMI_GPUS. Raises ValueError naming the line that does not parse."""
    gpus = []
    for n, line in enumerate(lines, 1):
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 6:
            raise ValueError(f"nvidia-smi line {n}: expected 6 fields, got {len(parts)}: {line!r}")
        try:
            index, total, used = int(parts[0]), int(float(parts[2])), int(float(parts[3]))
            util = int(float(parts[4])) if parts[4] not in ("[N/A]", "N/A") else 0
        except ValueError:
            raise ValueError(f"nvidia-smi line {n}: not numbers where expected: {line!r}") from None
        gpu = find_gpu(parts[1])
        gpus.append(GpuFact(index, parts[1], total, used, util, parts[5], gpu.name if gpu else None))
    return tuple(gpus)


def _first_int(lines: list[str]) -> int | None:
    for line in lines:
        m = re.search(r"\d+", line)
        if m:
            return int(m.group())
    return None


def parse_facts(host: str, text: str) -> HostFacts:
    s = sections(text)
    notes: list[str] = []
    gpus: tuple[GpuFact, ...] = ()
    source = "none"
    # The AMD parsers build GpuFacts, defined here: imported where used so that neither module imports
    # the other at load time.
    from llmctl.fleet.amd_smi_parse import parse_amd_smi_static
    from llmctl.fleet.rocm_smi_parse import parse_rocm_smi_json

    if s.get("nvidia_smi_status", ["missing"])[0] == "ok":
        gpus = parse_gpu_csv(s.get("gpus", []))
        source = "nvidia-smi"
    elif "amd_smi_static" in s:
        gpus, source = parse_amd_smi_static("\n".join(s["amd_smi_static"])), "amd-smi"
    elif "rocm_smi" in s:
        gpus, source = parse_rocm_smi_json("\n".join(s["rocm_smi"])), "rocm-smi"
    else:
        notes.append("no nvidia-smi on this host")
    unknown = sorted({g.name for g in gpus if g.catalog is None})
    if unknown:
        notes.append(
            f"GPU type(s) unknown to the catalog: {', '.join(unknown)} (plannable once the inventory's"
            " gpu_types describes them)"
        )
    smi = "\n".join(s.get("smi_header", []))
    driver = re.search(r"Driver Version:\s*([\d.]+)", smi)
    cuda = re.search(r"CUDA Version:\s*([\d.]+)", smi)
    mem_kib = _first_int(s.get("meminfo", []))
    disk = s.get("disk", [])
    disk_kib = (
        int(disk[-1].split()[3])
        if disk and len(disk[-1].split()) > 3 and disk[-1].split()[3].isdigit()
        else None
    )
    os_name = next(
        (line.split("=", 1)[1].strip('"') for line in s.get("os", []) if line.startswith("PRETTY_NAME=")),
        None,
    )
    engines = {}
    for line in s.get("engines", []):
        name, _, version = line.partition(" ")
        if version and version != "-":
            engines[name] = version
    python = s.get("python", [None])[0]
    return HostFacts(
        host=host,
        gpus=gpus,
        gpu_source=source,
        driver_version=driver.group(1) if driver else None,
        cuda_version=cuda.group(1) if cuda else None,
        cpus=_first_int(s.get("cpus", [])),
        memory_mib=mem_kib // 1024 if mem_kib else None,
        disk_free_mib=disk_kib // 1024 if disk_kib is not None else None,
        os=os_name,
        python=python.removeprefix("Python ").strip() if python else None,
        engines=engines,
        notes=tuple(notes),
    )
