"""Host reachability for the controller: every `every_s` it runs `true` on each inventory host over the
fleet transport (the same SSH connections replicas are started through), records the outcome in the store
for `llmctl tui` and says so in an event when a host goes down or comes back.

It runs as its own task beside the reconcile loop: a host that does not answer costs its timeout there,
never a delayed health check of the replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from llmctl.config.inventory import Inventory
from llmctl.fleet.pool import Fleet
from llmctl.fleet.transport import CommandResult, FleetError
from llmctl.state.host_checks import HostCheck, host_checks, put_host_check
from llmctl.state.store import Store

EventSink = Callable[[str, str, str], None]


class HostWatch:
    def __init__(
        self,
        inventory: Inventory,
        fleet: Fleet,
        store: Store,
        event: EventSink,
        every_s: float = 30.0,
        timeout_s: float = 10.0,
    ) -> None:
        self.inventory = inventory
        self.fleet = fleet
        self.store = store
        self.event = event
        self.every_s = every_s
        self.timeout_s = timeout_s

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.check_all()
            with contextlib.suppress(TimeoutError):  # the next round is due
                await asyncio.wait_for(stop.wait(), self.every_s)

    async def check_all(self) -> dict[str, HostCheck]:
        before = host_checks(self.store)
        results = await self.fleet.run(["true"], hosts=self.inventory.hosts, timeout=self.timeout_s)
        now = time.time()
        out = {}
        for name, r in results.items():
            check = HostCheck(name, now, *_outcome(r))
            put_host_check(self.store, check)
            out[name] = check
            last = before.get(name)
            if not check.ok and (last is None or last.ok):
                self.event(name, "host-down", f"unreachable: {check.detail}")
            elif check.ok and last is not None and not last.ok:
                self.event(name, "host-up", f"reachable again ({check.detail})")
        return out


def _outcome(r: CommandResult | FleetError) -> tuple[bool, str]:
    if isinstance(r, FleetError):
        return False, r.problem
    if not r.ok:
        return False, f"`true` exited {r.exit_status}: {r.stderr.strip()[:200]}"
    return True, f"{r.duration_s * 1000:.1f} ms"
