"""Routing policies: which ready replica gets a request. Pure and deterministic, so the gateway and the
simulator's router use the same classes. A policy keeps only its own small state (a cursor, a hash ring)."""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

# While no replica is ready (a scale from zero) the gateway holds requests: at most MAX_HELD, each at most
# HOLD_TIMEOUT_S, then 503. The simulator's gateway (sim.router) holds by the same two numbers.
MAX_HELD = 256
HOLD_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Backend:
    """A ready replica as the router sees it."""

    name: str
    outstanding: int = 0  # requests sent and not yet finished
    adapters: frozenset[str] = frozenset()  # LoRA adapters it has loaded, as far as the gateway knows


@dataclass(frozen=True)
class RouteKey:
    """What a request offers for affinity: its prompt prefix (text), or prefix block ids (Mooncake traces)."""

    prefix: str = ""
    blocks: tuple[int, ...] = ()


class Router(Protocol):
    name: ClassVar[str]

    def choose(self, backends: Sequence[Backend], key: RouteKey) -> Backend | None: ...


class RoundRobin:
    name: ClassVar[str] = "round_robin"

    def __init__(self) -> None:
        self._next = 0

    def choose(self, backends: Sequence[Backend], key: RouteKey) -> Backend | None:
        if not backends:
            return None
        ordered = sorted(backends, key=lambda b: b.name)  # stable across calls whatever order callers pass
        pick = ordered[self._next % len(ordered)]
        self._next += 1
        return pick


class LeastOutstanding:
    """Fewest requests in flight; ties rotate so equal replicas share load evenly."""

    name: ClassVar[str] = "least_outstanding"

    def __init__(self) -> None:
        self._turn = 0

    def choose(self, backends: Sequence[Backend], key: RouteKey) -> Backend | None:
        if not backends:
            return None
        low = min(b.outstanding for b in backends)
        tied = sorted((b for b in backends if b.outstanding == low), key=lambda b: b.name)
        pick = tied[self._turn % len(tied)]
        self._turn += 1
        return pick


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


class PrefixAffinity:
    """Consistent hashing on the prompt prefix, so requests sharing a prefix meet the same replica's prefix
    cache; adding or removing a replica moves only about 1/n of the prefixes. When the chosen replica is
    overloaded (more than `overload_factor` x the mean outstanding plus `slack`), the least-loaded one wins."""

    name: ClassVar[str] = "prefix_affinity"
    VNODES = 64  # virtual nodes per replica: keeps the split within a few percent of even
    PREFIX_CHARS = 256  # about one 64-token prefix block of text
    PREFIX_BLOCKS = 4

    def __init__(self, overload_factor: float = 2.0, slack: int = 4) -> None:
        self.overload_factor = overload_factor
        self.slack = slack
        self._ring_for: tuple[str, ...] = ()
        self._points: list[int] = []
        self._owners: list[str] = []
        self._fallback = LeastOutstanding()

    def _ring(self, names: tuple[str, ...]) -> None:
        if names == self._ring_for:
            return
        points = sorted((_hash(f"{n}#{v}"), n) for n in names for v in range(self.VNODES))
        self._points = [p for p, _ in points]
        self._owners = [n for _, n in points]
        self._ring_for = names

    def owner(self, names: Sequence[str], key: RouteKey) -> str | None:
        if not names:
            return None
        self._ring(tuple(sorted(names)))
        text = (
            ",".join(map(str, key.blocks[: self.PREFIX_BLOCKS]))
            if key.blocks
            else key.prefix[: self.PREFIX_CHARS]
        )
        i = bisect.bisect(self._points, _hash(text)) % len(self._points)
        return self._owners[i]

    def choose(self, backends: Sequence[Backend], key: RouteKey) -> Backend | None:
        name = self.owner([b.name for b in backends], key)
        if name is None:
            return None
        chosen = next(b for b in backends if b.name == name)
        mean = sum(b.outstanding for b in backends) / len(backends)
        if chosen.outstanding > self.overload_factor * mean + self.slack:
            return self._fallback.choose(backends, key)
        return chosen


@dataclass(frozen=True)
class AdapterPick:
    """Where a request for a LoRA adapter goes, and whether that replica had the adapter loaded (a hit) or
    must load it first (a miss: the gateway asks it to, or the engine reads it from disk again)."""

    backend: Backend
    hit: bool


class AdapterAffinity:
    """Requests for an adapter go to a replica that has it loaded: the least loaded of those, unless even it
    is overloaded (more than `overload_factor` x the mean outstanding over all replicas, plus `slack`);
    then, or when no replica has it, to the least-loaded replica, ties to the one with the fewest adapters
    loaded (the least likely to evict one in use), then by name. Loading costs a disk read and evicts
    another adapter once a replica's slots are full, so a miss is worth a little queueing but not a hot
    spot: the overload bound is PrefixAffinity's."""

    name: ClassVar[str] = "adapter_affinity"

    def __init__(self, overload_factor: float = 2.0, slack: int = 4) -> None:
        self.overload_factor = overload_factor
        self.slack = slack

    def choose(self, backends: Sequence[Backend], adapter: str) -> AdapterPick | None:
        if not backends:
            return None
        holders = [b for b in backends if adapter in b.adapters]
        if holders:
            best = min(holders, key=lambda b: (b.outstanding, b.name))
            mean = sum(b.outstanding for b in backends) / len(backends)
            if best.outstanding <= self.overload_factor * mean + self.slack:
                return AdapterPick(best, hit=True)
        pick = min(backends, key=lambda b: (b.outstanding, len(b.adapters), b.name))
        return AdapterPick(pick, hit=adapter in pick.adapters)


ROUTERS: dict[str, type[RoundRobin] | type[LeastOutstanding] | type[PrefixAffinity]] = {
    r.name: r for r in (RoundRobin, LeastOutstanding, PrefixAffinity)
}


def make_router(name: str) -> Router:
    if name not in ROUTERS:
        raise ValueError(f"unknown routing policy {name!r}; known: {', '.join(ROUTERS)}")
    return ROUTERS[name]()
