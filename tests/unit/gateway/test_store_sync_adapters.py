"""The adapters an apply writes reach the gateway: through the store codec into the registry, each a model
name of its own; one that clashes with another deployment's model name is refused with one event."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from llmctl.gateway.registry import Registry
from llmctl.gateway.store_sync import StoreSync
from llmctl.spec.deployment import AdapterSpec, DesiredDeployment, ScalingSpec
from llmctl.state.desired import desired_of, put_desired
from llmctl.state.records import events
from llmctl.state.store import Store


def dep(name: str, *adapters: AdapterSpec) -> DesiredDeployment:
    base = DesiredDeployment(
        name, "online", "sglang", "least_outstanding", None, ScalingSpec(1, 1, "in_flight", 4, 60), 30.0, 2.0,
        False, 1,
    )  # fmt: skip
    return replace(base, adapters=adapters, adapter_slots=2)


def test_adapters_from_the_store_become_model_names(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    sql, legal = AdapterSpec("sql", "/m/sql", True), AdapterSpec("legal", "/m/legal", False)
    put_desired(store, dep("assist", sql, legal))
    put_desired(store, dep("code", AdapterSpec("sql", "/other", True)))
    assert desired_of(store, "assist") == dep("assist", sql, legal)  # the codec keeps them typed
    sync = StoreSync(store, Registry())
    sync.refresh()
    sync.refresh()
    routes = sync.registry.deployments["assist"]
    assert (
        list(routes.adapters) == ["sql", "legal"] and routes.adapter_slots == 2 and routes.flavour == "sglang"
    )
    assert sync.registry.resolve("legal") == (routes, "legal")
    refused = [e for e in events(store) if e.kind == "gateway-refused"]
    assert [(e.subject, e.reason) for e in refused] == [("code", "adapters sql are other models' names")]
