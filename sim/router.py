"""The simulated gateway of one deployment: routes each request to a ready replica with the live gateway's
own routing classes (`llmctl.gateway.routing`), and holds requests while no replica is ready, as the live
gateway does during a scale-from-zero. Pure: the cluster passes the time and the ready replicas."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Protocol

from llmctl.gateway.routing import HOLD_TIMEOUT_S, MAX_HELD, Backend, RouteKey, Router, make_router
from sim.outcome import RequestRecord
from sim.replica import ReplicaModel
from sim.workload import Arrival


class Routable(Protocol):
    """What the gateway needs of a replica: a unique name and its model."""

    @property
    def name(self) -> str: ...

    @property
    def model(self) -> ReplicaModel | None: ...


class SimGateway:
    def __init__(self, route: str = "least_outstanding") -> None:
        self.router: Router = make_router(route)
        # Which policies need the replicas' current load; the others route without advancing them.
        self._needs_load = route != "round_robin"
        self.held: deque[tuple[float, Arrival]] = deque()  # (held since, request)
        self.rejected = 0
        self.shed = 0  # 503s: the hold queue was full, or a request waited past the hold timeout
        self.last_request_s: float | None = None
        self.window_arrivals = 0

    def offer(self, a: Arrival, now: float, ready: Sequence[Routable], out: list[RequestRecord]) -> None:
        """A request arrives at `now`: send it to a ready replica, or hold it. Finished records the replicas
        report while being brought up to `now` are appended to `out`."""
        self.last_request_s = now
        self.window_arrivals += 1
        if not ready:
            self.expire(now)
            if len(self.held) >= MAX_HELD:
                self.shed += 1
            else:
                self.held.append((now, a))
            return
        self.send(a, now, ready, out)

    def send(self, a: Arrival, now: float, ready: Sequence[Routable], out: list[RequestRecord]) -> None:
        if len(ready) == 1:
            target = ready[0]
        else:
            if self._needs_load:
                for r in ready:
                    m = r.model
                    if m is not None and m.next_event_s() <= now:
                        out.extend(m.advance(now))
            backends = [Backend(r.name, r.model.in_flight if r.model else 0) for r in ready]
            chosen = self.router.choose(backends, RouteKey(blocks=a.blocks))
            name = chosen.name if chosen else ready[0].name
            target = next(r for r in ready if r.name == name)
        model = target.model
        assert model is not None, "a ready replica has an engine model"
        if not model.add(a, now):
            self.rejected += 1

    def release(self, now: float, ready: Sequence[Routable], out: list[RequestRecord]) -> int:
        """A replica became ready: send everything held, in arrival order. Returns how many."""
        self.expire(now)
        n = 0
        while self.held and ready:
            self.send(self.held.popleft()[1], now, ready, out)
            n += 1
        return n

    def expire(self, now: float) -> None:
        """Answer 503 to held requests older than the hold timeout, as the live gateway does."""
        while self.held and now - self.held[0][0] > HOLD_TIMEOUT_S:
            self.held.popleft()
            self.shed += 1
