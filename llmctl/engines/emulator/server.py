"""The emulated engine's HTTP server (aiohttp): OpenAI endpoints with SSE streaming, and the flavour's health,
metrics and sleep/wake endpoints, over the engine loop in engine.py.

Deliberate differences from the real engines, each for a reason:
- No tokenizer: a text prompt counts ceil(characters / 4) tokens (config.prompt_tokens), a token-id list its
  length; output is filler words, one per token, and always runs to max_tokens (finish_reason "length",
  there is no EOS). max_tokens defaults to 16 for chat as for completions, where the engines would let a
  chat answer run to the end of the context.
- Requests to a sleeping engine get 503. Real vLLM crashes its engine on them (vllm#15483) and SGLang has no
  guard either; a clean 503 lets a rehearsal show the controller routed to a sleeping replica.
- Putting an engine to sleep aborts its unfinished requests (finish_reason "abort"), which is what their
  clients see in vLLM before its engine dies (vllm#45520); the emulator stays up.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from llmctl.engines.emulator.config import prompt_tokens
from llmctl.engines.emulator.engine import ABORTED, Engine, Pending
from llmctl.engines.emulator.logs import engine_log
from llmctl.engines.emulator.startup import wake_seconds
from llmctl.engines.snapshots import PINNED_VERSIONS

__all__ = ["EmulatorApp", "Engine"]

FILLER = ("the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "and", "runs", "home")
DEFAULT_MAX_TOKENS = 16
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def filler(i: int) -> str:
    """Deterministic text: token i of every answer is the same word, so outputs are reproducible."""
    return " " + FILLER[i % len(FILLER)]


def _prompt_tokens(body: dict[str, Any], chat: bool) -> int:
    """Prompt length in tokens: the length of a token-id list, else about four characters per token of text
    (chat content may be a string or a list of parts)."""
    if not chat:
        prompt = body.get("prompt", "")
        return len(prompt) if isinstance(prompt, list) else prompt_tokens(str(prompt)) if prompt else 0
    text = ""
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        text += str(content or "")
    return prompt_tokens(text) if text else 0


def _reason(marker: int) -> str:
    return "abort" if marker == ABORTED else "length"


def _choice(chat: bool, delta: dict[str, Any], reason: str | None) -> dict[str, Any]:
    if chat:
        return {"index": 0, "delta": delta, "finish_reason": reason}
    return {"index": 0, "text": delta.get("content", ""), "logprobs": None, "finish_reason": reason}


class RequestError(Exception):
    def __init__(self, status: int, message: str, kind: str = "BadRequestError") -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


class EmulatorApp:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.config = engine.config

    def build(self) -> web.Application:
        c = self.config
        app = web.Application(middlewares=[self._auth])
        get, post = app.router.add_get, app.router.add_post
        get("/health", self._health)
        get("/v1/models", self._models)
        post("/v1/completions", self._completions)
        post("/v1/chat/completions", self._completions)
        if c.flavour == "vllm":
            get("/ping", self._health)
            get("/version", self._json({"version": PINNED_VERSIONS["vllm"]}))
            get("/metrics", self._metrics)
            if c.sleep_mode:
                post("/sleep", self._sleep)
                post("/wake_up", self._wake)
                get("/is_sleeping", self._is_sleeping)
        else:
            get("/health_generate", self._health_generate)
            get("/get_model_info", self._json({"model_path": c.model.name, "is_generation": True}))
            get("/get_server_info", self._server_info)
            if c.metrics:
                get("/metrics", self._metrics)
            if c.sleep_mode:
                post("/release_memory_occupation", self._sleep)
                post("/resume_memory_occupation", self._wake)
        return app

    def _error(self, status: int, message: str, kind: str = "BadRequestError") -> web.Response:
        if self.config.flavour == "vllm":  # vLLM's ErrorResponse nests the fields under "error"
            body: dict[str, Any] = {
                "error": {"message": message, "type": kind, "param": None, "code": status}
            }
        else:
            body = {"object": "error", "message": message, "type": kind, "param": None, "code": status}
        return web.json_response(body, status=status)

    @staticmethod
    def _json(data: dict[str, Any]) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            return web.json_response(data)

        return handler

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        keys = self.config.api_keys
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if keys and request.path.startswith("/v1") and given not in keys:
            return web.json_response({"error": "Unauthorized"}, status=401)
        return await handler(request)

    async def _health(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=200)

    async def _health_generate(self, request: web.Request) -> web.StreamResponse:
        # SGLang's /health_generate runs a one-token generation: with the weights released it cannot.
        return web.Response(status=503 if self.engine.sleeping else 200)

    async def _server_info(self, request: web.Request) -> web.StreamResponse:
        c = self.config
        return web.json_response(
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
        data = [
            {
                "id": n,
                "object": "model",
                "owned_by": c.flavour,
                "root": c.model.name,
                "max_model_len": c.max_model_len,
            }
            for n in c.served_names
        ]
        return web.json_response({"object": "list", "data": data})

    async def _sleep(self, request: web.Request) -> web.StreamResponse:
        # vLLM: level 1 offloads weights to CPU, level 2 discards them; the emulator models both as "asleep".
        if request.query.get("level", "1") not in ("1", "2"):
            return self._error(400, "level must be 1 or 2")
        self.engine.sleeping = True
        dropped = self.engine.abort_all()
        if dropped:
            engine_log(
                self.config.flavour, f"put to sleep with {dropped} unfinished requests: aborted", "WARNING"
            )
        return web.Response(status=200)

    async def _wake(self, request: web.Request) -> web.StreamResponse:
        if self.engine.sleeping:
            await asyncio.sleep(wake_seconds(self.config) * self.config.time_scale)
        self.engine.sleeping = False
        return web.Response(status=200)

    async def _is_sleeping(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"is_sleeping": self.engine.sleeping})

    def _check_length(self, n_prompt: int, max_tokens: int | None) -> int:
        """The max_tokens the engine would run with, or RequestError with its message for a request too long."""
        c, limit = self.config, self.config.max_model_len
        wanted = DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens
        if c.flavour == "vllm":
            if n_prompt >= limit:
                raise RequestError(
                    400,
                    f"This model's maximum context length is {limit} tokens. However, your request has "
                    f"{n_prompt} input tokens. Please reduce the length of the input messages.",
                )
            if n_prompt + wanted > limit:
                raise RequestError(
                    400,
                    f"'max_tokens' or 'max_completion_tokens' is too large: {wanted}. This model's maximum "
                    f"context length is {limit} tokens and your request has {n_prompt} input tokens "
                    f"({wanted} > {limit} - {n_prompt}).",
                )
            return wanted
        if n_prompt >= limit:
            raise RequestError(
                400,
                f"The input ({n_prompt} tokens) is longer than the model's context length ({limit} tokens).",
            )
        if n_prompt + wanted >= limit:
            raise RequestError(
                400,
                f"Requested token count exceeds the model's maximum context length of {limit} tokens. You "
                f"requested a total of {n_prompt + wanted} tokens: {n_prompt} tokens from the input messages and "
                f"{wanted} tokens for the completion. Please reduce the number of tokens in the input messages "
                "or the completion to fit within the limit.",
            )
        # SGLang starts with a KV pool smaller than the context and bounds each request by the pool instead.
        max_req_len = min(limit, self.engine.scheduler.capacity) - 1
        if n_prompt > max_req_len - 5:
            raise RequestError(
                400,
                f"Input length ({n_prompt} tokens) exceeds the maximum allowed length ({max_req_len - 5} tokens). "
                "Use a shorter input or enable --allow-auto-truncate.",
            )
        return min(wanted, max_req_len - n_prompt - 1)

    def _parse(self, body: Any, chat: bool) -> tuple[str, int, int]:
        """(model, prompt tokens, max_tokens) of a request body, or RequestError."""
        if not isinstance(body, dict):
            raise RequestError(400, "request body must be a JSON object")
        model = body.get("model")
        if model not in self.config.served_names:
            raise RequestError(404, f"The model `{model}` does not exist.", "NotFoundError")
        if self.engine.sleeping:
            raise RequestError(503, "the engine is sleeping; wake it up first", "ServiceUnavailableError")
        n_prompt = _prompt_tokens(body, chat)
        max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))
        if n_prompt < 1:
            raise RequestError(400, "The prompt cannot be empty.")
        if max_tokens is not None and (
            not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1
        ):
            raise RequestError(400, f"max_tokens must be at least 1, got {max_tokens}.")
        return str(model), n_prompt, self._check_length(n_prompt, max_tokens)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        chat = request.path.endswith("/chat/completions")
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return self._error(400, "request body is not valid JSON")
        try:
            model, n_prompt, max_tokens = self._parse(body, chat)
        except RequestError as exc:
            return self._error(exc.status, str(exc), exc.kind)
        rid, pending = self.engine.submit(n_prompt, max_tokens)
        try:
            if body.get("stream"):
                options = body.get("stream_options")
                usage = isinstance(options, dict) and bool(options.get("include_usage"))
                return await self._stream(request, rid, pending, chat, model, n_prompt, max_tokens, usage)
            return await self._whole(rid, pending, chat, model, n_prompt)
        finally:
            # Still pending here means the client went away (or the handler failed): free its slot, as the
            # engines abort a request whose connection closed.
            self.engine.abort(rid)

    async def _whole(
        self, rid: str, pending: Pending, chat: bool, model: str, n_prompt: int
    ) -> web.StreamResponse:
        produced = 0
        while (n := await pending.queue.get()) >= 0:
            produced += n
        reason = _reason(n)
        text = "".join(filler(i) for i in range(produced))
        choice: dict[str, Any] = (
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": reason}
            if chat
            else {"index": 0, "text": text, "logprobs": None, "finish_reason": reason}
        )
        return web.json_response(
            {
                "id": f"{'chatcmpl' if chat else 'cmpl'}-{rid}",
                "object": "chat.completion" if chat else "text_completion",
                "created": int(time.time()),
                "model": model,
                "choices": [choice],
                "usage": {
                    "prompt_tokens": n_prompt,
                    "completion_tokens": produced,
                    "total_tokens": n_prompt + produced,
                },
            }
        )

    async def _stream(
        self,
        request: web.Request,
        rid: str,
        pending: Pending,
        chat: bool,
        model: str,
        n_prompt: int,
        max_tokens: int,
        include_usage: bool,
    ) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        head = {
            "id": f"{'chatcmpl' if chat else 'cmpl'}-{rid}",
            "object": "chat.completion.chunk" if chat else "text_completion",
            "created": int(time.time()),
            "model": model,
        }

        async def send(choices: list[dict[str, Any]], **extra: Any) -> None:
            await resp.write(f"data: {json.dumps({**head, 'choices': choices, **extra})}\n\n".encode())

        produced = 0
        while (n := await pending.queue.get()) >= 0:
            text = "".join(filler(j) for j in range(produced, produced + n))
            # The first chat chunk names the role, as the engines' first delta does.
            delta: dict[str, Any] = {"content": text} if produced else {"role": "assistant", "content": text}
            produced += n
            await send([_choice(chat, delta, "length" if produced >= max_tokens else None)])
        if n == ABORTED:  # the stream still says why it ended
            await send([_choice(chat, {}, "abort")])
        if include_usage:
            await send(
                [],
                usage={
                    "prompt_tokens": n_prompt,
                    "completion_tokens": produced,
                    "total_tokens": n_prompt + produced,
                },
            )
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp
