"""Which cold-start tier to keep a deployment's spare slots on (issue #18): the cheapest rung that brings a
replica up within the TTFT target, and how many slots to keep warm on each rung, as a decision with its
reason.

The budget for coming up is the TTFT target (p99, else p50) less the TTFT a request sees on a replica that is
already up. A scale-up adds `replicas` replicas; each takes `requests_per_second` requests, which wait for it
while it comes up: those arriving in the first `to_running_s - budget` seconds miss the target, so a rung
that is too slow costs `per_hour x requests_per_second x (to_running_s - budget)` SLO misses an hour per
replica. Holding a slot costs: a running spare its GPUs' price; a sleeper the share of its GPUs' memory its
residue keeps (the rest of those GPUs serves other models); disk and host RAM nothing (they come with the
host), but host RAM is bounded (llmctl.pool.residency).

Every spare is decided one at a time, first to last. With `enforce` (the default) the target is a
requirement: among the rungs that meet it, the cheapest one that still fits its hosts (the lower tier on a
tie: it holds less); when none meets it, or without `enforce`, the rung of least holding-plus-misses cost.
`floor` is what provisioning gives every slot for free (weights on local disk, or a pre-warmed compile
cache): rungs below it are never chosen and nothing at the floor is "kept".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from llmctl.perf.cold_start import TierHoldings, tier_holdings, tier_ladder
from llmctl.pool.residency import HostRoom, Overflow, Resident, place
from llmctl.pool.tiers import SlotTier, Tier

if TYPE_CHECKING:
    from llmctl.autoscale.types import Decision
    from llmctl.config.playbook import Targets
    from llmctl.perf.profile import Profile

DEFAULT_MISS_COST = 0.01  # $ per request that misses its TTFT target: a policy knob, not a measured figure


@dataclass(frozen=True)
class Rung:
    """One tier as the policy sees it: seconds to RUNNING, what a slot holds there, $/h per slot."""

    tier: Tier
    to_running_s: float
    holdings: TierHoldings
    cost_per_hour: float


@dataclass(frozen=True)
class ScaleUps:
    """Expected scale-up events (from the autoscaler's recent decisions, `scale_ups_from`, or a forecast)."""

    per_hour: float
    replicas: int = 1  # replicas one event adds
    requests_per_second: float = 1.0  # per new replica: requests that wait for it while it comes up

    def __post_init__(self) -> None:
        if self.per_hour < 0 or self.replicas < 0 or self.requests_per_second < 0:
            raise ValueError("ScaleUps: per_hour, replicas and requests_per_second must be >= 0")


@dataclass(frozen=True)
class ColdTarget:
    ttft_s: float  # the deployment's TTFT target
    warm_ttft_s: float = 0.0  # TTFT on a replica already up (queue + prefill): taken off the budget
    miss_cost: float = DEFAULT_MISS_COST
    enforce: bool = True

    @property
    def budget_s(self) -> float:
        return self.ttft_s - self.warm_ttft_s


@dataclass(frozen=True)
class TierPool:
    """`count` spares on `tier` (their slots: empty for tiers without a process, which need no GPU)."""

    tier: Tier
    count: int
    slots: tuple[SlotTier, ...]
    to_running_s: float
    cost_per_hour: float  # all `count` slots
    misses_per_hour: float  # expected for these spares' scale-ups
    misses_avoided_per_hour: float  # against coming up from the floor
    meets_target: bool


@dataclass(frozen=True)
class Refusal:
    """A rung the policy wanted for a spare but could not place on any host."""

    tier: Tier
    overflows: tuple[Overflow, ...]

    @property
    def detail(self) -> str:
        return "; ".join(o.detail for o in self.overflows) or "no host offered"


@dataclass(frozen=True)
class ColdDecision:
    deployment: str
    budget_s: float
    floor: Tier
    pools: tuple[TierPool, ...]  # by tier, highest first; the floor's pool counts the spares kept nowhere
    refusals: tuple[Refusal, ...]
    reason: str
    rejected: tuple[Rung, ...] = field(
        default=()
    )  # rungs that met the target but cost more than their misses

    @property
    def cost_per_hour(self) -> float:
        return sum(p.cost_per_hour for p in self.pools)

    @property
    def misses_per_hour(self) -> float:
        return sum(p.misses_per_hour for p in self.pools)

    @property
    def meets_target(self) -> bool:
        return all(p.meets_target for p in self.pools)

    @property
    def slots(self) -> tuple[SlotTier, ...]:
        return tuple(s for p in self.pools for s in p.slots)

    def count(self, tier: Tier) -> int:
        return sum(p.count for p in self.pools if p.tier is tier)


def ttft_target_s(targets: Targets) -> float | None:
    """The playbook's TTFT target in seconds: p99 when set, else p50; None without one."""
    ms = targets.ttft_ms.p99 if targets.ttft_ms.p99 is not None else targets.ttft_ms.p50
    return None if ms is None else ms / 1000.0


def scale_ups_from(
    history: Iterable[Decision], window_s: float, requests_per_second: float = 1.0
) -> ScaleUps:
    """Scale-up events per hour in the autoscaler's decisions over the last `window_s` seconds, sized by the
    largest step they took (so a burst like the worst one seen comes up in time)."""
    if window_s <= 0:
        raise ValueError(f"window_s must be positive, got {window_s}")
    steps = [d.target - d.current for d in history if d.target > d.current]
    return ScaleUps(len(steps) * 3600.0 / window_s, max(steps, default=0), requests_per_second)


def hold_cost_per_hour(holdings: TierHoldings, gpu_price_per_hour: float, gpu_memory_bytes: float) -> float:
    if holdings.dedicated:
        return gpu_price_per_hour * holdings.gpus
    if holdings.tier.has_process and gpu_memory_bytes > 0:
        return gpu_price_per_hour * holdings.gpus * min(1.0, holdings.gpu_bytes / gpu_memory_bytes)
    return 0.0


def rungs_for(
    profile: Profile,
    *,
    gpu_price_per_hour: float | None = None,
    draft_params: float = 0.0,
    network_bandwidth: float | None = None,
) -> tuple[Rung, ...]:
    """The ladder of one profile, priced: the inventory's GPU price when given, else the catalog's."""
    price = profile.gpu.price_per_hour if gpu_price_per_hour is None else gpu_price_per_hour
    out = []
    for t in tier_ladder(profile, draft_params=draft_params, network_bandwidth=network_bandwidth):
        held = tier_holdings(profile, t.tier, draft_params=draft_params)
        out.append(Rung(t.tier, t.total_s, held, hold_cost_per_hour(held, price, profile.gpu.memory_bytes)))
    return tuple(out)


def _misses(rung: Rung, target: ColdTarget, ups: ScaleUps) -> float:
    return ups.per_hour * ups.requests_per_second * max(0.0, rung.to_running_s - target.budget_s)


def _preference(rungs: Sequence[Rung], target: ColdTarget, ups: ScaleUps) -> list[Rung]:
    """The rungs in the order one spare tries them."""

    def total(r: Rung) -> float:
        return r.cost_per_hour + target.miss_cost * _misses(r, target, ups)

    meeting = sorted(
        (r for r in rungs if r.to_running_s <= target.budget_s), key=lambda r: (r.cost_per_hour, r.tier)
    )
    by_total = sorted(rungs, key=lambda r: (total(r), r.cost_per_hour, r.tier))
    if target.enforce and meeting:
        return meeting + [r for r in by_total if r not in meeting]
    return by_total


def decide(
    deployment: str,
    model: str,
    rungs: Sequence[Rung],
    target: ColdTarget,
    ups: ScaleUps,
    hosts: Sequence[HostRoom],
    *,
    residents: Sequence[Resident] = (),
    floor: Tier = Tier.ON_DISK,
) -> ColdDecision:
    """How many of the `ups.replicas` spares of `deployment` to keep on each rung (see the module doc)."""
    if floor.has_process:
        raise ValueError(f"{deployment}: the floor must be a tier without a process, not {floor.name}")
    ladder = sorted((r for r in rungs if r.tier >= floor), key=lambda r: r.tier)
    if not ladder or ladder[0].tier is not floor:
        raise ValueError(f"{deployment}: the rungs must include the floor tier {floor.name}")
    base = ladder[0]
    order = _preference(ladder, target, ups)
    held = list(residents)
    chosen: dict[Tier, list[SlotTier]] = {}
    counts: dict[Tier, int] = {}
    refused: dict[Tier, Refusal] = {}
    for _ in range(ups.replicas):
        for rung in order:
            slot = _place_anywhere(rung, hosts, held, model, deployment)
            if isinstance(slot, Refusal):
                refused.setdefault(rung.tier, slot)
                continue
            counts[rung.tier] = counts.get(rung.tier, 0) + 1
            if slot is not None:
                chosen.setdefault(rung.tier, []).append(slot)
                held.append(Resident(slot, rung.holdings))
            break
    by_tier = {r.tier: r for r in ladder}
    pools = tuple(
        _pool(by_tier[t], counts[t], tuple(chosen.get(t, ())), target, ups, base)
        for t in sorted(counts, reverse=True)
    )
    # Every rung refused was preferred to the one the spare got: all are worth saying.
    refusals = tuple(r for _, r in sorted(refused.items(), reverse=True))
    rejected: tuple[Rung, ...] = ()
    if not all(p.meets_target for p in pools):
        # Said only when the target is missed: the cheapest rung that would have met it, turned down
        # because it costs more than the misses it avoids (or refused above, for want of room).
        meeting = [r for r in order if r.to_running_s <= target.budget_s and r.tier not in refused]
        rejected = tuple(meeting[:1])
    reason = _reason(pools, refusals, rejected, target, ups, base)
    return ColdDecision(deployment, target.budget_s, floor, pools, refusals, reason, rejected)


def _place_anywhere(
    rung: Rung, hosts: Sequence[HostRoom], held: Sequence[Resident], model: str, deployment: str
) -> SlotTier | Refusal | None:
    """A slot for one spare on this rung; None for a rung that holds nothing placed (below a process)."""
    if not rung.holdings.tier.has_process:
        return None
    overflows: list[Overflow] = []
    for room in sorted(hosts, key=lambda h: h.host):
        got = place(room, held, model, deployment, rung.holdings)
        if isinstance(got, SlotTier):
            return got
        overflows.append(got)
    return Refusal(rung.tier, tuple(overflows))


def _pool(
    rung: Rung, n: int, slots: tuple[SlotTier, ...], target: ColdTarget, ups: ScaleUps, base: Rung
) -> TierPool:
    misses = _misses(rung, target, ups)
    return TierPool(
        tier=rung.tier,
        count=n,
        slots=slots,
        to_running_s=rung.to_running_s,
        cost_per_hour=rung.cost_per_hour * n,
        misses_per_hour=misses * n,
        misses_avoided_per_hour=(_misses(base, target, ups) - misses) * n,
        meets_target=rung.to_running_s <= target.budget_s,
    )


def _rate(x: float) -> str:
    return f"{x:.0f}" if x >= 10 or x == 0 else f"{x:.1f}"


def _verb(tier: Tier) -> str:
    return "ready in" if tier is Tier.RUNNING else "wake" if tier.asleep else "start"


def _cmp(seconds: float, budget: float) -> str:
    return f"{seconds:.1f} s {'<=' if seconds <= budget else '>'} TTFT budget {budget:.1f} s"


def _reason(
    pools: Sequence[TierPool],
    refusals: Sequence[Refusal],
    rejected: Sequence[Rung],
    target: ColdTarget,
    ups: ScaleUps,
    base: Rung,
) -> str:
    if ups.replicas == 0:
        return f"no scale-ups expected: nothing kept warm above {base.tier.label}"
    parts = []
    for p in pools:
        s = "" if p.count == 1 else "s"
        if p.tier is base.tier:
            parts.append(
                f"{p.count} spare{s} from {p.tier.label}: {_verb(p.tier)} {_cmp(p.to_running_s, target.budget_s)}, "
                f"expected SLO misses {_rate(p.misses_per_hour)}/h"
            )
            continue
        worth = p.misses_avoided_per_hour * target.miss_cost
        parts.append(
            f"keep {p.count} slot{s} {p.tier.label}: {_verb(p.tier)} {_cmp(p.to_running_s, target.budget_s)}, "
            f"costs ${p.cost_per_hour:.2f}/h vs expected SLO misses {_rate(p.misses_avoided_per_hour)}/h avoided "
            f"(${worth:.2f}/h at ${target.miss_cost:g} a miss"
            + ("; kept for the target although it costs more)" if p.cost_per_hour > worth else ")")
        )
    missing = [p for p in pools if not p.meets_target]
    for r in rejected[: 1 if missing else 0]:
        # Against the best rung kept that misses the target: what a slot on `r` would add and save.
        ref = missing[0]
        extra = r.cost_per_hour - ref.cost_per_hour / ref.count
        avoided = ref.misses_per_hour / ref.count - _misses(r, target, ups)
        parts.append(
            f"not {r.tier.label}: ${extra:.2f}/h more a slot than {ref.tier.label} to avoid {_rate(avoided)}/h "
            f"more misses (${avoided * target.miss_cost:.2f}/h at ${target.miss_cost:g} a miss)"
        )
    for refusal in refusals:
        parts.append(f"refused {refusal.tier.label}: {refusal.detail}")
    return "; ".join(parts)
