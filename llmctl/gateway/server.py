"""The OpenAI-compatible gateway: one endpoint in front of every deployment's replicas.

Routes by the request's `model` (the deployment name), streams responses through chunk by chunk, retries
on another replica only when the first failed before sending anything upstream, and holds requests while a
deployment has no ready replica (scale from zero), answering 503 with Retry-After past a bound. A client
that hangs up is routine: its upstream request is cancelled and it is counted as a 499, without a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from llmctl.engines.api_key import auth_headers
from llmctl.errors import LlmctlError
from llmctl.gateway.adapters import AdapterLoader, upstream_body
from llmctl.gateway.metrics import GatewayMetrics
from llmctl.gateway.registry import DeploymentRoutes, Endpoint, Registry
from llmctl.gateway.request_log import TAP_KEY as _TAP
from llmctl.gateway.request_log import RequestLog, RequestTap
from llmctl.gateway.routing import RouteKey

log = logging.getLogger(__name__)

PROXIED = ("/v1/completions", "/v1/chat/completions")
# nginx's "client closed request": counted in the requests metric, never sent (nobody is left to read it).
CLIENT_CLOSED = 499
BODY_TIMEOUT_S = 30.0  # a body dribbled slower than this holds a connection for nothing (slowloris)
# A connection must deliver a request's headers this soon after it opens or after its last answer: aiohttp's
# keep-alive timer runs from those moments and is not reset by bytes of an unfinished header, so it bounds
# both idle keep-alive connections and headers dribbled a byte at a time (slowloris; aiohttp's default 75 s
# held 300 such connections for 75 s). nginx's client_header_timeout is the same idea (default 60 s).
HEADER_TIMEOUT_S = 15.0
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


class _ClientGone(Exception):
    """The client hung up before its answer was complete."""


def _hung_up(request: web.Request) -> bool:
    return request.transport is None or request.transport.is_closing()


@contextlib.contextmanager
def _to_client(upstream: aiohttp.ClientResponse) -> Iterator[None]:
    """Around writes to the client: a connection error there means the client left, not that the replica
    failed, and the replica should stop generating for nobody, so its connection is closed, not pooled."""
    try:
        yield
    except ConnectionError as exc:
        upstream.close()
        raise _ClientGone from exc


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


def key_matches(header: str, key: str) -> bool:
    """An `Authorization: Bearer KEY` header (scheme in any case, as RFC 7235 has it) against the key, in
    constant time. A header that is not ASCII, or has no Bearer scheme, is simply not the key."""
    scheme, _, given = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    try:
        return hmac.compare_digest(given.strip().encode("ascii"), key.encode("ascii"))
    except UnicodeEncodeError:
        return False


class Gateway:
    def __init__(
        self,
        registry: Registry,
        *,
        upstream_timeout_s: float = 600.0,
        header_timeout_s: float = HEADER_TIMEOUT_S,
        request_log: RequestLog | None = None,
    ) -> None:
        self.registry = registry
        self.request_log = request_log  # one line per proxied request, for `llmctl sim replay`
        self.metrics = GatewayMetrics()
        self.adapters = AdapterLoader(self.metrics)  # LoRA adapters: affinity and loads (gateway.adapters)
        self.upstream_timeout_s = upstream_timeout_s
        self.header_timeout_s = header_timeout_s
        self._session: aiohttp.ClientSession | None = None

    def runner(self) -> web.AppRunner:
        """The app in a runner that cancels a request's handler when its client disconnects: without it
        aiohttp notices a hang-up only at the next write, never while a replica queues, prefills or
        generates an unstreamed answer, and the replica would keep working for nobody."""
        return web.AppRunner(
            self.app(),
            access_log=None,
            handler_cancellation=True,
            keepalive_timeout=self.header_timeout_s,
        )

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
        if self.request_log is not None:
            await asyncio.to_thread(self.request_log.close)

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def _models(self, request: web.Request) -> web.Response:
        # A deployment behind a key is listed only to a client holding it: its name is not for everyone.
        data = [
            {"id": name, "object": "model", "owned_by": "llmctl"}
            for name, routes in self.registry.deployments.items()
            if self._authorised(routes, request)
        ]
        data += [  # each LoRA adapter is a model of its own, its deployment the parent (as vLLM lists them)
            {"id": adapter, "object": "model", "owned_by": "llmctl", "parent": name}
            for name, routes in self.registry.deployments.items()
            if self._authorised(routes, request)
            for adapter in routes.adapters
        ]
        return web.json_response({"object": "list", "data": data})

    def _authorised(self, routes: DeploymentRoutes, request: web.Request) -> bool:
        if not routes.api_key:
            return True
        return key_matches(request.headers.get("Authorization", ""), routes.api_key)

    async def _proxy(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            raw = await asyncio.wait_for(request.read(), timeout=BODY_TIMEOUT_S)
        except TimeoutError:
            return _error(
                408, f"request body not received within {BODY_TIMEOUT_S:g} s", "invalid_request_error"
            )
        except (ConnectionError, aiohttp.ClientError):
            return web.Response(status=CLIENT_CLOSED)  # the client left while sending: nobody to answer
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "request body is not valid JSON", "invalid_request_error")
        if not isinstance(body, dict):
            return _error(400, "request body must be a JSON object", "invalid_request_error")
        model = body.get("model")
        found = self.registry.resolve(model) if isinstance(model, str) else None
        routes, adapter = found if found else (None, None)
        if routes is None:
            return _error(404, f"The model `{model}` does not exist.", "NotFoundError")
        if not self._authorised(routes, request):
            self.metrics.requests.labels(routes.name, "401").inc()
            return _error(401, "invalid or missing API key", "authentication_error")
        routes.requests_total += 1
        routes.last_request_at = time.time()
        if self.request_log is not None:
            self.request_log.tap(request, routes.name, body)
        try:
            if adapter is not None:
                raw = upstream_body(routes, adapter, body, raw)
            response = await self._forward(request, routes, raw, _route_key(body), started, adapter)
        except _ClientGone:
            self._client_gone(routes, request)
            # aiohttp wants a response back; writing it fails quietly on the closed transport.
            return web.Response(status=CLIENT_CLOSED)
        except asyncio.CancelledError:
            # The runner cancels the handler when its client disconnects (handler_cancellation, see
            # `runner`); the finally blocks below have released the replica and closed its connection.
            if _hung_up(request):
                self._client_gone(routes, request)
            raise
        self.metrics.requests.labels(routes.name, str(response.status)).inc()
        self.metrics.latency.labels(routes.name).observe(time.perf_counter() - started)
        if self.request_log is not None:
            self.request_log.done(request, response.status)
        return response

    def _client_gone(self, routes: DeploymentRoutes, request: web.Request) -> None:
        # A hang-up is routine (a user stops a generation, a load generator times out): no traceback.
        log.debug("client %s hung up on %s; upstream request cancelled", request.remote, routes.name)
        self.metrics.requests.labels(routes.name, str(CLIENT_CLOSED)).inc()
        if self.request_log is not None:
            self.request_log.done(request, CLIENT_CLOSED)

    async def _wait_ready(self, routes: DeploymentRoutes) -> bool:
        if routes.endpoints:
            return True
        if routes.held >= routes.max_held or self.registry.closing:
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
        self,
        request: web.Request,
        routes: DeploymentRoutes,
        raw: bytes,
        key: RouteKey,
        started: float,
        adapter: str | None = None,
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
            if adapter is None:
                endpoint = routes.choose(key, exclude=tried)
            else:
                endpoint = self.adapters.choose(routes, adapter, tried)
            if endpoint is None:
                break
            tried.append(endpoint.name)
            try:
                if adapter is not None:
                    refused = await self.adapters.ensure_loaded(self._session, routes, endpoint, adapter)
                    if refused is not None:
                        return refused
                response = await self._stream(request, routes, endpoint, raw, started)
                if adapter is not None and response.status == 404:
                    endpoint.forget(adapter)  # it restarted without it: the next request loads it again
                return response
            except aiohttp.ClientConnectorError:
                # Nothing reached the replica, so sending the request elsewhere cannot answer it twice.
                if attempt + 1 < MAX_ATTEMPTS:
                    self.metrics.retries.labels(routes.name).inc()
                continue
            except aiohttp.ClientError:
                # The replica dropped the connection before it answered (a crash, a reset): the client has
                # not had a byte, so another replica may answer it; the dead one produced nothing.
                self.metrics.upstream_failures.labels(routes.name).inc()
                if attempt + 1 < MAX_ATTEMPTS:
                    self.metrics.retries.labels(routes.name).inc()
                continue
        return _error(
            502, f"no replica of {routes.name} answered the request (tried {', '.join(tried)})", "BadGateway"
        )

    async def _stream(
        self, request: web.Request, routes: DeploymentRoutes, endpoint: Endpoint, raw: bytes, started: float
    ) -> web.StreamResponse:
        assert self._session is not None
        # The client's own Authorization is never passed on: the replica asks for its key, if any.
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _SKIP_HEADERS}
        headers |= auth_headers(endpoint.key)
        endpoint.outstanding += 1
        self.metrics.in_flight.labels(routes.name).inc()
        tap: RequestTap | None = request.get(_TAP)
        if tap is not None:
            tap.replica = endpoint.name
        try:
            async with self._session.post(endpoint.url + request.path, data=raw, headers=headers) as upstream:
                try:
                    return await self._relay(request, routes, upstream, started)
                except asyncio.CancelledError:
                    # Closed rather than released to the pool: the replica sees the disconnect and aborts.
                    upstream.close()
                    raise
        finally:
            endpoint.outstanding -= 1
            self.metrics.in_flight.labels(routes.name).dec()

    async def _relay(
        self, request: web.Request, routes: DeploymentRoutes, upstream: aiohttp.ClientResponse, started: float
    ) -> web.StreamResponse:
        self.metrics.first_byte.labels(routes.name).observe(time.perf_counter() - started)
        out = web.StreamResponse(
            status=upstream.status,
            headers={k: v for k, v in upstream.headers.items() if k.lower() not in _SKIP_HEADERS},
        )
        with _to_client(upstream):
            await out.prepare(request)
        tap: RequestTap | None = request.get(_TAP)
        while True:
            try:
                chunk = await upstream.content.readany()
            except aiohttp.ClientError:
                # The replica died mid-answer. Bytes were sent, so no retry; cut the client's connection
                # too, so it sees a truncated response rather than a clean but short one.
                self.metrics.upstream_failures.labels(routes.name).inc()
                if request.transport is not None:
                    request.transport.close()
                return out
            if not chunk:
                break
            if tap is not None:
                tap.feed(chunk)
            with _to_client(upstream):
                await out.write(chunk)
        with _to_client(upstream):
            await out.write_eof()
        return out
