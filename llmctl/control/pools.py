"""The pool's decisions as events, with typed fields (pool, tenant, reason, GPUs, replica, for whom).

Grants and preemptions are moves, each said when it is made (the next tick sees it in the replica rows and
does not make it again). Waits and refusals hold while nothing changes, so each is said when it first holds
and again only once it changes: a tenant refused for a minute is one event, not thirty.
"""

from __future__ import annotations

from collections.abc import Callable

from llmctl.pool import Grant, PoolDecision, PoolGpu, Preempt, Refuse, Wait
from llmctl.reconcile.pool import PoolTick

Event = Callable[[str, str, str, dict[str, object] | None], None]


def _gpus(gpus: tuple[PoolGpu, ...]) -> list[str]:
    return [f"{g.host}:{g.index}" for g in gpus]


def event_of(pool: str, d: PoolDecision, slot: str = "") -> tuple[str, str, str, dict[str, object]]:
    """(subject, kind, reason, data) of one pool decision."""
    data: dict[str, object] = {"pool": pool, "tenant": d.tenant, "reason": str(d.reason)}
    if isinstance(d, Grant):
        data |= {"gpus": _gpus(d.gpus), "slot": slot}
        where = f"{', '.join(_gpus(d.gpus))} -> {slot}" if slot else ", ".join(_gpus(d.gpus))
        return d.tenant, "pool-grant", f"pool {pool}: {d.detail} ({d.reason}; {where})", data
    if isinstance(d, Preempt):
        data |= {"replica": d.replica, "for": d.for_tenant}
        return d.replica, "pool-preempt", f"pool {pool}: for {d.for_tenant} ({d.reason}): {d.detail}", data
    if isinstance(d, Wait):
        data |= {"gpus": _gpus(d.gpus)}
        return d.tenant, "pool-wait", f"pool {pool}: {d.detail}", data
    assert isinstance(d, Refuse)
    data |= {"wanted": d.wanted}
    return d.tenant, "pool-refuse", f"pool {pool}: {d.detail} ({d.reason})", data


class PoolEvents:
    def __init__(self, event: Event) -> None:
        self.event = event
        self.holding: dict[tuple[str, str, str], str] = {}  # (pool, tenant, kind) -> the reason last said

    def said(self, tick: PoolTick) -> None:
        slots = {id(s.grant): s.slot for s in tick.step.starts}
        unplaced = {id(g) for g in tick.step.unplaced}
        now: dict[tuple[str, str, str], str] = {}
        for d in tick.decisions:
            subject, kind, reason, data = event_of(tick.pool, d, slots.get(id(d), ""))
            if isinstance(d, Grant) and id(d) in unplaced:
                self.event(
                    subject, "pool-unplaced", f"{reason}: no free slot of {d.tenant} on these GPUs", data
                )
            elif isinstance(d, Grant | Preempt):
                self.event(subject, kind, reason, data)
            else:
                key = (tick.pool, d.tenant, kind)
                now[key] = reason
                if self.holding.get(key) != reason:
                    self.event(subject, kind, reason, data)
        self.holding = {k: v for k, v in self.holding.items() if k[0] != tick.pool} | now
