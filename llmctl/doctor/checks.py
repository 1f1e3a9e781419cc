"""Doctor checks as data: one row per host and check, each with its fix spelled out. Pure.

Inputs are what the plan needs on a host (`HostNeeds`), how the connection went (`Reach`) and what the
host's probe printed, parsed (`Probe`); `checks_for` turns them into rows and `exit_status` decides.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

from llmctl.doctor.types import (
    BUSY_MEMORY_FRACTION,
    ENGINE_CUDA,
    GATED_MODELS,
    MIN_DRIVER,
    MIN_PYTHON,
    MODULES,
    PUBLIC_MODELS,
    Check,
    HostNeeds,
    Probe,
    Reach,
    Status,
)


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", text)[:3])


def host_path(path: str) -> str:
    """A path for a command line: quoted, with a leading ~/ left bare so that the shell expands it."""
    if path.startswith("~/"):
        return "~/" + shlex.quote(path[2:])
    return shlex.quote(path)


def cuda_major_for(package: str, version: str) -> int | None:
    found = None
    for pkg, since, major in ENGINE_CUDA:
        if pkg == package and version_tuple(version) >= since:
            found = major
    return found


def connection_checks(host: str, reach: Reach) -> list[Check]:
    key_fix = (
        f"re-run with --accept-new-host-keys to record it in {reach.known_hosts}, or record it yourself after "
        f"checking the fingerprint: ssh-keyscan -p {reach.port} {shlex.quote(reach.address)} >> "
        f"{shlex.quote(reach.known_hosts)}"
    )
    rows: list[Check] = []
    if reach.key == "local":
        rows.append(Check(host, "host key", "skip", "connection: local"))
    elif reach.key == "changed":
        rows.append(
            Check(
                host,
                "host key",
                "fail",
                f"host key of {reach.key_name} differs from the one in {reach.known_hosts}",
                "if the host was reinstalled, remove the old key: ssh-keygen -R "
                f"{shlex.quote(reach.key_name)} -f {shlex.quote(reach.known_hosts)}; otherwise find out why it changed",
            )
        )
    elif reach.key == "unknown":
        seen = f" (it presents {reach.fingerprint})" if reach.fingerprint else ""
        rows.append(
            Check(host, "host key", "fail", f"{reach.key_name} is not in {reach.known_hosts}{seen}", key_fix)
        )
    else:
        rows.append(Check(host, "host key", "ok", f"{reach.key_name} in {reach.known_hosts}"))
    if reach.key == "changed":
        rows.insert(0, Check(host, "reachable", "skip", "not connected: the host key changed"))
    elif reach.error is not None:
        rows.insert(
            0,
            Check(
                host,
                "reachable",
                "fail",
                reach.error,
                f"check that the host is up and sshd listens at {reach.address}:{reach.port}, then: {reach.ssh} true",
            ),
        )
    else:
        where = "local (no SSH)" if reach.key == "local" else f"{reach.address}:{reach.port}"
        rows.insert(0, Check(host, "reachable", "ok", where))
    return rows


def _python(n: HostNeeds, p: Probe) -> Check:
    need = max((MIN_PYTHON.get(pkg, (3, 10)) for pkg, _ in n.packages), default=(3, 10))
    want = ".".join(map(str, need))
    if p.python is None:
        return Check(
            n.host,
            "python",
            "fail",
            f"{n.python} not found",
            f"install Python >= {want} (e.g. sudo apt-get install python3 python3-venv), or set "
            f"`python: /path/to/python3` for {n.host} in the inventory",
        )
    if version_tuple(p.python) < need:
        return Check(
            n.host,
            "python",
            "fail" if n.planned else "warn",
            f"{n.python} is {p.python}; the engine needs >= {want}",
            f"install Python >= {want} and set `python: /path/to/python3.{need[1]}` for {n.host} in the inventory",
        )
    return Check(n.host, "python", "ok", f"{n.python} {p.python}")


def _engines(n: HostNeeds, p: Probe) -> list[Check]:
    create = n.provision or f"{n.python} -m venv {host_path(n.venv)} (llmctl provision does this)"
    if not p.venv:
        venv = Check(n.host, "venv", "fail" if n.packages else "warn", f"no venv at {n.venv}", create)
        return [venv] + [
            Check(n.host, f"engine {pkg}", "skip", "no venv to look in") for pkg, _ in n.packages
        ]
    rows = [Check(n.host, "venv", "ok", n.venv)]
    if not n.planned:
        listing = ", ".join(f"{k} {v}" for k, (v, _) in sorted(p.packages.items()) if v)
        rows.append(Check(n.host, "engines", "ok" if listing else "warn", f"installed: {listing or 'none'}"))
        return rows
    pip = host_path(n.venv.rstrip("/") + "/bin/python")
    for pkg, version in n.packages:
        have, found = p.packages.get(pkg, (None, False))
        by_hand = f"{n.provision}, or by hand: {pip} -m pip install {shlex.quote(f'{pkg}=={version}')}"
        if have is None:
            rows.append(
                Check(n.host, f"engine {pkg}", "fail", f"{pkg} is not installed in the venv", by_hand)
            )
        elif have != version:
            rows.append(
                Check(n.host, f"engine {pkg}", "fail", f"{pkg} {have}; the plan pins {version}", by_hand)
            )
        elif not found:
            detail = f"{pkg} {have} is installed but module {MODULES.get(pkg, pkg)!r} is not found"
            rows.append(Check(n.host, f"engine {pkg}", "fail", detail, by_hand))
        else:
            rows.append(Check(n.host, f"engine {pkg}", "ok", f"{pkg} {have}"))
    return rows


def _gpus(n: HostNeeds, p: Probe) -> list[Check]:
    # Without a playbook a host without nvidia-smi may be meant for the emulated engine: a warning only.
    blocking: Status = "fail" if n.gpus else "warn"
    if not n.gpu_host:
        return [Check(n.host, "gpus", "skip", "accelerator: cpu")]
    if n.planned and not n.gpus:
        return [Check(n.host, "gpus", "skip", "no replica here runs on a real GPU (emulated engine)")]
    if not p.nvidia_smi:
        return [
            Check(
                n.host,
                "gpus",
                blocking,
                "nvidia-smi not found: no NVIDIA driver on the session PATH",
                f"install the NVIDIA driver on {n.host}, or mark it `accelerator: cpu` in the inventory",
            )
        ]
    listed = {g.index: g for g in p.gpus}
    missing = [i for i in n.gpus if i not in listed]
    names = ", ".join(f"{g.index}: {g.name}" for g in p.gpus) or "none"
    if missing:
        present = Check(
            n.host,
            "gpus",
            "fail",
            f"the plan uses GPU(s) {_ids(missing)} but nvidia-smi lists {names}",
            "declare the GPUs the host has (`gpus: {type: ..., count: N}`), or gather them for planning: "
            "llmctl hosts facts -i INVENTORY",
        )
    else:
        present = Check(n.host, "gpus", "ok" if p.gpus else blocking, f"{len(p.gpus)} GPU(s): {names}")
    wanted = [listed[i] for i in (n.gpus or tuple(listed)) if i in listed]
    busy = [g for g in wanted if g.pids or g.used_mib > BUSY_MEMORY_FRACTION * g.total_mib]
    if not busy:
        return [present, Check(n.host, "gpus free", "ok", f"GPU(s) {_ids([g.index for g in wanted])} idle")]
    what = "; ".join(
        f"GPU {g.index}: {g.used_mib} of {g.total_mib} MiB used"
        + (f" by pid(s) {', '.join(map(str, g.pids))}" if g.pids else "")
        for g in busy
    )
    pids = " ".join(str(pid) for g in busy for pid in g.pids)
    stop = (
        f"stop the processes holding them ({n.ssh} kill {pids}: check first with nvidia-smi)"
        if pids
        else (
            "find what holds the memory (nvidia-smi on the host; another container's processes are not listed)"
        )
    )
    fix = f"{stop}, or keep the deployment off this host: `placement: {{hosts: [...]}}` in the playbook"
    return [present, Check(n.host, "gpus free", blocking, what, fix)]


def _ids(indices: Sequence[int]) -> str:
    return ",".join(map(str, indices)) or "-"


def _driver(n: HostNeeds, p: Probe) -> Check:
    if not n.cuda_packages or not p.nvidia_smi:
        reason = "no replica here needs CUDA" if n.planned else "no playbook: no engine to check against"
        if p.driver and not n.planned:
            return Check(n.host, "driver", "ok", f"driver {p.driver}, CUDA {p.cuda or '?'} ({reason})")
        return Check(n.host, "driver", "skip", reason if p.nvidia_smi or n.planned else "no nvidia-smi")
    if p.driver is None:
        return Check(
            n.host, "driver", "warn", "nvidia-smi printed no driver version", "run nvidia-smi on the host"
        )
    driver = version_tuple(p.driver)[:1]
    cuda = version_tuple(p.cuda or "0")[:1]
    problems = []
    for pkg, version in n.cuda_packages:
        major = cuda_major_for(pkg, version)
        if major is None:
            continue
        need = MIN_DRIVER[major]
        if driver < (need,) or cuda < (major,):
            problems.append((pkg, version, major, need))
    seen = f"driver {p.driver}, CUDA {p.cuda or '?'}"
    if not problems:
        return Check(n.host, "driver", "ok", seen)
    pkg, version, major, need = problems[0]
    return Check(
        n.host,
        "driver",
        "fail",
        f"{seen}: {pkg} {version} wheels are built for CUDA {major}, which needs driver >= {need}",
        f"upgrade the NVIDIA driver on {n.host} to >= {need}, or pin an `engine_version:` built for the CUDA "
        "this driver supports (see ENGINE_CUDA in llmctl/doctor/checks.py)",
    )


def _ports(n: HostNeeds, p: Probe) -> list[Check]:
    rows = []
    spare = max((q.port for q in n.ports), default=0) + 1
    for q in n.ports:
        state = p.ports.get(q.port, "unknown")
        name = f"port {q.port}"
        if state == "free":
            rows.append(Check(n.host, name, "ok", f"free for {q.replica}"))
        elif state == "own":
            rows.append(
                Check(n.host, name, "ok", f"held by {q.replica} itself, already running (apply adopts it)")
            )
        elif state == "taken":
            rows.append(
                Check(
                    n.host,
                    name,
                    "fail" if q.initial else "warn",
                    f"{q.replica} needs port {q.port}; another process already listens there"
                    + ("" if q.initial else " (a slot the controller starts when it scales up)"),
                    f"stop what listens there (find it: {n.ssh} ss -ltnp 'sport = :{q.port}'), or move this "
                    f"host's engines: `engine_port: {spare}` for {n.host} in the inventory",
                )
            )
        else:
            rows.append(Check(n.host, name, "warn", "could not probe the port (no Python on the host)"))
    return rows


def _disk(n: HostNeeds, p: Probe) -> Check:
    pending = [w for w in n.weights if not w.downloaded]
    if not n.weights:
        return Check(n.host, "disk", "skip", "no weights to download here (emulated engine or local model)")
    if not pending:
        return Check(
            n.host, "disk", "ok", "weights already downloaded: " + ", ".join(w.model for w in n.weights)
        )
    need = sum(w.bytes for w in pending)
    if p.disk_free_bytes is None:
        return Check(
            n.host, "disk", "warn", f"could not read free disk at {n.model_cache}", "run df on the host"
        )
    models = ", ".join(w.model for w in pending)
    what = f"{_gib(need)} GiB for {models}; {_gib(p.disk_free_bytes)} GiB free at {p.disk_path}"
    if p.disk_free_bytes >= need:
        return Check(n.host, "disk", "ok", what)
    short = _gib(need - p.disk_free_bytes)
    return Check(
        n.host,
        "disk",
        "fail",
        what,
        f"free {short} GiB at {p.disk_path}, or put the cache on a larger disk: `model_cache: /data/huggingface` "
        f"for {n.host} in the inventory",
    )


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f}"


def _token(n: HostNeeds, p: Probe) -> list[Check]:
    rows = []
    for w in n.weights:
        name = f"hf token {w.model}"
        if w.downloaded:
            rows.append(Check(n.host, name, "ok", "weights already downloaded"))
        elif w.model not in GATED_MODELS:
            reason = (
                "public model"
                if w.model in PUBLIC_MODELS
                else "not in the catalog: gatedness unknown offline"
            )
            rows.append(Check(n.host, name, "ok" if w.model in PUBLIC_MODELS else "skip", reason))
        elif p.token:
            rows.append(
                Check(n.host, name, "ok", "gated model; a token is on the host (HF_TOKEN or cache token)")
            )
        else:
            # The remote command is one quoted word for ssh; inside it, the paths are quoted for the remote shell.
            cache = host_path(n.model_cache)
            remote = f"umask 077; mkdir -p {cache} && cat > {host_path(n.model_cache.rstrip('/') + '/token')}"
            rows.append(
                Check(
                    n.host,
                    name,
                    "fail",
                    "gated model and no token on the host (no HF_TOKEN in its environment, no token file in "
                    "its model cache, where provisioning's download looks)",
                    f"accept the licence at https://huggingface.co/{w.model}, then copy a token there: "
                    f"{n.ssh} {shlex.quote(remote)} < ~/.cache/huggingface/token",
                )
            )
    return rows


def probe_checks(n: HostNeeds, p: Probe) -> list[Check]:
    rows = [_python(n, p), *_engines(n, p), *_gpus(n, p), _driver(n, p)]
    if n.planned:
        rows += [*_ports(n, p), _disk(n, p), *_token(n, p)]
    return rows


def checks_for(needs: HostNeeds, reach: Reach, probe: Probe | None) -> list[Check]:
    """Every row for one host; when the probe did not run, the host-side rows are skipped, not guessed."""
    rows = connection_checks(needs.host, reach)
    if probe is None:
        return [*rows, Check(needs.host, "probe", "skip", "not connected")]
    return rows + probe_checks(needs, probe)


def exit_status(checks: Sequence[Check]) -> int:
    """1 when anything blocks an apply (a fail); warnings and skips do not."""
    return 1 if any(c.status == "fail" for c in checks) else 0
