"""Inventory: the GPU hosts llmctl may use, in llmctl's own YAML shape or Ansible's.

Native shape:
    defaults: {user: ubuntu, price_per_gpu_hour: 2.5}      # optional, applied to every host
    hosts:
      gpu-a: {address: 10.0.0.5, user: ubuntu, key: ~/.ssh/id_ed25519, groups: [h100],
              gpus: {type: H100-SXM, count: 8}}
      cpu-a: {address: 10.0.0.9, accelerator: cpu, cpu: {cores: 16, memory_gib: 64}}   # vLLM's CPU backend
Ansible shape (accepted unchanged): all: {hosts, children, vars} with ansible_host, ansible_user, ansible_port,
ansible_ssh_private_key_file, ansible_connection; llmctl-specific values as llmctl_<field> host/group vars.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from llmctl.catalog.gpus import CPU_PRICE_PER_CORE_HOUR, GPU, GPUS, find_gpu
from llmctl.config.gpu_types import parse_gpu_types, resolve_gpu
from llmctl.config.source import LineMap, validate
from llmctl.errors import ConfigError, LlmctlError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _gpu_types(info: ValidationInfo) -> dict[str, GPU]:
    """The inventory's own GPU types (gpu_types), which the loader passes as validation context."""
    return dict((info.context or {}).get("gpu_types", {}))


class DeclaredGPUs(Strict):
    """GPUs as the inventory states them; used until facts are gathered from nvidia-smi (or amd-smi). The
    type is a catalog GPU or one of the inventory's gpu_types."""

    type: str
    count: int = Field(ge=1, le=64)
    _gpu: GPU | None = PrivateAttr(default=None)  # the resolved type, an operator-defined one included

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str, info: ValidationInfo) -> str:
        own = _gpu_types(info)
        gpu = resolve_gpu(value, own)
        if gpu is None or gpu.is_cpu:
            hint = "; a CPU host takes accelerator: cpu and cpu: {cores, memory_gib}" if gpu else ""
            mine = f"; the inventory's gpu_types: {', '.join(own)}" if own else ""
            raise ValueError(
                f"unknown GPU type {value!r}; known: {', '.join(GPUS)}{mine}{hint}"
                " (or define it in the inventory's gpu_types)"
            )
        return gpu.name

    @model_validator(mode="after")
    def _resolve(self, info: ValidationInfo) -> DeclaredGPUs:
        self._gpu = resolve_gpu(self.type, _gpu_types(info))
        return self

    @property
    def gpu(self) -> GPU:
        found = self._gpu or find_gpu(self.type)
        assert found is not None  # checked at validation
        return found


class DeclaredCPU(Strict):
    """A CPU host's logical CPUs and memory as the inventory states them; used until facts are gathered."""

    cores: int = Field(ge=1, le=4096)
    memory_gib: float = Field(gt=0, le=65536)


class Host(Strict):
    name: str
    address: str = ""
    connection: Literal["ssh", "local"] = "ssh"
    user: str | None = None
    port: int = Field(default=22, ge=1, le=65535)
    key: str | None = None  # path to a private key
    jump: str | None = None  # [user@]host[:port] of a jump host (ProxyJump)
    groups: tuple[str, ...] = ()
    labels: dict[str, str] = Field(default_factory=dict)
    gpus: DeclaredGPUs | None = None
    price_per_gpu_hour: float | None = Field(default=None, ge=0)
    model_cache: str = "~/.cache/huggingface"
    workdir: str = "~/.llmctl"
    python: str = "python3"
    # cpu: no GPUs; the engine is vLLM's CPU backend, cores and memory come from facts (until gathered: cpu:).
    accelerator: Literal["gpu", "cpu"] = "gpu"
    # Virtual environment holding the engine (default {workdir}/venv), for local and SSH hosts alike.
    engine_venv: str | None = None
    # First port the host's engines listen on (then the next free one); default the engine's own (vLLM
    # 8000, SGLang 30000). For hosts that share a network stack, such as several hosts on one machine.
    engine_port: int | None = Field(default=None, ge=1, le=65535)
    # CPU hosts: the CPU ids the engine's OpenMP threads bind to, in vLLM's VLLM_CPU_OMP_THREADS_BIND form
    # ("0-15", "0,2,4"), or "nobind" (no affinity at all: the scheduler places the threads); default
    # vLLM's own choice (auto). For engines that share a host's cores with other work.
    cpu_bind: str | None = Field(default=None, pattern=r"^(nobind|[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*)$")
    cpu: DeclaredCPU | None = None  # accelerator: cpu only

    @field_validator("accelerator")
    @classmethod
    def _no_gpus_on_cpu(cls, value: str, info: ValidationInfo) -> str:
        if value == "cpu" and info.data.get("gpus") is not None:
            raise ValueError("a host with accelerator: cpu has no gpus: remove gpus, or use accelerator: gpu")
        return value

    @field_validator("cpu")
    @classmethod
    def _cpu_host_only(cls, value: DeclaredCPU | None, info: ValidationInfo) -> DeclaredCPU | None:
        if value is not None and info.data.get("accelerator", "gpu") != "cpu":
            raise ValueError("cpu: describes a CPU host; add accelerator: cpu to this host, or remove cpu:")
        return value

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"host name {value!r} must be letters, digits, '.', '_' or '-'")
        return value

    @model_validator(mode="after")
    def _address_default(self) -> Host:
        if not self.address:
            object.__setattr__(self, "address", "127.0.0.1" if self.connection == "local" else self.name)
        return self

    @property
    def venv(self) -> str:
        """Where the engine (or llmctl, for the emulated engine) is installed on this host."""
        return self.engine_venv or self.workdir.rstrip("/") + "/venv"

    @property
    def gpu_price(self) -> float | None:
        """Price per GPU-hour: the inventory's, else the catalog's typical price for the declared GPU. A CPU
        host is one slot: its price_per_gpu_hour is the host's hourly price, else the catalog's per-core
        price times its declared cores."""
        if self.price_per_gpu_hour is not None:
            return self.price_per_gpu_hour
        if self.accelerator == "cpu":
            return self.cpu.cores * CPU_PRICE_PER_CORE_HOUR if self.cpu else None
        return self.gpus.gpu.price_per_hour if self.gpus else None


class Inventory(Strict):
    file: str = ""
    hosts: tuple[Host, ...]
    # Operator-defined GPU types (gpu_types): name -> catalog-shaped GPU.
    gpu_types: dict[str, GPU] = Field(default_factory=dict)

    def find_gpu(self, name: str) -> GPU | None:
        """A GPU type or tool-reported product name as this inventory resolves it: its own gpu_types (by name
        or alias) first, then the catalog. The planner looks GPUs up here, not in the catalog alone."""
        return resolve_gpu(name, self.gpu_types)

    def host(self, name: str) -> Host:
        for h in self.hosts:
            if h.name == name:
                return h
        raise LlmctlError(
            f"{self.file}: no host named {name!r}; hosts: {', '.join(h.name for h in self.hosts)}"
        )

    def select(self, pattern: str | None) -> list[Host]:
        """Hosts matching a comma-separated list of host names or group names ('all' or None: every host)."""
        if pattern in (None, "", "all"):
            return list(self.hosts)
        wanted = [p.strip() for p in pattern.split(",") if p.strip()]
        known = {h.name for h in self.hosts} | {g for h in self.hosts for g in h.groups}
        unknown = [w for w in wanted if w not in known]
        if unknown:
            raise LlmctlError(f"{self.file}: no host or group named {', '.join(map(repr, unknown))}")
        return [h for h in self.hosts if h.name in wanted or set(h.groups) & set(wanted)]


class _NativeInventory(Strict):
    defaults: dict[str, Any] = Field(default_factory=dict)
    gpu_types: dict[str, Any] | None = None  # validated by parse_gpu_types, with each entry's lines
    hosts: dict[str, dict[str, Any] | None]


def _native(data: dict[str, Any], lines: LineMap) -> Inventory:
    raw = validate(_NativeInventory, data, lines)
    types = parse_gpu_types(raw.gpu_types, lines, ("gpu_types",))
    hosts = []
    for name, fields in raw.hosts.items():
        merged = {**raw.defaults, **(fields or {}), "name": name}
        host_lines = _host_lines(lines, ("hosts", name), set(fields or {}))
        hosts.append(validate(Host, merged, host_lines, context={"gpu_types": types}))
    return Inventory(file=lines.file, hosts=tuple(hosts), gpu_types=types)


def _host_lines(lines: LineMap, host_path: tuple[str, ...], own: set[str]) -> LineMap:
    """A LineMap rooted at one host: its own fields map to their lines, inherited ones to where they were set."""
    rooted = LineMap(lines.file)
    for path, line in lines.lines.items():
        if path[: len(host_path)] == host_path:
            rooted.lines[path[len(host_path) :]] = line
        elif path[:1] == ("defaults",) and len(path) > 1 and path[1] not in own:
            rooted.lines[path[1:]] = line
    rooted.lines.setdefault((), lines.line_of(host_path) or 1)
    return rooted


_ANSIBLE_KEYS = {
    "ansible_host": "address",
    "ansible_user": "user",
    "ansible_port": "port",
    "ansible_ssh_private_key_file": "key",
    "ansible_connection": "connection",
}
_PROXY_JUMP = re.compile(r"ProxyJump[= ]+(\S+)")


def _from_ansible_vars(vars_: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in vars_.items():
        if key in _ANSIBLE_KEYS:
            out[_ANSIBLE_KEYS[key]] = value
        elif key.startswith("llmctl_"):
            out[key.removeprefix("llmctl_")] = value
        elif key in ("ansible_ssh_common_args", "ansible_ssh_extra_args") and isinstance(value, str):
            match = _PROXY_JUMP.search(value)
            if match:
                out["jump"] = match.group(1).strip("'\"")
        # Other Ansible variables belong to the user's own plays; llmctl ignores them on purpose.
    return out


def _ansible(data: dict[str, Any], lines: LineMap) -> Inventory:
    hosts: dict[str, dict[str, Any]] = {}
    host_path: dict[str, tuple[str | int, ...]] = {}
    order: list[str] = []

    def walk(
        group: str, body: Any, path: tuple[str | int, ...], inherited: dict[str, Any], parents: list[str]
    ) -> None:
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise lines.error(path, "an Ansible group must be a mapping with hosts, children or vars")
        unknown = set(body) - {"hosts", "children", "vars"}
        if unknown:
            raise lines.error(
                (*path, sorted(unknown)[0]), "unknown field (Ansible groups have hosts, children, vars)"
            )
        for part in ("vars", "hosts", "children"):
            if body.get(part) is not None and not isinstance(body[part], dict):
                raise lines.error((*path, part), f"an Ansible group's {part} must be a mapping")
        group_vars = {**inherited, **_from_ansible_vars(body.get("vars") or {})}
        groups = [*parents, group] if group != "all" else parents
        for name, host_vars in (body.get("hosts") or {}).items():
            if host_vars is not None and not isinstance(host_vars, dict):
                raise lines.error((*path, "hosts", name), "an Ansible host's vars must be a mapping")
            entry = hosts.setdefault(name, {"name": name, "groups": []})
            if name not in order:
                order.append(name)
                host_path[name] = (*path, "hosts", name)
            for key, value in group_vars.items():
                entry.setdefault(key, value)
            entry.update(_from_ansible_vars(host_vars or {}))
            entry["groups"] = sorted(set(entry["groups"]) | set(groups))
        for child, child_body in (body.get("children") or {}).items():
            walk(child, child_body, (*path, "children", child), group_vars, groups)

    # llmctl_gpu_types belongs to the inventory, not to a host: taken from all.vars before the walk.
    top: dict[str, Any] = data["all"] if isinstance(data["all"], dict) else {}
    top_vars: dict[str, Any] = top["vars"] if isinstance(top.get("vars"), dict) else {}
    types = parse_gpu_types(top_vars.get("llmctl_gpu_types"), lines, ("all", "vars", "llmctl_gpu_types"))
    if "llmctl_gpu_types" in top_vars:
        data = {
            **data,
            "all": {**top, "vars": {k: v for k, v in top_vars.items() if k != "llmctl_gpu_types"}},
        }
    walk("all", data["all"], ("all",), {}, [])
    result = []
    for name in order:
        host_lines = _host_lines(lines, tuple(map(str, host_path[name])), set())
        result.append(validate(Host, hosts[name], host_lines, context={"gpu_types": types}))
    return Inventory(file=lines.file, hosts=tuple(result), gpu_types=types)


def parse_inventory(data: Any, lines: LineMap) -> Inventory:
    if not isinstance(data, dict):
        raise ConfigError(lines.file, 1, "", "an inventory is a mapping with 'hosts' (or Ansible's 'all')")
    inventory = _ansible(data, lines) if "all" in data else _native(data, lines)
    if not inventory.hosts:
        raise ConfigError(lines.file, lines.line_of(("hosts",)), "hosts", "the inventory lists no hosts")
    return inventory


def load_inventory(path: str | Path) -> Inventory:
    """llmctl's YAML, Ansible's YAML or INI, or `ansible-inventory --list` JSON, told apart by content."""
    # Imported here: those readers build on this module's models and parse_inventory.
    from llmctl.config.inventory_forms import load_inventory_file

    return load_inventory_file(path)
