"""Run provisioning steps on hosts in parallel (steps in order per host), reporting each step's outcome."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import llmctl
from llmctl.errors import LlmctlError
from llmctl.fleet.pool import Fleet
from llmctl.fleet.provision import HostWork, Step, steps_for
from llmctl.fleet.transport import FleetError, Transport

STEP_TIMEOUT_S = 3600.0  # engine installs and weight downloads take minutes; a stuck one still ends
CHECK_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class StepOutcome:
    host: str
    step: str
    status: str  # done | skipped | failed | not run
    duration_s: float
    detail: str = ""


Progress = Callable[[str, str, int, int], None]  # host, step name, index, total


def build_wheel() -> Path:
    """A wheel of this llmctl, for hosts that run the emulated engine (it is llmctl itself)."""
    source = Path(llmctl.__file__).resolve().parents[1]
    if not (source / "pyproject.toml").exists():
        raise LlmctlError(f"cannot build a wheel: {source} is not an llmctl source tree; pass --wheel")
    out = Path(tempfile.mkdtemp(prefix="llmctl-wheel-"))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(out),
            str(source),
        ],
        capture_output=True,
        text=True,
    )
    wheels = list(out.glob("llmctl-*.whl"))
    if proc.returncode != 0 or not wheels:
        raise LlmctlError(f"building the llmctl wheel failed: {proc.stderr.strip()[-500:]}")
    return wheels[0]


async def provision_host(
    work: HostWork,
    transport: Transport,
    pip_args: Sequence[str],
    wheel: Path | None,
    progress: Progress | None,
) -> list[StepOutcome]:
    host = work.host
    if host.connection == "local" and [p for p, _ in work.packages] == ["llmctl"]:
        return [
            StepOutcome(host.name, "install llmctl", "skipped", 0.0, "local host: this installation runs it")
        ]
    remote_wheel: str | None = None
    if wheel is not None and any(p == "llmctl" for p, _ in work.packages):
        # Relative to the login directory: SFTP uploads there and the install step runs from $HOME.
        remote_wheel = f".llmctl-wheels/{wheel.name}"
    steps: list[Step] = steps_for(work, pip_args, remote_wheel)
    outcomes: list[StepOutcome] = []
    failed = False
    for i, step in enumerate(steps):
        if progress:
            progress(host.name, step.name, i, len(steps))
        if failed:
            outcomes.append(StepOutcome(host.name, step.name, "not run", 0.0, "an earlier step failed"))
            continue
        start = time.perf_counter()
        try:
            if step.check is not None:
                checked = await transport.run(list(step.check), timeout=CHECK_TIMEOUT_S)
                if checked.ok:
                    outcomes.append(
                        StepOutcome(
                            host.name, step.name, "skipped", time.perf_counter() - start, "already done"
                        )
                    )
                    continue
            if remote_wheel and wheel and step.name == "install llmctl":
                await transport.upload(wheel, f"~/{remote_wheel}")
            result = await transport.run(list(step.do), timeout=STEP_TIMEOUT_S)
        except FleetError as exc:
            outcomes.append(
                StepOutcome(host.name, step.name, "failed", time.perf_counter() - start, exc.problem)
            )
            failed = True
            continue
        if result.ok:
            outcomes.append(StepOutcome(host.name, step.name, "done", result.duration_s, step.reason))
        else:
            tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or [
                f"exit {result.exit_status}"
            ]
            outcomes.append(StepOutcome(host.name, step.name, "failed", result.duration_s, tail[0]))
            failed = True
    if progress:
        progress(host.name, "finished" if not failed else "failed", len(steps), len(steps))
    return outcomes


async def provision(
    fleet: Fleet,
    works: Sequence[HostWork],
    pip_args: Sequence[str] = (),
    wheel: Path | None = None,
    progress: Progress | None = None,
) -> list[StepOutcome]:
    by_host = {w.host.name: w for w in works}

    async def action(host: object, transport: Transport) -> list[StepOutcome]:
        return await provision_host(by_host[transport.host], transport, pip_args, wheel, progress)

    results = await fleet.each(action, [w.host for w in works])
    outcomes: list[StepOutcome] = []
    for name, r in results.items():
        if isinstance(r, FleetError):
            outcomes.append(StepOutcome(name, "connect", "failed", 0.0, r.problem))
        else:
            outcomes.extend(r)
    return outcomes
