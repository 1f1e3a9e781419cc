from __future__ import annotations

import pytest

from llmctl.perf.profile import Profile, make_profile

LLAMA_8B = "meta-llama/Llama-3.1-8B-Instruct"


@pytest.fixture
def llama8b() -> Profile:
    return make_profile("vllm", LLAMA_8B, "H100-SXM", "bf16", 1)
