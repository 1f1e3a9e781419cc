"""Cost of one dashboard refresh (not run by CI): `python tests/bench/bench_tui.py`.

Seeds a 1-host store and a 100-host / 800-GPU / 200-replica store (ten minutes of samples at 2 s per
replica, 5000 events), then measures, with the app running headless at 160x48:
- CPU time of one steady-state snapshot build (the reader's caches warm: what each interval costs),
- CPU time of the first build (cold caches),
- CPU time of showing a snapshot on the Deployments and Fleet screens (widget update),
- frames per second: repaints the app completes per second while refreshing back to back.
Figures are printed with their ratio to the 1-host store."""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tui"))

from tui_seed import NOW, seed_fleet

from llmctl.state.store import Store
from llmctl.tui.app import DashboardApp
from llmctl.tui.data import SnapshotReader

ROUNDS = 20


def build_costs(path: Path) -> tuple[float, float]:
    reader = SnapshotReader()
    store = Store(path)
    t0 = time.process_time()
    reader.read(store, NOW)
    cold = time.process_time() - t0
    t0 = time.process_time()
    for k in range(ROUNDS):
        reader.read(store, NOW + 2 * (k + 1))
    warm = (time.process_time() - t0) / ROUNDS
    store.close()
    return cold, warm


async def ui_costs(path: Path) -> tuple[float, float, float]:
    app = DashboardApp(path, now=lambda: NOW, refresh_s=None)
    async with app.run_test(size=(160, 48)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        snapshot = app.snapshot
        costs = {}
        for mode in ("deployments", "fleet"):
            await app.switch_mode(mode)
            await pilot.pause()
            t0 = time.process_time()
            for _ in range(ROUNDS):
                app.show_snapshot(snapshot)
                await pilot.pause()
            costs[mode] = (time.process_time() - t0) / ROUNDS
        await app.switch_mode("deployments")
        frames = 0

        def count() -> None:
            nonlocal frames
            frames += 1

        app.screen.call_after_refresh(count)
        start = time.perf_counter()
        while time.perf_counter() - start < 3.0:
            app.refresh_snapshot()
            await app.workers.wait_for_complete()
            app.screen.refresh()
            app.screen.call_after_refresh(count)
            await pilot.pause()
        fps = frames / (time.perf_counter() - start)
    return costs["deployments"], costs["fleet"], fps


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        small = seed_fleet(
            Path(tmp) / "small.db", hosts=1, gpus_per_host=8, replicas_=1, samples=300, events=50
        )
        large = seed_fleet(
            Path(tmp) / "large.db", hosts=100, gpus_per_host=8, replicas_=200, samples=300, events=5000
        )
        rows = {}
        for label, path in (("1 host, 1 replica", small), ("100 hosts, 800 GPUs, 200 replicas", large)):
            cold, warm = build_costs(path)
            deps, fleet, fps = asyncio.run(ui_costs(path))
            rows[label] = (cold * 1e3, warm * 1e3, deps * 1e3, fleet * 1e3, fps)
        names = ("snapshot build, cold (ms CPU)", "snapshot build, warm (ms CPU)",
                 "show on Deployments (ms CPU)", "show on Fleet (ms CPU)", "frames/s while refreshing")  # fmt: skip
        (a_label, a), (b_label, b) = rows.items()
        print(f"{'':34} {a_label:>20} {b_label:>36} {'ratio':>8}")
        for i, name in enumerate(names):
            print(f"{name:34} {a[i]:20.2f} {b[i]:36.2f} {b[i] / a[i] if a[i] else float('nan'):8.1f}")


if __name__ == "__main__":
    main()
