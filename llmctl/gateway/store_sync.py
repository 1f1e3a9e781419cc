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
from llmctl.gateway.routing import make_router
from llmctl.spec.deployment import DesiredDeployment
from llmctl.state.desired import read_desired
from llmctl.state.records import record_event, replicas
from llmctl.state.store import Store
from llmctl.state.telemetry import GatewayDemand, put_demand


class StoreSync:
    def __init__(self, store: Store, registry: Registry, inventory: Inventory | None = None) -> None:
        self.store = store
        self.registry = registry
        self.inventory = inventory
        self.refused: dict[str, str] = {}  # deployment -> why the gateway does not serve it

    def refresh(self) -> None:
        state = read_desired(self.store)
        desired = state.deployments  # one that cannot be read keeps the routes it had
        for name, dep in desired.items():
            key, problem = _api_key(dep)
            if problem:
                # Refused alone, said once: the other deployments stay in sync.
                if self.refused.get(name) != problem:
                    self.refused[name] = problem
                    record_event(self.store, name, "gateway-refused", problem)
                if name in self.registry.deployments:
                    self.registry.set_endpoints(name, [])
                    del self.registry.deployments[name]
                continue
            if self.refused.pop(name, None):
                record_event(
                    self.store, name, "gateway-accepted", "its API key is in the gateway's environment now"
                )
            routes = self.registry.deployments.get(name)
            if routes is None:
                self.registry.add_deployment(name, dep.route, api_key=key)
            elif routes.policy != dep.route or routes.api_key != key:
                # Changed in place: requests held for this deployment keep waiting on the same routes.
                routes.router, routes.policy, routes.api_key = make_router(dep.route), dep.route, key
        for name in set(self.registry.deployments) - set(desired) - set(state.unreadable):
            self.registry.set_endpoints(name, [])
            del self.registry.deployments[name]
        ready: dict[str, list[tuple[str, str]]] = {
            name: [] for name in desired if name in self.registry.deployments
        }
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


def _api_key(dep: DesiredDeployment) -> tuple[str | None, str]:
    """(the key the deployment requires, '') or (None, why it cannot be served)."""
    if not dep.api_key_env:
        return None, ""
    key = os.environ.get(dep.api_key_env)
    if not key:
        return None, f"requires an API key: export {dep.api_key_env} in the gateway's environment"
    return key, ""
