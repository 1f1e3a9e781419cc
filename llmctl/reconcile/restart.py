"""The restart budget: how many consecutive failures a replica may have before the controller gives up,
and how long it waits before each restart. Consecutive: a replica that stays ready for `stable_after_s`
has its count reset, so five separate crashes a day apart never add up to giving up."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RestartPolicy:
    max_restarts: int = 5
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 60.0
    stable_after_s: float = 300.0  # ready this long without a failure: the failure count starts over

    def delay(self, failures: int) -> float | None:
        """Seconds to wait before restart number `failures` (1-based), or None to give up. The first
        restart is immediate; then base, 2 x base, ... capped."""
        if failures > self.max_restarts:
            return None
        if failures <= 1:
            return 0.0
        return float(min(self.backoff_base_s * 2.0 ** (failures - 2), self.backoff_cap_s))

    def failures_now(self, failures: int, ready_for_s: float | None) -> int:
        """The consecutive-failure count after the replica has been ready for `ready_for_s` (None: not ready)."""
        return 0 if ready_for_s is not None and ready_for_s >= self.stable_after_s else failures
