"""`llmctl load --trace`: a trace replayed as a request schedule, clipped to the context, scaled in rate."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmctl.cli.load import trace_schedule
from llmctl.errors import LlmctlError

AZURE = Path(__file__).resolve().parents[3] / "sim" / "traces" / "AzureLLMInferenceTrace_conv.csv"


def test_replay_keeps_order_bounds_and_context_and_scales_the_rate() -> None:
    one = trace_schedule(AZURE, 3600, 1.0, 1.0, 2048, seed=1)
    two = trace_schedule(AZURE, 3600, 1.0, 2.0, 2048, seed=1)
    assert [s.at_s for s in one] == sorted(s.at_s for s in one)
    assert all(0 <= s.at_s < 3600 for s in one)
    assert all(s.prompt_tokens + s.output_tokens <= 2048 and s.prompt_tokens >= 1 for s in one + two)
    assert 1.8 < len(two) / len(one) < 2.2  # over the whole trace: twice the rate


def test_missing_trace_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LlmctlError, match="no such file"):
        trace_schedule(tmp_path / "nope.csv", 10, 1.0, 1.0, 2048, seed=0)
