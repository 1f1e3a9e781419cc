"""The gateway's per-request log: one compact JSON line per proxied request (arrival, deployment, replica,
tokens, TTFT, end to end, status), next to the state store, for `llmctl sim replay` to hold the simulator
against what the fleet did.

Why JSON lines in size-capped rotated files and not a table in the store: the controller writes the store
every tick and a write waits for SQLite's single writer lock, while an append to a file of our own never
waits on anyone; rotation bounds the disk (`max_bytes` x (`keep` + 1)) without a prune query. The request
path only fills a `RequestTap` and puts it on a bounded queue (`put_nowait`, dropped and counted when full);
a writer thread parses the usage out of the response's tail, formats the line, appends and rotates. A write
that fails (disk full, directory gone) loses that line and warns once; the request has already been answered.
One writer per file: the gateway of one controller.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import queue
import re
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from aiohttp import web

log = logging.getLogger(__name__)

MAX_BYTES = 32 * 1024**2  # about 150 k requests per file
KEEP = 4  # rotated files kept beside the live one
QUEUE_MAX = 10_000  # lines waiting for the writer; beyond it a burst's lines are dropped, never waited for
TAIL_BYTES = 2048  # the end of a response: where `usage` is, in a stream's last chunk or a body's last key
TAIL_CHUNKS = 4  # chunks kept to find it in: the usage chunk, [DONE], and what a read split them into
CHARS_PER_TOKEN = 4  # prompt length when the engine reported no usage (the emulator counts the same way)
_PROMPT = re.compile(rb'"prompt_tokens"\s*:\s*(\d+)')
_COMPLETION = re.compile(rb'"completion_tokens"\s*:\s*(\d+)')


@dataclass(frozen=True)
class LoggedRequest:
    """One request as the gateway saw it. Times in seconds; `at` is wall time (unix) at arrival."""

    at: float
    deployment: str
    replica: str  # "" when no replica answered (held then shed, no route)
    prompt_tokens: int
    output_tokens: int
    ttft_s: float | None  # first byte of the body after arrival; None unless streamed
    e2e_s: float
    status: int
    stream: bool
    exact: bool  # token counts from the engine's usage; False: estimated (characters, SSE events)


@dataclass
class RequestTap:
    """Filled on the request path, cheaply: times, the replica, chunk counts and the response's tail."""

    at: float
    started: float  # time.perf_counter() at arrival
    deployment: str
    stream: bool
    prompt_chars: int
    replica: str = ""
    first_byte: float | None = None
    events: int = 0  # SSE `data:` events: tokens when the engine sends no usage
    # The last chunks, by reference: copying a tail on every chunk cost more than the rest of the tap.
    last: deque[bytes] = field(default_factory=lambda: deque(maxlen=TAIL_CHUNKS))
    ended: float = 0.0
    status: int = 0

    def feed(self, chunk: bytes) -> None:
        if not self.stream:
            if self.first_byte is None:
                self.first_byte = time.perf_counter()
        else:
            n = chunk.count(b"data:")
            self.events += n
            # vLLM's first chat chunk only names the role, before any token: not the first token.
            if self.first_byte is None and n > chunk.count(b'"role"'):
                self.first_byte = time.perf_counter()
        self.last.append(chunk)

    @property
    def tail(self) -> bytes:
        return b"".join(self.last)[-TAIL_BYTES:]

    def finish(self, status: int) -> None:
        self.ended, self.status = time.perf_counter(), status


TAP_KEY: web.RequestKey[RequestTap] = web.RequestKey("llmctl.request_tap", RequestTap)


def request_record(tap: RequestTap) -> LoggedRequest:
    """The line for a finished tap: usage from the response's tail when it has one, else estimates."""
    tail = tap.tail
    usage_at = tail.rfind(b'"usage"')
    prompt = completion = None
    if usage_at >= 0:
        p, c = _PROMPT.search(tail, usage_at), _COMPLETION.search(tail, usage_at)
        prompt, completion = (int(p.group(1)) if p else None), (int(c.group(1)) if c else None)
    exact = prompt is not None and completion is not None
    if prompt is None:
        prompt = max(1, tap.prompt_chars // CHARS_PER_TOKEN)
    if completion is None:
        # One token per event, less the stream's closing `[DONE]`.
        completion = max(0, tap.events - 1) if tap.stream else 0
    ttft = tap.first_byte - tap.started if tap.stream and tap.first_byte is not None else None
    return LoggedRequest(
        at=tap.at,
        deployment=tap.deployment,
        replica=tap.replica,
        prompt_tokens=prompt,
        output_tokens=completion,
        ttft_s=ttft,
        e2e_s=max(0.0, tap.ended - tap.started),
        status=tap.status,
        stream=tap.stream,
        exact=exact,
    )


def prompt_chars(body: dict[str, object]) -> int:
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return len(prompt)
    messages = body.get("messages")
    if isinstance(messages, list):
        return sum(len(str(m.get("content", ""))) for m in messages if isinstance(m, dict))
    return 0


def log_path_beside(store_path: Path) -> Path:
    """Where a store's gateway keeps its request log: `state.db` -> `state.requests.jsonl`."""
    return store_path.with_name(f"{store_path.stem}.requests.jsonl")


def rotated(path: Path, keep: int = KEEP) -> list[Path]:
    """The live file and its rotated predecessors, oldest first."""
    return [path.with_name(f"{path.name}.{i}") for i in range(keep, 0, -1)] + [path]


@dataclass
class LogStats:
    written: int = 0
    dropped: int = 0  # the queue was full
    failed: int = 0  # the write raised (disk full, permissions)
    warned: set[str] = field(default_factory=set)


class RequestLog:
    """The writer. `tap(request, ...)` on the request path, `done(request, status)` when it is answered."""

    def __init__(self, path: Path, max_bytes: int = MAX_BYTES, keep: int = KEEP) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.keep = keep
        self.stats = LogStats()
        self._queue: queue.Queue[RequestTap | None] = queue.Queue(QUEUE_MAX)
        self._thread: threading.Thread | None = None
        self._starting = threading.Lock()

    # -- request path (the gateway's event loop) ------------------------------------------------------------
    def tap(self, request: web.Request, deployment: str, body: dict[str, object]) -> RequestTap:
        tap = RequestTap(
            time.time(), time.perf_counter(), deployment, bool(body.get("stream")), prompt_chars(body)
        )
        request[TAP_KEY] = tap
        return tap

    def done(self, request: web.Request, status: int) -> None:
        tap = request.get(TAP_KEY)
        if tap is None or tap.ended:
            return
        tap.finish(status)
        self.put(tap)

    def put(self, tap: RequestTap) -> None:
        if self._thread is None:
            self.start()
        try:
            self._queue.put_nowait(tap)
        except queue.Full:
            self.stats.dropped += 1
            self._warn("full", f"request log {self.path}: writer behind, lines dropped")

    # -- writer thread --------------------------------------------------------------------------------------
    def start(self) -> None:
        with self._starting:  # two first requests on two threads must not start two writers
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="request-log", daemon=True)
                self._thread.start()

    def close(self) -> None:
        """Write what is queued and stop the thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            batch = [item]
            while item is not None and len(batch) < 512:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                batch.append(item)
            lines = [json.dumps(asdict(request_record(t)), separators=(",", ":")) + "\n" for t in batch if t]
            if lines:
                self._append(lines)
            if batch[-1] is None:
                return

    def _append(self, lines: list[str]) -> None:
        done = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            size = self.path.stat().st_size if self.path.exists() else 0
            f = self.path.open("a", encoding="utf-8")
            try:
                for line in lines:
                    if size and size + len(line) > self.max_bytes:
                        f.close()
                        self._rotate()
                        f, size = self.path.open("a", encoding="utf-8"), 0
                    f.write(line)
                    size, done = size + len(line), done + 1
            finally:
                f.close()
        except OSError as exc:
            self.stats.failed += len(lines) - done
            self._warn("write", f"request log {self.path}: cannot write ({exc.strerror or exc}); lines lost")
        self.stats.written += done

    def _rotate(self) -> None:
        files = rotated(self.path, self.keep)
        files[0].unlink(missing_ok=True)
        for older, newer in itertools.pairwise(files):
            if newer.exists():
                os.replace(newer, older)

    def _warn(self, kind: str, line: str) -> None:
        if kind not in self.stats.warned:  # once per kind: a full disk must not flood the log
            self.stats.warned.add(kind)
            log.warning(line)


@dataclass
class ReadResult:
    requests: list[LoggedRequest]
    skipped: int  # lines that were not a record (torn by a crash, edited): counted, not fatal
    first_bad: str  # file:line of the first skipped line


def read_requests(
    path: Path, since: float = 0.0, until: float = float("inf"), keep: int = KEEP
) -> ReadResult:
    """Records with since <= at < until from the live file and its rotations, in arrival order."""
    out: list[LoggedRequest] = []
    skipped, first_bad = 0, ""
    for f in rotated(path, keep):
        for n, line in _lines(f):
            try:
                r = LoggedRequest(**json.loads(line))
                float(r.at), float(r.e2e_s), int(r.prompt_tokens), int(r.output_tokens)
            except (ValueError, TypeError):
                skipped += 1
                first_bad = first_bad or f"{f}:{n}"
                continue
            if since <= r.at < until:
                out.append(r)
    out.sort(key=lambda r: r.at)
    return ReadResult(out, skipped, first_bad)


def _lines(f: Path) -> Iterator[tuple[int, str]]:
    try:
        with f.open(encoding="utf-8", errors="replace") as fh:
            for n, line in enumerate(fh, start=1):
                if line.strip():
                    yield n, line
    except FileNotFoundError:
        return
