"""The autoscaler: a signal's wish, shaped by bounds, stabilisation windows, step limits, idle scale-to-zero
and start-up costs, into one Decision. Pure: `now` comes from the caller (time.monotonic() live, env.now in
the simulator), and all state (the windows) lives in this object, so both drivers get the same decisions."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from llmctl.autoscale.signals import Signal, Wish
from llmctl.autoscale.types import Decision, Observation


@dataclass(frozen=True)
class Bounds:
    min_replicas: int = 1
    max_replicas: int = 1
    max_step_up: int = 4  # replicas added per decision at most
    max_step_down: int = 1  # removing slowly is cheap insurance against a burst that comes back
    up_window_s: float = 0.0  # scale up only when every wish in this window asked for more
    down_window_s: float = 60.0  # scale down only to the largest wish in this window
    idle_timeout_s: float | None = 300.0  # with min_replicas 0: no request for this long -> zero


@dataclass(frozen=True)
class StartupCosts:
    """Modelled durations (llmctl.perf.cold_start): they decide between waking a sleeper and a cold start."""

    cold_start_s: float
    wake_s: float
    warm_pool: int = 0  # replicas to keep asleep instead of stopping them when scaling down


class Autoscaler:
    def __init__(self, signal: Signal, bounds: Bounds, costs: StartupCosts) -> None:
        if bounds.max_replicas < bounds.min_replicas:
            raise ValueError("max_replicas is below min_replicas")
        self.signal = signal
        self.bounds = bounds
        self.costs = costs
        self._wishes: deque[tuple[float, int]] = deque()

    def decide(self, obs: Observation, now: float) -> Decision:
        b = self.bounds
        current = obs.active
        wish = self._floor_and_idle(self.signal.wish(obs, now), obs)
        want = min(max(wish.replicas, b.min_replicas), b.max_replicas)
        bound_note = "" if want == wish.replicas else f", bounded to [{b.min_replicas}, {b.max_replicas}]"
        self._remember(now, want)

        if want > current:
            # From zero with requests waiting nothing is served until a replica is up: act at once.
            floor = want if current == 0 else min(w for _, w in self._window(now, b.up_window_s))
            target = min(max(current, floor), current + b.max_step_up)
            if target == current:
                return self._hold(obs, f"{wish.why}{bound_note}; waiting {b.up_window_s:g} s to confirm")
        elif want < current:
            ceiling = max(w for _, w in self._window(now, b.down_window_s))
            target = max(min(current, ceiling), current - b.max_step_down)
            if target == current:
                return self._hold(
                    obs, f"{wish.why}{bound_note}; holding for the {b.down_window_s:g} s down window"
                )
        else:
            return self._hold(obs, f"{wish.why}{bound_note}")
        return self._act(obs, target, f"{wish.why}{bound_note} -> scale {current} to {target}")

    def _floor_and_idle(self, wish: Wish, obs: Observation) -> Wish:
        b = self.bounds
        idle = obs.seconds_since_last_request
        if b.min_replicas == 0 and obs.demand == 0 and b.idle_timeout_s is not None:
            if idle is None or idle >= b.idle_timeout_s:
                never = "no request seen" if idle is None else f"idle {idle:.0f} s >= {b.idle_timeout_s:g} s"
                return Wish(0, never)
            # Inside the idle timeout a deployment keeps at least one replica for the next request.
            return Wish(
                max(wish.replicas, 1), f"{wish.why}; idle {idle:.0f} s < {b.idle_timeout_s:g} s keeps one"
            )
        if obs.demand > 0 and wish.replicas == 0:
            return Wish(1, f"{obs.demand} request(s) waiting need a replica")
        return wish

    def _remember(self, now: float, want: int) -> None:
        self._wishes.append((now, want))
        horizon = now - max(self.bounds.up_window_s, self.bounds.down_window_s)
        while self._wishes and self._wishes[0][0] < horizon:
            self._wishes.popleft()

    def _window(self, now: float, seconds: float) -> list[tuple[float, int]]:
        return [(t, w) for t, w in self._wishes if t >= now - seconds] or [self._wishes[-1]]

    def _hold(self, obs: Observation, why: str) -> Decision:
        return Decision(obs.deployment, obs.active, obs.active, why)

    def _act(self, obs: Observation, target: int, why: str) -> Decision:
        current = obs.active
        if target > current:
            add = target - current
            wake = min(add, obs.count("sleeping"))
            start = add - wake
            how = []
            if wake:
                how.append(f"wake {wake} sleeping (~{self.costs.wake_s:.1f} s)")
            if start:
                how.append(f"cold-start {start} (~{self.costs.cold_start_s:.0f} s)")
            return Decision(
                obs.deployment, current, target, f"{why}: {', '.join(how)}", wake=wake, start=start
            )
        remove = current - target
        # A replica already draining to sleep fills the warm pool as surely as a sleeping one.
        going = sum(1 for r in obs.replicas if r.phase == "draining" and r.draining_to == "sleep")
        room = max(0, self.costs.warm_pool - obs.count("sleeping") - going)
        sleep = min(remove, room)
        stop = remove - sleep
        how = [f"sleep {sleep} (warm pool)"] if sleep else []
        if stop:
            how.append(f"stop {stop}")
        return Decision(obs.deployment, current, target, f"{why}: {', '.join(how)}", sleep=sleep, stop=stop)
