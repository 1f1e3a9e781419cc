"""Cold start phases and wake-from-sleep."""

from __future__ import annotations

import pytest

from llmctl.perf.cold_start import cold_start_time, wake_time
from llmctl.perf.profile import Profile, make_profile


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_phases_sum_to_total_and_local_beats_network(engine: str) -> None:
    p = make_profile(engine, "meta-llama/Llama-3.1-70B-Instruct", "H100-SXM", "fp8", 4)
    local, network = cold_start_time(p, source="local"), cold_start_time(p, source="network")
    assert local.total_s == pytest.approx(sum(local.phases().values()))
    assert local.download_s == 0 < network.download_s
    assert local.total_s < network.total_s


def test_wake_from_sleep_is_much_faster_than_cold_start(llama8b: Profile) -> None:
    wake = wake_time(llama8b)
    assert wake.total_s == wake.host_to_gpu_s + wake.fixed_s
    assert wake.total_s * 10 < cold_start_time(llama8b).total_s
    # 16 GB over 38% of PCIe Gen5's 64 GB/s (the sleep allocator's copy rate, fitted to the vLLM
    # sleep-mode blog's level-1 wakes) is about 0.66 s.
    assert 0.5 < wake.host_to_gpu_s < 0.8


def test_enforce_eager_skips_graph_capture_and_sglang_captures_fewer(llama8b: Profile) -> None:
    eager = make_profile("vllm", llama8b.model, llama8b.gpu, cuda_graphs=False)
    assert cold_start_time(eager).cuda_graph_capture_s == 0 == cold_start_time(eager).compile_s
    sglang = make_profile("sglang", llama8b.model, llama8b.gpu)
    assert 0 < cold_start_time(sglang).cuda_graph_capture_s < cold_start_time(llama8b).cuda_graph_capture_s


def test_fp8_checkpoint_loads_twice_as_fast_and_bandwidth_overrides(llama8b: Profile) -> None:
    fp8 = make_profile("vllm", llama8b.model, llama8b.gpu, "fp8")
    assert cold_start_time(fp8).disk_read_s == pytest.approx(cold_start_time(llama8b).disk_read_s / 2)
    fast = cold_start_time(llama8b, source="network", bandwidth=10e9)
    assert fast.download_s == pytest.approx(8.03e9 * 2 / 10e9)
