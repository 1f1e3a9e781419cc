"""A stop that cannot be confirmed keeps the replica's row: it is forgotten only once known to be gone."""

from __future__ import annotations

from pathlib import Path

from llmctl.config.inventory import Host, Inventory
from llmctl.control.lifecycle import Lifecycle
from llmctl.fleet.pool import Fleet
from llmctl.fleet.ssh import SSHOptions
from llmctl.state.records import ReplicaRow, events, put_deployment, put_replica, record_event, replicas
from llmctl.state.store import Store


def store_with(tmp_path: Path, host: str) -> Store:
    store = Store(tmp_path / "state.db")
    put_deployment(store, "chat", {}, "h")
    put_replica(store, row(host))
    return store


def row(host: str) -> ReplicaRow:
    return ReplicaRow("chat-0", "chat", host, "127.0.9.9", "0", 8000, 4242, "ready", "h", 0.0, 0, "")


async def test_unreachable_host_keeps_the_replica_as_failed(tmp_path: Path) -> None:
    # Nothing listens on 127.0.9.9:1: the connection is refused, a real SSH failure.
    host = Host(name="gone", address="127.0.9.9", port=1, key=str(tmp_path / "nokey"))
    inventory = Inventory(file="inv.yaml", hosts=(host,))
    store = store_with(tmp_path, "gone")
    fleet = Fleet([host], SSHOptions(known_hosts=tmp_path / "known_hosts"))
    outcome = await Lifecycle(inventory, fleet, store, lambda *e: record_event(store, *e)).stop(
        row("gone"), "llmctl stop"
    )
    assert outcome.phase == "failed" and "could not reach gone" in outcome.detail
    [kept] = replicas(store)
    assert kept.phase == "failed" and kept.pid == 4242 and "stop not confirmed" in kept.reason
    assert [e.kind for e in events(store)] == ["stop-failed"]


async def test_confirmed_stop_forgets_the_replica(tmp_path: Path) -> None:
    host = Host(name="box", connection="local", workdir=str(tmp_path / "w"))
    store = store_with(tmp_path, "box")
    outcome = await Lifecycle(Inventory(file="i", hosts=(host,)), Fleet([host]), store, print).stop(
        row("box"), "x"
    )
    assert outcome.phase == "stopped" and outcome.detail == "absent" and replicas(store) == []
