"""Autoscaling end to end with emulated engines: a semi-online deployment idles to zero (its replica put to
sleep as the warm pool), a burst through the gateway wakes it and starts a second one, the burst ends and
it goes back to zero; every step is an event with its reason and no request fails. Also: API keys."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from llmctl.testing.local_fleet import LocalFleet, wait_for

pytestmark = pytest.mark.slow

BURST_S = 6.0
WORKERS = 16


async def burst(port: int, seconds: float) -> list[tuple[int, int]]:
    """Closed-loop streaming clients for `seconds`; (status, streamed chunks) per request."""
    results: list[tuple[int, int]] = []
    deadline = time.monotonic() + seconds
    body = {"model": "burst", "prompt": "tell me a story", "max_tokens": 600, "stream": True}

    async def worker(client: httpx.AsyncClient) -> None:
        while time.monotonic() < deadline:
            chunks = 0
            async with client.stream("POST", f"http://127.0.0.1:{port}/v1/completions", json=body) as r:
                async for line in r.aiter_lines():
                    if line.startswith("data: ") and line != "data: [DONE]":
                        json.loads(line[6:])
                        chunks += 1
            results.append((r.status_code, chunks))

    async with httpx.AsyncClient(timeout=120) as client:
        await asyncio.gather(*(worker(client) for _ in range(WORKERS)))
    return results


def test_a_burst_scales_up_from_zero_and_back_down_with_reasons(scaling_fleet: LocalFleet) -> None:
    scaling_fleet.apply(
        scaling_fleet.playbook(
            name="burst",
            workload="semi-online",
            scaling={
                "min_replicas": 0,
                "max_replicas": 2,
                "signal": "in_flight",
                "target": 4,
                "idle_timeout_s": 2,
                "down_window_s": 1,
            },
        )
    )
    scaling_fleet.start_controller()
    # Idle: down to zero, the replica kept asleep as the warm pool.
    wait_for("burst-0 asleep", lambda: scaling_fleet.event("burst-0", "slept"), timeout=30)
    to_zero = [e for e in scaling_fleet.events() if e.kind == "scale" and "scale 1 to 0" in e.reason]
    assert to_zero and "idle" in to_zero[0].reason and "sleep 1 (warm pool)" in to_zero[0].reason
    burst_started = time.time()

    results = asyncio.run(burst(scaling_fleet.gateway_port, BURST_S))

    # Nothing lost, nothing failed while capacity existed: every request streamed all its tokens.
    assert len(results) >= WORKERS
    assert {status for status, _ in results} == {200}
    assert all(chunks >= 600 for _, chunks in results)
    ups = [
        e
        for e in scaling_fleet.events()
        if e.kind == "scale" and e.at >= burst_started and "scale 0 to" in e.reason
    ]
    assert ups and "wake 1 sleeping" in ups[0].reason
    assert scaling_fleet.event("burst-0", "woke", burst_started)
    second = scaling_fleet.event("burst-1", "started", burst_started)
    assert second is not None and "scale up to 2" in second.reason
    # The burst is over: back to zero, again with the reason.
    wait_for(
        "scale back to zero",
        lambda: [r.phase for r in scaling_fleet.rows().values()] == ["sleeping"],
        timeout=40,
    )
    downs = [
        e
        for e in scaling_fleet.events()
        if e.kind == "scale" and e.at > burst_started and " to 0" in e.reason
    ]
    assert downs and all("idle" in e.reason or "in-flight 0" in e.reason for e in downs)
    # One replica stays asleep as the warm pool for the next burst; the other was stopped.
    assert scaling_fleet.event("burst-0", "stopped", burst_started) or scaling_fleet.event(
        "burst-1", "stopped", burst_started
    )


def test_api_key_is_required_and_never_recorded(scaling_fleet: LocalFleet) -> None:
    secret = "sk-test-" + "7f3a9c1e5b"
    scaling_fleet.vars["BURST_KEY"] = secret
    scaling_fleet.apply(scaling_fleet.playbook(name="burst", gateway={"api_key_env": "BURST_KEY"}))
    scaling_fleet.start_controller()
    url = f"http://127.0.0.1:{scaling_fleet.gateway_port}/v1/completions"
    body = {"model": "burst", "prompt": "hi", "max_tokens": 3}
    assert httpx.post(url, json=body, timeout=30).status_code == 401
    wrong = httpx.post(url, json=body, headers={"Authorization": "Bearer nope"}, timeout=30)
    assert wrong.status_code == 401
    ok = httpx.post(url, json=body, headers={"Authorization": f"Bearer {secret}"}, timeout=30)
    assert ok.status_code == 200
    controller_log = scaling_fleet.stop_controller()
    status = scaling_fleet.llmctl("status", "--json").stdout
    events = scaling_fleet.llmctl("events", "--json", "-n", "1000").stdout
    replica_log = scaling_fleet.llmctl(
        "logs", "burst-0", "-i", str(scaling_fleet.inventory), "-n", "1000"
    ).stdout
    store_bytes = b"".join(p.read_bytes() for p in scaling_fleet.tmp.glob("state.db*"))
    for where, text in [
        ("status", status),
        ("events", events),
        ("controller log", controller_log),
        ("replica log", replica_log),
    ]:
        assert text.strip(), f"{where} is empty: the check would prove nothing"
        assert secret not in text, f"the API key leaked into {where}"
    assert secret.encode() not in store_bytes
