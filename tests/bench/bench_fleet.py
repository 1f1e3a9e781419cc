"""Benchmark: `hosts exec -- true` and fact gathering on 1, 10 and 50 loopback sshd hosts, beside Ansible
ad-hoc (`-m command -a true`, `-m setup`) on the same hosts. Not a test; run as root:

    .venv/bin/python tests/bench/bench_fleet.py [--ansible /tmp/ansible-venv/bin/ansible]

Each figure is the median wall time of whole CLI runs (process start, connect, run, close), the way an
operator experiences them. Ratios are against llmctl on one host, and llmctl against Ansible per host count.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from llmctl.testing.sshd_hosts import available, start_hosts

H100 = "NVIDIA H100 80GB HBM3"
COUNTS = (1, 10, 50)


def timed(argv: list[str], env: dict[str, str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        out = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
        times.append(time.perf_counter() - start)
        if out.returncode != 0:
            raise SystemExit(f"{' '.join(argv[:6])}... failed: {out.stdout[-800:]} {out.stderr[-800:]}")
    return statistics.median(times)


def ansible_inventory(path: Path, cluster, names: list[str]) -> None:  # type: ignore[no-untyped-def]
    lines = ["[all]"]
    for name in names:
        h = cluster.hosts[name]
        lines.append(
            f"{name} ansible_host={h.address} ansible_port=2222 ansible_user=llmctltest "
            f"ansible_ssh_private_key_file={cluster.key} ansible_python_interpreter=/usr/bin/python3"
        )
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ansible", default="/tmp/ansible-venv/bin/ansible", help="ansible executable")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    reason = available()
    if reason:
        raise SystemExit(reason)
    cluster = start_hosts({f"h{i:02d}": [H100] * 8 for i in range(max(COUNTS))}, subnet=2)
    work = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    try:
        env = cluster.env(work / "state.db")
        ans_env = {
            **os.environ,
            "ANSIBLE_HOST_KEY_CHECKING": "False",
            "ANSIBLE_SSH_ARGS": "-o ControlMaster=no",
            "ANSIBLE_FORKS": "50",
            "ANSIBLE_PYTHON_INTERPRETER": "/usr/bin/python3",
            "ANSIBLE_LOCAL_TEMP": str(work / "ansible-tmp"),
            "ANSIBLE_GATHERING": "explicit",
        }
        have_ansible = Path(args.ansible).exists()
        rows = []
        names = list(cluster.hosts)
        for n in COUNTS:
            limit = ",".join(names[:n])
            base = [sys.executable, "-m", "llmctl.cli.main", "hosts"]
            inv = ["-i", str(cluster.inventory), "--limit", limit]
            exec_s = timed([*base, "exec", *inv, "--", "true"], env, args.repeat)
            facts_s = timed([*base, "facts", *inv], env, args.repeat)
            a_exec = a_setup = float("nan")
            if have_ansible:
                ainv = work / f"ansible-{n}.ini"
                ansible_inventory(ainv, cluster, names[:n])
                a_exec = timed(
                    [args.ansible, "all", "-i", str(ainv), "-f", "50", "-m", "command", "-a", "true"],
                    ans_env,
                    args.repeat,
                )
                a_setup = timed(
                    [args.ansible, "all", "-i", str(ainv), "-f", "50", "-m", "setup"], ans_env, args.repeat
                )
            rows.append((n, exec_s, facts_s, a_exec, a_setup))
        console = Console()
        table = Table(
            title=f"fleet benchmark, median of {args.repeat} runs (seconds of wall time per CLI run)"
        )
        for col in (
            "hosts",
            "llmctl exec",
            "vs 1 host",
            "ansible command",
            "ansible / llmctl",
            "llmctl facts",
            "vs 1 host",
            "ansible setup",
            "ansible / llmctl",
        ):
            table.add_column(col, justify="right")
        one_exec, one_facts = rows[0][1], rows[0][2]
        for n, e, f, ae, asu in rows:
            table.add_row(
                str(n),
                f"{e:.2f}",
                f"{e / one_exec:.2f}x",
                f"{ae:.2f}",
                f"{ae / e:.1f}x",
                f"{f:.2f}",
                f"{f / one_facts:.2f}x",
                f"{asu:.2f}",
                f"{asu / f:.1f}x",
            )
        console.print(table)
    finally:
        cluster.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
