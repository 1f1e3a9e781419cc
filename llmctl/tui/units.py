"""Numbers as the dashboard shows them: always with a unit, at most about four significant digits, never in
scientific notation ("7.78 ms", not "0.007782"; "102k", not "1.019e+05"). Pure functions of their
arguments: no Textual, no store, so every screen and its tests use the same words for the same numbers."""

from __future__ import annotations

import math

SIG = 3  # significant digits: a table column reads at a glance, and 3 tell 7.78 ms from 7.8 ms
MISSING = "-"

# (factor, suffix), smallest first: the largest factor not above the value is the one shown.
_DURATION = ((1e-6, "µs"), (1e-3, "ms"), (1.0, "s"), (60.0, "min"), (3600.0, "h"), (86400.0, "d"))
_COUNT = ((1.0, ""), (1e3, "k"), (1e6, "M"), (1e9, "G"), (1e12, "T"), (1e15, "P"))
_BYTES = (
    (1.0, "B"),
    (2.0**10, "KiB"),
    (2.0**20, "MiB"),
    (2.0**30, "GiB"),
    (2.0**40, "TiB"),
    (2.0**50, "PiB"),
)


def _missing(value: float | None) -> bool:
    return value is None or math.isnan(value)


def significant(value: float, sig: int = SIG) -> str:
    """`value` in plain decimal notation rounded to `sig` significant digits, trailing zeros dropped. An
    integer part longer than `sig` digits is kept whole (callers pick a unit that keeps it short)."""
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if value == 0:
        return "0"
    digits = math.floor(math.log10(abs(value))) + 1  # digits before the point (<= 0 for values under 1)
    text = f"{value:.{max(0, sig - digits)}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _scaled(value: float, units: tuple[tuple[float, str], ...], sep: str, sig: int = SIG) -> str:
    """`value` in the largest unit not above it; a value that rounds up to the next unit moves there
    (999.7 ms is "1 s", not "1000 ms")."""
    if math.isinf(value):
        return significant(value)
    magnitude = abs(value)
    index = 0
    for i, (factor, _) in enumerate(units):
        if magnitude >= factor:
            index = i
    while True:
        factor, suffix = units[index]
        text = significant(value / factor, sig)
        up = index + 1 < len(units) and abs(float(text)) * factor >= units[index + 1][0]
        if not up:
            return f"{text}{sep}{suffix}" if suffix else text
        index += 1


def duration(seconds: float | None) -> str:
    """A span of time in µs, ms, s, min, h or d: 0.007782 -> "7.78 ms"."""
    if _missing(seconds):
        return MISSING
    assert seconds is not None
    if seconds == 0:
        return "0 s"
    return _scaled(seconds, _DURATION, " ")


def count(value: float | None) -> str:
    """A count or a rate's number with k, M, G, T: 101900 -> "102k", 130 -> "130", 2.5 -> "2.5"."""
    if _missing(value):
        return MISSING
    assert value is not None
    return _scaled(value, _COUNT, "")


def per_second(value: float | None, unit: str) -> str:
    """A rate: `per_second(7899, "tok/s")` -> "7.9k tok/s"."""
    return MISSING if _missing(value) else f"{count(value)} {unit}"


def tokens_per_s(value: float | None) -> str:
    return per_second(value, "tok/s")


def percent(fraction: float | None, decimals: int = 1) -> str:
    """A fraction as a percentage with at most `decimals` decimals and SIG significant digits:
    0.9123 -> "91.2%", 0.5 -> "50%", 0.000123 -> "0.01%" at 2 decimals."""
    if _missing(fraction):
        return MISSING
    assert fraction is not None
    value = fraction * 100
    if math.isinf(value):
        return f"{significant(value)}%"
    digits = math.floor(math.log10(abs(value))) + 1 if value else 1
    text = f"{value:.{max(0, min(decimals, SIG - digits))}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{'0' if text == '-0' else text}%"


def money(amount: float | None, currency: str = "$") -> str:
    """An amount of money: cents under $100, whole dollars under $1000, then k/M: "$2.50", "$123",
    "$12.3k"; under a cent, SIG significant digits ("$0.00123")."""
    if _missing(amount):
        return MISSING
    assert amount is not None
    sign, magnitude = ("-" if amount < 0 else ""), abs(amount)
    if math.isinf(magnitude):
        text = "∞"
    elif magnitude >= 999.5:
        text = count(magnitude)
    elif magnitude >= 99.995:
        text = f"{magnitude:.0f}"
    elif magnitude >= 0.01 or magnitude == 0:
        text = f"{magnitude:.2f}"
    else:
        text = significant(magnitude)
    return f"{sign}{currency}{text}"


def size(n_bytes: float | None) -> str:
    """A size in binary units: 85899345920 -> "80 GiB"."""
    if _missing(n_bytes):
        return MISSING
    assert n_bytes is not None
    return _scaled(n_bytes, _BYTES, " ")


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """ "1 host", "2 hosts"."""
    return f"{n} {noun if n == 1 else nouns or noun + 's'}"


def ratio(value: float | None) -> str:
    """A multiple of something (peak to average): 1.83 -> "1.83x"."""
    return MISSING if _missing(value) else f"{count(value)}x"
