"""The emulated engine's HTTP server (aiohttp): OpenAI endpoints with streaming, the flavour's health,
metrics and sleep/wake endpoints, and one engine loop stepping the scheduler in (scaled) model time."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from llmctl.engines.emulator.config import EmulatorConfig, prompt_tokens
from llmctl.engines.emulator.core import Scheduler
from llmctl.engines.emulator.metrics import EngineMetrics
from llmctl.engines.emulator.startup import wake_seconds
from llmctl.engines.emulator.timing import StepTimer

FILLER = ("the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "and", "runs", "home")


def filler(i: int) -> str:
    """Deterministic text: token i of every answer is the same word, so outputs are reproducible."""
    return " " + FILLER[i % len(FILLER)]


@dataclass
class Pending:
    queue: asyncio.Queue[int] = field(default_factory=asyncio.Queue)  # token counts; -1 marks the end
    arrived: float = field(default_factory=time.perf_counter)


class Engine:
    def __init__(self, config: EmulatorConfig, model: StepTimer, kv_capacity: int) -> None:
        self.config = config
        self.scheduler = Scheduler(model, kv_capacity, config.max_seqs, config.max_batched_tokens)
        self.metrics = EngineMetrics(config.flavour, config.served_names[0])
        self.pending: dict[str, Pending] = {}
        self.wakeup = asyncio.Event()
        self.sleeping = False
        self._ids = itertools.count()

    def submit(self, prompt: int, max_tokens: int) -> tuple[str, Pending]:
        rid = f"cmpl-{next(self._ids)}"
        self.scheduler.add(rid, prompt, max_tokens)
        self.pending[rid] = Pending()
        self.metrics.prompt_tokens.labels(self.metrics.model).inc(prompt)
        self.wakeup.set()
        return rid, self.pending[rid]

    async def run(self) -> None:
        s = self.scheduler
        while True:
            if not s.has_work:
                self.metrics.state(0, 0, 0.0)
                self.wakeup.clear()
                await self.wakeup.wait()
                continue
            result = s.step()
            self.metrics.preempted(len(result.preempted))
            self.metrics.state(s.num_running, s.num_waiting, s.kv_usage)
            # The model says how long this iteration takes on the GPU; waiting it out is the emulation.
            await asyncio.sleep(result.duration_s * self.config.time_scale)
            for rid, n in result.emitted.items():
                self.pending[rid].queue.put_nowait(n)
                self.metrics.generation_tokens.labels(self.metrics.model).inc(n)
            for rid in result.finished:
                self.pending.pop(rid).queue.put_nowait(-1)


def _prompt_tokens(body: dict[str, Any], chat: bool) -> int:
    """Prompt length in tokens: the length of a token-id list, else about four characters per token of text
    (the emulator has no tokenizer; chat content may be a string or a list of parts)."""
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


def _error(status: int, message: str, kind: str) -> web.Response:
    return web.json_response(
        {"object": "error", "message": message, "type": kind, "code": status}, status=status
    )


class EmulatorApp:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.config = engine.config

    def build(self) -> web.Application:
        c = self.config
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/health", self._health)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/chat/completions", self._completions)
        if c.flavour == "vllm":
            app.router.add_get("/ping", self._health)
            app.router.add_get("/version", self._json({"version": "0.33.0"}))
            app.router.add_get("/metrics", self._metrics)
            if c.sleep_mode:
                app.router.add_post("/sleep", self._sleep)
                app.router.add_post("/wake_up", self._wake)
                app.router.add_get("/is_sleeping", self._is_sleeping)
        else:
            app.router.add_get("/health_generate", self._health)
            app.router.add_get(
                "/get_model_info",
                self._json(
                    {"model_path": c.model.name, "tokenizer_path": c.model.name, "is_generation": True}
                ),
            )
            app.router.add_get(
                "/get_server_info", self._json({"tp_size": c.tp, "context_length": c.max_model_len})
            )
            if c.metrics:
                app.router.add_get("/metrics", self._metrics)
            if c.sleep_mode:
                app.router.add_post("/release_memory_occupation", self._sleep)
                app.router.add_post("/resume_memory_occupation", self._wake)
        return app

    @staticmethod
    def _json(data: dict[str, Any]) -> Any:
        async def handler(request: web.Request) -> web.Response:
            return web.json_response(data)

        return handler

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        keys = self.config.api_keys
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if keys and request.path.startswith("/v1") and given not in keys:
            return web.json_response({"error": "Unauthorized"}, status=401)
        result: web.StreamResponse = await handler(request)
        return result

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.engine.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def _models(self, request: web.Request) -> web.Response:
        owner = self.config.flavour
        data = [
            {"id": n, "object": "model", "owned_by": owner, "max_model_len": self.config.max_model_len}
            for n in self.config.served_names
        ]
        return web.json_response({"object": "list", "data": data})

    async def _sleep(self, request: web.Request) -> web.Response:
        # vLLM: level 1 offloads weights to CPU, level 2 discards them; the emulator models both as "asleep".
        if request.query.get("level", "1") not in ("1", "2"):
            return _error(400, "level must be 1 or 2", "BadRequestError")
        self.engine.sleeping = True
        return web.Response(status=200)

    async def _wake(self, request: web.Request) -> web.Response:
        await asyncio.sleep(wake_seconds(self.config) * self.config.time_scale)
        self.engine.sleeping = False
        return web.Response(status=200)

    async def _is_sleeping(self, request: web.Request) -> web.Response:
        return web.json_response({"is_sleeping": self.engine.sleeping})

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return _error(400, "request body is not valid JSON", "BadRequestError")
        if not isinstance(body, dict):
            return _error(400, "request body must be a JSON object", "BadRequestError")
        model = body.get("model")
        if model not in self.config.served_names:
            return _error(404, f"The model `{model}` does not exist.", "NotFoundError")
        if self.engine.sleeping:
            return _error(503, "the engine is sleeping; wake it up first", "ServiceUnavailableError")
        chat = request.path.endswith("/chat/completions")
        n_prompt = _prompt_tokens(body, chat)
        max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))
        max_tokens = 16 if max_tokens is None else max_tokens
        if n_prompt < 1:
            return _error(400, "The prompt cannot be empty.", "BadRequestError")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            return _error(400, f"max_tokens must be at least 1, got {max_tokens}.", "BadRequestError")
        if n_prompt + max_tokens > self.config.max_model_len:
            return _error(
                400,
                f"This model's maximum context length is {self.config.max_model_len} tokens. "
                f"However, you requested {n_prompt + max_tokens} tokens ({n_prompt} in the messages, "
                f"{max_tokens} in the completion). Please reduce the length of the messages or completion.",
                "BadRequestError",
            )
        rid, pending = self.engine.submit(n_prompt, max_tokens)
        stream = bool(body.get("stream"))
        include_usage = stream and bool((body.get("stream_options") or {}).get("include_usage"))
        usage = {
            "prompt_tokens": n_prompt,
            "completion_tokens": max_tokens,
            "total_tokens": n_prompt + max_tokens,
        }
        kind = "chat.completion" if chat else "text_completion"
        created = int(time.time())
        m = self.engine.metrics
        if not stream:
            produced = await self._collect(pending, m)
            text = "".join(filler(i) for i in range(produced))
            choice: dict[str, Any] = (
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length"}
                if chat
                else {"index": 0, "text": text, "finish_reason": "length"}
            )
            return web.json_response(
                {
                    "id": rid,
                    "object": kind,
                    "created": created,
                    "model": model,
                    "choices": [choice],
                    "usage": usage,
                }
            )
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        i = 0
        last = pending.arrived
        obj = "chat.completion.chunk" if chat else "text_completion"
        while True:
            n = await pending.queue.get()
            now = time.perf_counter()
            if n < 0:
                break
            (m.ttft if i == 0 else m.itl).labels(m.model).observe(now - last)
            last = now
            text = "".join(filler(j) for j in range(i, i + n))
            i += n
            delta: dict[str, Any] = (
                {"index": 0, "delta": {"content": text}, "finish_reason": None}
                if chat
                else {"index": 0, "text": text, "finish_reason": None}
            )
            chunk = {"id": rid, "object": obj, "created": created, "model": model, "choices": [delta]}
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self._finished(pending, m)
        if include_usage:
            final = {
                "id": rid,
                "object": obj,
                "created": created,
                "model": model,
                "choices": [],
                "usage": usage,
            }
            await resp.write(f"data: {json.dumps(final)}\n\n".encode())
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def _collect(self, pending: Pending, m: EngineMetrics) -> int:
        produced = 0
        last = pending.arrived
        while (n := await pending.queue.get()) >= 0:
            now = time.perf_counter()
            (m.ttft if produced == 0 else m.itl).labels(m.model).observe(now - last)
            last = now
            produced += n
        self._finished(pending, m)
        return produced

    def _finished(self, pending: Pending, m: EngineMetrics) -> None:
        m.e2e.labels(m.model).observe(time.perf_counter() - pending.arrived)
        m.finished("length")
