"""Which replicas serve each deployment, and how many requests each has outstanding. The controller updates
it; the gateway reads it on every request. Also holds requests while a deployment has no ready replica."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from llmctl.gateway.routing import HOLD_TIMEOUT_S, MAX_HELD, Backend, RouteKey, Router, make_router


@dataclass
class Endpoint:
    name: str
    url: str  # base URL, e.g. http://127.0.0.1:8000
    outstanding: int = 0
    key: str | None = None  # the replica's own API key (replicas on SSH hosts); never the client's


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

    @property
    def in_flight(self) -> int:
        return sum(e.outstanding for e in self.endpoints.values())

    def choose(self, key: RouteKey, exclude: Iterable[str] = ()) -> Endpoint | None:
        skip = set(exclude)
        views = [Backend(e.name, e.outstanding) for e in self.endpoints.values() if e.name not in skip]
        pick = self.router.choose(views, key)
        return self.endpoints[pick.name] if pick else None


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
            new[name] = old if old and old.url == url and old.key == key else Endpoint(name, url, key=key)
        routes.endpoints = new
        if new:
            routes.ready.set()
        else:
            routes.ready.clear()
