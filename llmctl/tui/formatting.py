"""Small text renderers shared by the screens: bars, ages, latencies against targets, phase counts."""

from __future__ import annotations

import time

from rich.text import Text

from llmctl.tui import units
from llmctl.tui.metrics import Quantiles, breached

PHASE_STYLE = {
    "ready": "green",
    "starting": "yellow",
    "waking": "yellow",
    "draining": "yellow",
    "sleeping": "blue",
    "failed": "bold red",
    "stopped": "dim",
}
INTENT_STYLE = {"pending": "yellow", "done": "green", "failed": "bold red"}
# A pool's decisions (llmctl.control.pools): a grant starts a replica, a preemption drains one, a wait holds
# for a drain; a refusal or an unplaced grant leaves a tenant short.
POOL_EVENT_STYLE = {
    "pool-grant": "green",
    "pool-preempt": "yellow",
    "pool-wait": "yellow",
    "pool-refuse": "red",
    "pool-unplaced": "bold red",
}


def bar(fraction: float, width: int = 10) -> Text:
    """A horizontal bar, green under 70 %, yellow under 90 %, red above."""
    fraction = min(1.0, max(0.0, fraction))
    filled = round(fraction * width)
    style = "green" if fraction < 0.7 else "yellow" if fraction < 0.9 else "red"
    text = Text("█" * filled, style=style)
    text.append("░" * (width - filled), style="dim")
    return text


def clock(at: float) -> str:
    """A time of day, UTC (events and intents are within the last hours)."""
    return time.strftime("%H:%M:%S", time.gmtime(at))


def gib(mib: int) -> str:
    return f"{mib / 1024:.0f}"


def age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}"


def latency(q: Quantiles, target: Quantiles) -> Text:
    """ "p50/p99" in milliseconds; a quantile over its target shows red."""
    text = Text(ms(q.p50), style="bold red" if breached(q.p50, target.p50) else "")
    text.append("/")
    text.append(ms(q.p99), style="bold red" if breached(q.p99, target.p99) else "")
    return text


def target(t: Quantiles) -> str:
    if t.p50 is None and t.p99 is None:
        return "-"
    return f"{ms(t.p50)}/{ms(t.p99)}"


def phases(counts: tuple[tuple[str, int], ...]) -> Text:
    text = Text()
    for i, (phase, n) in enumerate(counts):
        if i:
            text.append(" ")
        text.append(f"{n} {phase}", style=PHASE_STYLE.get(phase, ""))
    return text if counts else Text("none", style="dim")


def phase(name: str) -> Text:
    return Text(name, style=PHASE_STYLE.get(name, ""))


def rate(value: float) -> str:
    """Requests/s in a column headed req/s: one decimal while small, then k/M rather than long integers."""
    return f"{value:.1f}" if value < 100 else units.count(value)


def whole(value: float) -> str:
    """A count shown whole (running, waiting, in-flight: averages of whole things), with k/M past 999."""
    return f"{value:.0f}" if abs(value) < 999.5 else units.count(value)
