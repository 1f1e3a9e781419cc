"""The batch runner: sends requests to the replicas with a fixed number in flight, retries what may succeed
later, and appends each result to the output file, durably, before counting it done.

Stopping (SIGINT, SIGTERM, `stop()`): no new request starts; those in flight get `grace_s` to finish, then
are cancelled (they have no result line, so a resume sends them again); every result received is written
and fsynced before `run` returns. A second signal cancels in-flight requests at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from llmctl.batch.inputs import BatchRequest
from llmctl.batch.outfile import OutputFile
from llmctl.batch.pool import Replica, ReplicaPool
from llmctl.batch.results import encode, error_of, result_line, usage_of
from llmctl.batch.retry import (
    Backoff,
    Failure,
    ReplicaCooloff,
    Verdict,
    classify_failure,
    classify_status,
    retry_after,
)
from llmctl.batch.summary import Counters
from llmctl.engines.api_key import auth_headers
from llmctl.errors import LlmctlError
from llmctl.gateway.routing import make_router


@dataclass(frozen=True)
class RunOptions:
    concurrency: int
    model: str | None = None  # replaces each body's "model" (the deployment's served name)
    route: str = "least_outstanding"
    timeout_s: float = 600.0  # one attempt, end to end
    max_attempts: int = 8  # attempts that failed with a retryable error, per request
    pause_timeout_s: float = 600.0  # give up after this long with no replica reachable
    grace_s: float = 10.0
    flush_interval_s: float = 0.2
    flush_lines: int = 512
    api_key: str | None = None
    refresh_s: float = 2.0
    backoff: Backoff = field(default_factory=Backoff)
    cooloff: ReplicaCooloff = field(default_factory=ReplicaCooloff)


@dataclass
class Outcome:
    interrupted: bool = False  # stopped by a signal or stop()
    signal: int | None = None
    gave_up: list[str] = field(default_factory=list)  # custom_ids whose retries ran out
    reason: str = ""  # why the run ended early, in words


@dataclass(frozen=True)
class _Result:
    data: bytes  # the encoded line
    ok: bool
    input_tokens: int
    output_tokens: int


@dataclass
class _Attempt:
    verdict: Verdict
    status: int = 0
    body: Any = None
    request_id: str = ""
    retry_after_s: float | None = None
    detail: str = ""


class BatchRunner:
    def __init__(
        self,
        urls: list[str],
        options: RunOptions,
        output: OutputFile,
        counters: Counters,
        *,
        refresh: Callable[[], Sequence[str] | Mapping[str, str | None]] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
        keys: Mapping[str, str] | None = None,
    ) -> None:
        """`keys`: replica URL -> that replica's own API key, sent instead of `options.api_key` (the
        deployment's, for the gateway); `refresh` returns the URLs, or each URL with its key."""
        self.options = options
        self.output = output
        self.counters = counters
        self.refresh = refresh
        self.pool = ReplicaPool(urls, make_router(options.route), options.cooloff)
        self._keys = dict(keys or {})
        self.outcome = Outcome()
        self._transport = transport
        self._rng = rng or random.Random()
        self._stop = asyncio.Event()
        self._results: asyncio.Queue[_Result | None] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._queue: list[BatchRequest] = []
        self._client_args: dict[str, Any] = {}

    # -- control --------------------------------------------------------------------------------------
    def stop(self, signum: int | None = None, reason: str = "") -> None:
        """Finish cleanly: first call stops new requests and drains in flight; a second cancels them."""
        if self._stop.is_set():
            for task in self._workers:
                task.cancel()
            return
        self.outcome.interrupted = signum is not None or not reason
        self.outcome.signal = signum
        self.outcome.reason = reason or (f"stopped by {signal.Signals(signum).name}" if signum else "stopped")
        self._stop.set()
        asyncio.get_running_loop().call_later(self.options.grace_s, self._cancel_workers)

    def _cancel_workers(self) -> None:
        for task in self._workers:
            task.cancel()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop, int(sig))

    @staticmethod
    def remove_signal_handlers() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)

    # -- the run --------------------------------------------------------------------------------------
    async def run(self, requests: list[BatchRequest]) -> Outcome:
        o = self.options
        self._queue = list(reversed(requests))  # pop() from the end keeps input order
        # One small client per worker: httpcore scans every connection of a pool on each request, so one
        # pool of thousands of connections costs more CPU than the requests; a worker has one request in
        # flight and needs a connection per replica at most. They share one TLS context (costly to build).
        self._client_args = {
            "limits": httpx.Limits(max_connections=None, max_keepalive_connections=8),
            "timeout": httpx.Timeout(o.timeout_s, connect=5.0, pool=None),
            "headers": {"Authorization": f"Bearer {o.api_key}"} if o.api_key else {},
            "transport": self._transport,
            "verify": httpx.create_ssl_context(),
        }
        async with httpx.AsyncClient(**self._client_args) as probe_client:
            background = [asyncio.create_task(self.pool.probe_loop(probe_client, self._stop))]
            if self.refresh is not None:
                background.append(asyncio.create_task(self._refresh_loop()))
            writer = asyncio.create_task(self._writer())
            self._workers = [
                asyncio.create_task(self._worker()) for _ in range(min(o.concurrency, len(requests)))
            ]
            ended = await asyncio.gather(*self._workers, return_exceptions=True)
            self._stop.set()
            self._results.put_nowait(None)
            await writer  # never cancelled: every result received reaches the disk
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
        self.counters.paused_s = self.pool.total_paused_s()
        failures = [e for e in ended if isinstance(e, Exception)]
        if failures:  # a bug, not a request failure: raise it, now that the results are safe on disk
            raise failures[0]
        return self.outcome

    async def _refresh_loop(self) -> None:
        assert self.refresh is not None
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.options.refresh_s)
            if self._stop.is_set():
                break
            got = self.refresh()
            if isinstance(got, Mapping):
                self._keys = {url: key for url, key in got.items() if key}
            self.pool.set_urls(list(got))

    async def _worker(self) -> None:
        async with httpx.AsyncClient(**self._client_args) as client:
            while self._queue and not self._stop.is_set():
                request = self._queue.pop()
                self.counters.in_flight += 1
                try:
                    await self._process(client, request)
                finally:
                    self.counters.in_flight -= 1

    async def _process(self, client: httpx.AsyncClient, request: BatchRequest) -> None:
        o = self.options
        body = {**request.body, "model": o.model} if o.model else request.body
        attempts, avoid = 0, None
        while True:
            replica = await self._acquire(avoid)
            if replica is None:
                return  # stopping: no result line, a resume sends it
            try:
                attempt = await self._send(client, replica, request.url, body)
            finally:
                self.pool.release(replica)
            if attempt.verdict is Verdict.DONE:
                self.pool.mark_ok(replica)
                error = None if 200 <= attempt.status < 300 else error_of(attempt.status, attempt.body)
                line = result_line(
                    f"batch_req_{uuid.uuid4().hex[:24]}",
                    request.custom_id,
                    attempt.status,
                    attempt.request_id,
                    attempt.body,
                    error,
                )
                prompt, completion = usage_of(attempt.body)
                self._results.put_nowait(_Result(encode(line), error is None, prompt, completion))
                return
            if attempt.verdict is Verdict.ABORT:
                # Not an answer: record nothing, so that a re-run with the right key sends these again.
                self.stop(reason=f"the server refused the credentials ({attempt.status}): check the API key")
                return
            avoid = replica.url
            if attempt.verdict is Verdict.UNAVAILABLE:
                self.counters.unavailable += 1
                self.pool.mark_unavailable(replica)
                continue
            attempts += 1
            if attempts >= o.max_attempts:
                self.outcome.gave_up.append(request.custom_id)
                return
            self.counters.retries += 1
            delay = o.backoff.delay(attempts, self._rng.random(), attempt.retry_after_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
            if self._stop.is_set():
                return

    async def _acquire(self, avoid: str | None) -> Replica | None:
        """A replica, waiting while none is reachable, at most pause_timeout_s in a row."""
        pool, o = self.pool, self.options
        replica = None if self._stop.is_set() else pool.try_acquire(avoid)
        if replica is not None:  # the common case, without creating a waiting task
            return replica
        while not self._stop.is_set():
            left = o.pause_timeout_s - pool.paused_for()
            if left <= 0:
                self.stop(reason=f"no replica reachable for {o.pause_timeout_s:g} s")
                return None
            try:
                return await asyncio.wait_for(pool.acquire(self._stop, avoid), left)
            except TimeoutError:
                continue
        return None

    async def _send(
        self, client: httpx.AsyncClient, replica: Replica, path: str, body: dict[str, Any]
    ) -> _Attempt:
        try:
            key = self._keys.get(replica.url)
            headers = auth_headers(key) if key else None  # else the client's: the deployment's key
            response = await client.post(replica.url + path, json=body, headers=headers)
        except httpx.ConnectError as exc:
            return _Attempt(classify_failure(Failure.CONNECT), detail=str(exc))
        except httpx.ConnectTimeout as exc:
            return _Attempt(classify_failure(Failure.CONNECT), detail=str(exc))
        except httpx.TimeoutException as exc:
            return _Attempt(classify_failure(Failure.TIMEOUT), detail=str(exc) or "timeout")
        except httpx.TransportError as exc:
            return _Attempt(classify_failure(Failure.BROKEN), detail=str(exc) or type(exc).__name__)
        status = response.status_code
        try:
            parsed: Any = response.json()
        except ValueError:
            if 200 <= status < 300:
                return _Attempt(classify_failure(Failure.BAD_BODY), status, detail="response is not JSON")
            parsed = response.text
        request_id = response.headers.get("x-request-id") or (
            str(parsed.get("id", "")) if isinstance(parsed, dict) else ""
        )
        return _Attempt(
            classify_status(status),
            status,
            parsed,
            request_id,
            retry_after(response.headers.get("retry-after")),
        )

    async def _writer(self) -> None:
        """Batches result lines: one write and fsync per batch, then the batch counts as done."""
        o, c = self.options, self.counters
        done = False
        while not done:
            batch: list[_Result] = []
            first = await self._results.get()
            if first is None:
                break
            batch.append(first)
            deadline = time.monotonic() + o.flush_interval_s
            while len(batch) < o.flush_lines and not done:
                # Take whatever is queued without waiting: one await per line would take one event-loop
                # turn per line, and a busy loop turns only tens of times a second.
                while len(batch) < o.flush_lines and not self._results.empty():
                    item = self._results.get_nowait()
                    if item is None:
                        done = True
                        break
                    batch.append(item)
                left = deadline - time.monotonic()
                if done or len(batch) >= o.flush_lines or left <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._results.get(), left)
                except TimeoutError:
                    break
                if item is None:
                    done = True
                else:
                    batch.append(item)
            try:
                await asyncio.to_thread(self.output.append, b"".join(r.data for r in batch))
            except LlmctlError as exc:
                # Nothing more can be made durable: stop the job, the batch not written stays to do.
                self.stop(reason=str(exc))
                while (item := await self._results.get()) is not None:
                    pass  # drain what the workers still hand over; none of it is recorded
                return
            for r in batch:
                c.done += 1
                c.succeeded += r.ok
                c.failed += not r.ok
                c.input_tokens += r.input_tokens
                c.output_tokens += r.output_tokens
            c.paused_s = self.pool.total_paused_s()
            c.paused = self.pool.paused
