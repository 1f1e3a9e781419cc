"""The emulated engine's HTTP server (aiohttp): OpenAI endpoints with SSE streaming, and the flavour's health,
metrics and sleep/wake endpoints, over the engine loop in engine.py. Request checks and answer bodies are in
openai_api.py, in each engine's shapes; this module is the HTTP around them, FastAPI's manners included
(JSON 404/405 bodies, /openapi.json), since both engines serve through FastAPI.

Deliberate differences from the real engines, each for a reason (llmctl.bench.conformance.DELIBERATE lists
those its checks see):
- No tokenizer: a text prompt counts ceil(characters / 4) tokens (config.prompt_tokens), a token-id list its
  length; output is filler words, one per token, and always runs to max_tokens (finish_reason "length",
  there is no EOS). A chat request without max_tokens stops at 16 tokens, as if at an EOS, unless it sets
  ignore_eos, when it runs to the end of the context as the engines' would.
- Requests to a sleeping engine get 503. Real vLLM crashes its engine on them (vllm#15483) and SGLang has no
  guard either; a clean 503 lets a rehearsal show the controller routed to a sleeping replica.
- Putting an engine to sleep aborts its unfinished requests (finish_reason "abort"), which is what their
  clients see in vLLM before its engine dies (vllm#45520); the emulator stays up.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from llmctl.engines.emulator.engine import ABORTED, Engine, Pending
from llmctl.engines.emulator.logs import engine_log
from llmctl.engines.emulator.lora_http import LoraEndpoints
from llmctl.engines.emulator.openai_api import Answer, Parsed, RequestError, Stream, load, parse, whole
from llmctl.engines.emulator.startup import wake_phases
from llmctl.engines.snapshots import PINNED_VERSIONS

__all__ = ["EmulatorApp", "Engine"]

FILLER = ("the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "and", "runs", "home")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SSE = "text/event-stream; charset=utf-8"  # what vLLM's StreamingResponse sends
# FastAPI's answers for a path no route serves and for a method a route does not take.
FASTAPI_ERRORS = {404: "Not Found", 405: "Method Not Allowed"}


def filler(i: int) -> str:
    """Deterministic text: token i of every answer is the same word, so outputs are reproducible."""
    return " " + FILLER[i % len(FILLER)]


def _reason(marker: int) -> str:
    return "abort" if marker == ABORTED else "length"


def json_response(data: object, status: int = 200) -> web.Response:
    # Exactly "application/json", as FastAPI's JSONResponse (aiohttp's json_response adds a charset).
    return web.Response(
        body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"}
    )


class EmulatorApp:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.config = engine.config
        self.in_flight = 0  # completion requests being answered (vLLM's server_load)
        # Sleep mode: the level it sleeps at (0 awake); a level-2 sleeper woken but not yet reloaded has its
        # weights discarded; the modelled seconds of the latest wake, its reload included.
        self.sleep_level = 0
        self.weights_discarded = False
        self.modelled_wake_s = 0.0
        lora = self.config.lora is not None
        self.lora = LoraEndpoints(self.config, self._error, engine.metrics.vllm) if lora else None

    def build(self) -> web.Application:
        c = self.config
        # Outermost first: HTTP metrics see every answer, FastAPI's error bodies included.
        middlewares = [self._http_metrics] if self.engine.metrics.vllm is not None else []
        app = web.Application(middlewares=[*middlewares, self._fastapi_errors, self._auth])
        get, post = app.router.add_get, app.router.add_post
        get("/health", self._health)
        get("/v1/models", self._models)
        post("/v1/completions", self._completions)
        post("/v1/chat/completions", self._completions)
        get("/openapi.json", self._openapi)
        if c.flavour == "vllm":
            get("/ping", self._health)
            post("/ping", self._health)  # SageMaker's health check and entry point, which vLLM also serves
            post("/invocations", self._completions)
            get("/load", self._load)
            get("/version", self._json({"version": PINNED_VERSIONS["vllm"]}))
            get("/metrics", self._metrics)
            if c.sleep_mode:
                post("/sleep", self._sleep)
                post("/wake_up", self._wake)
                get("/is_sleeping", self._is_sleeping)
                # vLLM's development endpoints a level-2 wake needs (llmctl.pool.transitions).
                post("/collective_rpc", self._collective_rpc)
                post("/reset_prefix_cache", self._json({"success": True}))
        else:
            get("/health_generate", self._health_generate)
            get("/get_model_info", self._json({"model_path": c.model.name, "is_generation": True}))
            get("/get_server_info", self._server_info)
            if c.metrics:
                get("/metrics", self._metrics)
            if c.sleep_mode:
                post("/release_memory_occupation", self._sleep)
                post("/resume_memory_occupation", self._wake)
        if self.lora is not None:
            self.lora.attach(app)
        return app

    def _error(
        self, status: int, message: str, kind: str = "BadRequestError", param: str | None = None
    ) -> web.Response:
        if self.config.flavour == "vllm":  # vLLM's ErrorResponse nests the fields under "error"
            body: dict[str, Any] = {
                "error": {"message": message, "type": kind, "param": param, "code": status}
            }
        else:
            body = {"object": "error", "message": message, "type": kind, "param": None, "code": status}
        return json_response(body, status)

    @staticmethod
    def _json(data: dict[str, Any]) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            return json_response(data)

        return handler

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        keys = self.config.api_keys
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if self.config.flavour == "sglang":
            # SGLang guards every route but the health and metrics ones (and CORS preflights).
            guarded = request.method != "OPTIONS" and not request.path.startswith(("/health", "/metrics"))
        else:
            guarded = request.path.startswith("/v1")  # vLLM guards its OpenAI routes only
        if keys and guarded and given not in keys:
            return json_response({"error": "Unauthorized"}, 401)
        return await handler(request)

    @web.middleware
    async def _fastapi_errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as exc:
            response = json_response({"detail": FASTAPI_ERRORS[exc.status]}, exc.status)
            if isinstance(exc, web.HTTPMethodNotAllowed):
                response.headers["Allow"] = ", ".join(sorted(exc.allowed_methods - {"HEAD"}))
            return response

    @web.middleware
    async def _http_metrics(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        response = await handler(request)
        resource = request.match_info.route.resource
        # The route's template, or "none" where no route matched, as the instrumentator groups them.
        route = resource.canonical if resource is not None else "none"
        metrics = self.engine.metrics.vllm
        if metrics is not None:
            size = response.body_length if response.prepared else len(getattr(response, "body", b"") or b"")
            metrics.http.observe(
                route, request.method, response.status, request.content_length or 0, size, started
            )
        return response

    async def _openapi(self, request: web.Request) -> web.StreamResponse:
        paths: dict[str, dict[str, Any]] = {}
        for route in request.app.router.routes():
            # FastAPI leaves HEAD and the schema's own route out of the schema.
            if (
                route.method != "HEAD"
                and route.resource is not None
                and route.resource.canonical != "/openapi.json"
            ):
                paths.setdefault(route.resource.canonical, {})[route.method.lower()] = {}
        return json_response(
            {"openapi": "3.1.0", "info": {"title": "FastAPI", "version": "0.1.0"}, "paths": paths}
        )

    async def _health(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=200)

    async def _load(self, request: web.Request) -> web.StreamResponse:
        # vLLM counts requests in flight only with --enable-server-load-tracking; otherwise it reports 0.
        return json_response({"server_load": self.in_flight if self.config.load_tracking else 0})

    async def _health_generate(self, request: web.Request) -> web.StreamResponse:
        # SGLang's /health_generate runs a one-token generation: with the weights released it cannot.
        return web.Response(status=503 if self.engine.sleeping else 200)

    async def _server_info(self, request: web.Request) -> web.StreamResponse:
        c = self.config
        return json_response(
            {
                "model_path": c.model.name,
                "tp_size": c.tp,
                "context_length": c.max_model_len,
                "max_total_num_tokens": self.engine.scheduler.capacity,
                "max_running_requests": c.max_seqs,
                "chunked_prefill_size": c.max_batched_tokens,
                "version": PINNED_VERSIONS["sglang"],
            }
        )

    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        body = generate_latest(self.engine.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _models(self, request: web.Request) -> web.StreamResponse:
        c = self.config
        created = int(time.time())
        data = []
        for n in c.served_names:
            model: dict[str, Any] = {"id": n, "object": "model", "created": created, "owned_by": c.flavour}
            model["root"] = c.model.name
            if c.flavour == "vllm":  # vLLM's ModelCard, in its key order
                model |= {
                    "parent": None,
                    "max_model_len": c.max_model_len,
                    "permission": [_permission(created)],
                }
            else:
                model["max_model_len"] = c.max_model_len
            data.append(model)
        if self.lora is not None:
            data += self.lora.cards(c.served_names[0], created, _permission)
        return json_response({"object": "list", "data": data})

    async def _sleep(self, request: web.Request) -> web.StreamResponse:
        # vLLM: level 1 offloads the weights to host RAM, level 2 discards them (a wake then re-reads them,
        # POST /collective_rpc reload_weights). SGLang's release has no level: modelled as level 1.
        level = request.query.get("level", "1")
        if level not in ("1", "2"):
            return self._error(400, "level must be 1 or 2")
        self.engine.sleeping = True
        self.sleep_level = int(level)
        if self.engine.metrics.vllm is not None:
            self.engine.metrics.vllm.sleeping(int(level))
        dropped = self.engine.abort_all()
        if dropped:
            engine_log(
                self.config.flavour, f"put to sleep with {dropped} unfinished requests: aborted", "WARNING"
            )
        if self.config.flavour == "vllm":
            return json_response({"status": "sleeping", "level": int(level)})
        return web.Response(status=200)

    async def _wake(self, request: web.Request) -> web.StreamResponse:
        if self.engine.sleeping:
            wake_s, _ = wake_phases(self.config, self.sleep_level)
            self.modelled_wake_s = wake_s
            await asyncio.sleep(wake_s * self.config.time_scale)
            self.weights_discarded = self.sleep_level == 2
        self.engine.sleeping = False
        self.sleep_level = 0
        if self.engine.metrics.vllm is not None:
            self.engine.metrics.vllm.sleeping(0)
        if self.config.flavour == "vllm":
            return json_response({"status": "awake", "tags": None})
        return web.Response(status=200)

    async def _collective_rpc(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except json.JSONDecodeError as exc:
            return json_response({"detail": f"JSON decode error: {exc}"}, 400)
        if not isinstance(body, dict) or body.get("method") is None:
            return json_response({"detail": "Missing 'method' in request body"}, 400)
        if body["method"] != "reload_weights":
            return self._error(400, f"the emulator has no worker method {body['method']!r}")
        if self.weights_discarded:
            _, reload_s = wake_phases(self.config, 2)
            self.modelled_wake_s += reload_s
            await asyncio.sleep(reload_s * self.config.time_scale)
            self.weights_discarded = False
        return web.Response(status=200)  # vLLM answers a method that returns nothing with an empty 200

    async def _is_sleeping(self, request: web.Request) -> web.StreamResponse:
        return json_response({"is_sleeping": self.engine.sleeping})

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        c = self.config
        try:
            # The media type without its parameters (a charset); None when the client sent none.
            media = request.content_type if "Content-Type" in request.headers else None
            body = load(c.flavour, await request.read(), media)
            # SageMaker's /invocations takes either kind of request and tells them apart by their fields.
            invocation = request.path == "/invocations"
            chat = (
                isinstance(body, dict) and "messages" in body
                if invocation
                else request.path.endswith("/chat/completions")
            )
            adapters = self.lora.names() if self.lora is not None else ()
            asked = parse(c, body, chat, self.engine.scheduler.capacity, self.engine.sleeping, adapters)
        except RequestError as exc:
            return self._error(exc.status, str(exc), exc.kind, exc.param)
        if self.lora is not None:
            await self.lora.ready(asked.adapter)  # an adapter evicted (or still loading) is read first
            self.lora.started(asked.adapter)
        rid, pending = self.engine.submit(asked.prompt_tokens, asked.max_tokens)
        answer = Answer.for_request(c, chat, asked.model, rid)
        self.in_flight += 1
        try:
            if asked.stream:
                return await self._stream(request, pending, answer, asked)
            return await self._whole(pending, answer, asked)
        finally:
            self.in_flight -= 1
            if self.lora is not None:
                self.lora.finished(asked.adapter)
            # Still pending here means the client went away (or the handler failed): free its slot, as the
            # engines abort a request whose connection closed.
            self.engine.abort(rid)

    async def _whole(self, pending: Pending, answer: Answer, asked: Parsed) -> web.StreamResponse:
        produced = 0
        while (n := await pending.queue.get()) >= 0:
            produced += n
        text = "".join(filler(i) for i in range(produced))
        return json_response(whole(answer, text, _reason(n), asked.prompt_tokens, produced))

    async def _stream(
        self, request: web.Request, pending: Pending, answer: Answer, asked: Parsed
    ) -> web.StreamResponse:
        vllm = self.config.flavour == "vllm"
        resp = web.StreamResponse(
            headers={"Content-Type": SSE if vllm else "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        chunks = Stream(answer, asked)

        async def send(chunk: dict[str, Any]) -> None:
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())

        for opening in chunks.opening():
            await send(opening)
        produced = 0
        while (n := await pending.queue.get()) >= 0:
            text = "".join(filler(j) for j in range(produced, produced + n))
            produced += n
            await send(chunks.tokens(text, "length" if produced >= asked.max_tokens else None, produced))
        if n == ABORTED:  # the stream still says why it ended
            await send(chunks.tokens("", "abort", produced))
        if asked.include_usage:
            await send(chunks.usage(asked.prompt_tokens, produced))
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp


def _permission(created: int) -> dict[str, Any]:
    """vLLM's ModelPermission: fixed values, only the id is random."""
    return {
        "id": f"modelperm-{secrets.token_hex(8)}", "object": "model_permission", "created": created,
        "allow_create_engine": False, "allow_sampling": True, "allow_logprobs": True, "allow_search_indices": False,
        "allow_view": True, "allow_fine_tuning": False, "organization": "*", "group": None, "is_blocking": False,
    }  # fmt: skip
