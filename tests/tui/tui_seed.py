"""Deterministic state stores for the dashboard's tests, snapshots and benchmark: fixed timestamps (relative
to NOW), fixed names, fixed metric values. Rows are written with SQL where the store's own helpers would
stamp time.time()."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import cast

from llmctl.control.pools import event_of
from llmctl.control.scrape import EngineSample, Histogram
from llmctl.pool import Grant, PoolDecision, PoolGpu, Preempt, Reason, Refuse, Wait
from llmctl.state.records import ReplicaRow, put_replica
from llmctl.state.store import Store

NOW = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC
BOUNDS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, float("inf"))
ITL_BOUNDS = (0.01, 0.02, 0.05, 0.1, 0.25, float("inf"))


def histogram(bounds: tuple[float, ...], shares: tuple[float, ...], count: float, mean: float) -> Histogram:
    """Cumulative buckets holding `count` observations split by `shares` (one per bound)."""
    cumulative, running = [], 0.0
    for le, share in zip(bounds, shares, strict=True):
        running += share * count
        cumulative.append((le, running))
    return Histogram(tuple(cumulative), mean * count, count)


def sample(t: float, rps: float, running: float, waiting: float, kv: float, slow: bool) -> EngineSample:
    """The cumulative state of an engine `t` seconds after it started, serving `rps` requests/s."""
    n = rps * (t + 10 * math.sin(t / 20))  # a request rate that swings by half either way
    ttft_shares = (0.1, 0.3, 0.3, 0.2, 0.05, 0.05, 0.0) if slow else (0.3, 0.4, 0.25, 0.05, 0.0, 0.0, 0.0)
    itl_shares = (0.2, 0.5, 0.25, 0.05, 0.0, 0.0)
    return EngineSample(
        running=running,
        waiting=waiting,
        kv_usage=kv,
        prompt_tokens=n * 900,
        generation_tokens=n * 200,
        requests=n,
        ttft=histogram(BOUNDS, ttft_shares, n, 0.3 if slow else 0.1),
        itl=histogram(ITL_BOUNDS, itl_shares, n * 200, 0.02),
        e2e=histogram(BOUNDS, (0.0, 0.0, 0.1, 0.3, 0.4, 0.2, 0.0), n, 1.0),
    )


def gpu(index: int, name: str, total: int, used: int, util: int) -> dict[str, object]:
    return {
        "index": index,
        "name": name,
        "memory_total_mib": total,
        "memory_used_mib": used,
        "utilization_pct": util,
        "uuid": f"GPU-{index:04d}",
        "catalog": None,
    }


def host_facts(host: str, gpus: list[dict[str, object]]) -> dict[str, object]:
    return {"host": host, "gpus": gpus, "gpu_source": "nvidia-smi", "notes": []}


def slot(name: str, host: str, gpus: tuple[int, ...], port: int, engine: str) -> dict[str, object]:
    argv = [engine, "serve", "meta-llama/Llama-3.1-8B-Instruct", "--port", str(port)]
    if len(gpus) > 1:
        argv += ["--tensor-parallel-size", str(len(gpus))]
    return {
        "name": name, "host": host, "address": "127.0.0.1", "gpus": list(gpus), "port": port, "argv": argv,
        "env": {"CUDA_VISIBLE_DEVICES": ",".join(map(str, gpus))}, "spec_hash": f"h-{name}", "engine": engine,
    }  # fmt: skip


def deployment_spec(
    workload: str, flavour: str, slots: list[dict[str, object]], ttft_s: float | None, sleep: bool = False
) -> dict[str, object]:
    return {
        "workload": workload,
        "flavour": flavour,
        "route": "/v1",
        "api_key_env": None,
        "scaling": {
            "min_replicas": 1, "max_replicas": len(slots), "signal": "in_flight", "target": 8.0,
            "idle_timeout_s": 300.0, "ttft_target_s": ttft_s, "warm_pool": 0, "down_window_s": 60.0,
        },
        "cold_start_s": 60.0,
        "wake_s": 5.0,
        "sleep_mode": sleep,
        "initial": 1,
        "slots": slots,
    }  # fmt: skip


def put_deployment(store: Store, name: str, spec: dict[str, object]) -> None:
    store.db.execute(
        "INSERT OR REPLACE INTO deployments (name, spec, spec_hash, applied_at) VALUES (?, ?, ?, ?)",
        (name, json.dumps(spec), f"d-{name}", NOW - 3600),
    )


def put_samples(
    store: Store, replica: str, rps: float, load: float, slow: bool, count: int = 60, every: float = 10.0
) -> None:
    rows = []
    for k in range(count):
        at = NOW - (count - 1 - k) * every
        t = 3600 + k * every
        wave = (k % 12) / 12
        s = sample(t, rps, load * (0.5 + wave), load * wave * 0.5 if slow else 0.0, 0.2 + 0.6 * wave, slow)
        rows.append((replica, at, json.dumps(asdict(s))))
    store.db.executemany("INSERT INTO metric_samples (replica, at, sample) VALUES (?, ?, ?)", rows)


def put_event(store: Store, at: float, subject: str, kind: str, reason: str) -> None:
    store.db.execute(
        "INSERT INTO events (at, subject, kind, reason) VALUES (?, ?, ?, ?)", (at, subject, kind, reason)
    )


def put_intent(store: Store, at: float, kind: str, target: str, arg: str, state: str, result: str) -> None:
    store.db.execute(
        "INSERT INTO intents (at, kind, target, arg, state, result) VALUES (?, ?, ?, ?, ?, ?)",
        (at, kind, target, arg, state, result),
    )


def replica(
    name: str, deployment: str, host: str, gpus: tuple[int, ...], port: int, phase: str, restarts: int = 0,
    reason: str = "",
) -> ReplicaRow:  # fmt: skip
    return ReplicaRow(
        name, deployment, host, "127.0.0.1", ",".join(map(str, gpus)), port, 4000 + port % 1000, phase,
        f"h-{name}", NOW - 1800, restarts, reason,
    )  # fmt: skip


def seed_demo(path: Path) -> Path:
    """Three hosts (one with stale facts, one never gathered), three deployments (one per workload class)
    with replicas in several phases, ten minutes of samples, events and intents."""
    store = Store(path)
    with store.transaction():
        store.put_facts("gpu-a", host_facts("gpu-a", [
            gpu(i, "NVIDIA H100 80GB HBM3", 81559, 70000 if i < 4 else 1000 * i, 90 - 5 * i) for i in range(8)
        ]), gathered_at=NOW - 20)  # fmt: skip
        store.put_facts("gpu-b", host_facts("gpu-b", [
            gpu(i, "NVIDIA A100-SXM4-80GB", 81920, 60000, 40) for i in range(4)
        ]), gathered_at=NOW - 7200)  # fmt: skip
        chat_slots = [
            slot("chat-0", "gpu-a", (0, 1), 8100, "sglang"),
            slot("chat-1", "gpu-a", (2, 3), 8101, "sglang"),
        ]
        batch_slots = [
            slot("batch-0", "gpu-b", (0,), 8200, "vllm"),
            slot("batch-1", "gpu-b", (1,), 8201, "vllm"),
        ]
        burst_slots = [slot("burst-0", "gpu-c", (0,), 8300, "vllm")]
        put_deployment(store, "chat", deployment_spec("online", "sglang", chat_slots, 0.5))
        put_deployment(store, "batch", deployment_spec("offline", "vllm", batch_slots, None))
        put_deployment(store, "burst", deployment_spec("semi-online", "vllm", burst_slots, 1.0, sleep=True))
        put_replica(store, replica("chat-0", "chat", "gpu-a", (0, 1), 8100, "ready"))
        put_replica(store, replica("chat-1", "chat", "gpu-a", (2, 3), 8101, "ready", restarts=1))
        put_replica(store, replica("batch-0", "batch", "gpu-b", (0,), 8200, "ready"))
        put_replica(
            store,
            replica(
                "batch-1", "batch", "gpu-b", (1,), 8201, "failed", 3, "CUDA out of memory (gave up after 3)"
            ),
        )
        put_replica(store, replica("burst-0", "burst", "gpu-c", (0,), 8300, "sleeping"))
        put_samples(store, "chat-0", rps=4.0, load=12, slow=True)
        put_samples(store, "chat-1", rps=3.0, load=10, slow=True)
        put_samples(store, "batch-0", rps=1.5, load=200, slow=False)
        for k in range(30):
            subject = ("chat-0", "chat-1", "batch-1", "burst-0", "chat")[k % 5]
            kind = ("ready", "scraped", "restart", "sleep", "scale")[k % 5]
            put_event(store, NOW - 600 + k * 20, subject, kind, f"{kind} #{k} of {subject}")
        put_intent(store, NOW - 300, "restart", "batch-1", "", "failed", "batch-1: CUDA out of memory")
        put_intent(store, NOW - 120, "sleep", "burst-0", "", "done", "draining, then sleep")
        put_intent(store, NOW - 10, "scale", "chat", "3", "pending", "")
    store.close()
    return path


def seed_fleet(path: Path, hosts: int, gpus_per_host: int, replicas_: int, samples: int, events: int) -> Path:
    """A large fleet for the benchmark: `replicas_` one-GPU replicas spread over `hosts` hosts, ten per
    deployment, each with `samples` metric samples, and `events` events."""
    store = Store(path)
    with store.transaction():
        for h in range(hosts):
            name = f"host-{h:03d}"
            store.put_facts(name, host_facts(name, [
                gpu(i, "NVIDIA H100 80GB HBM3", 81559, 40000 + 100 * i, (h * 7 + i) % 100)
                for i in range(gpus_per_host)
            ]), gathered_at=NOW - h)  # fmt: skip
        per_dep = 10
        for d in range(max(1, replicas_ // per_dep)):
            names = range(d * per_dep, min(replicas_, (d + 1) * per_dep))
            slots = [
                slot(f"r-{i:04d}", f"host-{i % hosts:03d}", (i // hosts,), 9000 + i, "vllm") for i in names
            ]
            put_deployment(store, f"dep-{d:02d}", deployment_spec("online", "vllm", slots, 0.5))
            for i in names:
                put_replica(store, replica(f"r-{i:04d}", f"dep-{d:02d}", f"host-{i % hosts:03d}",
                                           (i // hosts,), 9000 + i, "ready"))  # fmt: skip
                put_samples(store, f"r-{i:04d}", rps=2.0, load=8, slow=i % 3 == 0, count=samples, every=2.0)
        for k in range(events):
            put_event(store, NOW - events + k, f"r-{k % max(1, replicas_):04d}", "scraped", f"event {k}")
    store.close()
    return path


def put_pool_event(
    store: Store, at: float, subject: str, kind: str, reason: str, data: dict[str, object]
) -> None:
    """A pool decision as llmctl.control.pools records it: words for people, typed data for tools."""
    store.db.execute(
        "INSERT INTO events (at, subject, kind, reason, data) VALUES (?, ?, ?, ?, ?)",
        (at, subject, kind, reason, json.dumps(data, sort_keys=True)),
    )


def pooled_spec(
    workload: str,
    slots: list[dict[str, object]],
    pool: str,
    priority: int,
    lo: int,
    hi: int,
    sleep: bool = False,
) -> dict[str, object]:
    spec = deployment_spec(workload, "vllm", slots, 0.5, sleep=sleep)
    scaling = {**cast(dict[str, object], spec["scaling"]), "min_replicas": lo, "max_replicas": hi}
    return {
        **spec,
        "scaling": scaling,
        "pool": pool,
        "pool_priority": priority,
        "pool_weight": 1.0,
        "initial": lo,
    }


def pool_decisions() -> list[tuple[float, PoolDecision, str]]:
    """How pool a came to be as seeded: burst-2 preempted for chat, chat waiting for the drain, then granted
    gpu-p:2, and later refused a fifth replica. (at, decision, the granted slot)."""
    gpu2 = (PoolGpu("gpu-p", 2),)
    return [
        (NOW - 300, Preempt("burst", "burst-2", "chat", Reason.PRIORITY, "burst-2 above its minimum 0"), ""),
        (NOW - 290, Wait("chat", gpu2, Reason.DRAINING, "chat waits for gpu-p:2 to drain"), ""),
        (NOW - 240, Grant("chat", gpu2, Reason.TARGET, "chat replica 3 toward its target 3"), "chat-2"),
        (NOW - 60, Refuse("chat", 1, Reason.POOL_FULL, "chat wants 1 more; nothing may be taken"), ""),
    ]


def seed_pool(path: Path) -> Path:
    """Pool `a`: the four GPUs of host gpu-p shared by chat (priority 2, holding three) and burst (priority
    1, asleep on the last), with the pool's decisions as events; beside it gpu-x, in no pool, with embed."""
    store = Store(path)
    with store.transaction():
        store.put_facts("gpu-p", host_facts("gpu-p", [
            gpu(i, "NVIDIA H100 80GB HBM3", 81559, 70000 if i < 3 else 4000, 80 if i < 3 else 0) for i in range(4)
        ]), gathered_at=NOW - 15)  # fmt: skip
        store.put_facts("gpu-x", host_facts("gpu-x", [
            gpu(i, "NVIDIA H100 80GB HBM3", 81559, 50000 if i == 0 else 0, 60 if i == 0 else 0) for i in range(2)
        ]), gathered_at=NOW - 15)  # fmt: skip
        # One candidate slot per GPU for each member (the planner's pool slots), named as the replicas are.
        chat = [slot(f"chat-{g}", "gpu-p", (g,), 8400 + g, "vllm") for g in range(4)]
        burst = [slot(f"burst-{g}", "gpu-p", (g,), 8500 + g, "vllm") for g in range(4)]
        put_deployment(store, "chat", pooled_spec("online", chat, "a", 2, 1, 4))
        put_deployment(store, "burst", pooled_spec("semi-online", burst, "a", 1, 0, 1, sleep=True))
        put_deployment(
            store,
            "embed",
            deployment_spec("online", "vllm", [slot("embed-0", "gpu-x", (0,), 8600, "vllm")], 0.5),
        )
        for g in range(3):
            put_replica(store, replica(f"chat-{g}", "chat", "gpu-p", (g,), 8400 + g, "ready"))
        put_replica(store, replica("burst-3", "burst", "gpu-p", (3,), 8503, "sleeping"))
        put_replica(store, replica("burst-2", "burst", "gpu-p", (2,), 8502, "stopped"))  # preempted: gone
        put_replica(store, replica("embed-0", "embed", "gpu-x", (0,), 8600, "ready"))
        put_event(store, NOW - 400, "embed-0", "ready", "health 200")
        for at, decision, slot_ in pool_decisions():
            put_pool_event(store, at, *event_of("a", decision, slot_))
        put_event(store, NOW - 30, "chat-2", "ready", "health 200")
    store.close()
    return path
