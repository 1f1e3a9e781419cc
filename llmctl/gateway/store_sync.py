"""Keep a gateway's registry in step with the state store, and tell the controller what the gateway sees.

Every `interval_s` it reads the deployments and their ready replicas from the store (draining, sleeping and
starting replicas get no traffic) and writes each deployment's demand (held, in flight, requests seen,
last request) back. Held requests are the scale-from-zero signal: the controller reads them, and an
in-process controller is also woken at once through `on_demand`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time

from llmctl.config.inventory import Inventory
from llmctl.control.engine_api import base_url
from llmctl.errors import LlmctlError
from llmctl.gateway.registry import Registry
from llmctl.state.desired import read_desired
from llmctl.state.records import replicas
from llmctl.state.store import Store
from llmctl.state.telemetry import GatewayDemand, put_demand


class StoreSync:
    def __init__(self, store: Store, registry: Registry, inventory: Inventory | None = None) -> None:
        self.store = store
        self.registry = registry
        self.inventory = inventory

    def refresh(self) -> None:
        state = read_desired(self.store)
        desired = state.deployments  # one that cannot be read keeps the routes it had
        for name, dep in desired.items():
            if name not in self.registry.deployments:
                key = None
                if dep.api_key_env:
                    key = os.environ.get(dep.api_key_env)
                    if not key:
                        raise LlmctlError(
                            f"deployment {name!r} requires an API key: export {dep.api_key_env} before "
                            "starting the gateway"
                        )
                self.registry.add_deployment(name, dep.route, api_key=key)
        for name in set(self.registry.deployments) - set(desired) - set(state.unreadable):
            self.registry.set_endpoints(name, [])
            del self.registry.deployments[name]
        ready: dict[str, list[tuple[str, str]]] = {name: [] for name in desired}
        for row in replicas(self.store):
            if row.phase == "ready" and row.deployment in ready:
                ready[row.deployment].append((row.name, self._url(row.host, row.address, row.port)))
        for name, endpoints in ready.items():
            self.registry.set_endpoints(name, endpoints)
        now = time.time()
        with self.store.transaction():
            for name, routes in self.registry.deployments.items():
                put_demand(
                    self.store,
                    name,
                    GatewayDemand(
                        routes.held, routes.in_flight, routes.requests_total, routes.last_request_at, now
                    ),
                )

    def _url(self, host: str, address: str, port: int) -> str:
        if self.inventory is not None:
            try:
                return base_url(self.inventory.host(host), address, port)
            except LlmctlError:
                pass
        return f"http://{address}:{port}"

    async def run(self, stop: asyncio.Event, interval_s: float = 0.5) -> None:
        while not stop.is_set():
            self.refresh()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval_s)
