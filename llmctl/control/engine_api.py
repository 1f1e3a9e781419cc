"""The HTTP endpoints the control plane calls on a replica, per engine flavour: health, metrics, sleep and
wake-up. vLLM: /health, /metrics, POST /sleep?level=1, POST /wake_up. SGLang: /health, /metrics,
POST /release_memory_occupation, POST /resume_memory_occupation (both need the engine's sleep mode on)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from llmctl.config.inventory import Host
from llmctl.control.scrape import EngineSample, parse_engine_metrics
from llmctl.engines.api_key import auth_headers


@dataclass(frozen=True)
class EngineEndpoints:
    health: str
    metrics: str
    sleep: str
    wake: str


ENDPOINTS = {
    "vllm": EngineEndpoints("/health", "/metrics", "/sleep?level=1", "/wake_up"),
    "sglang": EngineEndpoints(
        "/health", "/metrics", "/release_memory_occupation", "/resume_memory_occupation"
    ),
}


def base_url(host: Host, address: str, port: int) -> str:
    # Local replicas listen on loopback only (the planner binds them there).
    return f"http://{'127.0.0.1' if host.connection == 'local' else address}:{port}"


@dataclass(frozen=True)
class Probe:
    """One look at a replica over HTTP: healthy or not, and its metrics when it answered them."""

    healthy: bool
    sample: EngineSample | None = None
    metrics_text: str = ""
    problem: str = ""


async def probe(client: httpx.AsyncClient, url: str, flavour: str, key: str | None = None) -> Probe:
    """`key`: the replica's API key (SGLang asks for it on /metrics' neighbours; sent on every call)."""
    paths = ENDPOINTS[flavour]
    headers = auth_headers(key)
    try:
        health = await client.get(url + paths.health, headers=headers)
    except httpx.HTTPError as exc:
        return Probe(False, problem=f"health check failed: {type(exc).__name__}")
    if health.status_code != 200:
        return Probe(False, problem=f"health check answered {health.status_code}")
    try:
        metrics = await client.get(url + paths.metrics, headers=headers)
        if metrics.status_code != 200:
            return Probe(True, problem=f"/metrics answered {metrics.status_code}")
        return Probe(True, parse_engine_metrics(metrics.text, flavour), metrics.text)
    except (httpx.HTTPError, ValueError) as exc:
        return Probe(True, problem=f"/metrics unreadable: {exc}")


async def set_sleeping(
    client: httpx.AsyncClient, url: str, flavour: str, asleep: bool, key: str | None = None
) -> str:
    """Put a replica to sleep or wake it; returns '' or what went wrong. `key`: the replica's API key."""
    paths = ENDPOINTS[flavour]
    try:
        r = await client.post(
            url + (paths.sleep if asleep else paths.wake), timeout=300.0, headers=auth_headers(key)
        )
    except httpx.HTTPError as exc:
        return f"{'sleep' if asleep else 'wake-up'} request failed: {type(exc).__name__}"
    if r.status_code != 200:
        return f"{'sleep' if asleep else 'wake-up'} answered {r.status_code}: {r.text[:200]}"
    return ""
