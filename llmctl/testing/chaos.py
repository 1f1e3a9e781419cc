"""The instruments of a fault-injection run against a live fleet (tests/integration/test_chaos.py): steady
load through the gateway that classifies every answer, an audit of the engine processes on the machine
against the state store, and the report of faults and recovery times.

Every request ends in exactly one outcome. `answer` and `error` (an OpenAI-shaped JSON error) are what a
client is owed; `connect` (nothing listening) and `reset` (the connection dropped) are what a killed gateway
leaves, and are checked against the windows when it was down; `cut` is a stream ended early (a replica died
mid-answer), `wrong` and `bare` are defects: an answer that is not the one asked for, or an error that is
not JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from llmctl.control.launch import RUN_DIR_ENV

DEFECTS = ("wrong", "bare", "timeout")


@dataclass(frozen=True)
class Outcome:
    started: float  # unix seconds
    ended: float
    kind: str  # answer | error | connect | reset | cut | wrong | bare | timeout
    status: int = 0
    detail: str = ""


def _judge(status: int, body: bytes, model: str, max_tokens: int) -> tuple[str, str]:
    try:
        data = json.loads(body)
    except ValueError:
        return ("wrong" if status == 200 else "bare"), body[:200].decode(errors="replace")
    if status != 200:
        error = data.get("error") if isinstance(data, dict) else None
        ok = isinstance(error, dict) and isinstance(error.get("message"), str)
        return ("error" if ok else "bare"), json.dumps(data)[:200]
    usage = data.get("usage") or {} if isinstance(data, dict) else {}
    right = data.get("model") == model and usage.get("completion_tokens") == max_tokens and data["choices"]
    return ("answer" if right else "wrong"), "" if right else json.dumps(data)[:200]


class Load:
    """`workers` clients in a thread of their own, each sending one chat completion after another (every
    `stream_every`-th streamed), with a pause between requests so that two cores keep up."""

    def __init__(
        self,
        base_url: str,
        model: str,
        workers: int = 4,
        max_tokens: int = 16,
        stream_every: int = 4,
        timeout_s: float = 90.0,
        pause_s: float = 0.05,
        extra_body: dict[str, object] | None = None,  # e.g. ignore_eos for a real engine's random weights
    ) -> None:
        self.url = base_url.rstrip("/") + "/v1/chat/completions"
        self.model, self.workers, self.max_tokens = model, workers, max_tokens
        self.stream_every, self.timeout_s, self.pause_s = stream_every, timeout_s, pause_s
        self.extra_body = dict(extra_body or {})
        self.outcomes: list[Outcome] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), name="load", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> list[Outcome]:
        self._stop.set()
        self._thread.join(timeout=self.timeout_s + 30)
        return list(self.outcomes)

    def last_answer_at(self) -> float:
        return max((o.ended for o in self.outcomes if o.kind == "answer"), default=0.0)

    async def _run(self) -> None:
        limits = httpx.Limits(max_keepalive_connections=0)  # a fresh connection per request, as clients do
        async with httpx.AsyncClient(timeout=self.timeout_s, limits=limits) as client:
            await asyncio.gather(*(self._worker(client, i) for i in range(self.workers)))

    async def _worker(self, client: httpx.AsyncClient, index: int) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            stream = index == 0 and n % self.stream_every == 0
            self.outcomes.append(await self._one(client, stream))
            await asyncio.sleep(self.pause_s)

    async def _one(self, client: httpx.AsyncClient, stream: bool) -> Outcome:
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": "chaos"}],
            "max_tokens": self.max_tokens,
            "stream": stream,
            **self.extra_body,
        }
        started = time.time()
        try:
            if stream:
                kind, status, detail = await self._streamed(client, body)
            else:
                r = await client.post(self.url, json=body)
                status = r.status_code
                kind, detail = _judge(status, r.content, self.model, self.max_tokens)
        except httpx.ConnectError as exc:
            kind, status, detail = "connect", 0, str(exc)
        except httpx.TimeoutException as exc:
            kind, status, detail = "timeout", 0, type(exc).__name__
        except httpx.TransportError as exc:
            kind, status, detail = "reset", 0, f"{type(exc).__name__}: {exc}"
        return Outcome(started, time.time(), kind, status, detail)

    async def _streamed(self, client: httpx.AsyncClient, body: dict[str, object]) -> tuple[str, int, str]:
        async with client.stream("POST", self.url, json=body) as r:
            if r.status_code != 200:
                kind, detail = _judge(r.status_code, await r.aread(), self.model, self.max_tokens)
                return kind, r.status_code, detail
            chunks = 0
            try:
                async for line in r.aiter_lines():
                    if line == "data: [DONE]":
                        return ("answer" if chunks else "wrong"), 200, ""
                    if line.startswith("data: "):
                        json.loads(line[6:])
                        chunks += 1
            except ValueError as exc:
                return "wrong", 200, f"a chunk is not JSON: {exc}"
            except httpx.TransportError as exc:
                return "cut", 200, f"after {chunks} chunk(s): {type(exc).__name__}"
            return "cut", 200, f"ended after {chunks} chunk(s) without [DONE]"


def engine_processes(command_word: str = "llmctl.engines.emulator") -> dict[str, list[int]]:
    """Replica name -> pids of live engine processes on this machine (the test hosts share its kernel),
    found by the run-directory marker every replica process carries (llmctl.control.launch)."""
    found: dict[str, list[int]] = {}
    mark = f"{RUN_DIR_ENV}=".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if command_word.encode() not in (proc / "cmdline").read_bytes():
                continue
            env = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for entry in env:
            if entry.startswith(mark):
                found.setdefault(os.path.basename(entry[len(mark) :].decode()), []).append(int(proc.name))
    return found


@dataclass
class Audit:
    """Checks, every `every_s` in a thread, that no replica runs twice and none runs unrecorded."""

    recorded: Callable[[], set[str]]  # replica names in the state store
    every_s: float = 0.5
    violations: list[str] = field(default_factory=list)
    checks: int = 0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def check(self) -> None:
        running = engine_processes()
        names = self.recorded()
        for name, pids in sorted(running.items()):
            if len(pids) > 1:
                self.violations.append(f"{time.time():.1f}: {name} runs twice: pids {sorted(pids)}")
            # Unrecorded: read the store again, the process may have been recorded between the two looks.
            if name not in names and name not in self.recorded() and name in engine_processes():
                self.violations.append(f"{time.time():.1f}: {name} runs unrecorded: pids {pids}")
        self.checks += 1

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.check()
            except Exception as exc:
                self.violations.append(f"audit failed: {type(exc).__name__}: {exc}")


@dataclass(frozen=True)
class Fault:
    kind: str
    started: float  # unix seconds: injected
    ended: float  # the fault over (process continued, lock released, host back); recovery counts from here
    recovered: float  # desired state again


@dataclass
class Report:
    """Each fault kind: how often injected, how long recovery took, and what the requests of its window
    (from injection to recovery) got."""

    faults: list[Fault] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, fault: Fault) -> None:
        self.faults.append(fault)

    def table(self, outcomes: list[Outcome]) -> str:
        lines = [
            "| fault | injected | recovery median (s) | recovery max (s) | requests in its windows | "
            "not answered | answered wrongly |",
            "|---|---|---|---|---|---|---|",
        ]
        for kind in sorted({f.kind for f in self.faults}):
            mine = [f for f in self.faults if f.kind == kind]
            took = [f.recovered - f.ended for f in mine]
            during = [
                o for o in outcomes if any(o.started <= f.recovered and o.ended >= f.started for f in mine)
            ]
            failed = sum(o.kind not in ("answer", *DEFECTS) for o in during)
            wrong = sum(o.kind in DEFECTS for o in during)
            lines.append(
                f"| {kind} | {len(mine)} | {statistics.median(took):.2f} | {max(took):.2f} | {len(during)} | "
                f"{failed} | {wrong} |"
            )
        counts: dict[str, int] = {}
        for o in outcomes:
            counts[o.kind] = counts.get(o.kind, 0) + 1
        lines.append("")
        lines.append("requests: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        lines.extend(self.notes)
        return "\n".join(lines)
