"""The doctor's edge: what the plan needs per host, one probe per host over the fleet, and rows from both.

A host whose key is not in known_hosts is still probed (unless the operator trusts it with
--accept-new-host-keys): through a throwaway copy of known_hosts, so that its other rows are known and its
host-key row can show the key's fingerprint, while the operator's own file is left as it was. Nothing secret
travels: the probe sends no token and reads only presence (an HF token's existence, never its value).
"""

from __future__ import annotations

import dataclasses
import shlex
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import asyncssh
from asyncssh.known_hosts import match_known_hosts

from llmctl.config.inventory import Host
from llmctl.control.lifecycle import run_dir
from llmctl.doctor.checks import checks_for
from llmctl.doctor.probe import parse_probe, probe_argv
from llmctl.doctor.types import Check, HostNeeds, KeyState, PortNeed, Reach, WeightNeed
from llmctl.engines.shell import render_command
from llmctl.fleet.pool import Fleet
from llmctl.fleet.provision import DISK_HEADROOM, is_local_path, marker_name, work_from_plan
from llmctl.fleet.ssh import SSHOptions, load_known_hosts
from llmctl.fleet.transport import FleetError, HostKeyMismatch, Transport
from llmctl.perf.memory import weight_bytes
from llmctl.planner import Plan, PlannedReplica

PROBE_TIMEOUT_S = 60.0
# Checkpoints on the hub are BF16 whatever the replica runs at (FP8 quantises at load): provisioning
# downloads the BF16 weights.
CHECKPOINT_DTYPE = "bf16"


def ssh_line(host: Host) -> str:
    argv = ["ssh", "-p", str(host.port)]
    if host.key:
        argv += ["-i", host.key]
    if host.jump:
        argv += ["-J", host.jump]
    return shlex.join([*argv, f"{host.user}@{host.address}" if host.user else host.address])


def _base(host: Host) -> HostNeeds:
    return HostNeeds(
        host=host.name,
        where=f"{host.address}:{host.port}",
        ssh=ssh_line(host),
        venv=host.venv,
        python=host.python,
        model_cache=host.model_cache,
        gpu_host=host.accelerator == "gpu",
    )


def needs_for(
    hosts: Sequence[Host], plan: Plan | None, provision: Sequence[str], llmctl_version: str
) -> tuple[list[HostNeeds], dict[str, dict[int, str]]]:
    """Per host what the plan needs (every host, host-level only, without a plan), and per host the run dir
    of the replica planned on each port. `provision`: the provisioning command line, to which each host's
    --limit is added. Packages and weights are those provisioning installs (work_from_plan)."""
    if plan is None:
        return [_base(h) for h in hosts], {}
    by_name = {h.name: h for h in hosts}
    works = {w.host.name: w for w in work_from_plan(plan, hosts, llmctl_version)}
    slots: list[tuple[PlannedReplica, bool]] = [(r, True) for r in plan.replicas]
    slots += [(r, False) for r in (*plan.spares, *plan.backfill)]
    out: list[HostNeeds] = []
    run_dirs: dict[str, dict[int, str]] = {}
    for name in dict.fromkeys(r.host for r, _ in slots):
        if name not in by_name:
            continue
        host = by_name[name]
        mine = [(r, initial) for r, initial in slots if r.host == name]
        real = [r for r, _ in mine if r.engine != "emulated" and r.shape.device == "gpu"]
        ports: dict[int, PortNeed] = {}
        for r, initial in mine:
            if r.port not in ports or initial:
                ports[r.port] = PortNeed(r.port, r.name, initial)
            run_dirs.setdefault(name, {})[r.port] = run_dir(host, r.name)
        specs = {r.model: r.shape.model_spec for r, _ in mine}
        work = works.get(name)
        weights = tuple(
            WeightNeed(m, weight_bytes(specs[m], CHECKPOINT_DTYPE) * DISK_HEADROOM)
            for m in (work.models if work else ())
            if not is_local_path(m)
        )
        out.append(
            dataclasses.replace(
                _base(host),
                planned=True,
                provision=render_command([*provision, "--limit", name]),
                packages=work.packages if work else (),
                gpus=tuple(sorted({i for r in real for i in r.gpu_indices})),
                cuda_packages=tuple(dict.fromkeys((r.engine_package, r.engine_version) for r in real)),
                ports=tuple(sorted(ports.values(), key=lambda q: q.port)),
                weights=weights,
            )
        )
    return out, run_dirs


def _key_name(address: str, port: int) -> str:
    return address if port == 22 else f"[{address}]:{port}"


def key_state(host: Host, known_hosts: Path) -> KeyState:
    if host.connection == "local":
        return "local"
    try:
        known = load_known_hosts(known_hosts)
    except (OSError, ValueError):
        return "unknown"
    if known is None:
        return "unknown"
    keys, cas, *_ = match_known_hosts(known, host.address, host.address, host.port)
    return "known" if keys or cas else "unknown"


def _fingerprint(path: Path, host: Host) -> str:
    """The fingerprint of the key recorded for `host` in the throwaway known_hosts ('' when none)."""
    name = _key_name(host.address, host.port)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        parts = line.split()
        if len(parts) >= 3 and parts[0] == name:
            try:
                return str(asyncssh.import_public_key(" ".join(parts[1:3])).get_fingerprint())
            except (asyncssh.KeyImportError, ValueError):
                return ""
    return ""


async def doctor(
    hosts: Sequence[Host],
    needs: Sequence[HostNeeds],
    run_dirs: dict[str, dict[int, str]],
    options: SSHOptions,
    timeout: float = PROBE_TIMEOUT_S,
) -> list[Check]:
    by_name = {h.name: h for h in hosts}
    known_path = options.known_hosts_path
    states = {n.host: key_state(by_name[n.host], known_path) for n in needs}
    untrusted = [by_name[n] for n, s in states.items() if s == "unknown" and not options.accept_new_host_keys]
    scratch = Path(tempfile.mkdtemp(prefix="llmctl-doctor-")) / "known_hosts"
    if known_path.exists():
        shutil.copyfile(known_path, scratch)
    trusted = [by_name[n.host] for n in needs if by_name[n.host] not in untrusted]
    needs_by = {n.host: n for n in needs}

    async def probe(host: Host, t: Transport) -> str:
        argv = probe_argv(needs_by[host.name], run_dirs.get(host.name, {}))
        return (await t.run(argv, timeout=timeout, check=True)).stdout

    try:
        async with Fleet(trusted, options) as main:
            results: dict[str, str | FleetError] = await main.each(probe) if trusted else {}
        if untrusted:
            scratch_options = dataclasses.replace(options, known_hosts=scratch, accept_new_host_keys=True)
            async with Fleet(untrusted, scratch_options) as side:
                results.update(await side.each(probe))
        prints = {h.name: _fingerprint(scratch, h) for h in untrusted}
    finally:
        shutil.rmtree(scratch.parent, ignore_errors=True)

    rows: list[Check] = []
    for n in needs:
        host = by_name[n.host]
        result = results.get(n.host)
        state = states[n.host]
        if isinstance(result, HostKeyMismatch) and state == "known":
            state = "changed"
        elif state == "unknown" and options.accept_new_host_keys and isinstance(result, str):
            state = "known"  # recorded on this connection, as the operator asked
        reach = Reach(
            key=state,
            known_hosts=str(known_path),
            key_name=_key_name(host.address, host.port),
            address=host.address,
            port=host.port,
            ssh=n.ssh,
            fingerprint=prints.get(n.host, ""),
            error=result.problem if isinstance(result, FleetError) else None,
        )
        if not isinstance(result, str):
            rows += checks_for(n, reach, None)
            continue
        try:
            parsed, markers = parse_probe(result)
        except ValueError as exc:
            rows += checks_for(n, dataclasses.replace(reach, error=f"unexpected probe output: {exc}"), None)
            continue
        weights = tuple(dataclasses.replace(w, downloaded=marker_name(w.model) in markers) for w in n.weights)
        rows += checks_for(dataclasses.replace(n, weights=weights), reach, parsed)
    return rows
