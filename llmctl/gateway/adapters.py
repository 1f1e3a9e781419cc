"""LoRA adapters at the gateway: each adapter is a model name of its own, served by its base deployment's
replicas. A request for one goes to a replica that has it loaded (routing.AdapterAffinity); one that does
not is asked to load it first, once, as the engines' own APIs take it:

- vLLM: POST /v1/load_lora_adapter {"lora_name", "lora_path"} (served with VLLM_ALLOW_RUNTIME_LORA_UPDATING,
  which the planner sets for a deployment with adapters loaded at run time); the request then names the
  adapter itself as its model (vllm/entrypoints/serve/lora/api_router.py, openai/models/serving.py).
- SGLang: POST /load_lora_adapter {"lora_name", "lora_path"}; its OpenAI API names an adapter as model
  "base:adapter", so the body's model is rewritten (SGLang's LoRA serving docs).

Whether the replica has the adapter is read from data, never from an error's wording: SGLang's answer lists
its loaded_adapters; after a refusal from vLLM (one already loaded is refused with 400) its /v1/models says.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
from aiohttp import web

from llmctl.engines import sglang, vllm
from llmctl.engines.api_key import auth_headers
from llmctl.gateway.metrics import GatewayMetrics
from llmctl.gateway.registry import DeploymentRoutes, Endpoint


def upstream_body(routes: DeploymentRoutes, adapter: str, body: dict[str, Any], raw: bytes) -> bytes:
    """The request as the replica's engine takes it: unchanged for vLLM, model "base:adapter" for SGLang."""
    if routes.flavour != "sglang":
        return raw
    return json.dumps({**body, "model": sglang.adapter_model(routes.name, adapter)}).encode()


class AdapterLoader:
    def __init__(self, metrics: GatewayMetrics) -> None:
        self.metrics = metrics
        # One load at a time per replica and adapter: concurrent first requests wait for the same load.
        self._locks: dict[tuple[str, str, str], asyncio.Lock] = {}

    def choose(self, routes: DeploymentRoutes, adapter: str, exclude: list[str]) -> Endpoint | None:
        chosen = routes.choose_adapter(adapter, exclude)
        if chosen is None:
            return None
        endpoint, hit = chosen
        self.metrics.adapter_requests.labels(routes.name, adapter, "hit" if hit else "miss").inc()
        # Counted as loaded at once, so the requests behind this one meet it here (and wait for its load).
        endpoint.used(adapter, routes.adapter_slots)
        return endpoint

    async def ensure_loaded(
        self, session: aiohttp.ClientSession, routes: DeploymentRoutes, endpoint: Endpoint, adapter: str
    ) -> web.Response | None:
        """None once the replica has the adapter; else the replica's refusal, passed to the client. Raises
        aiohttp.ClientError when the replica cannot be reached (the caller tries another)."""
        if adapter in endpoint.registered:
            return None
        lock = self._locks.setdefault((endpoint.name, endpoint.url, adapter), asyncio.Lock())
        async with lock:
            if adapter in endpoint.registered:
                return None
            # A replica busy loading counts as busy: the next miss goes elsewhere rather than queue behind it.
            endpoint.outstanding += 1
            try:
                refusal = await self._load(session, routes, endpoint, adapter)
            except BaseException:
                endpoint.forget(adapter)
                raise
            finally:
                endpoint.outstanding -= 1
        if refusal is not None:
            endpoint.forget(adapter)
            self.metrics.adapter_loads.labels(routes.name, adapter, "failed").inc()
            return refusal
        endpoint.registered.add(adapter)
        self.metrics.adapter_loads.labels(routes.name, adapter, "loaded").inc()
        return None

    async def _load(
        self, session: aiohttp.ClientSession, routes: DeploymentRoutes, endpoint: Endpoint, adapter: str
    ) -> web.Response | None:
        spec = routes.adapters[adapter]
        path = sglang.LOAD_LORA_PATH if routes.flavour == "sglang" else vllm.LOAD_LORA_PATH
        headers = auth_headers(endpoint.key)
        started = time.perf_counter()
        payload = {"lora_name": adapter, "lora_path": spec.path}
        async with session.post(endpoint.url + path, json=payload, headers=headers) as answer:
            body = await answer.read()
            status = answer.status
        self.metrics.adapter_load_time.labels(routes.name).observe(time.perf_counter() - started)
        if status == 200 or await self._has(session, routes, endpoint, adapter, body):
            return None
        return web.Response(
            status=status if status >= 400 else 502,
            body=body,
            headers={"Content-Type": answer.headers.get("Content-Type", "application/json")},
        )

    async def _has(
        self,
        session: aiohttp.ClientSession,
        routes: DeploymentRoutes,
        endpoint: Endpoint,
        adapter: str,
        body: bytes,
    ) -> bool:
        """Whether a replica that refused the load has the adapter anyway (loaded before the gateway knew)."""
        if routes.flavour == "sglang":
            try:
                loaded = json.loads(body).get("loaded_adapters") or {}
            except (ValueError, AttributeError):
                return False
            return adapter in loaded
        async with session.get(endpoint.url + "/v1/models", headers=auth_headers(endpoint.key)) as models:
            if models.status != 200:
                return False
            data = (await models.json(content_type=None)).get("data") or []
        return any(isinstance(m, dict) and m.get("id") == adapter for m in data)
