"""The simulated gateway holds requests as the live one does while no replica is ready: at most MAX_HELD,
each at most HOLD_TIMEOUT_S, then 503 (counted as shed). Before, the simulator held without bound and for
ever, so a scale-from-zero it predicted could never lose a request the live gateway would refuse."""

from __future__ import annotations

from llmctl.gateway.routing import HOLD_TIMEOUT_S, MAX_HELD
from sim.outcome import RequestRecord
from sim.router import SimGateway
from sim.workload import Arrival


def test_holding_is_bounded_in_count_and_in_time() -> None:
    gw = SimGateway()
    out: list[RequestRecord] = []
    for i in range(MAX_HELD + 44):
        gw.offer(Arrival(i * 0.01, 10, 10), i * 0.01, [], out)
    assert len(gw.held) == MAX_HELD and gw.shed == 44
    gw.expire(HOLD_TIMEOUT_S - 1.0)
    assert len(gw.held) == MAX_HELD  # none waited past the timeout yet
    gw.expire(HOLD_TIMEOUT_S + 5.0)
    assert len(gw.held) == 0 and gw.shed == MAX_HELD + 44
