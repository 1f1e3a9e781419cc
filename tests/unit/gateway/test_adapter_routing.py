"""Adapter affinity as a pure policy, and the registry's adapters: model names, the replicas' loaded sets."""

from __future__ import annotations

from llmctl.gateway.registry import AdapterRoute, Registry
from llmctl.gateway.routing import AdapterAffinity, Backend


def b(name: str, outstanding: int = 0, *adapters: str) -> Backend:
    return Backend(name, outstanding, frozenset(adapters))


def test_a_replica_with_the_adapter_wins_over_idler_ones() -> None:
    pick = AdapterAffinity().choose([b("r0", 0), b("r1", 3, "sql"), b("r2", 5, "sql")], "sql")
    assert pick is not None and (pick.backend.name, pick.hit) == ("r1", True)


def test_an_overloaded_holder_gives_way_to_the_least_loaded() -> None:
    # mean 10, bound 2 x 10 + 4 = 24: the holder at 28 is past it.
    pick = AdapterAffinity().choose([b("r0", 1), b("r1", 28, "sql"), b("r2", 1, "x")], "sql")
    assert pick is not None and (pick.backend.name, pick.hit) == ("r0", False)  # fewest adapters among ties


def test_no_holder_least_loaded_then_fewest_adapters_then_name() -> None:
    policy = AdapterAffinity()
    assert policy.choose([], "sql") is None
    pick = policy.choose([b("r1", 2), b("r0", 2, "a"), b("r2", 2)], "sql")
    assert pick is not None and (pick.backend.name, pick.hit) == ("r1", False)


def routes_with(preload: bool = False, slots: int = 2) -> Registry:
    registry = Registry()
    registry.add_deployment("assist")
    adapters = [AdapterRoute("sql", "/m/sql", True), AdapterRoute("legal", "/m/legal", preload)]
    registry.set_adapters("assist", adapters, slots=slots)
    registry.set_endpoints("assist", [("r0", "http://a:1"), ("r1", "http://a:2")])
    return registry


def test_adapters_resolve_to_their_deployment() -> None:
    registry = routes_with()
    routes = registry.deployments["assist"]
    assert registry.resolve("assist") == (routes, None)
    assert registry.resolve("legal") == (routes, "legal")
    assert registry.resolve("nope") is None
    # Playbooks applied apart can clash: such adapters are refused, the others served.
    registry.add_deployment("code")
    clash = [
        AdapterRoute("sql", "/x", True),
        AdapterRoute("assist", "/x", True),
        AdapterRoute("py", "/p", True),
    ]
    assert registry.set_adapters("code", clash, slots=1) == ["sql", "assist"]
    assert registry.resolve("sql") == (routes, "sql")
    assert registry.resolve("py") == (registry.deployments["code"], "py")


def test_replicas_start_with_the_command_lines_adapters_and_keep_an_lru_view() -> None:
    registry = routes_with(slots=2)
    routes = registry.deployments["assist"]
    r0 = routes.endpoints["r0"]
    assert r0.registered == {"sql"} and r0.recent == ["sql"]
    chosen = routes.choose_adapter("legal")
    assert chosen is not None and chosen[1] is False  # nobody has it yet
    r0.registered.add("legal")
    r0.used("legal", routes.adapter_slots)
    assert routes.choose_adapter("legal") == (r0, True)
    r0.used("other", routes.adapter_slots)  # a third adapter in two slots pushes out the oldest
    assert r0.recent == ["legal", "other"]
    again = routes.choose_adapter("sql")
    assert again is not None and again[0].name == "r1" and again[1] is True
    # The same replica seen again keeps what it has loaded; a new one starts from the command line.
    registry.set_endpoints("assist", [("r0", "http://a:1"), ("r2", "http://a:3")])
    assert routes.endpoints["r0"] is r0 and routes.endpoints["r2"].recent == ["sql"]
