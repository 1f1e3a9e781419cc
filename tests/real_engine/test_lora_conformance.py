"""The emulated vLLM's LoRA serving against a real one (vLLM's CPU backend, the tiny random-weight model and
two random adapters built for it here): /v1/models cards, requests naming an adapter, /v1/load_lora_adapter
and /v1/unload_lora_adapter with their refusals, and the LoRA metric family (llmctl.bench.conformance_lora).
The real engine listens on port 19700."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmctl.bench.conformance import Row, watch_startup
from llmctl.bench.conformance_lora import STATIC, run_lora
from llmctl.testing.tiny_adapter import build_adapter
from tests.real_engine.test_conformance import (
    MAX_MODEL_LEN,
    MODEL,
    START_TIMEOUT_S,
    Engine,
    free_port,
    serve_args,
    start,
    stop,
    unavailable,
)

pytestmark = pytest.mark.real_engine

REAL_PORT = 19700
RUNTIME_ENV = {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "1"}


def lora_args(static: Path) -> list[str]:
    return [
        "--enable-lora",
        "--max-loras",
        "2",
        "--max-lora-rank",
        "16",
        "--lora-modules",
        f"{STATIC}={static}",
    ]


@pytest.fixture(scope="module")
def lora_conformance(tmp_path_factory: pytest.TempPathFactory, installed_engine: Path) -> Iterator[list[Row]]:
    python = installed_engine / "bin" / "python"
    try:
        from llmctl.testing.tiny_model import build_model

        model_dir = build_model(tmp_path_factory.mktemp("model") / "tiny", "tiny")
    except ImportError as exc:
        unavailable(f"cannot build the tiny model: {exc}")
    adapters = tmp_path_factory.mktemp("adapters")
    static = build_adapter(model_dir, adapters / "sql", rank=8)
    runtime = build_adapter(model_dir, adapters / "legal", rank=16, seed=1)
    work = tmp_path_factory.mktemp("engines")
    cand_port = free_port()
    engines: list[Engine] = []

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupted)
    try:
        engines.append(
            start(
                [str(python), "-m", "vllm.entrypoints.openai.api_server", *serve_args(model_dir, REAL_PORT),
                 *lora_args(static)],
                {"VLLM_CPU_KVCACHE_SPACE": "1", **RUNTIME_ENV}, work, work / "vllm.log", REAL_PORT,
            )
        )  # fmt: skip
        engines.append(
            start(
                [sys.executable, "-m", "llmctl.engines.emulator", "--flavour", "vllm",
                 *serve_args(model_dir, cand_port), *lora_args(static)],
                {"LLMCTL_EMULATOR_TIME_SCALE": "0.05", **RUNTIME_ENV}, work, work / "emulator.log", cand_port,
            )
        )  # fmt: skip
        reference, candidate = engines
        for engine in (candidate, reference):
            seen = watch_startup(engine.url, lambda e=engine: e.proc.poll() is None, START_TIMEOUT_S)
            assert seen.endswith("200"), f"{engine.url} never became ready ({seen}):\n{engine.tail()}"
        yield run_lora(reference.url, candidate.url, MODEL, MAX_MODEL_LEN, (str(runtime), str(runtime)))
    finally:
        signal.signal(signal.SIGTERM, previous)
        for engine in engines:
            stop(engine)


def test_lora_endpoints_answer_as_the_real_engine_does(lora_conformance: list[Row]) -> None:
    differing = [
        f"{r.check}: reference {r.reference!r}, candidate {r.candidate!r}"
        for r in lora_conformance
        if r.verdict == "differs"
    ]
    assert not differing, "\n".join(differing)
    # Both really served adapters: the reference's own answers, seen the same on the emulator.
    rows = {r.check: r for r in lora_conformance}
    print("\n".join(f"{r.check}: {r.label} {r.reference!r}" for r in lora_conformance))
    expected = {
        "lora.load.body": "Success: LoRA adapter 'legal' added successfully.",
        "lora.unload.body": "Success: LoRA adapter 'legal' removed successfully.",
        "lora.models.ids": ["sql"],
        "lora.models_after_load.ids": ["sql", "legal"],
        "lora.models_after_unload.ids": ["sql"],
        "lora.completion.status": 200,
        "lora.chat.status": 200,
        "metrics.family vllm:lora_requests_info": "gauge",
    }
    for check, value in expected.items():
        assert rows[check].verdict == "same" and rows[check].reference == value, rows[check]
