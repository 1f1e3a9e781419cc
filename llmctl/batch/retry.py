"""What to do with a failed attempt, and how long to wait before the next. Pure: the caller passes the
outcome and a random number.

- `done`: a result to write (2xx, or a 4xx the server will give again: bad request, unknown model).
- `retry`: the request may succeed later (timeouts, 5xx, 429, a response cut short): counts an attempt.
- `abort`: the server refused the job's credentials (401, 403): every other request would be refused too,
  and a refusal is not an answer, so the job stops with nothing recorded for it.
- `unavailable`: the replica is not there (connection refused or reset before any response, 503 from a
  sleeping engine or an empty gateway): the replica is set aside and the request goes elsewhere without
  spending an attempt, since nothing is wrong with the request itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

# 408 Request Timeout, 409 Conflict (a transient state clash), 425 Too Early, 429 Too Many Requests.
RETRY_4XX = frozenset({408, 409, 425, 429})


class Verdict(Enum):
    DONE = "done"
    RETRY = "retry"
    UNAVAILABLE = "unavailable"
    ABORT = "abort"


class Failure(Enum):
    """Transport failures, named by what they mean for a retry rather than by the HTTP library's classes."""

    CONNECT = "connect"  # refused, reset or unreachable before the request was sent
    TIMEOUT = "timeout"  # connect, read or pool timeout
    BROKEN = "broken"  # the connection died after the request was sent (replica killed mid-request)
    BAD_BODY = "bad_body"  # a 2xx whose body is not JSON


def classify_status(status: int) -> Verdict:
    if status in (401, 403):
        return Verdict.ABORT
    if status == 503:
        return Verdict.UNAVAILABLE
    if status >= 500 or status in RETRY_4XX:
        return Verdict.RETRY
    return Verdict.DONE


def classify_failure(failure: Failure) -> Verdict:
    return Verdict.UNAVAILABLE if failure is Failure.CONNECT else Verdict.RETRY


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"): the
    wait is uniform in [0, min(cap, base * 2**attempt)], which spreads retries of many requests apart."""

    base_s: float = 0.2
    cap_s: float = 20.0

    def delay(self, attempt: int, unit: float, retry_after_s: float | None = None) -> float:
        """Seconds before retry number `attempt` (1 for the first retry); `unit` is uniform in [0, 1)."""
        ceiling = min(self.cap_s, self.base_s * 2.0 ** max(0, attempt - 1))
        wait = ceiling * unit
        if retry_after_s is not None and retry_after_s > 0:
            wait = max(wait, min(retry_after_s, self.cap_s))  # the server said when; do not come sooner
        return wait


def retry_after(header: str | None) -> float | None:
    """Seconds from a Retry-After header in its delta-seconds form (the HTTP-date form is ignored)."""
    if not header:
        return None
    try:
        value = float(header.strip())
    except ValueError:
        return None
    return value if value >= 0 else None


@dataclass(frozen=True)
class ReplicaCooloff:
    """How long a replica that failed as unavailable is set aside before it is probed again: doubling with
    each consecutive failure, from `first_s` up to `cap_s`."""

    first_s: float = 0.25
    cap_s: float = 5.0

    def delay(self, strikes: int) -> float:
        return min(self.cap_s, self.first_s * 2.0 ** max(0, strikes - 1))
