"""The controller's host reachability check against a real local host and an SSH host whose port refuses
connections: what lands in the store, and one event per change (down, up again), not one per check."""

from __future__ import annotations

from pathlib import Path

import yaml

from llmctl.config.inventory import load_inventory
from llmctl.control.host_watch import HostWatch
from llmctl.fleet.pool import Fleet
from llmctl.fleet.ssh import SSHOptions
from llmctl.state.host_checks import HostCheck, host_checks, put_host_check
from llmctl.state.store import Store
from llmctl.testing.local_fleet import free_port


async def test_a_refusing_host_is_down_once_and_a_local_one_is_up(tmp_path: Path) -> None:
    closed = free_port()  # nothing listens here: the SSH connect is refused at once
    inv_path = tmp_path / "inv.yaml"
    inv_path.write_text(
        yaml.safe_dump(
            {
                "hosts": {
                    "box": {"connection": "local"},
                    "gone": {"address": "127.0.0.1", "port": closed, "user": "nobody"},
                }
            }
        )
    )
    inv = load_inventory(inv_path)
    store = Store(tmp_path / "state.db")
    # The local host was down at the last check (before a controller restart, say): it is up now.
    put_host_check(store, HostCheck("box", 0.0, False, "timed out"))
    said: list[tuple[str, str, str]] = []
    ssh = SSHOptions(known_hosts=tmp_path / "known_hosts", accept_new_host_keys=True, agent_path="")
    async with Fleet(list(inv.hosts), ssh=ssh) as fleet:
        watch = HostWatch(inv, fleet, store, lambda *e: said.append(e), timeout_s=5)
        first = await watch.check_all()
        second = await watch.check_all()
    assert first["box"].ok and first["box"].detail.endswith(" ms")
    assert not first["gone"].ok and first["gone"].detail.startswith(f"cannot connect to 127.0.0.1:{closed}")
    stored = host_checks(store)
    assert (
        stored["box"].ok and not stored["gone"].ok and stored["gone"].checked_at == second["gone"].checked_at
    )
    # Each change said once, not on every check.
    assert sorted((s, k) for s, k, _ in said) == [("box", "host-up"), ("gone", "host-down")]
