"""Fault injection: a seeded chaos run against a live fleet on a real sshd host (emulated engines; the gateway
and the controller as separate processes), under steady load through the gateway and a batch job whose
output fills its disk. Faults, one after another in a seeded order: kill -9 and SIGSTOP of replicas, of the
controller and of the gateway; the store held locked; the host's sshd down while a replica crashes; a corrupt
deployment row. Checked throughout and at the end: no replica runs twice or unrecorded; every request got an
answer or a well-formed error (connection errors only while the gateway was down); no traceback on any
console; the batch output has exactly one line per custom_id; desired state within a bound after each
fault; nothing left running after `stop --all`.

LLMCTL_CHAOS_SEED picks another order; LLMCTL_CHAOS_REPORT names a file for the table of faults and
recovery times (the closing note's)."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from llmctl.state.records import replicas
from llmctl.state.store import Store
from llmctl.testing.chaos import DEFECTS, Audit, Fault, Load, Outcome, Report, engine_processes
from llmctl.testing.local_fleet import LocalFleet, wait_for
from llmctl.testing.sshd_hosts import SshdHosts

pytestmark = [pytest.mark.chaos, pytest.mark.sshd, pytest.mark.slow]
SEED = int(os.environ.get("LLMCTL_CHAOS_SEED", "7"))
INTERVAL_S = 1.0
RECOVERY_BOUND_S = 45.0
BATCH_LINES = 3000
FAULTS = {
    "replica kill -9": 3,
    "replica SIGSTOP 8 s": 2,
    "controller kill -9": 2,
    "controller SIGSTOP 3 s": 1,
    "gateway kill -9": 2,
    "gateway SIGSTOP 3 s": 1,
    "store locked 4 s": 2,
    "sshd down 4 s + replica kill -9": 1,
    "corrupt deployment row": 1,
}


class ChaosFleet(LocalFleet):
    def __init__(self, tmp_path: Path, hosts: SshdHosts) -> None:
        super().__init__(tmp_path, time_scale=0.01)
        self.hosts = hosts
        self.vars = {**hosts.env(self.state), "LLMCTL_EMULATOR_TIME_SCALE": "0.01"}
        self.inventory = hosts.inventory
        self.interval_s = INTERVAL_S
        self.gateway: subprocess.Popen[bytes] | None = None
        self.consoles: list[Path] = []
        self.down: list[tuple[float, float]] = []  # windows when the gateway answered nothing

    def _spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = self.tmp / f"{name}-{len(self.consoles)}.log"
        self.consoles.append(log)
        with log.open("wb") as out:  # a file, not a pipe nobody reads: a full pipe would block the process
            return subprocess.Popen(
                [sys.executable, "-m", "llmctl.cli.main", *args],
                env=self.vars,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def start_controller(self, *extra: str) -> None:
        self.controller = self._spawn(  # type: ignore[assignment]
            "controller",
            "controller",
            "-i",
            str(self.inventory),
            "--interval",
            str(INTERVAL_S),
            "--no-gateway",
        )

    def start_gateway(self) -> None:
        self.gateway = self._spawn(
            "gateway", "gateway", "-i", str(self.inventory), "--port", str(self.gateway_port)
        )
        wait_for("the gateway", self.gateway_up)

    def gateway_up(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.gateway_port}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self, which: str) -> None:
        proc = self.controller if which == "controller" else self.gateway
        assert proc is not None and proc.poll() is None, f"the {which} died on its own"
        proc.kill()
        proc.wait(timeout=10)

    def end(self, proc: subprocess.Popen[bytes] | subprocess.Popen[str] | None) -> None:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)


@pytest.fixture
def fleet(tmp_path: Path, ssh_hosts: SshdHosts, host_venv: Path) -> Iterator[ChaosFleet]:
    f = ChaosFleet(tmp_path, ssh_hosts)
    yield f
    ssh_hosts.start("gpu8")  # whatever a failure left down
    ssh_hosts.wait("gpu8")
    f.end(f.controller)
    f.end(f.gateway)
    f.llmctl("stop", "--all", "-i", str(f.inventory), timeout=300)


def playbook(tmp: Path) -> Path:
    chat = {
        "name": "chat",
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "workload": "offline",
        "engine": "emulated",
        "emulate": "vllm",
        "placement": {"hosts": ["gpu8"]},
        "scaling": {"min_replicas": 2},
    }
    decoy = {**chat, "name": "decoy", "scaling": {"min_replicas": 1}}
    path = tmp / "pb.yaml"
    path.write_text(yaml.safe_dump({"deployments": [chat, decoy]}))
    return path


def alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Disk:
    """The batch output's own small file system (tmpfs), so that it fills for real (ENOSPC)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir()
        self._mount("size=256k")

    def _mount(self, options: str, remount: bool = False) -> None:
        argv = [
            "mount",
            "-t",
            "tmpfs",
            "-o",
            ("remount," if remount else "") + options,
            "tmpfs",
            str(self.path),
        ]
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0:
            problem = f"cannot mount a tmpfs for the full-disk fault: {done.stderr.strip()}"
            if os.environ.get("CI") == "true":
                pytest.fail(problem)
            pytest.skip(problem)

    def grow(self) -> None:
        self._mount("size=64m", remount=True)

    def close(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Disk]:
    d = Disk(tmp_path / "out")
    yield d
    d.close()


def test_chaos(fleet: ChaosFleet, disk: Disk, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    report = Report()
    fleet.apply(playbook(tmp_path))
    fleet.start_gateway()
    fleet.start_controller()
    store = Store(fleet.state)

    def recorded() -> set[str]:
        # Its own connection: the audit runs in a thread of its own.
        db = sqlite3.connect(fleet.state, timeout=5)
        try:
            return {str(name) for (name,) in db.execute("SELECT name FROM replicas")}
        finally:
            db.close()

    def ticked_after(t: float) -> bool:
        row = store.db.execute("SELECT MAX(at) FROM metric_samples").fetchone()
        return bool(row and row[0] and row[0] > t)

    load = Load(f"http://127.0.0.1:{fleet.gateway_port}", "chat")

    def steady(after: float) -> bool:
        rows = [r for r in replicas(store) if r.phase == "ready" and alive(r.pid)]
        ready = {d: sum(r.deployment == d for r in rows) for d in ("chat", "decoy")}
        return ready == {"chat": 2, "decoy": 1} and load.last_answer_at() > after and ticked_after(after)

    def recover(kind: str, started: float, ended: float) -> None:
        wait_for(f"recovery from {kind}", lambda: steady(ended), timeout=RECOVERY_BOUND_S)
        report.add(Fault(kind, started, ended, time.time()))

    load.start()
    wait_for("the fleet serving", lambda: steady(0.0), timeout=RECOVERY_BOUND_S)
    batch_in = tmp_path / "batch.jsonl"
    batch_in.write_text(
        "".join(
            json.dumps(
                {
                    "custom_id": f"req-{i}",
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": {"messages": [{"role": "user", "content": f"item {i}"}], "max_tokens": 8},
                }
            )
            + "\n"
            for i in range(BATCH_LINES)
        )
    )
    batch_out = disk.path / "results.jsonl"
    batch_argv = ("batch", "run", str(batch_in), "-d", "chat", "-o", str(batch_out), "-c", "4")
    batch = fleet._spawn("batch", *batch_argv, "-i", str(fleet.inventory))
    audit = Audit(recorded)
    audit.start()
    try:
        schedule = [kind for kind, times in FAULTS.items() for _ in range(times)]
        rng.shuffle(schedule)
        report.notes.append(f"seed {SEED}; order: {', '.join(schedule)}")
        disk_full_at: float | None = None
        for kind in schedule:
            started = time.time()
            ended = inject(kind, fleet, store, rng, report)
            recover(kind, started, ended)
            if disk_full_at is None and batch.poll() is not None:
                # The first run stopped on the full disk: it says so in one line and keeps what it wrote.
                assert batch.returncode != 0, "the batch finished on a 256 KiB disk"
                disk_full_at = time.time()
                kept = len(batch_out.read_bytes().splitlines())
                report.notes.append(f"batch: the first run stopped on the full disk with {kept} lines kept")
                disk.grow()
                batch = fleet._spawn("batch", *batch_argv, "-i", str(fleet.inventory))
            time.sleep(rng.uniform(0.5, 1.5))
        assert disk_full_at is not None, "the batch never filled its disk"
        last_batch = [c for c in fleet.consoles if c.name.startswith("batch-")][-1]
        assert batch.wait(timeout=300) == 0, last_batch.read_text()[-2000:]
        report.add(
            Fault("batch disk full (recovery: the resumed job done)", disk_full_at, disk_full_at, time.time())
        )
    finally:
        outcomes = load.stop()
        audit.stop()
    first_batch = next(c for c in fleet.consoles if c.name.startswith("batch-"))
    said = first_batch.read_text()
    assert "No space left on device" in said and "Traceback" not in said, said[-2000:]

    # Every custom_id answered exactly once, across the full disk and every replica fault.
    ids = [json.loads(line)["custom_id"] for line in batch_out.read_text().splitlines()]
    assert len(ids) == BATCH_LINES and set(ids) == {f"req-{i}" for i in range(BATCH_LINES)}

    text = report.table(outcomes)
    if os.environ.get("LLMCTL_CHAOS_REPORT"):
        Path(os.environ["LLMCTL_CHAOS_REPORT"]).write_text(text + "\n")
    print(text)
    assert not audit.violations, audit.violations[:10]
    assert audit.checks > 20
    defects = [o for o in outcomes if o.kind in DEFECTS]
    assert not defects, defects[:5]
    assert sum(o.kind == "answer" for o in outcomes) > 200
    stray = [o for o in outcomes if o.kind in ("connect", "reset") and not _during(o, fleet.down)]
    assert not stray, stray[:5]
    for console in fleet.consoles:
        assert "Traceback" not in console.read_text(), f"{console.name}: {console.read_text()[-3000:]}"

    # Everything stops, and nothing of the fleet is left running.
    out = fleet.llmctl("stop", "--all", "-i", str(fleet.inventory), timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    wait_for("no replica left", lambda: not replicas(store), timeout=60)
    assert not engine_processes(), engine_processes()
    store.close()


def _during(o: Outcome, windows: list[tuple[float, float]]) -> bool:
    return any(o.started <= end + 1.0 and o.ended >= start - 1.0 for start, end in windows)


def _replica(store: Store, rng: random.Random, deployment: str = "chat") -> tuple[str, int]:
    rows = [r for r in replicas(store) if r.deployment == deployment and r.pid is not None]
    row = rng.choice(rows)
    assert row.pid is not None
    return row.name, row.pid


def inject(kind: str, fleet: ChaosFleet, store: Store, rng: random.Random, report: Report) -> float:
    """Injects one fault and ends it; returns when it ended (recovery is timed from there)."""
    if kind == "replica kill -9":
        _, pid = _replica(store, rng)
        os.killpg(pid, signal.SIGKILL)
    elif kind == "replica SIGSTOP 8 s":
        _, pid = _replica(store, rng)
        _pause(lambda sig: os.killpg(pid, sig), 8.0)
    elif kind == "controller kill -9":
        fleet.kill("controller")
        time.sleep(1.0)
        fleet.start_controller()
    elif kind in ("controller SIGSTOP 3 s", "gateway SIGSTOP 3 s"):
        proc = fleet.controller if kind.startswith("controller") else fleet.gateway
        assert proc is not None
        _pause(proc.send_signal, 3.0)
    elif kind == "gateway kill -9":
        down = time.time()
        fleet.kill("gateway")
        time.sleep(1.0)
        fleet.start_gateway()
        fleet.down.append((down, time.time()))
    elif kind == "store locked 4 s":
        holder = sqlite3.connect(fleet.state, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        time.sleep(4.0)
        holder.execute("COMMIT")
        holder.close()
    elif kind == "sshd down 4 s + replica kill -9":
        fleet.hosts.drop("gpu8")
        _, pid = _replica(store, rng)
        os.killpg(pid, signal.SIGKILL)  # its restart needs the host: it backs off until sshd is back
        time.sleep(4.0)
        fleet.hosts.start("gpu8")
        fleet.hosts.wait("gpu8")
    elif kind == "corrupt deployment row":
        corrupted = time.time()
        (original,) = store.db.execute("SELECT spec FROM deployments WHERE name = 'decoy'").fetchone()
        store.db.execute("UPDATE deployments SET spec = '{not json' WHERE name = 'decoy'")
        seen = wait_for(
            "the decoy quarantined", lambda: fleet.event("decoy", "quarantined", corrupted), timeout=30
        )
        report.notes.append(f"corrupt row: quarantined {seen.at - corrupted:.2f} s after it was written")
        store.db.execute("UPDATE deployments SET spec = ? WHERE name = 'decoy'", (original,))
    else:
        raise AssertionError(f"unknown fault {kind}")
    return time.time()


def _pause(send: Callable[[int], None], seconds: float) -> None:
    send(signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        send(signal.SIGCONT)
