#!/usr/bin/env python3
"""Compare what a client and a Prometheus scraper see of a real vLLM (the reference) and of llmctl's
emulated engine (the candidate): the same requests to both, their answers reduced to structure, one row per
check (llmctl.bench.conformance). Exits 1 if any check differs without a documented reason
(llmctl.bench.conformance.DELIBERATE).

    scripts/conformance.py --reference http://127.0.0.1:8001 --candidate http://127.0.0.1:8002 --model tiny

With --start-reference / --start-candidate (shell commands) it starts the engines itself, each in its own
process group, records what /health answers while each starts up, and kills both groups at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import asdict

from llmctl.bench.conformance import DELIBERATE, Row, run, stale_deliberate, watch_startup
from llmctl.bench.conformance_observe import Json

STOP_GRACE_S = 20.0
NONE = "—"  # a side of a differing pair that has nothing the other lacks
LEGEND = (
    "Where two objects or sets differ, each cell shows only what differs: the keys (with their values) or "
    f"members that side has and the other lacks or has otherwise; {NONE} means none. Metric checks that "
    "agree are counted per kind. Observations are structure (keys, types, statuses, framing, families, "
    "labels, bounds), never content or timings."
)


@contextmanager
def started(command: str, url: str, log_path: str) -> Iterator[list[str]]:
    """Start `command` in a process group of its own (vLLM forks an engine core and workers) and yield,
    once it is ready, the /health states seen on the way; the whole group is killed on exit."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            command, shell=True, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    seen: list[str] = []
    try:
        seen.append(watch_startup(url, lambda: proc.poll() is None))
        if not seen[0].endswith("200"):
            raise SystemExit(f"{command!r} did not become ready ({seen[0]}); see {log_path}")
        yield seen
    finally:
        stop_group(proc)


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the whole group, SIGKILL what is left of it after the grace: vLLM's engine core and workers
    can outlive its API server, the group leader."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < deadline:
        proc.poll()  # reap the leader, or the group never empties
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


# ---- rendering -----------------------------------------------------------------------------------------


def show(value: Json, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def cells(row: Row) -> tuple[str, str]:
    """The two observations; for a differing pair of objects or of string sets, only what differs."""
    r, c = row.reference, row.candidate
    if row.verdict == "same" or type(r) is not type(c):
        return show(r), show(c)
    if isinstance(r, dict) and isinstance(c, dict):
        keys = sorted(k for k in {*r, *c} if r.get(k, "\0") != c.get(k, "\0"))
        return show({k: r[k] for k in keys if k in r} or NONE), show(
            {k: c[k] for k in keys if k in c} or NONE
        )
    strings = isinstance(r, list) and isinstance(c, list) and all(isinstance(x, str) for x in [*r, *c])
    if strings and isinstance(r, list) and isinstance(c, list) and sorted(map(str, r)) != sorted(map(str, c)):
        only_r, only_c = [x for x in r if x not in c], [x for x in c if x not in r]
        return show(["only:", *only_r] if only_r else NONE), show(["only:", *only_c] if only_c else NONE)
    return show(r), show(c)


def markdown(rows: Iterable[Row]) -> str:
    """The table for a note. Metric checks that agree are summarised per kind: 150 identical rows would
    hide the few that matter; everything else is one row each."""
    rows = list(rows)
    lines = ["| check | reference | candidate | verdict |", "| --- | --- | --- | --- |"]
    same_metrics: dict[str, int] = {}
    for row in rows:
        kind = row.check.split(" ")[0]
        if row.verdict == "same" and " " in row.check and kind.startswith("metrics."):
            same_metrics[kind] = same_metrics.get(kind, 0) + 1
            continue
        ref, cand = (cell.replace("|", "\\|") for cell in cells(row))
        lines.append(f"| `{row.check}` | {ref} | {cand} | {row.label.replace('|', '/')} |")
    for kind, count in same_metrics.items():
        lines.append(f"| `{kind} *` ({count} checks) | same on both | same on both | same |")
    counts = {v: sum(1 for r in rows if r.verdict == v) for v in ("same", "differs", "deliberate")}
    lines += ["", ", ".join(f"{n} {v}" for v, n in counts.items()) + f" of {len(rows)} checks.", "", LEGEND]
    return "\n".join(lines) + "\n"


def plain(rows: Iterable[Row]) -> str:
    return "".join(f"{r.label:<12} {r.check}: {' | '.join(cells(r))}\n" for r in rows if r.verdict != "same")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", required=True, help="base URL of the real engine")
    ap.add_argument("--candidate", required=True, help="base URL of the emulated engine")
    ap.add_argument("--model", required=True, help="the served model name both were started with")
    ap.add_argument("--start-reference", metavar="CMD", help="shell command starting the reference")
    ap.add_argument("--start-candidate", metavar="CMD", help="shell command starting the candidate")
    ap.add_argument("--log-dir", default="/tmp", help="where started engines log (default /tmp)")
    out = ap.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the rows as JSON")
    out.add_argument("--markdown", action="store_true", help="print the full table in markdown")
    args = ap.parse_args(argv)
    startup: tuple[str, str] | None = None
    with ExitStack() as stack:
        if args.start_reference or args.start_candidate:
            if not (args.start_reference and args.start_candidate):
                ap.error("--start-reference and --start-candidate go together")
            # One at a time: a CPU vLLM start-up should not compete with the emulator's for the cores.
            ref = stack.enter_context(
                started(args.start_reference, args.reference, f"{args.log_dir}/reference.log")
            )
            cand = stack.enter_context(
                started(args.start_candidate, args.candidate, f"{args.log_dir}/candidate.log")
            )
            startup = (ref[0], cand[0])
        rows = run(args.reference, args.candidate, args.model, startup)
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=1))
    elif args.markdown:
        print(markdown(rows), end="")
    else:
        print(plain(rows) or "every check the same", end="" if plain(rows) else "\n")
    stale = stale_deliberate(rows, DELIBERATE)
    if stale:
        print(f"deliberate differences no longer seen (delete them): {', '.join(stale)}", file=sys.stderr)
    return 1 if any(r.verdict == "differs" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
