"""A fleet: one transport per host (SSH or local), and fan-out across hosts with bounded concurrency.

A host that fails (unreachable, timeout) yields a FleetError in its slot; the others carry on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from llmctl.config.inventory import Host
from llmctl.fleet.local import LocalTransport
from llmctl.fleet.ssh import SSHOptions, SSHTransport
from llmctl.fleet.transport import CommandResult, FleetError, Transport

T = TypeVar("T")
# Concurrent hosts by default: enough for a rack at once, few enough not to trip sshd's MaxStartups.
DEFAULT_CONCURRENCY = 64


class Fleet:
    def __init__(
        self, hosts: Sequence[Host], ssh: SSHOptions | None = None, concurrency: int = DEFAULT_CONCURRENCY
    ) -> None:
        self.hosts = list(hosts)
        self.ssh = ssh or SSHOptions.from_env()
        self._transports: dict[str, Transport] = {}
        self._limit = asyncio.Semaphore(concurrency)

    def transport(self, host: Host) -> Transport:
        if host.name not in self._transports:
            self._transports[host.name] = (
                LocalTransport(host.name) if host.connection == "local" else SSHTransport(host, self.ssh)
            )
        return self._transports[host.name]

    async def each(
        self, action: Callable[[Host, Transport], Awaitable[T]], hosts: Sequence[Host] | None = None
    ) -> dict[str, T | FleetError]:
        """Run `action` on every host (bounded), collecting results or the host's FleetError."""

        async def one(host: Host) -> T | FleetError:
            async with self._limit:
                try:
                    return await action(host, self.transport(host))
                except FleetError as exc:
                    return exc

        targets = list(hosts if hosts is not None else self.hosts)
        results = await asyncio.gather(*(one(h) for h in targets))
        return {h.name: r for h, r in zip(targets, results, strict=True)}

    async def run(
        self, argv: Sequence[str], *, timeout: float = 60.0, hosts: Sequence[Host] | None = None
    ) -> dict[str, CommandResult | FleetError]:
        async def action(host: Host, t: Transport) -> CommandResult:
            return await t.run(list(argv), timeout=timeout)

        return await self.each(action, hosts)

    async def close(self) -> None:
        await asyncio.gather(*(t.close() for t in self._transports.values()), return_exceptions=True)
        self._transports.clear()

    async def __aenter__(self) -> Fleet:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
