"""How a CLI verb gets its change made: the controller is the only actor. The verb records what it wants
(desired state, an intent) and then either follows the running controller's events until the change is
made, or, with no controller running, runs the controller's own reconcile passes in this process until it
is (saying so). Either way the same code acts, and the events tell the whole story."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from llmctl.cli.common import fleet_for
from llmctl.cli.output import console
from llmctl.config.inventory import Inventory
from llmctl.errors import LlmctlError
from llmctl.state.machine_lock import machine_lock
from llmctl.state.records import events, lock_holder, writer_lock
from llmctl.state.store import Store

FOLLOW_POLL_S = 0.25
LOCAL_TICK_S = 0.25  # a pass in this process: quick, it ends as soon as the change is made


@dataclass(frozen=True)
class Done:
    ok: bool
    detail: str
    said: bool = False  # the detail is events already printed while following: not worth saying twice


Check = Callable[[], Done | None]


def _say(subject: str, kind: str, reason: str) -> None:
    console.print(f"[dim]{subject}[/] {kind}: {reason}", highlight=False)


def carry_out(
    inv: Inventory | None,
    store: Store,
    done: Check,
    timeout_s: float,
    about: Callable[[str], bool],
    accept_new: bool = False,
    known_hosts: Path | None = None,
) -> Done:
    """Wait for `done` to say the change is made (or failed), printing the events `about` selects."""
    holder = lock_holder(store, "controller")
    if holder:
        console.print(f"the running controller ({holder}) carries it out; following its events")
        return _follow(store, done, timeout_s, about)
    if inv is None:
        raise LlmctlError("no controller is running and no inventory was given to carry the change out here")
    console.print(
        "no controller is running: carrying it out in this process, with the controller's own passes"
    )
    with machine_lock("controller", store.path), writer_lock(store, "controller"):
        return asyncio.run(_local(inv, store, done, timeout_s, about, accept_new, known_hosts))


def _follow(store: Store, done: Check, timeout_s: float, about: Callable[[str], bool]) -> Done:
    last = events(store, 0, 1)
    seen = last[-1].id if last else 0
    deadline = time.monotonic() + timeout_s
    while True:
        for e in events(store, seen, 1000):
            seen = e.id
            if about(e.subject):
                _say(e.subject, e.kind, e.reason)
        result = done()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            return Done(False, f"not done after {timeout_s:g} s; the controller goes on (see llmctl events)")
        time.sleep(FOLLOW_POLL_S)


async def _local(
    inv: Inventory,
    store: Store,
    done: Check,
    timeout_s: float,
    about: Callable[[str], bool],
    accept_new: bool,
    known_hosts: Path | None,
) -> Done:
    def log(subject: str, kind: str, reason: str) -> None:
        if about(subject):
            _say(subject, kind, reason)

    from llmctl.control.controller import (  # the passes need it; following does not
        Controller,
        ControllerConfig,
    )

    config = ControllerConfig(interval_s=LOCAL_TICK_S, start_timeout_s=timeout_s)
    async with fleet_for(list(inv.hosts), accept_new, known_hosts) as fleet:
        controller = Controller(inv, fleet, store, config, log=log)
        try:
            await controller.adopt()
            deadline = time.monotonic() + timeout_s
            while True:
                await controller.safe_tick()
                result = done()
                if result is not None:
                    return result
                if time.monotonic() > deadline:
                    return Done(False, f"not done after {timeout_s:g} s; start `llmctl controller` to go on")
                await asyncio.sleep(LOCAL_TICK_S)
        finally:
            await controller.close()
