"""The emulated engine's LoRA endpoints, in each engine's shapes: vLLM's /v1/load_lora_adapter and
/v1/unload_lora_adapter (vllm/entrypoints/serve/lora/api_router.py and openai/models/serving.py, 0.32),
SGLang's /load_lora_adapter and /unload_lora_adapter (its LoRA serving docs); the adapters' /v1/models cards;
and the wait of a request whose adapter has to be loaded first."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from aiohttp import web

from llmctl.engines.emulator.config import EmulatorConfig
from llmctl.engines.emulator.logs import engine_log
from llmctl.engines.emulator.lora import AdapterCache, AdapterNotFound, read_adapter
from llmctl.engines.emulator.openai_api import RequestError, _field, invalid
from llmctl.engines.emulator.vllm_metrics import VllmMetrics

ErrorFn = Callable[..., web.Response]


def _text(body: str) -> web.Response:
    # vLLM answers a load or unload with the bare message (a Response without a media type).
    return web.Response(body=body.encode())


class LoraEndpoints:
    def __init__(self, config: EmulatorConfig, error: ErrorFn, metrics: VllmMetrics | None = None) -> None:
        assert config.lora is not None
        self.config = config
        self.error = error
        self.metrics = metrics
        self.cache = AdapterCache(config.lora, config.model)
        self.running: Counter[str] = Counter()  # requests in flight per adapter (vllm:lora_requests_info)
        now = time.monotonic()
        for name, path in config.lora.static:
            # Loaded before the port opens (init_static_loras), inside the modelled cold start.
            self.cache.register(self.cache.describe(name, read_adapter(path)), now - 3600.0)

    def attach(self, app: web.Application) -> None:
        lora = self.config.lora
        assert lora is not None
        if self.config.flavour == "vllm":
            if lora.runtime_updates:
                app.router.add_post("/v1/load_lora_adapter", self._load)
                app.router.add_post("/v1/unload_lora_adapter", self._unload)
        else:
            app.router.add_post("/load_lora_adapter", self._load)
            app.router.add_post("/unload_lora_adapter", self._unload)

    def names(self) -> tuple[str, ...]:
        return tuple(self.cache.registered)

    def cards(
        self, base: str, created: int, permission: Callable[[int], dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """vLLM's ModelCard for each adapter: root its path, parent the base model, no max_model_len."""
        cards: list[dict[str, Any]] = []
        for a in self.cache.registered.values():
            card: dict[str, Any] = {"id": a.name, "object": "model", "created": created}
            card |= {"owned_by": self.config.flavour, "root": a.path, "parent": base}
            if self.config.flavour == "vllm":
                card |= {"max_model_len": None, "permission": [permission(created)]}
            cards.append(card)
        return cards

    def started(self, adapter: str | None) -> None:
        if adapter is not None:
            self.running[adapter] += 1
            self._report()

    def finished(self, adapter: str | None) -> None:
        if adapter is not None:
            self.running[adapter] -= 1
            self.running = +self.running  # drop the zeros
            self._report()

    def _report(self) -> None:
        # vLLM sets one series per (running, waiting) pair to the time it saw it; the emulator has no LoRA
        # budget to wait for, so an adapter's requests count as both, as vLLM reports a request just added.
        if self.metrics is not None and self.config.lora is not None:
            names = ",".join(self.running)
            self.metrics.lora_info(self.config.lora.max_loras, names, names)

    async def ready(self, adapter: str | None) -> None:
        """Wait until the request's adapter is loaded (it is read from disk again after an eviction)."""
        if adapter is None or adapter not in self.cache.registered:
            return
        wait = self.cache.use(adapter, time.monotonic())
        if wait > 0:
            await asyncio.sleep(wait * self.config.time_scale)

    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.read())
        except ValueError:
            raise RequestError(400, "request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise RequestError(400, "request body must be a JSON object")
        return body

    def _fail(self, exc: RequestError) -> web.Response:
        if self.config.flavour == "vllm":
            return self.error(exc.status, str(exc), exc.kind, exc.param)
        body = {"rid": None, "http_worker_ipc": None, "success": False, "error_message": str(exc)}
        return web.json_response(body | {"loaded_adapters": self._loaded()}, status=exc.status)

    def _loaded(self) -> dict[str, str]:
        return {a.name: a.path for a in self.cache.registered.values()}

    def _done(self, message: str) -> web.Response:
        if self.config.flavour == "vllm":
            return _text(message)
        body = {"rid": None, "http_worker_ipc": None, "success": True, "error_message": ""}
        return web.json_response(body | {"loaded_adapters": self._loaded()})

    async def _load(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await self._body(request)
            name, path = self._check_load(body)
            try:
                adapter = self.cache.describe(name, read_adapter(path))
            except AdapterNotFound:
                raise RequestError(
                    404, f"Loading lora {name} failed: No adapter found for {path}", "NotFoundError"
                ) from None
            lora = self.config.lora
            assert lora is not None
            if adapter.rank > lora.max_rank:
                raise RequestError(
                    500,
                    f"LoRA rank {adapter.rank} is greater than max_lora_rank {lora.max_rank}.",
                    "InternalServerError",
                )
        except RequestError as exc:
            return self._fail(exc)
        wait = self.cache.register(adapter, time.monotonic())
        await asyncio.sleep(wait * self.config.time_scale)
        engine_log(self.config.flavour, f"Loaded new LoRA adapter: name '{name}', path '{path}'")
        return self._done(f"Success: LoRA adapter '{name}' added successfully.")

    def _check_load(self, body: dict[str, Any]) -> tuple[str, str]:
        vllm = self.config.flavour == "vllm"
        missing = [k for k in ("lora_name", "lora_path") if k not in body]
        if vllm and missing:
            raise invalid([_field(k, "missing", "Field required", body) for k in missing])
        name, path = str(body.get("lora_name") or ""), str(body.get("lora_path") or "")
        if not name or not path:
            raise RequestError(400, "Both 'lora_name' and 'lora_path' must be provided.", "InvalidUserInput")
        if name in self.config.served_names:
            raise RequestError(
                400, f"The lora adapter '{name}' conflicts with a served base model.", "InvalidUserInput"
            )
        if name in self.cache.registered and not body.get("load_inplace"):
            raise RequestError(
                400,
                f"The lora adapter '{name}' has already been loaded. If you want to load the adapter in "
                "place, set 'load_inplace' to True.",
                "InvalidUserInput",
            )
        return name, path

    async def _unload(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await self._body(request)
            name = str(body.get("lora_name") or "")
            if not name:
                raise RequestError(
                    400, "'lora_name' needs to be provided to unload a LoRA adapter.", "InvalidUserInput"
                )
            if name not in self.cache.registered:
                raise RequestError(404, f"The lora adapter '{name}' cannot be found.", "NotFoundError")
        except RequestError as exc:
            return self._fail(exc)
        self.cache.unregister(name)
        engine_log(self.config.flavour, f"Removed LoRA adapter: name '{name}'")
        return self._done(f"Success: LoRA adapter '{name}' removed successfully.")
