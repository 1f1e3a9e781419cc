"""How a granted slot comes up from its cold-start tier, and how a replica goes down to one (issue #18): the
move the reconcile planner should make for it, with the engine calls that carry it out.

    RUNNING           -> nothing
    ASLEEP_IN_RAM     -> WAKE         vLLM POST /wake_up; SGLang POST /resume_memory_occupation (its weights
                                      were backed up with --enable-weights-cpu-backup)
    ASLEEP_DISCARDED  -> WAKE_RELOAD  vLLM POST /wake_up, POST /collective_rpc {"method": "reload_weights"},
                                      POST /reset_prefix_cache (the vLLM sleep-mode blog: level 2 needs
                                      both after waking); SGLang POST /resume_memory_occupation, then
                                      POST /update_weights_from_disk with the model path
    COMPILE_WARM, ON_DISK -> START    start the engine from local disk
    ABSENT            -> FETCH_START  download the checkpoint, then start
    an asleep slot whose own path is slower than starting afresh (the ladder's `via` says so) -> RESTART:
                                      stop the sleeper, then start from disk

Going down: `sleep_call(engine, tier)` is the request that puts a running replica on an asleep tier
(vLLM POST /sleep?level=1|2; SGLang POST /release_memory_occupation, which keeps the weights in RAM only
when the server was started with --enable-weights-cpu-backup).

Wiring: WAKE and WAKE_RELOAD are a `Wake` of the slot's replica (llmctl.control.tiers sends their calls),
START and FETCH_START a `Start` of the slot, RESTART a `Stop` then a `Start`; `reconcile_kind` names them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from llmctl.perf.cold_start import TierTransition
from llmctl.pool.tiers import SlotTier, Tier


class Move(StrEnum):
    NONE = "none"
    WAKE = "wake"
    WAKE_RELOAD = "wake_reload"
    RESTART = "restart"
    START = "start"
    FETCH_START = "fetch_start"


@dataclass(frozen=True)
class SlotMove:
    slot: SlotTier
    move: Move
    expected_s: float  # seconds to RUNNING by this move (the performance model's)
    calls: tuple[str, ...]  # the engine requests, in order (empty for a process start)
    reason: str


_WAKE_CALLS: dict[tuple[str, Move], tuple[str, ...]] = {
    ("vllm", Move.WAKE): ("POST /wake_up",),
    ("vllm", Move.WAKE_RELOAD): (
        "POST /wake_up",
        'POST /collective_rpc {"method": "reload_weights"}',
        "POST /reset_prefix_cache",
    ),
    ("sglang", Move.WAKE): ("POST /resume_memory_occupation",),
    ("sglang", Move.WAKE_RELOAD): ("POST /resume_memory_occupation", "POST /update_weights_from_disk"),
}
_SLEEP_CALLS = {
    ("vllm", Tier.ASLEEP_IN_RAM): "POST /sleep?level=1",
    ("vllm", Tier.ASLEEP_DISCARDED): "POST /sleep?level=2",
    ("sglang", Tier.ASLEEP_IN_RAM): "POST /release_memory_occupation",
    ("sglang", Tier.ASLEEP_DISCARDED): "POST /release_memory_occupation",
}


def move_for(slot: SlotTier, ladder: Sequence[TierTransition], engine: str = "vllm") -> SlotMove:
    """The move that brings `slot` to RUNNING, given its model's ladder (llmctl.perf.cold_start.tier_ladder,
    indexed by Tier). `engine`: vllm or sglang; emulated takes vLLM's calls, all of which the emulator serves (a
    level-2 wake there takes the ladder's level-2 time, its re-read in the reload_weights call)."""
    step = ladder[slot.tier]
    if step.tier is not slot.tier:
        raise ValueError(f"ladder entry {int(slot.tier)} is {step.tier.name}, not {slot.tier.name}")
    kind = "vllm" if engine == "emulated" else engine
    if slot.tier is Tier.RUNNING:
        return SlotMove(slot, Move.NONE, 0.0, (), "already running")
    if slot.tier.asleep and step.via is not slot.tier:
        return SlotMove(
            slot,
            Move.RESTART,
            step.total_s,
            (),
            f"{slot.tier.label}: starting from {step.via.label} ({step.total_s:.1f} s) is faster than waking",
        )
    if slot.tier.asleep:
        move = Move.WAKE if slot.tier is Tier.ASLEEP_IN_RAM else Move.WAKE_RELOAD
        calls = _WAKE_CALLS.get((kind, move))
        if calls is None:
            raise ValueError(f"engine {engine!r} has no sleep mode")
        return SlotMove(
            slot, move, step.total_s, calls, f"wake from {slot.tier.label} in {step.total_s:.1f} s"
        )
    move = Move.FETCH_START if slot.tier is Tier.ABSENT else Move.START
    return SlotMove(slot, move, step.total_s, (), f"start from {slot.tier.label} in {step.total_s:.1f} s")


ReconcileKind = Literal["wake", "start", "stop"]


def reconcile_kind(move: Move) -> tuple[ReconcileKind, ...]:
    """The llmctl.reconcile actions a move becomes, in order."""
    kinds: dict[Move, tuple[ReconcileKind, ...]] = {
        Move.NONE: (),
        Move.WAKE: ("wake",),
        Move.WAKE_RELOAD: ("wake",),
        Move.RESTART: ("stop", "start"),
        Move.START: ("start",),
        Move.FETCH_START: ("start",),
    }
    return kinds[move]


def sleep_call(engine: str, tier: Tier) -> str:
    """The request that puts a running replica of `engine` on the asleep `tier`."""
    kind = "vllm" if engine == "emulated" else engine
    call = _SLEEP_CALLS.get((kind, tier))
    if call is None:
        raise ValueError(f"no sleep call puts a {engine} replica {tier.label}")
    return call
