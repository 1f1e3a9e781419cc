"""The replicas a batch run sends to, with their health as the run sees it: a replica that refuses
connections or answers 503 is set aside for a cool-off (doubling per consecutive failure), then probed on
/health and tried again. With none left the run pauses until one answers: replicas may be killed, restarted,
put to sleep for online traffic (back-fill) and woken, and the run carries on where it was.

Which replica gets a request is the gateway's routing policy (llmctl.gateway.routing), fed the in-flight
count per replica."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from llmctl.batch.retry import ReplicaCooloff
from llmctl.gateway.routing import Backend, RouteKey, Router

_KEY = RouteKey()


@dataclass
class Replica:
    url: str
    outstanding: int = 0
    up: bool = True
    strikes: int = 0  # consecutive unavailable failures
    retry_at: float = 0.0  # monotonic time of the next health probe while down
    requests: int = 0


class ReplicaPool:
    def __init__(
        self,
        urls: list[str],
        router: Router,
        cooloff: ReplicaCooloff | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.router = router
        self.cooloff = cooloff or ReplicaCooloff()
        self.clock = clock
        self.replicas: dict[str, Replica] = {}
        self.any_up = asyncio.Event()
        self.paused_s = 0.0
        self._paused_since: float | None = None
        self.set_urls(urls)

    # -- membership and health ------------------------------------------------------------------------
    def set_urls(self, urls: list[str]) -> None:
        """Follow the deployment's replica list (from the state store): new ones join as up, gone ones
        leave (their in-flight requests finish or fail on their own)."""
        wanted = list(dict.fromkeys(u.rstrip("/") for u in urls))
        for url in wanted:
            self.replicas.setdefault(url, Replica(url))
        for url in set(self.replicas) - set(wanted):
            del self.replicas[url]
        self._update()

    def mark_unavailable(self, replica: Replica) -> None:
        replica.strikes += 1
        if replica.up:
            replica.up = False
            replica.retry_at = self.clock() + self.cooloff.delay(replica.strikes)
            self._update()

    def mark_ok(self, replica: Replica) -> None:
        replica.strikes = 0

    def _update(self) -> None:
        up = any(r.up for r in self.replicas.values())
        now = self.clock()
        if up and not self.any_up.is_set():
            if self._paused_since is not None:
                self.paused_s += now - self._paused_since
                self._paused_since = None
            self.any_up.set()
        elif not up and (self.any_up.is_set() or self._paused_since is None):
            self._paused_since = now
            self.any_up.clear()

    @property
    def paused(self) -> bool:
        return not self.any_up.is_set()

    def paused_for(self) -> float:
        return 0.0 if self._paused_since is None else self.clock() - self._paused_since

    def total_paused_s(self) -> float:
        return self.paused_s + self.paused_for()

    # -- choosing -------------------------------------------------------------------------------------
    def choose(self, avoid: str | None = None) -> Replica | None:
        """An up replica by the routing policy, not `avoid` (the one that just failed) unless it is the only
        one; None when none is up."""
        up = [r for r in self.replicas.values() if r.up]
        if avoid is not None and len(up) > 1:
            up = [r for r in up if r.url != avoid]
        pick = self.router.choose([Backend(r.url, r.outstanding) for r in up], _KEY)
        return self.replicas[pick.name] if pick else None

    def try_acquire(self, avoid: str | None = None) -> Replica | None:
        """An up replica with its in-flight count taken, or None when none is up."""
        replica = self.choose(avoid)
        if replica is not None:
            replica.outstanding += 1
            replica.requests += 1
        return replica

    async def acquire(self, stop: asyncio.Event, avoid: str | None = None) -> Replica | None:
        """An up replica with its in-flight count taken, waiting while none is up; None once `stop` is set."""
        while not stop.is_set():
            replica = self.try_acquire(avoid)
            if replica is not None:
                return replica
            waiters = {asyncio.ensure_future(self.any_up.wait()), asyncio.ensure_future(stop.wait())}
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()
        return None

    @staticmethod
    def release(replica: Replica) -> None:
        replica.outstanding -= 1

    # -- probing --------------------------------------------------------------------------------------
    async def probe_once(self, client: httpx.AsyncClient, timeout_s: float = 2.0) -> None:
        now = self.clock()
        due = [r for r in self.replicas.values() if not r.up and r.retry_at <= now]
        results = await asyncio.gather(*(self._healthy(client, r.url, timeout_s) for r in due))
        for replica, healthy in zip(due, results, strict=True):
            if healthy:
                # Half-open: it takes requests again but keeps its strikes, so a replica that answers
                # /health while asleep (503 on requests) is set aside for longer each time.
                replica.up = True
            else:
                replica.strikes += 1
                replica.retry_at = self.clock() + self.cooloff.delay(replica.strikes)
        if due:
            self._update()

    @staticmethod
    async def _healthy(client: httpx.AsyncClient, url: str, timeout_s: float) -> bool:
        try:
            response = await client.get(url + "/health", timeout=timeout_s)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def probe_loop(self, client: httpx.AsyncClient, stop: asyncio.Event, every_s: float = 0.1) -> None:
        while not stop.is_set():
            await self.probe_once(client)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)
