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
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from llmctl.config.inventory import Inventory
from llmctl.control.engine_api import base_url
from llmctl.errors import LlmctlError
from llmctl.gateway.registry import AdapterRoute, Registry
from llmctl.gateway.routing import make_router
from llmctl.spec.deployment import DesiredDeployment
from llmctl.state.desired import DesiredState, read_desired
from llmctl.state.records import ReplicaRow, record_event, replica_keys, replicas
from llmctl.state.store import Store
from llmctl.state.telemetry import GatewayDemand, put_demand


@dataclass(frozen=True)
class _Read:
    """What one pass reads from the store (off the event loop)."""

    state: DesiredState
    rows: list[ReplicaRow]
    keys: dict[str, str]  # replica -> its API key


class StoreSync:
    def __init__(
        self,
        store: Store,
        registry: Registry,
        inventory: Inventory | None = None,
        on_problem: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.inventory = inventory
        self.on_problem = on_problem or (lambda line: print(line, file=sys.stderr))
        self.refused: dict[str, str] = {}  # deployment -> why the gateway does not serve it
        self._worker: Store | None = None  # the connection the background passes use, in worker threads
        self._problem = ""

    def refresh(self) -> None:
        """One pass on the calling thread (start-up, tests): read the store, update the routes, write demand."""
        self._write(self.store, self._apply(self._read(self.store)))

    async def run(self, stop: asyncio.Event, interval_s: float = 0.5) -> None:
        """Passes until `stop`, supervised: the store is read and written in a worker thread, so a locked
        database never blocks the event loop (requests, /health), and a pass that fails is said once and
        retried at the next one; the routes keep what the last good pass set."""
        try:
            await self._passes(stop, interval_s)
        finally:
            if self._worker is not None:
                self._worker.close()

    async def _passes(self, stop: asyncio.Event, interval_s: float) -> None:
        while not stop.is_set():
            try:
                if self._worker is None:
                    self._worker = await asyncio.to_thread(Store, self.store.path, True)
                read = await asyncio.to_thread(self._read, self._worker)
                await asyncio.to_thread(self._write, self._worker, self._apply(read))
                if self._problem:
                    self.on_problem("gateway: store sync recovered")
                    self._problem = ""
            except (sqlite3.Error, LlmctlError, OSError) as exc:
                problem = f"gateway: store sync failed, retrying: {type(exc).__name__}: {exc}"
                if problem != self._problem:
                    self.on_problem(problem)
                    self._problem = problem
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval_s)

    def _read(self, store: Store) -> _Read:
        return _Read(read_desired(store), replicas(store), replica_keys(store))

    def _apply(self, read: _Read) -> tuple[list[tuple[str, GatewayDemand]], list[tuple[str, str, str]]]:
        """Update the routes from what was read (on the event loop: handlers read the registry); returns the
        demand rows and the events to write."""
        said: list[tuple[str, str, str]] = []
        desired = read.state.deployments  # one that cannot be read keeps the routes it had
        for name, dep in desired.items():
            key, problem = _api_key(dep)
            if problem:
                # Refused alone, said once: the other deployments stay in sync.
                if self.refused.get(name) != problem:
                    self.refused[name] = problem
                    said.append((name, "gateway-refused", problem))
                if name in self.registry.deployments:
                    self.registry.set_endpoints(name, [])
                    del self.registry.deployments[name]
                continue
            if self.refused.pop(name, None):
                said.append((name, "gateway-accepted", "its API key is in the gateway's environment now"))
            routes = self.registry.deployments.get(name)
            if routes is None:
                self.registry.add_deployment(name, dep.route, api_key=key)
            elif routes.policy != dep.route or routes.api_key != key:
                # Changed in place: requests held for this deployment keep waiting on the same routes.
                routes.router, routes.policy, routes.api_key = make_router(dep.route), dep.route, key
            adapters = [AdapterRoute(a.name, a.path, a.preload) for a in dep.adapters]
            refused = self.registry.set_adapters(name, adapters, slots=dep.adapter_slots, flavour=dep.flavour)
            if refused and self.refused.get(f"{name}/adapters") != ", ".join(refused):
                self.refused[f"{name}/adapters"] = ", ".join(refused)
                said.append(
                    (name, "gateway-refused", f"adapters {', '.join(refused)} are other models' names")
                )
        for name in set(self.registry.deployments) - set(desired) - set(read.state.unreadable):
            self.registry.set_endpoints(name, [])
            del self.registry.deployments[name]
        ready: dict[str, list[tuple[str, str, str | None]]] = {
            n: [] for n in desired if n in self.registry.deployments
        }
        for row in read.rows:
            if row.phase == "ready" and row.deployment in ready:
                url = self._url(row.host, row.address, row.port)
                ready[row.deployment].append((row.name, url, read.keys.get(row.name)))
        for name, endpoints in ready.items():
            self.registry.set_endpoints(name, endpoints)
        now = time.time()
        demand = [
            (name, GatewayDemand(r.held, r.in_flight, r.requests_total, r.last_request_at, now))
            for name, r in self.registry.deployments.items()
        ]
        return demand, said

    def _write(
        self, store: Store, out: tuple[list[tuple[str, GatewayDemand]], list[tuple[str, str, str]]]
    ) -> None:
        demand, said = out
        with store.transaction():
            for name, d in demand:
                put_demand(store, name, d)
            for subject, kind, reason in said:
                record_event(store, subject, kind, reason)

    def _url(self, host: str, address: str, port: int) -> str:
        if self.inventory is not None:
            try:
                return base_url(self.inventory.host(host), address, port)
            except LlmctlError:
                pass
        return f"http://{address}:{port}"


def _api_key(dep: DesiredDeployment) -> tuple[str | None, str]:
    """(the key the deployment requires, '') or (None, why it cannot be served)."""
    if not dep.api_key_env:
        return None, ""
    key = os.environ.get(dep.api_key_env)
    if not key:
        return None, f"requires an API key: export {dep.api_key_env} in the gateway's environment"
    return key, ""
