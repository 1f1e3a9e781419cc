"""One replica's process on its host: launch it detached, stop it and confirm it is gone, and say why it
failed (the engine's own error line when recognised). The controller's actuator is the only caller; each
step writes the replica's row and an event with its reason.

Replicas run detached (llmctl.control.launch) so they survive the SSH session; a start is idempotent on the
host (a replica whose process still runs is adopted, not started twice).
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from llmctl.config.inventory import Host, Inventory
from llmctl.control.launch import log_tail_argv, start_argv, stop_argv
from llmctl.engines.api_key import delivery
from llmctl.engines.emulated import TIME_SCALE_ENV
from llmctl.engines.startup_errors import recognise
from llmctl.fleet.pool import Fleet
from llmctl.fleet.transport import FleetError
from llmctl.reconcile.phase import Phase
from llmctl.spec.deployment import Slot
from llmctl.state.records import ReplicaRow, delete_replica, put_replica, put_replica_key, replica_key
from llmctl.state.store import Store

Event = Callable[[str, str, str], None]


def run_dir(host: Host, replica: str) -> str:
    return f"{host.workdir.rstrip('/')}/replicas/{replica}"


def bin_dir(host: Host, engine: str) -> str:
    """Where the replica's program is found: the host's engine venv (`engine_venv`, default {workdir}/venv,
    where `llmctl provision` installs the engine), local and SSH hosts alike. The one exception is the
    emulated engine on a local host without an `engine_venv`: it is llmctl itself, run by this interpreter."""
    if engine == "emulated" and host.connection == "local" and host.engine_venv is None:
        return str(Path(sys.executable).parent)
    return f"{host.venv.rstrip('/')}/bin"


@dataclass(frozen=True)
class ReplicaOutcome:
    name: str
    phase: str  # ready | failed | stopped
    detail: str


class Lifecycle:
    def __init__(self, inventory: Inventory, fleet: Fleet, store: Store, event: Event) -> None:
        self.inventory = inventory
        self.fleet = fleet
        self.store = store
        self.event = event

    async def stop(self, row: ReplicaRow, reason: str, forget: bool = True) -> ReplicaOutcome:
        """Stop every process of the replica; `forget` drops its row (a stopped slot is simply free again).
        A stop that cannot be confirmed (host unreachable, processes surviving SIGKILL) keeps the row, as
        failed with the reason: a replica is forgotten only once it is known to be gone."""
        host = self.inventory.host(row.host)
        put_replica(self.store, row.with_(phase=Phase.STOPPING))
        try:
            result = await self.fleet.transport(host).run(stop_argv(run_dir(host, row.name)), timeout=60)
            problem = (
                "" if result.ok else (result.stderr or result.stdout).strip() or f"exit {result.exit_status}"
            )
        except FleetError as exc:
            result, problem = None, f"could not reach {row.host}: {exc.problem}"
        if result is None or problem:
            why = f"stop not confirmed ({reason}): {problem}"
            put_replica(self.store, row.with_(phase=Phase.FAILED, reason=why, drain_then=""))
            self.event(row.name, "stop-failed", why)
            return ReplicaOutcome(row.name, "failed", why)
        if forget:
            delete_replica(self.store, row.name)
        else:
            put_replica(self.store, row.with_(phase=Phase.STOPPED, pid=None, drain_then=""))
        self.event(row.name, "stopped", reason)
        return ReplicaOutcome(row.name, "stopped", result.stdout.strip())

    async def launch(
        self, deployment: str, slot: Slot, reason: str, before: ReplicaRow | None = None
    ) -> ReplicaRow | ReplicaOutcome:
        """Start the slot's engine detached and record it as starting; does not wait for readiness. `before`
        is the replica's row when it is restarted: its counters carry over."""
        host = self.inventory.host(slot.host)
        env = dict(slot.env)
        if slot.engine == "emulated" and os.environ.get(TIME_SCALE_ENV):
            env[TIME_SCALE_ENV] = os.environ[TIME_SCALE_ENV]  # rehearsals run faster than real time
        row = ReplicaRow(
            slot.name,
            deployment,
            slot.host,
            slot.address,
            ",".join(map(str, slot.gpus)),
            slot.port,
            None,
            Phase.STARTING,
            slot.spec_hash,
            time.time(),
            before.restarts if before else 0,
            reason,
            failures=before.failures if before else 0,
        )
        argv, key_text, key_file, key_env = list(slot.argv), None, None, None
        if host.connection != "local":
            # Beyond loopback anyone who reaches the host reaches the engine: it answers only the holders of
            # its own key (the gateway, batch jobs and the controller, from the store), kept for the
            # replica's life so that a replica adopted after a controller restart still matches.
            key = replica_key(self.store, slot.name) or secrets.token_urlsafe(32)
            put_replica_key(self.store, slot.name, key)
            how = delivery(slot.flavour)
            argv, key_text, key_file, key_env = [*argv, *how.argv], how.file_text(key), how.file, how.env
        put_replica(self.store, row)
        try:
            out = await self.fleet.transport(host).run(
                start_argv(
                    run_dir(host, slot.name),
                    argv,
                    env,
                    bin_dir(host, slot.engine),
                    port=slot.port,
                    key_file=key_file,
                    key_env=key_env,
                ),
                timeout=60,
                check=True,
                input=key_text,
            )
        except FleetError as exc:
            why = f"could not start: {exc.problem}"
            put_replica(self.store, row.with_(phase=Phase.FAILED, reason=why))
            self.event(row.name, "failed", why)
            return ReplicaOutcome(row.name, "failed", why)
        verb, pid = out.stdout.split()[-2:]
        row = row.with_(pid=int(pid))
        put_replica(self.store, row)
        what = "already running, adopted" if verb == "running" else "started"
        self.event(
            slot.name,
            "started",
            f"{reason}; {what}: pid {pid} on {slot.host}, GPUs {row.gpus}, port {slot.port}",
        )
        return row

    async def why_failed(self, row: ReplicaRow, why: str) -> str:
        """`why`, plus the engine's own error line from its log when recognised, else the log's last lines."""
        host = self.inventory.host(row.host)
        try:
            tail = (
                await self.fleet.transport(host).run(log_tail_argv(run_dir(host, row.name), 40), timeout=30)
            ).stdout
        except FleetError as exc:
            return f"{why}; log unreadable: {exc.problem}"
        failure = recognise(tail)
        if failure:
            return f"{why}: {failure.line} ({failure.reason})"
        last = [line for line in tail.strip().splitlines() if line.strip()][-3:]
        return f"{why}; log tail: {' | '.join(last) or '(empty)'}"
