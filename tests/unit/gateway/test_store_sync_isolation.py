"""One deployment the gateway cannot serve (its API key is not in the gateway's environment) is refused
alone, with an event, while the rest stay in sync; a key or routing policy changed by a later apply is
picked up. Old code: refresh raised on every pass, so new deployments 404'd and removed ones stayed listed,
and a deployment already known never had its key or route re-read."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from llmctl.gateway.registry import Registry
from llmctl.gateway.store_sync import StoreSync
from llmctl.spec.deployment import DesiredDeployment, ScalingSpec
from llmctl.state.desired import put_desired
from llmctl.state.records import delete_deployment, events
from llmctl.state.store import Store


def dep(name: str, key_env: str | None = None, route: str = "least_outstanding") -> DesiredDeployment:
    return DesiredDeployment(
        name, "online", "vllm", route, key_env, ScalingSpec(1, 1, "in_flight", 4, 60), 30.0, 2.0, False, 1
    )


def test_one_unservable_deployment_does_not_freeze_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SECRET_KEY_ENV", raising=False)
    store = Store(tmp_path / "s.db")
    put_desired(store, dep("chat"))
    put_desired(store, dep("locked", key_env="SECRET_KEY_ENV"))
    sync = StoreSync(store, Registry())
    sync.refresh()
    sync.refresh()
    assert set(sync.registry.deployments) == {"chat"}
    refused = [e for e in events(store) if e.kind == "gateway-refused"]
    assert (
        len(refused) == 1 and refused[0].subject == "locked" and "export SECRET_KEY_ENV" in refused[0].reason
    )
    # The rest keeps in step: a new deployment appears, a removed one goes.
    put_desired(store, dep("new"))
    delete_deployment(store, "chat")
    sync.refresh()
    assert set(sync.registry.deployments) == {"new"}
    # The key arrives: served from the next refresh, with that key.
    monkeypatch.setenv("SECRET_KEY_ENV", "k1")
    sync.refresh()
    assert sync.registry.deployments["locked"].api_key == "k1"
    # A later apply changes the routing policy; the environment changes the key.
    monkeypatch.setenv("SECRET_KEY_ENV", "k2")
    put_desired(store, replace(dep("locked", key_env="SECRET_KEY_ENV"), route="round_robin"))
    held = sync.registry.deployments["locked"]
    sync.refresh()
    routes = sync.registry.deployments["locked"]
    assert routes is held and routes.api_key == "k2" and routes.policy == "round_robin"
