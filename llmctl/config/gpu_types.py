"""Operator-defined GPU types: an inventory's `gpu_types` (Ansible: `llmctl_gpu_types` in all.vars) names
GPUs the catalog does not know, with their figures, so that hosts declare them (`gpus: {type: NAME}`) and
the planner and performance model plan for them like catalog GPUs.

    gpu_types:
      Foo: {memory_gib: 96, hbm_gbps: 2000, bf16_tflops: 400, fp8_tflops: 800,
            interconnect: pcie, price_per_gpu_hour: 1.2, aliases: ["NVIDIA Foo 96GB"]}

`aliases` are product names as nvidia-smi / amd-smi report them: a host whose facts show one is planned
with this type. A GPU that facts report and neither the catalog nor gpu_types knows is planned with its
host's declared operator type (and the memory the tool measured), or refused with the YAML to add.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from llmctl.catalog.gpu_table import GB, GPU, TFLOPS, GiB
from llmctl.catalog.gpus import find_gpu, match_gpu
from llmctl.config.source import LineMap, validate

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# Host link when the operator gives none: PCIe Gen4 x16 per direction, the slowest link a current data-centre
# GPU sits on, so weight-load estimates err long rather than short.
DEFAULT_HOST_LINK = 32 * GB
# Bytes in a MiB, for measured memory (nvidia-smi and amd-smi report MiB).
MiB = 1024**2


class GpuTypeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    memory_gib: float = Field(gt=0, le=65536)
    hbm_gbps: float = Field(gt=0, le=1e6)  # GB/s
    bf16_tflops: float = Field(gt=0, le=1e6)  # dense
    fp8_tflops: float | None = Field(default=None, gt=0, le=1e6)  # dense; absent: no FP8 tensor cores
    interconnect: Literal["pcie", "nvlink", "infinity-fabric"] = "pcie"
    interconnect_gbps: float | None = Field(default=None, gt=0, le=1e6)  # GB/s per direction
    host_link_gbps: float | None = Field(default=None, gt=0, le=1e6)  # GB/s host<->device
    price_per_gpu_hour: float | None = Field(default=None, ge=0)
    vendor: Literal["nvidia", "amd"] = "nvidia"  # amd: served by vLLM's ROCm build
    aliases: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _link_needs_bandwidth(self) -> GpuTypeSpec:
        # A PCIe card's link is known well enough (Gen4 x16); an NVLink or Infinity Fabric one is not, and a
        # guess would decide tensor parallelism.
        if self.interconnect != "pcie" and self.interconnect_gbps is None:
            raise ValueError(
                f"interconnect: {self.interconnect} needs interconnect_gbps (GB/s per direction)"
            )
        return self

    def gpu(self, name: str, where: str = "") -> GPU:
        link = (self.interconnect_gbps or 0) * GB or DEFAULT_HOST_LINK
        return GPU(
            name=name,
            memory_bytes=int(self.memory_gib * GiB),
            hbm_bandwidth=self.hbm_gbps * GB,
            bf16_flops=self.bf16_tflops * TFLOPS,
            fp8_flops=self.fp8_tflops * TFLOPS if self.fp8_tflops else None,
            interconnect_bandwidth=link,
            interconnect=self.interconnect,
            host_link_bandwidth=(self.host_link_gbps or 0) * GB or DEFAULT_HOST_LINK,
            # Unpriced: costs read 0 unless the host has price_per_gpu_hour.
            price_per_hour=self.price_per_gpu_hour or 0.0,
            aliases=self.aliases,
            source=f"inventory gpu_types{' (' + where + ')' if where else ''}",
            vendor=self.vendor,
        )


def with_memory(gpu: GPU, memory_mib: int | None) -> GPU:
    """The GPU with the memory a tool measured (MiB), where it measured any."""
    if not memory_mib or memory_mib <= 0:
        return gpu
    return GPU(**{**gpu.__dict__, "memory_bytes": memory_mib * MiB})


def parse_gpu_types(raw: Any, lines: LineMap, path: tuple[str, ...]) -> dict[str, GPU]:
    """An inventory's gpu_types mapping, validated with file:line errors, as catalog-shaped GPUs."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise lines.error(path, "gpu_types is a mapping of GPU type name to its figures")
    out: dict[str, GPU] = {}
    for name, body in raw.items():
        name = str(name)
        if not _NAME.match(name):
            raise lines.error(
                (*path, name), f"GPU type name {name!r} must be letters, digits, '.', '_' or '-'"
            )
        known = find_gpu(name)
        if known is not None:
            raise lines.error(
                (*path, name), f"{name!r} is the catalog's {known.name}: use it as is, or choose another name"
            )
        spec = validate(GpuTypeSpec, body if body is not None else {}, lines, (*path, name))
        line = lines.line_of((*path, name))
        out[name] = spec.gpu(name, f"{lines.file}:{line}" if line else lines.file)
    return out


def resolve_gpu(name: str, gpu_types: Mapping[str, GPU]) -> GPU | None:
    """A GPU by name as an inventory sees it: its own types (by name or alias) first, then the catalog."""
    if name in gpu_types:
        return gpu_types[name]
    return (match_gpu(name, gpu_types.values()) if gpu_types else None) or find_gpu(name)


def _num(value: float) -> str:
    return f"{value:g}"


def unknown_gpu_message(
    host: str, product: str, memory_mib: int | None, source: str, count: int, suggested: Iterable[str] = ()
) -> str:
    """One line: the GPU a tool reported that no one knows, and the exact YAML that makes it plannable."""
    words = [w for w in re.split(r"[^A-Za-z0-9]+", re.sub(r"^(NVIDIA|AMD)\s+", "", product)) if w]
    # The product name's words without sizes ("96GB"): a usable type name, unless it is taken.
    type_name = "-".join(w for w in words if not re.fullmatch(r"\d+(GB|G|GIB)", w, re.IGNORECASE)) or "MyGPU"
    taken = set(suggested)
    while type_name in taken:
        type_name += "-x"
    gib = _num(round(memory_mib / 1024)) if memory_mib else "..."
    return (
        f"hosts.{host}: unknown GPU {product!r} (from {source}): add to the inventory  "
        f"gpu_types: {{{type_name}: {{memory_gib: {gib}, hbm_gbps: ..., bf16_tflops: ...}}}}  and  "
        f"gpus: {{type: {type_name}, count: {count}}}"
    )
