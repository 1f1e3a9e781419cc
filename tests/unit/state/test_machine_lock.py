"""The single-controller guarantee does not depend on the database file surviving, and a controller whose
store file is deleted or replaced stops with one line. Old code: the controller kept writing to the unlinked
file, and a second controller started beside it (the lock row lived in the deleted file)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from llmctl.config.inventory import Inventory
from llmctl.control.controller import Controller, ControllerConfig
from llmctl.errors import LlmctlError
from llmctl.fleet.pool import Fleet
from llmctl.state.machine_lock import machine_lock
from llmctl.state.store import Store


def test_one_holder_per_store_whatever_happens_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    Store(path).close()
    with machine_lock("controller", path):
        for f in tmp_path.glob("state.db*"):
            f.unlink()
        Store(path).close()  # a fresh store at the same path: still locked
        with (
            pytest.raises(LlmctlError, match="another llmctl controller is running"),
            machine_lock("controller", path),
        ):
            pass
        with machine_lock("controller", tmp_path / "other.db"):  # another store is another lock
            pass
    with machine_lock("controller", path):  # released with its holder
        pass


async def test_a_controller_whose_store_is_deleted_stops_with_one_line(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    c = Controller(Inventory(file="inv.yaml", hosts=()), Fleet([]), store, ControllerConfig(interval_s=0.05))
    stop = asyncio.Event()
    task = asyncio.create_task(c.run(stop))
    await asyncio.sleep(0.2)
    assert not task.done()
    for f in tmp_path.glob("state.db*"):
        f.unlink()
    with pytest.raises(LlmctlError, match="was deleted under the running controller; stopping"):
        await asyncio.wait_for(task, timeout=5)
    await c.close()
