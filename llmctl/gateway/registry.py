"""Which replicas serve each deployment, and how many requests each has outstanding. The controller updates
it; the gateway reads it on every request. Also holds requests while a deployment has no ready replica."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from llmctl.gateway.routing import (
    HOLD_TIMEOUT_S,
    MAX_HELD,
    AdapterAffinity,
    AdapterPick,
    Backend,
    RouteKey,
    Router,
    make_router,
)


@dataclass(frozen=True)
class AdapterRoute:
    """A LoRA adapter served as its own model name on a deployment's replicas."""

    name: str
    path: str  # where the replica's engine reads it (for a load request)
    preload: bool  # on the engine's command line: every replica has it from start-up


@dataclass
class Endpoint:
    name: str
    url: str  # base URL, e.g. http://127.0.0.1:8000
    outstanding: int = 0
    key: str | None = None  # the replica's own API key (replicas on SSH hosts); never the client's
    # LoRA adapters: those the engine knows by name (command line or a load request), and those the gateway
    # last sent it, least recent first, as many as it keeps loaded: its view of the engine's LRU cache.
    registered: set[str] = field(default_factory=set)
    recent: list[str] = field(default_factory=list)

    def used(self, adapter: str, slots: int) -> None:
        if adapter in self.recent:
            self.recent.remove(adapter)
        self.recent.append(adapter)
        del self.recent[: max(0, len(self.recent) - slots)]

    def forget(self, adapter: str) -> None:
        """The engine does not know it after all (it restarted, or it was unloaded behind our back)."""
        self.registered.discard(adapter)
        if adapter in self.recent:
            self.recent.remove(adapter)


@dataclass
class DeploymentRoutes:
    name: str
    router: Router
    api_key: str | None = None  # resolved from the environment at start-up; never logged or stored
    max_held: int = MAX_HELD  # requests held while no replica is ready (scale from zero)
    hold_timeout_s: float = HOLD_TIMEOUT_S
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    held: int = 0
    requests_total: int = 0
    last_request_at: float | None = None  # unix seconds of the latest request (the idle clock)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    policy: str = "least_outstanding"  # the routing policy's name, as the playbook gives it
    adapters: dict[str, AdapterRoute] = field(default_factory=dict)
    adapter_slots: int = (
        1  # adapters a replica keeps loaded (vLLM --max-cpu-loras, SGLang --max-loaded-loras)
    )
    flavour: str = "vllm"  # the engines' API: how an adapter is loaded and named upstream
    affinity: AdapterAffinity = field(default_factory=AdapterAffinity)

    @property
    def in_flight(self) -> int:
        return sum(e.outstanding for e in self.endpoints.values())

    def choose(self, key: RouteKey, exclude: Iterable[str] = ()) -> Endpoint | None:
        skip = set(exclude)
        views = [Backend(e.name, e.outstanding) for e in self.endpoints.values() if e.name not in skip]
        pick = self.router.choose(views, key)
        return self.endpoints[pick.name] if pick else None

    def choose_adapter(self, adapter: str, exclude: Iterable[str] = ()) -> tuple[Endpoint, bool] | None:
        """(replica, had it loaded) for a request naming one of this deployment's adapters."""
        skip = set(exclude)
        views = [
            Backend(e.name, e.outstanding, frozenset(e.recent))
            for e in self.endpoints.values()
            if e.name not in skip
        ]
        pick: AdapterPick | None = self.affinity.choose(views, adapter)
        return (self.endpoints[pick.backend.name], pick.hit) if pick else None

    def new_endpoint(self, name: str, url: str, key: str | None) -> Endpoint:
        """A replica starts with the command line's adapters, the last `adapter_slots` of them loaded."""
        preload = [a.name for a in self.adapters.values() if a.preload]
        return Endpoint(name, url, key=key, registered=set(preload), recent=preload[-self.adapter_slots :])


class Registry:
    def __init__(self, on_demand: Callable[[str], None] | None = None) -> None:
        self.deployments: dict[str, DeploymentRoutes] = {}
        # Called when a request arrives for a deployment with no ready replica (the controller wakes one).
        self.on_demand = on_demand
        self.closing = False

    def close(self) -> None:
        """Shutting down: requests held for a replica are answered (503) now instead of at their timeout."""
        self.closing = True
        for routes in self.deployments.values():
            routes.ready.set()

    def add_deployment(
        self,
        name: str,
        route: str = "least_outstanding",
        api_key: str | None = None,
        max_held: int = MAX_HELD,
        hold_timeout_s: float = HOLD_TIMEOUT_S,
    ) -> DeploymentRoutes:
        routes = DeploymentRoutes(name, make_router(route), api_key, max_held, hold_timeout_s, policy=route)
        self.deployments[name] = routes
        return routes

    def set_endpoints(
        self, deployment: str, endpoints: Iterable[tuple[str, str] | tuple[str, str, str | None]]
    ) -> None:
        """Replace the ready replicas of a deployment, each (name, url) or (name, url, its API key);
        outstanding counts survive for replicas that stay."""
        routes = self.deployments[deployment]
        new = {}
        for name, url, *rest in endpoints:
            key = rest[0] if rest else None
            old = routes.endpoints.get(name)
            kept = old if old and old.url == url and old.key == key else None
            new[name] = kept or routes.new_endpoint(name, url, key)
        routes.endpoints = new
        if new:
            routes.ready.set()
        else:
            routes.ready.clear()

    def set_adapters(
        self, deployment: str, adapters: Iterable[AdapterRoute], *, slots: int, flavour: str = "vllm"
    ) -> list[str]:
        """The deployment's LoRA adapters, each then a model name of its own; returns those refused, named like
        a deployment or another deployment's adapter (playbooks applied apart). Replicas already routed keep
        what they have loaded."""
        routes = self.deployments[deployment]
        given: dict[str, AdapterRoute] = {}
        refused: list[str] = []
        for a in adapters:
            owner = self.adapter_owner(a.name)
            taken = a.name in self.deployments or (owner is not None and owner.name != deployment)
            if taken:
                refused.append(a.name)
            else:
                given[a.name] = a
        added = [a.name for a in given.values() if a.preload and a.name not in routes.adapters]
        routes.adapters, routes.adapter_slots, routes.flavour = given, max(1, slots), flavour
        for endpoint in routes.endpoints.values():
            for name in added:  # on every replica's command line
                endpoint.registered.add(name)
                endpoint.used(name, routes.adapter_slots)
        return refused

    def adapter_owner(self, adapter: str) -> DeploymentRoutes | None:
        return next((r for r in self.deployments.values() if adapter in r.adapters), None)

    def resolve(self, model: str) -> tuple[DeploymentRoutes, str | None] | None:
        """(the deployment, the adapter or None) a request's `model` names, or None when nothing serves it."""
        routes = self.deployments.get(model)
        if routes is not None:
            return routes, None
        owner = self.adapter_owner(model)
        return (owner, model) if owner is not None else None
