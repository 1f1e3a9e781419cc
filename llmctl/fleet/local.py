"""Transport for `connection: local` hosts: the same API as SSH, run with asyncio subprocesses."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path

from llmctl.fleet.transport import CommandResult, CommandTimeout, FleetError, checked


class LocalTransport:
    def __init__(self, host: str) -> None:
        self.host = host

    async def run(
        self,
        argv: list[str] | tuple[str, ...],
        *,
        timeout: float = 60.0,
        check: bool = False,
        input: str | None = None,
    ) -> CommandResult:
        argv = tuple(argv)
        start = time.perf_counter()
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            # A missing program is an exit status, as a remote shell would report it (127).
            return checked(
                CommandResult(self.host, argv, 127, "", str(exc), time.perf_counter() - start), check
            )
        try:
            out, err = await asyncio.wait_for(
                proc.communicate(input.encode() if input is not None else None), timeout
            )
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise CommandTimeout(self.host, f"timed out after {timeout:g} s", argv) from None
        result = CommandResult(
            self.host,
            argv,
            proc.returncode or 0,
            out.decode(errors="replace"),
            err.decode(errors="replace"),
            time.perf_counter() - start,
        )
        return checked(result, check)

    async def upload(self, local: Path, remote: str) -> None:
        target = Path(os.path.expanduser(remote))
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(local, target)
        except OSError as exc:
            raise FleetError(self.host, f"upload of {local} to {remote} failed: {exc}") from None

    async def close(self) -> None:
        return None
