"""The subprocess-shaped API every remote action goes through: run(argv) -> exit status, stdout, stderr.

Two implementations share it: SSH (asyncssh, llmctl.fleet.ssh) and local (asyncio subprocesses,
llmctl.fleet.local) for `connection: local` hosts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from llmctl.engines.shell import render_command
from llmctl.errors import LlmctlError


@dataclass(frozen=True)
class CommandResult:
    host: str
    argv: tuple[str, ...]
    exit_status: int
    stdout: str
    stderr: str
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    @property
    def command(self) -> str:
        return render_command(self.argv)


class FleetError(LlmctlError):
    """A remote action failed; the message names the host and, where there was one, the command."""

    def __init__(self, host: str, problem: str, argv: tuple[str, ...] | None = None) -> None:
        self.host = host
        self.problem = problem
        self.argv = argv
        where = f"{host}: {render_command(argv)}: " if argv else f"{host}: "
        super().__init__(where + problem)


class HostUnreachable(FleetError):
    """Could not connect or authenticate: nothing ran on the host."""


class HostKeyMismatch(HostUnreachable):
    """The host presented a key that differs from known_hosts, or one that known_hosts lacks."""


class CommandTimeout(FleetError):
    pass


class CommandFailed(FleetError):
    def __init__(self, result: CommandResult) -> None:
        self.result = result
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        super().__init__(result.host, f"exit status {result.exit_status}: {' | '.join(tail)}", result.argv)


class Transport(Protocol):
    host: str

    async def run(
        self,
        argv: list[str] | tuple[str, ...],
        *,
        timeout: float = 60.0,
        check: bool = False,
        input: str | None = None,
    ) -> CommandResult: ...

    async def upload(self, local: Path, remote: str) -> None: ...

    async def close(self) -> None: ...


def checked(result: CommandResult, check: bool) -> CommandResult:
    if check and not result.ok:
        raise CommandFailed(result)
    return result
