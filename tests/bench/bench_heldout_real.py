"""Held-out fidelity on the real engine (issue #16; not run by CI): vLLM's CPU backend serving the ~100 M
parameter random-weight Llama, calibrated with `llmctl perf calibrate --url` right before each measurement,
then `llmctl perf heldout --url` (Poisson light and near saturation, an Azure trace slice) measured on the
engine and predicted by the simulator. Two repetitions (calibrate + loads each) show the run-to-run noise.

    flock /tmp/llmctl-real-engine.lock .venv/bin/python tests/bench/bench_heldout_real.py [--reps 2]

Prints the tables for tests/bench/results/heldout-real-cpu.md, writes heldout-real-cpu.{json,png} and keeps
the engine log's per-iteration lines
(`--enable-logging-iteration-details`) for the step-time analysis beside them (heldout-real-cpu.iters.csv).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from bench_real_calibration import (  # the sibling benchmark's engine start/stop and contention sampler
    MODEL_DIR,
    Contention,
    Server,
    device_name,
    pick_vllm_python,
    start_server,
)

from llmctl.bench.heldout import Row
from llmctl.bench.heldout_report import markdown_table, verdicts

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "tests" / "bench" / "results"
PORT = 19500
SERVED = "small"
MAX_NUM_SEQS = 16
MAX_MODEL_LEN = 2048
CALIBRATION = ["--concurrency", "1,1,1,2,4,8", "--prompt-tokens", "128", "--output-tokens", "32"]
ITERATION = re.compile(
    r"Iteration\((\d+)\): (\d+) context requests, (\d+) context tokens, (\d+) generation requests, "
    r"(\d+) generation tokens, iteration elapsed time: ([\d.]+) ms"
)


def llmctl(*args: str, timeout: float, ok_codes: tuple[int, ...] = (0,)) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "llmctl.cli.main", *args],
        stdout=subprocess.PIPE,
        stderr=None,  # progress and per-load lines go straight to the terminal
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    if done.returncode not in ok_codes:
        raise RuntimeError(f"llmctl {' '.join(args[:2])} failed ({done.returncode})")
    return done.stdout


def calibrate(url: str, out: Path) -> dict[str, Any]:
    text = llmctl(
        "perf", "calibrate", "--url", url, "--served-model-name", SERVED, "--model", str(MODEL_DIR),
        "--gpu", device_name(), *CALIBRATION, "-o", str(out), "--json", timeout=1200,
    )  # fmt: skip
    data: dict[str, Any] = json.loads(text)
    # Only the fitted factors stay in the file; the rest are the code's defaults when the file is read. The
    # full list the calibration wrote would pin the factor names of that moment (they change as the model
    # grows, and a file naming a factor since renamed is refused).
    written = yaml.safe_load(out.read_text())
    written["factors"] = {k: v for k, v in written["factors"].items() if k in data["fitted"]}
    out.write_text(yaml.safe_dump(written, sort_keys=False))
    return data


def heldout(url: str, profile: Path, chart: Path, extra: list[str]) -> dict[str, Any]:
    text = llmctl(
        "perf", "heldout", "--url", url, "--served-model-name", SERVED, "--profile-file", str(profile),
        "--max-num-seqs", str(MAX_NUM_SEQS), "--max-model-len", str(MAX_MODEL_LEN), "--chart", str(chart),
        "--json", *extra, timeout=3600, ok_codes=(0, 1),
    )  # fmt: skip
    data: dict[str, Any] = json.loads(text)
    return data


def rows_of(report: dict[str, Any]) -> list[Row]:
    return [Row(r["load"], r["metric"], r["measured"], r["predicted"], r["target"]) for r in report["rows"]]


def noise_table(reps: list[dict[str, Any]]) -> str:
    """Measured values of each repetition and their spread (max/min - 1): the engine's run-to-run noise."""
    by_key: dict[tuple[str, str], list[float]] = {}
    for rep in reps:
        for r in rep["heldout"]["rows"]:
            by_key.setdefault((r["load"], r["metric"]), []).append(r["measured"])
    lines = [
        "| load | metric | " + " | ".join(f"run {i + 1}" for i in range(len(reps))) + " | spread |",
        "|---|---|" + "---:|" * (len(reps) + 1),
    ]
    for (load, metric), values in by_key.items():
        unit = 1.0 if metric == "throughput" else 1000.0
        cells = " | ".join(f"{v * unit:.0f}" if unit > 1 else f"{v:.1f}" for v in values)
        spread = max(values) / min(values) - 1 if min(values) > 0 else float("nan")
        lines.append(f"| {load} | {metric} | {cells} | {spread:.0%} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--heldout-args", default="", help="extra arguments for llmctl perf heldout")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="llmctl-heldout-"))
    python = pick_vllm_python(None)
    contention = Contention()
    contention.start()
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "2", "VLLM_CPU_OMP_THREADS_BIND": "auto"}
    # Root may raise the engine's priority over the neighbours' tests (nice -5); others run it as is.
    nice = ["nice", "-n", "-5"] if os.geteuid() == 0 else []
    argv = [
        *nice, str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(MODEL_DIR),
        "--served-model-name", SERVED, "--host", "127.0.0.1", "--port", str(PORT), "--max-model-len",
        str(MAX_MODEL_LEN), "--max-num-seqs", str(MAX_NUM_SEQS), "--enable-logging-iteration-details",
    ]  # fmt: skip
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    reps: list[dict[str, Any]] = []
    server: Server | None = None
    try:
        t0 = time.monotonic()
        server = start_server(argv, env, work / "vllm.log", PORT, 900, contention.groups)
        print(f"vLLM up in {time.monotonic() - t0:.0f} s", flush=True)
        for i in range(args.reps):
            profile = args.out / f"heldout-real-cpu.run{i + 1}.profile.yaml"
            t0 = time.monotonic()
            print(f"run {i + 1}: calibrating", flush=True)
            cal = calibrate(server.url, profile)
            t1 = time.monotonic()
            print(f"run {i + 1}: held-out loads", flush=True)
            chart = args.out / ("heldout-real-cpu.png" if i == 0 else f"heldout-real-cpu.run{i + 1}.png")
            report = heldout(server.url, profile, chart, args.heldout_args.split())
            t2 = time.monotonic()
            reps.append(
                {
                    "calibration": cal,
                    "heldout": report,
                    "contention": {
                        "calibrate": contention.summary(t0, t1),
                        "loads": contention.summary(t1, t2),
                    },
                }
            )
    finally:
        if server is not None:
            server.stop()
        contention.stop()
    iterations = [m.groups() for m in map(ITERATION.search, (work / "vllm.log").open(errors="replace")) if m]
    (args.out / "heldout-real-cpu.iters.csv").write_text(
        "iteration,ctx_reqs,ctx_tokens,gen_reqs,gen_tokens,elapsed_ms\n"
        + "".join(",".join(r) + "\n" for r in iterations)
    )
    (args.out / "heldout-real-cpu.json").write_text(
        json.dumps({"started": started, "reps": reps}, indent=2) + "\n"
    )
    lines = [f"# run {i + 1}\n\n{markdown_table(rows_of(rep['heldout']))}\n" for i, rep in enumerate(reps)]
    lines.append(noise_table(reps))
    for i, rep in enumerate(reps):
        lines.append(f"run {i + 1}: {verdicts(rows_of(rep['heldout']))}, contention {rep['contention']}")
    text = "\n".join(lines)
    print(text)  # the tables heldout-real-cpu.md is written from


if __name__ == "__main__":
    main()
