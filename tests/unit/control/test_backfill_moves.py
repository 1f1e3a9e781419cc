"""The back-fill policy as data: which borrowed slots to start and which to give back, for any mix of the
owner's replica phases (hypothesis), and who borrows a slot."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from llmctl.reconcile.actions import Lend, Reclaim
from llmctl.reconcile.backfill import RELEASED, backfill_actions, borrowed_slots
from llmctl.spec.deployment import DesiredDeployment, ScalingSpec, Slot
from llmctl.state.records import ReplicaRow

PHASES = ("starting", "ready", "draining", "sleeping", "waking", "unhealthy", "stopping", "stopped", "failed")


def slot(name: str, shares_with: str, gpu: int) -> Slot:
    return Slot(name, "box", "127.0.0.1", (gpu,), 9000 + gpu, ("engine",), {}, "h", "emulated", shares_with)


ENRICH = DesiredDeployment(
    name="enrich",
    workload="offline",
    flavour="vllm",
    route="least_outstanding",
    api_key_env=None,
    scaling=ScalingSpec(0, 3, "in_flight", 64, 600),
    cold_start_s=30.0,
    wake_s=2.0,
    sleep_mode=False,
    initial=0,
    slots=(slot("enrich-0", "chat-1", 1), slot("enrich-1", "chat-2", 2), slot("enrich-2", "chat-3", 3)),
    backfill_for="chat",
)


def moves(
    dep: DesiredDeployment, owner: list[ReplicaRow], mine: list[ReplicaRow]
) -> tuple[list[tuple[Slot, str]], list[tuple[ReplicaRow, str]]]:
    """The actions as (slots lent, replicas reclaimed), each with its reason."""
    acts = backfill_actions(dep, owner, mine)
    rows = {r.name: r for r in mine}
    lent = [(s, a.reason) for a in acts if isinstance(a, Lend) for s in dep.slots if s.name == a.slot]
    back = [(rows[a.replica], a.reason) for a in acts if isinstance(a, Reclaim)]
    assert len(lent) + len(back) == len(acts)
    return lent, back


def row(name: str, phase: str) -> ReplicaRow:
    return ReplicaRow(name, name.rsplit("-", 1)[0], "box", "127.0.0.1", "1", 9000, 1, phase, "h", 0.0, 0, "")


def test_idle_slots_are_borrowed_and_a_slot_the_owner_takes_is_given_back() -> None:
    owner = [row("chat-0", "ready"), row("chat-1", "starting"), row("chat-3", "stopped")]
    mine = [row("enrich-0", "ready"), row("enrich-2", "stopped")]
    start, stop = moves(ENRICH, owner, mine)
    assert [(s.name, why) for s, why in start] == [
        ("enrich-1", "back-fill: chat's slot chat-2 is idle"),
        ("enrich-2", "back-fill: chat's slot chat-3 is idle"),
    ]
    assert [(r.name, why) for r, why in stop] == [("enrich-0", "gives its GPUs back: chat holds chat-1")]


@given(
    owner=st.lists(
        st.tuples(st.sampled_from(["chat-1", "chat-2", "chat-3"]), st.sampled_from(PHASES)),
        unique_by=lambda x: x[0],
    ),
    mine=st.lists(
        st.tuples(st.sampled_from(["enrich-0", "enrich-1", "enrich-2"]), st.sampled_from(PHASES)),
        unique_by=lambda x: x[0],
    ),
)
def test_a_borrower_never_runs_beside_its_owner(
    owner: list[tuple[str, str]], mine: list[tuple[str, str]]
) -> None:
    start, stop = moves(ENRICH, [row(n, p) for n, p in owner], [row(n, p) for n, p in mine])
    held = {n for n, p in owner if p not in RELEASED}
    phase = dict(mine)
    after = {s.name for s in ENRICH.slots if phase.get(s.name, "stopped") not in RELEASED} - {
        r.name for r, _ in stop
    } | {s.name for s, _ in start}
    for s in ENRICH.slots:
        running = s.name in after and phase.get(s.name) != "stopping"
        # After the moves: no borrower runs (or is started) on a slot its owner holds, and every slot the
        # owner leaves alone is in use by the borrower.
        assert not (running and s.shares_with in held)
        assert (s.shares_with in held) or s.name in after
    assert not {s.name for s, _ in start} & {r.name for r, _ in stop}


def test_borrowed_slots_name_the_borrowers_running_on_each_owner_slot() -> None:
    rows = [row("enrich-1", "ready"), row("enrich-2", "stopping"), row("enrich-0", "stopped")]
    assert borrowed_slots([ENRICH], "chat", rows) == {"chat-2": ["enrich-1"]}
    assert borrowed_slots([ENRICH], "other", rows) == {}
