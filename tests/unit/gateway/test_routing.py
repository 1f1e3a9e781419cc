"""Routing policies: fairness, least-loaded choice, prefix stickiness, minimal movement, overload fallback."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmctl.gateway.routing import (
    Backend,
    LeastOutstanding,
    PrefixAffinity,
    RoundRobin,
    RouteKey,
    make_router,
)


def backends(*loads: int) -> list[Backend]:
    return [Backend(f"r{i}", n) for i, n in enumerate(loads)]


def test_round_robin_cycles_in_a_stable_order() -> None:
    rr = RoundRobin()
    picks = [rr.choose(list(reversed(backends(0, 0, 0))), RouteKey()) for _ in range(6)]
    assert [p.name for p in picks if p] == ["r0", "r1", "r2", "r0", "r1", "r2"]


def test_least_outstanding_picks_the_idlest_and_rotates_ties() -> None:
    lo = LeastOutstanding()
    assert lo.choose(backends(3, 1, 2), RouteKey()) == Backend("r1", 1)
    names = [lo.choose(backends(0, 5, 0), RouteKey()) for _ in range(4)]
    assert Counter(b.name for b in names if b) == {"r0": 2, "r2": 2}


def test_empty_backends_choose_nothing() -> None:
    for name in ("round_robin", "least_outstanding", "prefix_affinity"):
        assert make_router(name).choose([], RouteKey("x")) is None
    with pytest.raises(ValueError, match="unknown routing policy"):
        make_router("random")


def test_prefix_affinity_is_sticky_and_spreads_prefixes() -> None:
    pa = PrefixAffinity()
    bs = backends(0, 0, 0, 0)
    owners = {p: pa.choose(bs, RouteKey(f"system prompt {p}")) for p in range(400)}
    assert all(pa.choose(bs, RouteKey(f"system prompt {p}")) == b for p, b in owners.items())
    share = Counter(b.name for b in owners.values() if b)
    assert min(share.values()) > 400 / 4 * 0.5  # no replica starved


def test_prefix_affinity_moves_few_prefixes_when_a_replica_leaves() -> None:
    pa = PrefixAffinity()
    four, three = backends(0, 0, 0, 0), backends(0, 0, 0)
    keys = [RouteKey(blocks=(i, i + 1, i + 2)) for i in range(600)]
    before = [pa.choose(four, k) for k in keys]
    after = [pa.choose(three, k) for k in keys]
    moved = sum(
        1 for b, a in zip(before, after, strict=True) if b and a and b.name != a.name and b.name != "r3"
    )
    assert moved == 0  # only the leaving replica's prefixes move


def test_prefix_affinity_falls_back_when_owner_is_overloaded() -> None:
    pa = PrefixAffinity(overload_factor=2.0, slack=1)
    key = RouteKey("hot prefix")
    owner = pa.owner(["r0", "r1", "r2"], key)
    loads = {"r0": 0, "r1": 0, "r2": 0}
    loads[owner or "r0"] = 50
    bs = [Backend(n, loads[n]) for n in ("r0", "r1", "r2")]
    pick = pa.choose(bs, key)
    assert pick is not None and pick.name != owner and pick.outstanding == 0


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(0, 20), min_size=1, max_size=8),
    st.text(max_size=40),
    st.sampled_from(["round_robin", "least_outstanding", "prefix_affinity"]),
)
def test_every_policy_returns_one_of_the_backends(loads: list[int], prefix: str, name: str) -> None:
    bs = backends(*loads)
    pick = make_router(name).choose(bs, RouteKey(prefix))
    assert pick in bs
    if name == "least_outstanding":
        assert pick is not None and pick.outstanding == min(loads)
