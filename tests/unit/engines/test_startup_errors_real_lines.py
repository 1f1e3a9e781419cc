"""The start-up failure recogniser on lines as the real vLLM prints them (format strings of vLLM 0.32's
v1/worker/cpu_worker.py and v1/worker/utils.py, filled in as a real run did)."""

from __future__ import annotations

import pytest

from llmctl.engines.startup_errors import recognise

HELD = [
    "(Worker pid=81) ValueError: Available memory on node 0 (8.37/11.71 GiB) on startup is less than desired CPU "
    "memory utilization (0.9, 10.54 GiB). On the CPU backend, the `--gpu-memory-utilization` flag controls ...",
    "(Worker pid=81) ValueError: Available memory on node 0 (0.52/11.71 GiB) on kv cache allocation is less than "
    "requested memory for kv (4.00 GiB). Decrease --kv-cache-memory-bytes, VLLM_CPU_KVCACHE_SPACE, or ...",
    "ValueError: Free memory on device cuda:0 (2.1/79.1 GiB) on startup is less than desired GPU memory "
    "utilization (0.9, 71.2 GiB). Decrease GPU memory utilization or reduce GPU memory used by other processes.",
]


@pytest.mark.parametrize("line", HELD)
def test_memory_held_by_other_processes_is_named(line: str) -> None:
    found = recognise(f"INFO starting\n{line}\nRuntimeError: Engine core initialization failed.")
    assert found is not None and found.kind == "memory_held"
    assert found.line.startswith("ValueError: ") and "other processes hold the memory" in found.reason
