"""Options and helpers shared by the fleet-facing commands (-i, --limit, --state, host-key trust)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from llmctl.config.inventory import Host, Inventory, load_inventory
from llmctl.fleet import KNOWN_HOSTS_ENV
from llmctl.state.store import Store

if TYPE_CHECKING:
    from llmctl.fleet.pool import Fleet

INVENTORY = typer.Option(Path("inventory/local.yaml"), "-i", "--inventory", help="Inventory YAML.")
LIMIT = typer.Option(None, "--limit", "-l", help="Hosts or groups, comma-separated (like Ansible's --limit).")
STATE = typer.Option(
    None, "--state", help="State store path (default $LLMCTL_STATE or ~/.local/share/llmctl)."
)
ACCEPT_NEW = typer.Option(
    False,
    "--accept-new-host-keys",
    help="Trust and record keys of hosts not yet in known_hosts (a changed key is still refused).",
)
JSON = typer.Option(False, "--json", help="Machine-readable output.")
KNOWN_HOSTS = typer.Option(
    None,
    "--known-hosts",
    help=f"known_hosts file to verify (and with --accept-new-host-keys record) host keys in "
    f"(default ${KNOWN_HOSTS_ENV} or ~/.ssh/known_hosts).",
)


def select(inventory: Path, limit: str | None) -> tuple[Inventory, list[Host]]:
    inv = load_inventory(inventory)
    return inv, inv.select(limit)


def fleet_for(hosts: list[Host], accept_new: bool, known_hosts: Path | None = None) -> Fleet:
    from llmctl.fleet.pool import Fleet  # SSH is loaded by the verbs that reach hosts, not by every verb
    from llmctl.fleet.ssh import SSHOptions

    return Fleet(hosts, SSHOptions.from_env(accept_new_host_keys=accept_new, known_hosts=known_hosts))


def open_store(state: Path | None) -> Store:
    return Store(state)
