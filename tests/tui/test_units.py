"""llmctl.tui.units: every number keeps its magnitude, carries its unit, has at most four significant digits
and never comes out in scientific notation (issue #17: "1.019e+05" requests, "0.007782" s TTFT)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmctl.tui import units
from llmctl.tui.sim_adapter import SimSummary

DURATION = {"µs": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
COUNT = {"": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15}
BYTES = {"B": 1.0, "KiB": 2.0**10, "MiB": 2.0**20, "GiB": 2.0**30, "TiB": 2.0**40, "PiB": 2.0**50}
NUMBER = re.compile(r"^(-?)(\d+(?:\.\d+)?)")


def split(text: str) -> tuple[float, str]:
    """ "7.78 ms" -> (7.78, "ms"); "102k" -> (102.0, "k")."""
    found = NUMBER.match(text)
    assert found, f"{text!r} does not start with a plain number"
    return float(found.group(0)), text[found.end() :].strip()


def significant_digits(text: str) -> int:
    found = NUMBER.match(text.lstrip("-$"))
    assert found, text
    return len(found.group(2).replace(".", "").lstrip("0")) or 1


def assert_plain(text: str) -> None:
    assert not re.search(r"\d[eE][-+]?\d", text), f"scientific notation in {text!r}"
    assert significant_digits(text) <= 4, f"more than 4 significant digits in {text!r}"


def close(shown: float, value: float, rel: float = 0.006, abs_: float = 0.0) -> bool:
    return math.isclose(shown, value, rel_tol=rel, abs_tol=abs_)


@given(st.floats(min_value=1e-7, max_value=1e8) | st.floats(min_value=-1e8, max_value=-1e-7))
def test_duration_keeps_its_magnitude(seconds: float) -> None:
    text = units.duration(seconds)
    assert_plain(text)
    number, unit = split(text.lstrip("-"))
    assert unit in DURATION, text
    assert close(math.copysign(number * DURATION[unit], seconds), seconds), (seconds, text)


@given(st.floats(min_value=1e-3, max_value=1e17) | st.integers(min_value=0, max_value=10**17).map(float))
def test_count_keeps_its_magnitude(value: float) -> None:
    text = units.count(value)
    assert_plain(text)
    number, suffix = split(text)
    assert suffix in COUNT, text
    assert close(number * COUNT[suffix], value, abs_=0.0005), (value, text)


@given(st.floats(min_value=1, max_value=2.0**55))
def test_size_keeps_its_magnitude(n_bytes: float) -> None:
    text = units.size(n_bytes)
    assert_plain(text)
    number, unit = split(text)
    assert unit in BYTES, text
    assert close(number * BYTES[unit], n_bytes), (n_bytes, text)


@given(st.floats(min_value=-1.0, max_value=10.0), st.integers(min_value=0, max_value=2))
def test_percent_keeps_its_magnitude(fraction: float, decimals: int) -> None:
    text = units.percent(fraction, decimals)
    assert text.endswith("%")
    assert_plain(text)
    number, _ = split(text.lstrip("-"))
    shown = math.copysign(number, fraction) / 100
    assert close(shown, fraction, abs_=0.5 * 10**-decimals / 100 + 1e-12), (fraction, text)


@given(st.floats(min_value=0, max_value=1e14))
def test_money_keeps_its_magnitude(amount: float) -> None:
    text = units.money(amount)
    assert text.startswith("$")
    assert_plain(text)
    number, suffix = split(text[1:])
    assert suffix in COUNT, text
    assert close(number * COUNT[suffix], amount, abs_=0.00501), (amount, text)  # half a cent


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (units.duration(0.007782), "7.78 ms"),
        (units.duration(0.00025), "250 µs"),
        (units.duration(1.5), "1.5 s"),
        (units.duration(90), "1.5 min"),
        (units.duration(0.9997), "1 s"),  # rounds up into the next unit, not "1000 ms"
        (units.duration(0), "0 s"),
        (units.count(1.019e5), "102k"),
        (units.count(130), "130"),
        (units.count(2_500_000), "2.5M"),
        (units.tokens_per_s(7899), "7.9k tok/s"),
        (units.per_second(12.345, "req/s"), "12.3 req/s"),
        (units.percent(0.9123), "91.2%"),
        (units.percent(0.9123, 0), "91%"),
        (units.money(2.5), "$2.50"),
        (units.money(12345), "$12.3k"),
        (units.size(80 * 2**30), "80 GiB"),
        (units.ratio(1.834), "1.83x"),
    ],
)
def test_examples(text: str, expected: str) -> None:
    assert text == expected


@pytest.mark.parametrize(
    "fn",
    [units.duration, units.count, units.percent, units.money, units.size, units.ratio, units.tokens_per_s],
)
def test_missing_and_nan_are_a_dash(fn: object) -> None:
    assert callable(fn)
    assert fn(None) == "-" and fn(float("nan")) == "-"


def test_simulation_metrics_carry_their_units() -> None:
    """Every metric of a simulator summary (sim.outcome.summarise's keys) as the simulation screen shows it."""
    from llmctl.tui.screens.simulation import metric
    from llmctl.tui.sim_adapter import summarise

    raw = {
        "requests": 101_900,
        "input_tokens": 91_710_000,
        "output_tokens": 20_380_000,
        "ttft_s": {"p50": 0.007782, "p90": 0.0412, "p99": 1.23456},
        "itl_s": {"p50": 0.0119, "p90": 0.0151, "p99": 0.0307},
        "e2e_s": {"p50": 2.5, "p90": 75.0, "p99": 4000.0},
        "slo_attainment": 0.99312,
        "gpu_hours": 12.5,
        "cost": 31.254,
        "cost_per_million_tokens": 0.2793,
        "peak_gpus": 8,
        "mean_gpus": 5.2083,
        "demand_peak_to_average": 3.1416,
        "gpus_peak_to_average": float("nan"),
        "fixed_fleet_cost": 48.0,
        "saving_vs_fixed_fleet": 0.34887,
    }
    shown = {k: metric(k, v) for k, v in summarise(Path("day.yaml"), raw).metrics.items()}
    assert shown == {
        "requests": "102k req",
        "input_tokens": "91.7M tok",
        "output_tokens": "20.4M tok",
        "ttft_s.p50": "7.78 ms",
        "ttft_s.p90": "41.2 ms",
        "ttft_s.p99": "1.23 s",
        "itl_s.p50": "11.9 ms",
        "itl_s.p90": "15.1 ms",
        "itl_s.p99": "30.7 ms",
        "e2e_s.p50": "2.5 s",
        "e2e_s.p90": "1.25 min",
        "e2e_s.p99": "1.11 h",
        "slo_attainment": "99.3%",
        "gpu_hours": "12.5 h",
        "cost": "$31.25",
        "cost_per_million_tokens": "$0.28",
        "peak_gpus": "8",
        "mean_gpus": "5.21",
        "demand_peak_to_average": "3.14x",
        "gpus_peak_to_average": "-",
        "fixed_fleet_cost": "$48.00",
        "saving_vs_fixed_fleet": "34.9%",
    }
    for text in shown.values():
        if text != units.MISSING:
            assert_plain(text)


def test_simulation_comparison_shows_units_and_no_nan_change() -> None:
    from llmctl.tui.screens.simulation import comparison_rows

    before = SimSummary("a", {"ttft_s.p99": 0.5, "slo_attainment": float("nan")})
    after = SimSummary("b", {"ttft_s.p99": 0.75, "slo_attainment": 0.9})
    rows = {key: [str(c) for c in cells] for key, cells in comparison_rows(after, before)}
    assert rows["ttft_s.p99"] == ["ttft_s.p99", "500 ms", "750 ms", "+50%"]
    assert rows["slo_attainment"] == ["slo_attainment", "-", "90%", ""]
