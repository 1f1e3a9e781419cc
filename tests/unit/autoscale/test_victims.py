"""Which replicas a scale-down takes: sleepers from the lowest slots, stops from the highest (so the spare
slots' GPUs come free), never the same replica twice, never more than asked or than there are."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from llmctl.autoscale.victims import scale_down_victims


def test_the_warm_pool_sleeps_on_the_first_slot_and_spares_are_stopped() -> None:
    assert scale_down_victims([2, 0, 1], sleep=1, stop=1) == ([0], [2])
    assert scale_down_victims([1, 0], sleep=1, stop=0) == ([0], [])  # slot 1 stays up, stopped later
    assert scale_down_victims([1], sleep=0, stop=1) == ([], [1])


@given(
    ready=st.lists(st.integers(0, 20), unique=True, max_size=10),
    sleep=st.integers(-1, 12),
    stop=st.integers(-1, 12),
)
def test_victims_are_distinct_ready_slots_within_the_counts(ready: list[int], sleep: int, stop: int) -> None:
    sleepers, stoppers = scale_down_victims(ready, sleep, stop)
    assert set(sleepers) <= set(ready) and set(stoppers) <= set(ready)
    assert not set(sleepers) & set(stoppers)
    assert len(sleepers) == min(max(sleep, 0), len(ready))
    assert len(stoppers) == min(max(stop, 0), len(ready) - len(sleepers))
    kept = set(ready) - set(sleepers) - set(stoppers)
    # Sleepers are the lowest slots; every stopped slot is above every kept one.
    assert all(s <= k for s in sleepers for k in [*kept, *stoppers])
    assert all(k < s for k in kept for s in stoppers)
