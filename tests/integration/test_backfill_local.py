"""Back-fill end to end with emulated engines: an offline deployment runs on the idle spare slot of a
semi-online one and a batch job makes progress there; a burst scales the semi-online deployment up onto that
slot, so the controller stops the back-fill replica first (the job pauses), and starts it again once the burst
has passed (the job resumes). The output has one successful line per request; events say why at each step."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
import yaml

from llmctl.testing.local_fleet import LocalFleet, wait_for

pytestmark = pytest.mark.slow

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
REQUESTS = 40
ANSWER_TOKENS = 500  # long answers at concurrency 2: the job is still running when the burst comes


def playbook(path: Path, min_replicas: int = 0) -> Path:
    emulated = {"model": MODEL, "engine": "emulated", "emulate": "vllm"}
    deployments = [
        {
            "name": "burst",
            "workload": "semi-online",
            **emulated,
            "scaling": {
                "min_replicas": min_replicas, "max_replicas": 2, "signal": "in_flight", "target": 4,
                "idle_timeout_s": 2, "down_window_s": 1,
            },
        },
        {"name": "enrich", "workload": "offline", **emulated, "placement": {"backfill_for": "burst"}},
    ]  # fmt: skip
    path.write_text(yaml.safe_dump({"deployments": deployments}))
    return path


async def burst(port: int, seconds: float, workers: int = 16) -> list[int]:
    statuses: list[int] = []
    deadline = time.monotonic() + seconds
    body = {"model": "burst", "prompt": "tell me a story", "max_tokens": 600}

    async def worker(client: httpx.AsyncClient) -> None:
        while time.monotonic() < deadline:
            statuses.append(
                (await client.post(f"http://127.0.0.1:{port}/v1/completions", json=body)).status_code
            )

    async with httpx.AsyncClient(timeout=120) as client:
        await asyncio.gather(*(worker(client) for _ in range(workers)))
    return statuses


def phase(fleet: LocalFleet, replica: str) -> str | None:
    row = fleet.rows().get(replica)
    return row.phase if row else None


def lines_in(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_backfill_gives_the_slot_back_for_a_burst_and_the_batch_loses_nothing(
    scaling_fleet: LocalFleet,
) -> None:
    scaling_fleet.apply(playbook(scaling_fleet.tmp / "pb.yaml"))
    scaling_fleet.start_controller()
    # The spare slot burst-1 is idle: the controller lends it to enrich.
    wait_for("enrich-0 ready", lambda: phase(scaling_fleet, "enrich-0") == "ready")
    lent = scaling_fleet.event("enrich-0", "started")
    assert lent is not None and "back-fill: burst's slot burst-1 is idle" in lent.reason
    wait_for("burst-0 asleep", lambda: scaling_fleet.event("burst-0", "slept"), timeout=30)

    inp, out = scaling_fleet.tmp / "in.jsonl", scaling_fleet.tmp / "out.jsonl"
    with inp.open("w") as f:
        for i in range(REQUESTS):
            body = {"model": "x", "prompt": f"row {i}", "max_tokens": ANSWER_TOKENS}
            f.write(
                json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/completions", "body": body})
            )
            f.write("\n")
    job = subprocess.Popen(
        [sys.executable, "-m", "llmctl.cli.main", "batch", "run", str(inp), "-d", "enrich", "-o", str(out),
         "-i", str(scaling_fleet.inventory), "--concurrency", "2", "--json"],
        env=scaling_fleet.vars, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for("the batch under way", lambda: lines_in(out) >= 3, timeout=60)
        burst_started = time.time()
        statuses = asyncio.run(burst(scaling_fleet.gateway_port, 6.0))
        assert statuses and set(statuses) == {200}

        # The burst took the slot back: enrich-0 stopped first (while the job still ran), then burst-1
        # started on its GPUs.
        given_back = wait_for(
            "enrich-0 given back", lambda: scaling_fleet.event("enrich-0", "stopped", burst_started)
        )
        assert "gives its GPUs back: burst scales up" in given_back.reason
        assert job.poll() is None, "the batch ended before the slot was taken back: nothing was shown"
        taken = wait_for("burst-1 started", lambda: scaling_fleet.event("burst-1", "started", burst_started))
        assert given_back.at <= taken.at

        # The burst is over: burst-1 goes, enrich-0 comes back on the slot and the job finishes.
        released = wait_for(
            "burst-1 stopped", lambda: scaling_fleet.event("burst-1", "stopped", taken.at), timeout=60
        )
        relent = wait_for(
            "enrich-0 again", lambda: scaling_fleet.event("enrich-0", "started", released.at), timeout=30
        )
        assert "is idle" in relent.reason
        stdout, stderr = job.communicate(timeout=300)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == 0, stderr[-3000:]
    assert json.loads(stdout)["state"] == "done"
    results = [json.loads(x) for x in out.read_text().splitlines()]
    seen = Counter(r["custom_id"] for r in results)
    assert set(seen) == {f"r{i}" for i in range(REQUESTS)} and max(seen.values()) == 1
    assert all(r["error"] is None and r["response"]["status_code"] == 200 for r in results)
    # Never both on the slot's GPUs: every start of one came after the other had stopped.
    timeline = sorted(
        (e.at, e.subject, e.kind) for e in scaling_fleet.events()
        if e.subject in ("enrich-0", "burst-1") and e.kind in ("started", "stopped")
    )  # fmt: skip
    running: set[str] = set()
    for _, subject, kind in timeline:
        if kind == "started":
            assert not running, f"{subject} started while {running} still held the GPUs"
            running.add(subject)
        else:
            running.discard(subject)


def test_a_rolling_replace_takes_the_borrowed_slot_back_for_its_surge(scaling_fleet: LocalFleet) -> None:
    pb = playbook(scaling_fleet.tmp / "pb.yaml", min_replicas=1)  # burst-0 serves while it is replaced
    scaling_fleet.apply(pb)
    scaling_fleet.start_controller()
    wait_for("enrich-0 ready", lambda: phase(scaling_fleet, "enrich-0") == "ready")
    scaling_fleet.stop_controller()  # the apply below runs alone: what it does is its own doing
    changed = yaml.safe_load(pb.read_text())
    changed["deployments"][0]["engine_args"] = {"--max-num-seqs": 128}
    pb.write_text(yaml.safe_dump(changed))
    before = time.time()
    scaling_fleet.apply(pb)
    given_back = scaling_fleet.event("enrich-0", "stopped", before)
    surge = scaling_fleet.event("burst-1", "started", before)
    assert given_back is not None and "burst-1 surges while burst-0 is replaced" in given_back.reason
    assert surge is not None and given_back.at <= surge.at
    # The surge went once burst-0 was replaced; the slot is idle, so a controller lends it again.
    assert scaling_fleet.event("burst-1", "stopped", surge.at) is not None
    scaling_fleet.start_controller()
    wait_for("enrich-0 lent again", lambda: scaling_fleet.event("enrich-0", "started", before))
