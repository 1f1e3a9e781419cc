"""The emulated engine as a real process: OpenAI API with streaming, real metric names, sleep/wake,
argparse-style refusal of bad flags and the engines' own out-of-memory lines."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from llmctl.engines.emulator.config import parse_config
from llmctl.engines.emulator.startup import StartupError, cold_start_seconds, prepare
from llmctl.engines.startup_errors import recognise

SCALE = "0.01"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "llmctl.engines.emulator", *args],
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "LLMCTL_EMULATOR_TIME_SCALE": SCALE, **(env or {})},
    )


def wait_ready(proc: subprocess.Popen[str], url: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        assert proc.poll() is None, proc.communicate()[1]
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "emulator did not become ready"
        time.sleep(0.05)


@contextmanager
def running(args: list[str], port: int, env: dict[str, str] | None = None) -> Iterator[str]:
    proc = start(args, env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, url)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def vllm_args(port: int, *extra: str) -> list[str]:
    return [
        "--flavour",
        "vllm",
        "meta-llama/Llama-3.1-8B-Instruct",
        "--served-model-name",
        "chat",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--max-model-len",
        "8192",
        "--quantization",
        "fp8",
        *extra,
    ]


def sglang_args(port: int, *extra: str) -> list[str]:
    return [
        "--flavour",
        "sglang",
        "--model-path",
        "Qwen/Qwen3-8B",
        "--served-model-name",
        "chat",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--context-length",
        "8192",
        "--enable-metrics",
        *extra,
    ]


def metric_values(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[s.name] = out.get(s.name, 0.0) + s.value
    return out


@pytest.mark.parametrize("flavour", ["vllm", "sglang"])
def test_openai_api_streaming_and_real_metric_names(flavour: str) -> None:
    port = free_port()
    args = vllm_args(port) if flavour == "vllm" else sglang_args(port)
    with running(args, port) as url:
        models = httpx.get(url + "/v1/models").json()
        assert [m["id"] for m in models["data"]] == ["chat"] and models["data"][0]["owned_by"] == flavour
        plain = httpx.post(
            url + "/v1/completions", json={"model": "chat", "prompt": "x" * 40, "max_tokens": 7}, timeout=30
        ).json()
        counts = {k: plain["usage"][k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
        assert counts == {"prompt_tokens": 10, "completion_tokens": 7, "total_tokens": 17}
        assert len(plain["choices"][0]["text"].split()) == 7
        chunks = []
        with httpx.stream(
            "POST",
            url + "/v1/chat/completions",
            timeout=30,
            json={
                "model": "chat",
                "messages": [{"role": "user", "content": "hi there"}],
                "max_tokens": 5,
                "stream": True,
                "stream_options": {"include_usage": True},
            },
        ) as r:
            lines = [line for line in r.iter_lines() if line.startswith("data: ")]
        assert lines[-1] == "data: [DONE]"
        chunks = [json.loads(line[6:]) for line in lines[:-1]]
        assert "".join(c["choices"][0]["delta"]["content"] for c in chunks if c["choices"]).split() == [
            "the",
            "quick",
            "brown",
            "fox",
            "jumps",
        ]
        assert chunks[-1]["usage"]["completion_tokens"] == 5
        missing = httpx.post(url + "/v1/completions", json={"model": "nope", "prompt": "x"})
        assert missing.status_code == 404 and "`nope` does not exist" in missing.text
        too_long = httpx.post(
            url + "/v1/completions", json={"model": "chat", "prompt": "x", "max_tokens": 9000}
        )
        # vLLM: "max_tokens=9000 cannot be greater than max_model_len=8192"; SGLang: "... maximum context length".
        assert too_long.status_code == 400 and "8192" in too_long.text
        values = metric_values(httpx.get(url + "/metrics").text)
    prefix = "vllm:" if flavour == "vllm" else "sglang:"
    assert values[f"{prefix}generation_tokens_total"] == 12
    assert values[f"{prefix}prompt_tokens_total"] == 10 + 2
    assert values[f"{prefix}time_to_first_token_seconds_count"] == 2
    assert values[f"{prefix}e2e_request_latency_seconds_count"] == 2
    assert values[f"{prefix}inter_token_latency_seconds_count"] == (7 - 1) + (5 - 1)  # gaps between tokens
    assert values[f"{prefix}time_to_first_token_seconds_sum"] > 0
    expected = {
        "vllm": {
            "vllm:num_requests_running",
            "vllm:num_requests_waiting",
            "vllm:kv_cache_usage_perc",
            "vllm:inter_token_latency_seconds_bucket",
            "vllm:request_success_total",
            "vllm:num_preemptions_total",
        },
        "sglang": {
            "sglang:num_running_reqs",
            "sglang:num_queue_reqs",
            "sglang:token_usage",
            "sglang:inter_token_latency_seconds_bucket",
            "sglang:num_requests_total",
        },
    }[flavour]
    assert expected <= set(values)
    assert values[f"{prefix}request_success_total" if flavour == "vllm" else "sglang:num_requests_total"] == 2


def test_sleep_and_wake_need_sleep_mode_and_dev_mode() -> None:
    port = free_port()
    with running(vllm_args(port, "--enable-sleep-mode"), port, {"VLLM_SERVER_DEV_MODE": "1"}) as url:
        assert httpx.post(url + "/sleep").status_code == 200
        assert httpx.get(url + "/is_sleeping").json() == {"is_sleeping": True}
        assert httpx.post(url + "/v1/completions", json={"model": "chat", "prompt": "x"}).status_code == 503
        assert httpx.post(url + "/wake_up", timeout=30).status_code == 200
        assert (
            httpx.post(url + "/v1/completions", json={"model": "chat", "prompt": "x"}, timeout=30).status_code
            == 200
        )
    port = free_port()
    with running(vllm_args(port, "--enable-sleep-mode"), port) as url:  # no VLLM_SERVER_DEV_MODE
        assert httpx.post(url + "/sleep").status_code == 404


def test_unknown_flag_exits_2_like_argparse() -> None:
    proc = start(vllm_args(free_port(), "--max-num-seqz", "4"))
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "--max-num-seqz" in err and "did you mean --max-num-seqs" in err
    failure = recognise(err)
    assert failure is not None and failure.kind == "bad_argument"


def test_port_opens_only_after_the_scaled_cold_start() -> None:
    port = free_port()
    args = vllm_args(port)
    scale = 0.02
    modelled = cold_start_seconds(parse_config("vllm", args[2:], {})) * scale
    started = time.monotonic()
    with running(args, port, {"LLMCTL_EMULATOR_TIME_SCALE": str(scale)}):
        ready_after = time.monotonic() - started
    assert modelled > 0.3  # large enough that a port opened before "loading" would show
    assert ready_after >= modelled


@pytest.mark.parametrize(
    ("args", "kind"),
    [
        (  # 70B bf16 is 141 GB of weights: more than one H100 holds
            ["--flavour", "vllm", "meta-llama/Llama-3.1-70B-Instruct", "--tensor-parallel-size", "1"],
            "weights_out_of_memory",
        ),
        (
            ["--flavour", "sglang", "--model-path", "Qwen/Qwen3-8B", "--mem-fraction-static", "0.15"],
            "sglang_not_enough_memory",
        ),
    ],
)
def test_startup_failures_print_the_engines_own_lines_after_loading(args: list[str], kind: str) -> None:
    scale = 0.02
    config = parse_config(args[1], args[2:], {})
    with pytest.raises(StartupError) as modelled:
        prepare(config)
    started = time.monotonic()
    proc = start([*args, "--port", str(free_port())], {"LLMCTL_EMULATOR_TIME_SCALE": str(scale)})
    _, err = proc.communicate(timeout=30)
    failure = recognise(err)
    assert proc.returncode == 1 and failure is not None and failure.kind == kind, err
    # It fails where the engine would, part-way into start-up: a readiness wait sees a start, then the error.
    assert time.monotonic() - started >= modelled.value.after_s * scale > 0


def test_unknown_model_exits_1_after_parsing() -> None:
    proc = start(["--flavour", "vllm", "no-such/model", "--port", str(free_port())])
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and "unknown model 'no-such/model'" in err


def test_sigterm_ends_the_server_promptly_dropping_requests_in_flight() -> None:
    """A stop (SIGTERM) must not wait for in-flight generations: the engine loop is gone, so they could
    never finish, and llmctl's stop would SIGKILL after its grace period instead."""
    port = free_port()
    proc = start(vllm_args(port))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, url)
        body = {"model": "chat", "prompt": "go", "max_tokens": 8000, "stream": True}
        chunks = 0
        stream = httpx.stream("POST", url + "/v1/completions", json=body, timeout=10)
        # The answer is cut off by the server going away (not completed, and not left hanging to time out).
        with pytest.raises(httpx.RemoteProtocolError), stream as r:
            for line in r.iter_lines():
                if line.startswith("data: {"):
                    chunks += 1
                    if chunks == 1:
                        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert 1 <= chunks < 8000
    finally:
        if proc.poll() is None:
            proc.kill()
