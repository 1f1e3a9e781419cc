"""The cold-start tiers in the live controller (issue #18): at the moment a replica goes to sleep, how deep
(vLLM sleep level 1, weights kept in host RAM, or level 2, weights discarded), and the engine calls that
wake it from there.

The depth is llmctl.pool.cold_policy's: the deployment's TTFT target, the ladder of its slot's shape (the
same profile the planner's cold_start_s and wake_s come from, llmctl.planner.shape), the scale-ups its
autoscaler made lately, and the room on the replica's host (facts' memory, what the other replicas there
hold: llmctl.pool.residency). The planner asked for a warm pool, so the replica sleeps either way: when
the policy finds starting from disk good enough, or no sleep fits, it sleeps at level 2, which holds least.
Each choice is a `cold-tier` event with typed data {tier, wake_s, budget_s, cost_per_h}.

SGLang's /release_memory_occupation has no level: whether it keeps the weights is its start flag
(--enable-weights-cpu-backup), so an SGLang replica is recorded at level 1 and woken as one.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from llmctl.autoscale.types import Decision
from llmctl.config.inventory import Inventory
from llmctl.engines.api_key import auth_headers
from llmctl.errors import LlmctlError
from llmctl.fleet.facts import cached_facts
from llmctl.perf.cold_start import tier_holdings, tier_ladder
from llmctl.planner.shape import shape_draft_params, shape_profile
from llmctl.pool.cold_policy import ColdTarget, Rung, ScaleUps, decide, rungs_for, scale_ups_from
from llmctl.pool.residency import HostRoom, Resident, room_from_facts
from llmctl.pool.tiers import SlotTier, Tier
from llmctl.pool.transitions import move_for, sleep_call
from llmctl.reconcile.phase import Phase, parse
from llmctl.reconcile.tiers import floor_tier, replica_tier, sleep_tier
from llmctl.spec.deployment import DesiredDeployment, Slot
from llmctl.state.desired import read_desired
from llmctl.state.records import ReplicaRow, replicas
from llmctl.state.store import Store

Event = Callable[[str, str, str, dict[str, object]], None]

SCALE_WINDOW_S = 3600.0  # the autoscaler decisions the scale-up rate is taken over
_LIVE = (Phase.STARTING, Phase.READY, Phase.DRAINING, Phase.SLEEPING, Phase.WAKING)


@dataclass(frozen=True)
class SleepChoice:
    tier: Tier
    reason: str
    data: dict[str, object]

    @property
    def level(self) -> int:
        level = self.tier.sleep_level
        assert level is not None  # a SleepChoice is only ever made for an asleep tier
        return level


@dataclass(frozen=True)
class Call:
    """One HTTP request to the engine: `POST /path` with an optional JSON body."""

    method: str
    path: str
    body: dict[str, object] | None = None


def parse_call(text: str) -> Call:
    """llmctl.pool.transitions' call words ("POST /collective_rpc {...}") as a request."""
    method, _, rest = text.partition(" ")
    path, _, body = rest.partition(" ")
    return Call(method, path, json.loads(body) if body else None)


def _slot_tier(slot: Slot, tier: Tier) -> SlotTier:
    model = slot.shape.model if slot.shape is not None else slot.name
    return SlotTier(slot.host, slot.gpus or (0,), model, tier)


def wake_calls(dep: DesiredDeployment, row: ReplicaRow) -> tuple[Call, ...]:
    """The requests that bring `row` back from its sleep level (transitions.move_for's calls for its tier)."""
    slot = dep.slot(row.name)
    tier = sleep_tier(row.sleep_level)
    if slot is None or slot.shape is None or tier is Tier.ASLEEP_IN_RAM or dep.flavour != "vllm":
        wake = "POST /wake_up" if dep.flavour == "vllm" else "POST /resume_memory_occupation"
        return (parse_call(wake),)
    ladder = tier_ladder(shape_profile(slot.shape), draft_params=shape_draft_params(slot.shape))
    move = move_for(_slot_tier(slot, tier), ladder, dep.flavour)
    # A ladder that says restarting beats waking (no calls) still wakes what is asleep: the controller's
    # plan asked for a wake, and a level-2 sleeper comes back with its weights re-read.
    texts = move.calls or ("POST /wake_up", 'POST /collective_rpc {"method": "reload_weights"}')
    return tuple(parse_call(t) for t in texts)


async def send(client: httpx.AsyncClient, url: str, calls: tuple[Call, ...], key: str | None) -> str:
    """Carry the calls out in order; '' or what went wrong (the first that failed)."""
    for call in calls:
        try:
            r = await client.request(
                call.method, url + call.path, json=call.body, timeout=300.0, headers=auth_headers(key)
            )
        except httpx.HTTPError as exc:
            return f"{call.method} {call.path} failed: {type(exc).__name__}"
        if r.status_code != 200:
            return f"{call.method} {call.path} answered {r.status_code}: {r.text[:200]}"
    return ""


class ColdTiers:
    """The controller's part: the autoscalers' recent scale-ups, and the sleep level of each replica put away."""

    def __init__(self, inventory: Inventory, store: Store, event: Event) -> None:
        self.inventory = inventory
        self.store = store
        self.event = event
        self.history: dict[str, deque[tuple[float, Decision]]] = {}

    def scaled(self, deployment: str, decision: Decision, mono: float) -> None:
        """An autoscaler decision carried out (monotonic time), for the scale-up rate."""
        kept = self.history.setdefault(deployment, deque())
        kept.append((mono, decision))
        while kept and kept[0][0] < mono - SCALE_WINDOW_S:
            kept.popleft()

    def scale_ups(self, deployment: str, mono: float) -> ScaleUps:
        recent = [d for at, d in self.history.get(deployment, ()) if at >= mono - SCALE_WINDOW_S]
        rate = scale_ups_from(recent, SCALE_WINDOW_S)
        return ScaleUps(rate.per_hour, 1, rate.requests_per_second)  # one spare: the replica going to sleep

    def sleep_call(self, dep: DesiredDeployment, choice: SleepChoice) -> Call:
        return parse_call(sleep_call(dep.flavour, choice.tier))

    def choose(self, dep: DesiredDeployment, row: ReplicaRow, mono: float) -> SleepChoice:
        """How deep `row` sleeps, said as a `cold-tier` event."""
        choice = self._choose(dep, row, mono)
        self.event(row.name, "cold-tier", choice.reason, choice.data)
        return choice

    def _choose(self, dep: DesiredDeployment, row: ReplicaRow, mono: float) -> SleepChoice:
        slot = dep.slot(row.name)
        target_s = dep.scaling.ttft_target_s or _ttft_s(dep)
        if dep.flavour != "vllm":
            return _fixed(Tier.ASLEEP_IN_RAM, "SGLang's memory release has no level (its start flags decide)")
        if slot is None or slot.shape is None:
            return _fixed(Tier.ASLEEP_IN_RAM, "no shape recorded for the slot: level 1, the fastest wake")
        profile, draft = shape_profile(slot.shape), shape_draft_params(slot.shape)
        price = self._price(row.host)
        rungs = rungs_for(profile, gpu_price_per_hour=price, draft_params=draft)
        by_tier = {r.tier: r for r in rungs}
        if target_s is None:
            return _chosen(by_tier[Tier.ASLEEP_IN_RAM], None, "no TTFT target: level 1, the fastest wake")
        room, note = self._room(row, slot, profile.gpu.memory_bytes)
        floor = floor_tier(row.host)
        decision = decide(
            dep.name,
            slot.shape.model,
            rungs,
            ColdTarget(target_s),
            self.scale_ups(dep.name, mono),
            [room],
            residents=self._residents(row),
            floor=floor,
        )
        tier = decision.pools[0].tier if decision.pools else floor
        reason = decision.reason + note
        if not tier.asleep:
            # The warm pool is the planner's: the replica sleeps; level 2 holds the least of the two.
            tier = Tier.ASLEEP_DISCARDED
            reason += "; asleep at level 2 (the warm pool keeps it), which holds less than level 1"
        return _chosen(by_tier[tier], target_s, reason)

    def _price(self, host: str) -> float | None:
        try:
            return self.inventory.host(host).gpu_price
        except LlmctlError:  # a host gone from the inventory: the catalog's price
            return None

    def _room(self, row: ReplicaRow, slot: Slot, gpu_memory: float) -> tuple[HostRoom, str]:
        facts = cached_facts(self.store).get(row.host)
        gpus = slot.gpus or (0,)
        if facts is None or not facts.memory_mib:
            unbounded = HostRoom(row.host, float("inf"), gpus, gpu_memory, ram_headroom_bytes=0.0)
            return unbounded, f" (host {row.host}'s memory unknown: no facts gathered)"
        room = room_from_facts(row.host, facts, gpu_memory)
        return HostRoom(row.host, room.ram_bytes, gpus, room.gpu_memory_bytes), ""

    def _residents(self, row: ReplicaRow) -> list[Resident]:
        """What the host's other live replicas hold (engine processes, level-1 weight backups, GPU shares)."""
        desired = read_desired(self.store).deployments
        out = []
        for other in replicas(self.store):
            if other.name == row.name or other.host != row.host or parse(other.phase) not in _LIVE:
                continue
            dep = desired.get(other.deployment)
            slot = dep.slot(other.name) if dep is not None else None
            if slot is None or slot.shape is None:
                continue
            tier = replica_tier(other)
            tier = Tier.RUNNING if not tier.has_process else tier
            held = tier_holdings(shape_profile(slot.shape), tier, draft_params=shape_draft_params(slot.shape))
            out.append(Resident(_slot_tier(slot, tier), held))
        return out


def _ttft_s(dep: DesiredDeployment) -> float | None:
    ttft = dep.targets.get("ttft_ms", {})
    ms = ttft.get("p99") if ttft.get("p99") is not None else ttft.get("p50")
    return None if ms is None else float(ms) / 1000.0


def _fixed(tier: Tier, reason: str) -> SleepChoice:
    return SleepChoice(
        tier, reason, {"tier": tier.name, "wake_s": None, "budget_s": None, "cost_per_h": None}
    )


def _chosen(rung: Rung, budget_s: float | None, reason: str) -> SleepChoice:
    data: dict[str, object] = {
        "tier": rung.tier.name,
        "wake_s": round(rung.to_running_s, 3),
        "budget_s": None if budget_s is None else round(budget_s, 3),
        "cost_per_h": round(rung.cost_per_hour, 4),
    }
    return SleepChoice(rung.tier, reason, data)
