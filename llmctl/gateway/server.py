"""The OpenAI-compatible gateway: one endpoint in front of every deployment's replicas.

Routes by the request's `model` (the deployment name), streams responses through chunk by chunk, retries
on another replica only when the first failed before sending anything upstream, and holds requests while a
deployment has no ready replica (scale from zero), answering 503 with Retry-After past a bound.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import time
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from llmctl.errors import LlmctlError
from llmctl.gateway.metrics import GatewayMetrics
from llmctl.gateway.registry import DeploymentRoutes, Endpoint, Registry
from llmctl.gateway.routing import RouteKey

PROXIED = ("/v1/completions", "/v1/chat/completions")
MAX_ATTEMPTS = 3  # one replica and two others, when replicas refuse connections
# Hop-by-hop headers (RFC 9110 section 7.6.1) and those aiohttp recomputes must not be copied across.
_SKIP_HEADERS = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "host",
    "authorization",
    "content-encoding",
}


def _error(status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> web.Response:
    body = {"error": {"message": message, "type": kind, "code": status}}
    return web.json_response(body, status=status, headers=headers)


def check_bind(host: str, registry: Registry) -> None:
    """Refuse to listen beyond loopback unless every deployment requires an API key."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        open_ = [d.name for d in registry.deployments.values() if not d.api_key]
        if open_:
            raise LlmctlError(
                f"refusing to bind the gateway to {host}: deployment(s) {', '.join(open_)} have no API key "
                "(set gateway.api_key_env in the playbook and export that variable, or bind 127.0.0.1)"
            )


def _route_key(body: dict[str, Any]) -> RouteKey:
    if isinstance(body.get("prompt"), str):
        return RouteKey(prefix=body["prompt"])
    messages = body.get("messages")
    if isinstance(messages, list):
        return RouteKey(prefix="".join(str(m.get("content", "")) for m in messages if isinstance(m, dict)))
    return RouteKey()


class Gateway:
    def __init__(self, registry: Registry, *, upstream_timeout_s: float = 600.0) -> None:
        self.registry = registry
        self.metrics = GatewayMetrics()
        self.upstream_timeout_s = upstream_timeout_s
        self._session: aiohttp.ClientSession | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/v1/models", self._models)
        for path in PROXIED:
            app.router.add_post(path, self._proxy)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    async def _start(self, app: web.Application) -> None:
        # Keep-alive connections to replicas: a new TCP handshake per request would dominate the overhead.
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
        timeout = aiohttp.ClientTimeout(total=self.upstream_timeout_s, sock_connect=5.0)
        self._session = aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False)

    async def _stop(self, app: web.Application) -> None:
        if self._session:
            await self._session.close()

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def _models(self, request: web.Request) -> web.Response:
        data = [{"id": name, "object": "model", "owned_by": "llmctl"} for name in self.registry.deployments]
        return web.json_response({"object": "list", "data": data})

    def _authorised(self, routes: DeploymentRoutes, request: web.Request) -> bool:
        if not routes.api_key:
            return True
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        return hmac.compare_digest(given.encode(), routes.api_key.encode())

    async def _proxy(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        raw = await request.read()
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "request body is not valid JSON", "invalid_request_error")
        if not isinstance(body, dict):
            return _error(400, "request body must be a JSON object", "invalid_request_error")
        model = body.get("model")
        routes = self.registry.deployments.get(model) if isinstance(model, str) else None
        if routes is None:
            return _error(404, f"The model `{model}` does not exist.", "NotFoundError")
        if not self._authorised(routes, request):
            self.metrics.requests.labels(routes.name, "401").inc()
            return _error(401, "invalid or missing API key", "authentication_error")
        routes.requests_total += 1
        routes.last_request_at = time.time()
        response = await self._forward(request, routes, raw, _route_key(body), started)
        self.metrics.requests.labels(routes.name, str(response.status)).inc()
        self.metrics.latency.labels(routes.name).observe(time.perf_counter() - started)
        return response

    async def _wait_ready(self, routes: DeploymentRoutes) -> bool:
        if routes.endpoints:
            return True
        if routes.held >= routes.max_held:
            return False
        routes.held += 1
        self.metrics.queue_depth.labels(routes.name).set(routes.held)
        try:
            if self.registry.on_demand:
                self.registry.on_demand(routes.name)
            await asyncio.wait_for(routes.ready.wait(), timeout=routes.hold_timeout_s)
            return bool(routes.endpoints)
        except TimeoutError:
            return False
        finally:
            routes.held -= 1
            self.metrics.queue_depth.labels(routes.name).set(routes.held)

    async def _forward(
        self, request: web.Request, routes: DeploymentRoutes, raw: bytes, key: RouteKey, started: float
    ) -> web.StreamResponse:
        assert self._session is not None
        tried: list[str] = []
        for attempt in range(MAX_ATTEMPTS):
            if not await self._wait_ready(routes):
                retry = str(max(1, int(routes.hold_timeout_s // 4)))
                return _error(
                    503,
                    f"no ready replica for {routes.name}; retry later",
                    "ServiceUnavailable",
                    {"Retry-After": retry},
                )
            endpoint = routes.choose(key, exclude=tried)
            if endpoint is None:
                break
            tried.append(endpoint.name)
            try:
                return await self._stream(request, routes, endpoint, raw, started)
            except aiohttp.ClientConnectorError:
                # Nothing reached the replica, so sending the request elsewhere cannot answer it twice.
                if attempt + 1 < MAX_ATTEMPTS:
                    self.metrics.retries.labels(routes.name).inc()
                continue
        return _error(
            502, f"no replica of {routes.name} accepted the request (tried {', '.join(tried)})", "BadGateway"
        )

    async def _stream(
        self, request: web.Request, routes: DeploymentRoutes, endpoint: Endpoint, raw: bytes, started: float
    ) -> web.StreamResponse:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _SKIP_HEADERS}
        endpoint.outstanding += 1
        self.metrics.in_flight.labels(routes.name).inc()
        try:
            async with self._session.post(endpoint.url + request.path, data=raw, headers=headers) as upstream:
                self.metrics.first_byte.labels(routes.name).observe(time.perf_counter() - started)
                out = web.StreamResponse(
                    status=upstream.status,
                    headers={k: v for k, v in upstream.headers.items() if k.lower() not in _SKIP_HEADERS},
                )
                await out.prepare(request)
                try:
                    async for chunk in upstream.content.iter_any():
                        await out.write(chunk)
                except aiohttp.ClientError:
                    # The replica died mid-answer. Bytes were sent, so no retry; cut the client's connection
                    # too, so it sees a truncated response rather than a clean but short one.
                    self.metrics.upstream_failures.labels(routes.name).inc()
                    if request.transport is not None:
                        request.transport.close()
                    return out
                await out.write_eof()
                return out
        finally:
            endpoint.outstanding -= 1
            self.metrics.in_flight.labels(routes.name).dec()
